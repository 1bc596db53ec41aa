// SPDX-License-Identifier: GPL-2.0
/*
 * repl_status.c - what the replication thread tells the rest of the
 * agent (struct agent_status in agent.h, under sh->lock): per-disk state
 * and byte counts, backlog, lag, ETA, errors; and the one-line JSON
 * summary that `ferry-agent --once` prints when it ends.
 *
 * Backlog is every byte written and not yet acknowledged: the tracker's
 * dirty bytes, the pending ranges, what is being read and what was sent
 * but not acknowledged.  Lag is the age of the oldest of those changes,
 * counted from the drain that found it (a change still in the tracker has
 * no known age until drained; drains are at most drain_interval apart
 * while the link keeps up).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "repl_log.h"

#define STATUS_EVERY_MS 250
#define RATE_EVERY_MS 2000
/* BACKLOG when behind by this much; back to CONTINUOUS below the lower
 * marks (hysteresis, so that the state does not flap). */
#define BEHIND_LAG_MS 10000
#define BEHIND_BYTES (256ull << 20)
#define CAUGHT_UP_LAG_MS 5000
#define CAUGHT_UP_BYTES (128ull << 20)

void status_error(struct engine *e, const char *error, const char *raw)
{
	snprintf(e->st_error, sizeof(e->st_error), "%s", error);
	snprintf(e->st_raw, sizeof(e->st_raw), "%s", raw);
}

struct owed {
	struct engine *e;
	uint64_t bytes[AGENT_MAX_DISKS];
	uint64_t oldest_ms;	/* 0: none */
};

static void owe_epoch(struct owed *o, uint64_t epoch)
{
	if (epoch && (!o->oldest_ms || epoch < o->oldest_ms))
		o->oldest_ms = epoch;
}

static void owed_rec(void *arg, const struct link_rec *r)
{
	struct owed *o = arg;

	if ((r->type == FERRY_F_DATA || r->type == FERRY_F_ZERO) &&
	    r->kind != SK_COPY && r->disk < AGENT_MAX_DISKS) {
		o->bytes[r->disk] += r->len;
		owe_epoch(o, r->epoch_ms);
	}
}

static void owed_collect(struct engine *e, struct owed *o)
{
	memset(o, 0, sizeof(*o));
	o->e = e;
	for (unsigned int i = 0; i < e->n_disks; i++) {
		struct disk *d = &e->disks[i];

		o->bytes[i] += extent_set_bytes(&d->pending) + d->tracker_dirty;
		if (d->pending.n)
			owe_epoch(o, d->pending_since_ms);
	}
	for (unsigned int k = 0; k < e->count; k++) {
		const struct slot *s = &e->slots[(e->head + k) % e->depth];

		if (s->kind == SK_DIRTY) {
			o->bytes[s->disk] += s->len - s->done;
			owe_epoch(o, s->epoch_ms);
		}
	}
	if (e->ln.up)
		link_foreach_unacked(&e->ln, owed_rec, o);
}

static enum agent_repl_state disk_state(const struct engine *e,
					const struct disk *d)
{
	if (e->stopped)
		return AGENT_STOPPED;
	if (e->paused)
		return AGENT_PAUSED;
	if (d->failed)
		return AGENT_STALLED;
	if (!e->ln.up) {
		/* Not yet paired with the replicator, as MGN shows it: a
		 * refusal then is an initiation error (the replicator may
		 * not have polled its new assignment yet). */
		if (!e->connected_once)
			return AGENT_INITIATING;
		if (e->last_fail == LINK_FAIL_NOSPC ||
		    e->last_fail == LINK_FAIL_REFUSED)
			return AGENT_STALLED;
		return AGENT_DISCONNECTED;
	}
	if (d->rs.active)
		return AGENT_RESCAN;
	if (!disk_copied(d))
		return AGENT_INITIAL_SYNC;
	if (e->behind)
		return AGENT_BACKLOG;
	return AGENT_CONTINUOUS;
}

/* The server's state: the first of these that any disk is in. */
static const enum agent_repl_state precedence[] = {
	AGENT_STOPPED, AGENT_PAUSED, AGENT_STALLED, AGENT_DISCONNECTED,
	AGENT_INITIATING, AGENT_RESCAN, AGENT_INITIAL_SYNC, AGENT_BACKLOG,
	AGENT_CONTINUOUS,
};

static void update_behind(struct engine *e, uint64_t backlog, uint64_t lag,
			  uint64_t now_ms)
{
	bool copying = false;
	char raw[AGENT_MSG_MAX];

	for (unsigned int i = 0; i < e->n_disks; i++)
		if (!disk_copied(&e->disks[i]))
			copying = true;
	if (!e->ln.up || copying || e->paused || e->stopped)
		return;
	if (!e->behind && (lag > BEHIND_LAG_MS || backlog > BEHIND_BYTES)) {
		e->behind = true;
		e->behind_since_ms = now_ms;
	} else if (e->behind && lag < CAUGHT_UP_LAG_MS &&
		   backlog < CAUGHT_UP_BYTES) {
		e->behind = false;
		e->behind_since_ms = 0;
		if (!strcmp(e->st_error, "NOT_CONVERGING"))
			status_error(e, "", "");
	}
	if (e->behind && e->cfg->not_converging_s &&
	    now_ms - e->behind_since_ms >=
	    (uint64_t)e->cfg->not_converging_s * 1000) {
		snprintf(raw, sizeof(raw),
			 "behind for %" PRIu64 " s: %" PRIu64 " bytes written "
			 "and not yet replicated, the oldest %" PRIu64 " s "
			 "ago; the disks are written faster than the link "
			 "carries (bandwidth limit %" PRIu64 " bytes/s, 0 = "
			 "none)", (now_ms - e->behind_since_ms) / 1000,
			 backlog, lag / 1000, e->th.rate);
		status_error(e, "NOT_CONVERGING", raw);
	}
}

static void update_rate(struct engine *e, uint64_t now_ms)
{
	double sample;

	if (!e->rate_ms) {
		e->rate_ms = now_ms;
		e->rate_bytes = e->acked_bytes;
		return;
	}
	if (now_ms - e->rate_ms < RATE_EVERY_MS)
		return;
	sample = (double)(e->acked_bytes - e->rate_bytes) * 1000.0 /
		 (double)(now_ms - e->rate_ms);
	e->rate_bps = e->rate_bps ? 0.7 * e->rate_bps + 0.3 * sample : sample;
	e->rate_ms = now_ms;
	e->rate_bytes = e->acked_bytes;
}

void status_update(struct engine *e, uint64_t now_ms, bool force)
{
	struct agent_status *st = &e->sh->st;
	static __thread struct owed o;
	enum agent_repl_state states[AGENT_MAX_DISKS];
	uint64_t backlog = 0, remaining = 0, lag;
	int64_t eta = -1;

	if (!force && now_ms - e->status_ms < STATUS_EVERY_MS)
		return;
	e->status_ms = now_ms;
	owed_collect(e, &o);
	lag = o.oldest_ms && now_ms > o.oldest_ms ? now_ms - o.oldest_ms : 0;
	for (unsigned int i = 0; i < e->n_disks; i++) {
		const struct disk *d = &e->disks[i];
		uint64_t repl = d->copy_acked > d->mark_acked ? d->copy_acked :
								d->mark_acked;

		backlog += o.bytes[i];
		if (repl > d->dev.size || disk_copied(d))
			repl = d->dev.size;
		remaining += d->dev.size - repl;
		if (d->rs.active)
			remaining += d->rs.end - d->rs.compared;
	}
	update_behind(e, backlog, lag, now_ms);
	update_rate(e, now_ms);
	for (unsigned int i = 0; i < e->n_disks; i++)
		states[i] = disk_state(e, &e->disks[i]);
	if (e->rate_bps > 1) {
		if (remaining)
			eta = (int64_t)((double)(remaining + backlog) /
					e->rate_bps);
		else if (e->behind)
			eta = (int64_t)((double)backlog / e->rate_bps);
		else
			eta = 0;
	}

	pthread_mutex_lock(&e->sh->lock);
	st->n_disks = e->n_disks;
	st->state = AGENT_INITIATING;
	for (size_t k = 0; k < sizeof(precedence) / sizeof(precedence[0]);
	     k++) {
		bool found = false;

		for (unsigned int i = 0; i < e->n_disks; i++)
			if (states[i] == precedence[k])
				found = true;
		if (found) {
			st->state = precedence[k];
			break;
		}
	}
	if (!e->n_disks)
		st->state = e->stopped ? AGENT_STOPPED :
			    e->paused ? AGENT_PAUSED : AGENT_INITIATING;
	for (unsigned int i = 0; i < e->n_disks; i++) {
		const struct disk *d = &e->disks[i];
		struct agent_disk_status *ds = &st->disks[i];
		uint64_t repl = d->copy_acked > d->mark_acked ? d->copy_acked :
								d->mark_acked;

		if (repl > d->dev.size || disk_copied(d))
			repl = d->dev.size;
		snprintf(ds->name, sizeof(ds->name), "%s", d->name);
		ds->total_bytes = d->dev.size;
		ds->replicated_bytes = repl;
		ds->rescanned_bytes = d->rs.compared;
		ds->backlog_bytes = o.bytes[i];
		ds->sent_bytes = d->c.payload;
		ds->state = states[i];
	}
	st->lag_ms = lag;
	st->eta_s = eta;
	st->last_cp_ms = e->last_cp_ms;
	snprintf(st->error, sizeof(st->error), "%s", e->st_error);
	snprintf(st->raw_error, sizeof(st->raw_error), "%s", e->st_raw);
	st->updated_ms = eng_wall_ms();
	pthread_cond_broadcast(&e->sh->cond);
	pthread_mutex_unlock(&e->sh->lock);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void status_summary(struct engine *e)
{
	FILE *f = stdout;
	uint64_t now = eng_mono_ms();

	fprintf(f, "{\"ok\":%s,\"error\":", e->fatal[0] ? "false" : "true");
	json_str(f, e->fatal);
	fprintf(f, ",\"seconds\":%.3f,\"cp_id\":%" PRIu64 ",\"disks\":[",
		(double)(now - e->start_ms) / 1000.0, e->cp_acked_id);
	for (unsigned int i = 0; i < e->n_disks; i++) {
		const struct disk *d = &e->disks[i];

		fprintf(f, "%s{\"name\":", i ? "," : "");
		json_str(f, d->name);
		fprintf(f, ",\"size\":%" PRIu64 ",\"replicated_bytes\":%" PRIu64
			",\"data_frames\":%" PRIu64
			",\"data_raw_bytes\":%" PRIu64
			",\"data_wire_bytes\":%" PRIu64
			",\"zero_frames\":%" PRIu64 ",\"zero_bytes\":%" PRIu64
			",\"copy_bytes\":%" PRIu64 ",\"resent_bytes\":%" PRIu64
			",\"lost_bytes\":%" PRIu64
			",\"payload_bytes\":%" PRIu64
			",\"rescanned_bytes\":%" PRIu64
			",\"rescan_differed_bytes\":%" PRIu64 "}",
			d->dev.size, disk_copied(d) ? d->dev.size :
			d->copy_acked, d->c.data_frames, d->c.data_raw,
			d->c.data_wire, d->c.zero_frames, d->c.zero_bytes,
			d->c.copy_sent, d->c.resent, d->lost_bytes,
			d->c.payload, d->rs.compared, d->rs.differed);
	}
	fprintf(f, "],\"throttle\":{\"rate\":%" PRIu64 ",\"burst\":%" PRIu64
		",\"granted\":%" PRIu64 ",\"elapsed_ns\":%" PRIu64
		",\"waits\":%" PRIu64 "}}\n", e->th.rate, e->th.burst,
		e->th.granted, e->th.last_grant_ns - e->th.since_ns,
		e->th.waits);
	fflush(f);
}
