// SPDX-License-Identifier: GPL-2.0
/*
 * cp.c - consistency points: when to send a CP frame (docs/protocol.md
 * section 8: everything sent before it, on every disk, is one
 * crash-consistent image of the server's disks).
 *
 * The rule here is the simple, safe one: a CP only after a whole drain
 * round in which no disk saw a write (the tracker's `writes` counter the
 * same before the round's drain and after its reads, on every disk), with
 * every initial copy and rescan finished and everything sent
 * acknowledged.  Then the replicas hold each disk as it was at one
 * moment of that quiet round.  A server that never stops writing gets no
 * CP from this rule; docs/agent.md ("Consistency points") describes the
 * design that the lead engineer finishes in cp_maybe().
 *
 * Without the tracker (--once, a cold copy of disks nobody writes), the
 * CP goes once everything is copied and acknowledged.
 */
#include <inttypes.h>

#include "engine.h"
#include "repl_log.h"

/* How long the drain rounds wait for a quiet round's acknowledgements
 * before giving the CP up (writes then go on being replicated). */
#define CP_ACK_WAIT_MS 2000

static bool all_caught_up(const struct engine *e)
{
	for (unsigned int i = 0; i < e->n_disks; i++) {
		const struct disk *d = &e->disks[i];

		if (d->failed || !disk_copied(d) || d->rs.active ||
		    d->pending.n)
			return false;
	}
	return e->count == 0 && eng_link_idle(e);
}

void cp_round_end(struct engine *e, bool idle, uint64_t now_ms)
{
	e->idle_round = idle;
	e->cp_wait_until_ms = idle && e->data_since_cp ?
			      now_ms + CP_ACK_WAIT_MS : 0;
}

bool cp_allows_drain(const struct engine *e, uint64_t now_ms)
{
	return !e->cp_wait_until_ms || now_ms >= e->cp_wait_until_ms;
}

void cp_maybe(struct engine *e, uint64_t now_ms)
{
	struct link_rec r = { .kind = SK_NONE };
	uint64_t wall = eng_wall_ms();

	if (!e->ln.up || !e->data_since_cp)
		return;
	if (!e->once) {
		/* A quiet round, whose data is all acknowledged, and no
		 * new round started since. */
		if (!e->idle_round || e->round_active ||
		    !e->cp_wait_until_ms || now_ms >= e->cp_wait_until_ms)
			return;
	}
	if (!all_caught_up(e) || !link_can_send(&e->ln, 16))
		return;
	r.epoch_ms = wall;
	if (link_send_cp(&e->ln, &r, e->cp_id + 1, wall))
		return;
	e->cp_id++;
	e->data_since_cp = false;
	e->idle_round = false;
	e->cp_wait_until_ms = 0;
	repl_log("consistency point %" PRIu64 " sent", e->cp_id);
}
