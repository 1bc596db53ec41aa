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
 * acknowledged.  Then the replicas hold each disk as it was at the
 * round's drain.  A server that never stops writing gets no quiet round:
 * when the last CP is cp-interval-seconds old and the dirty set is
 * small, the round runs under a freeze of the disks' filesystems
 * (freeze.c), which makes it quiet unless something writes to the raw
 * devices (the counters still judge).  docs/agent.md, "Consistency
 * points", says why this gives crash-consistent images.
 *
 * Without the tracker (--once, a cold copy of disks nobody writes), the
 * CP goes once everything is copied and acknowledged.
 */
#include <inttypes.h>
#include <sys/sysmacros.h>

#include "engine.h"
#include "repl_log.h"

/* How long the drain rounds wait for a quiet round's acknowledgements
 * before giving the CP up (writes then go on being replicated). */
#define CP_ACK_WAIT_MS 2000
/* After a freeze that gave no CP, or failed, wait this long. */
#define FREEZE_RETRY_MS 10000

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

/* No read but the round's is left to make: every copy read queued and
 * done, no rescan running.  Reads after the round's end could bring a
 * write made after it without an earlier one the tracker still holds.
 * (The round's own reads are all done: it ends only then.) */
static bool only_round_reads(const struct engine *e)
{
	for (unsigned int i = 0; i < e->n_disks; i++) {
		const struct disk *d = &e->disks[i];

		if (!d->failed && (d->copy_next < d->dev.size ||
				   d->rs.active))
			return false;
	}
	return !eng_queue_has_kind(e, SK_COPY, true) &&
	       !eng_queue_has_kind(e, SK_RESCAN, true);
}

void cp_round_end(struct engine *e, bool idle, uint64_t now_ms)
{
	idle = idle && only_round_reads(e);
	e->idle_round = idle;
	if (!idle)
		e->freeze_ms = 0;	/* no CP from this freeze */
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
	/* The image is the disks at the round's drain (--once: now). */
	if (!e->once && e->round_wall_ms)
		wall = e->round_wall_ms;
	r.epoch_ms = wall;
	if (link_send_cp(&e->ln, &r, e->cp_id + 1, wall))
		return;
	e->cp_id++;
	e->data_since_cp = false;
	e->idle_round = false;
	e->cp_wait_until_ms = 0;
	if (!e->freeze_ms) {
		repl_log("consistency point %" PRIu64 " sent", e->cp_id);
		return;
	}
	e->freeze_cps++;
	e->freeze_ms = 0;
	repl_log("consistency point %" PRIu64 " sent, from a round under a "
		 "freeze of %" PRIu64 " ms", e->cp_id, e->freeze_held_ms);
}

/* Is a frozen round worth it now?  Everything copied and caught up
 * except what the tracker holds, changes since the last CP, the last CP
 * old, and the dirty set small enough for a short freeze. */
static bool freeze_wanted(struct engine *e, uint64_t now_ms)
{
	uint64_t dirty = 0, w;
	bool changed = e->data_since_cp;

	if (!e->fz || !e->cfg->freeze || e->once || !e->ln.up ||
	    now_ms < e->next_freeze_ms || e->cp_wait_until_ms ||
	    now_ms - e->last_cp_mono_ms <
	    (uint64_t)e->cfg->cp_interval_s * 1000)
		return false;
	for (unsigned int i = 0; i < e->n_disks; i++) {
		struct disk *d = &e->disks[i];

		if (d->failed || !d->tracked || !disk_copied(d) ||
		    d->rs.active)
			return false;
		/* A fresh count of the dirty bytes (one ioctl). */
		if (disk_sample(e, d, &w))
			return false;
		dirty += d->tracker_dirty + extent_set_bytes(&d->pending);
		if (d->tracker_dirty || d->pending.n)
			changed = true;
	}
	return changed && dirty <= e->cfg->freeze_max_bytes;
}

void cp_maybe_freeze(struct engine *e, uint64_t now_ms)
{
	dev_t devs[AGENT_MAX_DISKS];
	char err[AGENT_MSG_MAX];
	int n;

	if (!freeze_wanted(e, now_ms))
		return;
	for (unsigned int i = 0; i < e->n_disks; i++)
		devs[i] = makedev(e->disks[i].dev.major,
				  e->disks[i].dev.minor);
	/* Nothing is logged until the thaw: the log may live on a frozen
	 * filesystem. */
	n = freezer_freeze(e->fz, devs, e->n_disks, e->cfg->freeze_timeout_ms,
			   err, sizeof(err));
	if (n < 0) {
		repl_log("cannot freeze the filesystems for a consistency "
			 "point: %s; trying again in %d s", err,
			 FREEZE_RETRY_MS / 1000);
		e->next_freeze_ms = now_ms + FREEZE_RETRY_MS;
		return;
	}
	e->frozen = true;
	e->freeze_ms = now_ms;
	e->freezes++;
}

int cp_thaw(struct engine *e, uint64_t now_ms)
{
	char err[AGENT_MSG_MAX];
	int rc = freezer_thaw(e->fz, err, sizeof(err));

	e->frozen = false;
	e->freeze_held_ms = now_ms - e->freeze_ms;
	if (rc) {
		if (rc < 0)
			repl_log("thawing the filesystems: %s", err);
		else
			repl_log("a freeze for a consistency point outlasted "
				 "freeze-timeout-ms (%u ms): no consistency "
				 "point from it", e->cfg->freeze_timeout_ms);
		e->freeze_ms = 0;
		e->next_freeze_ms = now_ms + FREEZE_RETRY_MS;
		return 1;
	}
	/* The round's counters decide; if they moved (a raw-device writer),
	 * try again later rather than at once. */
	e->next_freeze_ms = now_ms + FREEZE_RETRY_MS;
	return 0;
}
