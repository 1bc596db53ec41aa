// SPDX-License-Identifier: GPL-2.0
/*
 * replicate.c - the replication thread (replicate.h, engine.h): one loop
 * that connects to the replicator, keeps DEPTH reads in flight, sends
 * their frames in the order they were queued, drains the trackers in
 * rounds, and obeys the runtime configuration and commands.
 *
 * What a disk owes, by priority: ranges written since (pending, from the
 * tracker), rescan chunks, the initial copy.  A range leaves the pending
 * set when its read is queued; it comes back if the connection drops
 * before an ACK covered its frame (invariant 3).  The initial copy goes
 * in order from a cursor; after a cut it resumes where the replica holds
 * it durably (WELCOME's sync_mark, or the acknowledged copy frames of
 * this run if further), so nothing acknowledged is sent again.
 *
 * Writes faster than the link: a drain round starts only when the last
 * one's ranges have all been read, so what waits is kept by the tracker
 * (a bitmap), never buffered here; the agent's memory is the read
 * buffers, the send buffer and one round's extent set.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "engine.h"
#include "errmsg.h"
#include "module_load.h"
#include "repl_log.h"
#include "replicate.h"

#define AGENT_VERSION "0.1.0"
#define DEFAULT_DEPTH 32
#define MIN_DEPTH 16
#define DEFAULT_CHUNK (1u << 20)
#define DEFAULT_DRAIN_MS 100
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define CLOSE_WAIT_MS 10000	/* SIGTERM: wait this long for ACKs */
#define ONCE_GIVE_UP_MS 300000	/* --once: no connection for so long */
#define SETUP_RETRY_MS 10000
#define ZSTD_LEVEL 1

uint64_t eng_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t eng_mono_ms(void)
{
	return eng_mono_ns() / 1000000;
}

uint64_t eng_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline struct slot *slot_at(struct engine *e, unsigned int k)
{
	return &e->slots[(e->head + k) % e->depth];
}

bool eng_link_idle(const struct engine *e)
{
	return e->ln.up && link_unacked(&e->ln) == 0 && !link_queued(&e->ln);
}

bool eng_queue_has_kind(const struct engine *e, uint8_t kind,
			bool unread_only)
{
	for (unsigned int k = 0; k < e->count; k++) {
		const struct slot *s = &e->slots[(e->head + k) % e->depth];

		if (s->kind == kind && (!unread_only || !s->ready))
			return true;
	}
	return false;
}

/* ---- link callbacks ------------------------------------------------- */

static void on_acked(void *arg, const struct link_rec *r)
{
	struct engine *e = arg;
	struct disk *d = r->disk < e->n_disks ? &e->disks[r->disk] : NULL;

	switch (r->type) {
	case FERRY_F_DATA:
	case FERRY_F_ZERO:
		if (!d)
			return;
		if (r->kind == SK_COPY && r->off + r->len > d->copy_acked)
			d->copy_acked = r->off + r->len;
		e->acked_bytes += r->len;
		e->failures = 0;	/* the link carries data again */
		return;
	case FERRY_F_SYNC_MARK:
		if (d && r->off > d->mark_acked)
			d->mark_acked = r->off;
		return;
	case FERRY_F_CP:
		e->cp_acked_id = r->cp_id;
		e->last_cp_ms = r->epoch_ms;
		e->last_cp_mono_ms = eng_mono_ms();
		repl_log("consistency point %" PRIu64 " acknowledged",
			 r->cp_id);
		return;
	}
}

static void on_lost(void *arg, const struct link_rec *r)
{
	struct engine *e = arg;
	struct disk *d = r->disk < e->n_disks ? &e->disks[r->disk] : NULL;

	switch (r->type) {
	case FERRY_F_DATA:
	case FERRY_F_ZERO:
		if (!d)
			return;
		d->lost_bytes += r->len;
		/* The copy resumes from what the replica holds; the rest
		 * is owed again, read anew. */
		if (r->kind == SK_DIRTY || r->kind == SK_RESCAN)
			disk_owe(e, d, r->off, r->len,
				 r->epoch_ms ? r->epoch_ms : eng_mono_ms());
		return;
	case FERRY_F_CP:
		/* A CP not acknowledged did not happen. */
		e->data_since_cp = true;
		return;
	}
}

static void on_hash_resp(void *arg, uint64_t seq,
			 const struct ferry_hash_resp *h)
{
	rescan_on_hash_resp(arg, seq, h);
}

/* ---- the read queue ------------------------------------------------- */

static void read_done(void *arg, unsigned int idx, int res)
{
	struct engine *e = arg;
	struct slot *s = &e->slots[idx];

	if (!s->busy || s->ready)
		return;
	if (res < 0 || res == 0) {
		s->err = res < 0 ? -res : EIO;
		s->ready = true;
		return;
	}
	s->got += (uint32_t)res;
	if (s->got >= s->len) {
		s->ready = true;
		return;
	}
	/* A short read: ask for the rest. */
	if (reader_queue(&e->rd, idx, e->disks[s->disk].dev.fd,
			 s->off + s->got, s->got, s->len - s->got)) {
		s->err = EIO;
		s->ready = true;
	}
}

static void queue_read(struct engine *e, struct disk *d, uint8_t kind,
		       uint64_t off, uint32_t len, uint64_t epoch)
{
	unsigned int idx = (e->head + e->count) % e->depth;
	struct slot *s = &e->slots[idx];

	memset(s, 0, sizeof(*s));
	s->busy = true;
	s->kind = kind;
	s->disk = (unsigned int)(d - e->disks);
	s->off = off;
	s->len = len;
	s->epoch_ms = epoch;
	e->count++;
	e->queued_total++;
	if (reader_queue(&e->rd, idx, d->dev.fd, off, 0, len)) {
		s->err = EIO;
		s->ready = true;
	}
}

static bool pick_dirty(struct engine *e, struct disk *d)
{
	struct extent_range *r;
	uint64_t len, epoch = d->pending_since_ms;

	if (!d->pending.n)
		return false;
	r = &d->pending.v[0];
	len = r->end - r->start;
	if (len > e->chunk)
		len = e->chunk;
	queue_read(e, d, SK_DIRTY, r->start, (uint32_t)len, epoch);
	extent_set_remove(&d->pending, r->start, len);
	if (!d->pending.n)
		d->pending_since_ms = 0;
	return true;
}

static bool pick_rescan(struct engine *e, struct disk *d)
{
	uint64_t off;
	uint32_t len;

	if (!rescan_next_read(e, d, &off, &len))
		return false;
	queue_read(e, d, SK_RESCAN, off, len, 0);
	rescan_read_queued(e, d, off, len);
	return true;
}

static bool pick_copy(struct engine *e, struct disk *d)
{
	uint64_t len = d->dev.size - d->copy_next;

	if (d->copy_next >= d->dev.size)
		return false;
	if (len > e->chunk)
		len = e->chunk;
	queue_read(e, d, SK_COPY, d->copy_next, (uint32_t)len, 0);
	d->copy_next += len;
	return true;
}

/* Keep DEPTH reads in flight: dirty ranges first (lag), then rescan
 * chunks, then the copy, taking the disks in turn. */
static int fill(struct engine *e, char *err, size_t errlen)
{
	static bool (*const pickers[])(struct engine *, struct disk *) = {
		pick_dirty, pick_rescan, pick_copy,
	};

	while (e->count < e->depth) {
		bool got = false;

		for (size_t p = 0; p < 3 && !got; p++)
			for (unsigned int k = 0; k < e->n_disks && !got; k++) {
				struct disk *d =
					&e->disks[(e->rr + k) % e->n_disks];

				if (!d->failed && pickers[p](e, d))
					got = true;
			}
		if (!got)
			break;
		e->rr++;
	}
	return reader_submit(&e->rd, err, errlen);
}

/* Empty the queue after a cut or before a pause: wait for the reads in
 * flight (their buffers belong to the kernel until then), give back the
 * dirty ranges not sent. */
static void queue_reset(struct engine *e)
{
	reader_drain(&e->rd, read_done, e);
	for (unsigned int k = 0; k < e->count; k++) {
		struct slot *s = slot_at(e, k);

		if (s->kind == SK_DIRTY && s->done < s->len)
			disk_owe(e, &e->disks[s->disk], s->off + s->done,
				 s->len - s->done, s->epoch_ms);
		s->busy = false;
	}
	e->head = e->count = 0;
	/* Reads dropped unsent cannot bring old data after a rescan's
	 * HASH_REQ: they count as gone past any barrier. */
	e->sent_total = e->queued_total;
	e->enc_valid = false;
}

/* ---- sending -------------------------------------------------------- */

static void release(struct engine *e)
{
	struct slot *s = slot_at(e, 0);
	struct disk *d = &e->disks[s->disk];

	/* An encoding cached for this slot (a send that had to wait) must
	 * not serve the next head, whose FROM and LEN may be the same. */
	e->enc_valid = false;

	if (s->kind == SK_COPY && !d->failed) {
		uint64_t end = s->off + s->len;

		if (end > d->copy_sent)
			d->copy_sent = end;
		if (d->copy_sent >= d->dev.size ||
		    d->copy_sent - d->mark_sent >= MARK_EVERY)
			d->mark_due = true;
	} else if (s->kind == SK_RESCAN && !d->failed) {
		rescan_slot_done(e, d, s);
	}
	s->busy = false;
	e->head = (e->head + 1) % e->depth;
	e->count--;
	e->sent_total++;
}

static void count_copy(struct disk *d, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	d->c.copy_sent += len;
	if (off < d->copy_high)
		d->c.resent += (end < d->copy_high ? end : d->copy_high) - off;
	if (end > d->copy_high)
		d->copy_high = end;
}

/* DATA for LEN bytes at FROM within slot S.  0 sent, 1 must wait, -1 the
 * link failed. */
static int emit_data(struct engine *e, struct slot *s, uint32_t from,
		     uint32_t len)
{
	const uint8_t *raw = reader_buf(&e->rd, (unsigned int)(s - e->slots)) +
			     from;
	struct disk *d = &e->disks[s->disk];
	struct link_rec r = { .kind = s->kind, .disk = s->disk,
			      .off = s->off + from, .len = len,
			      .epoch_ms = s->epoch_ms };
	const void *payload;
	uint64_t now_ns, wait;

	if (!e->enc_valid || e->enc_from != from || e->enc_raw != len) {
		size_t n = 0;

		e->enc_xxh3 = ferry_hash64(raw, len);
		if (e->codec != FERRY_CODEC_RAW)
			n = ferry_codec_encode(e->codec, ZSTD_LEVEL, raw, len,
					       e->enc, e->enc_cap);
		/* Raw when compression does not make it smaller. */
		if (n && n < len) {
			e->enc_codec = e->codec;
			e->enc_len = (uint32_t)n;
		} else {
			e->enc_codec = FERRY_CODEC_RAW;
			e->enc_len = len;
		}
		e->enc_valid = true;
		e->enc_from = from;
		e->enc_raw = len;
	}
	if (!link_can_send(&e->ln, 32 + e->enc_len))
		return 1;
	now_ns = eng_mono_ns();
	if (now_ns < e->throttle_until_ns)
		return 1;
	wait = throttle_take(&e->th, 32 + e->enc_len, now_ns);
	if (wait) {
		e->throttle_until_ns = now_ns + wait;
		return 1;
	}
	payload = e->enc_codec == FERRY_CODEC_RAW ? raw : e->enc;
	if (link_send_data(&e->ln, &r, e->enc_codec, e->enc_xxh3, payload,
			   e->enc_len))
		return -1;
	e->enc_valid = false;
	d->c.data_frames++;
	d->c.data_raw += len;
	d->c.data_wire += e->enc_len;
	d->c.payload += 32 + e->enc_len;
	if (s->kind == SK_COPY)
		count_copy(d, r.off, len);
	e->data_since_cp = true;
	return 0;
}

static int emit_zero(struct engine *e, struct slot *s, uint32_t from,
		     uint64_t len)
{
	struct disk *d = &e->disks[s->disk];
	struct link_rec r = { .kind = s->kind, .disk = s->disk,
			      .off = s->off + from, .len = len,
			      .epoch_ms = s->epoch_ms };

	if (!link_can_send(&e->ln, 24))
		return 1;
	if (link_send_zero(&e->ln, &r))
		return -1;
	d->c.zero_frames++;
	d->c.zero_bytes += len;
	d->c.payload += 24;
	if (s->kind == SK_COPY)
		count_copy(d, r.off, len);
	e->data_since_cp = true;
	return 0;
}

static bool slot_zero(struct engine *e, struct slot *s)
{
	if (!s->zero_known) {
		s->zero = reader_is_zero(reader_buf(&e->rd, (unsigned int)
					 (s - e->slots)), s->len);
		s->zero_known = true;
	}
	return s->zero;
}

/* Whole zero copy slots that follow the head, contiguous on its disk and
 * read already: one ZERO frame covers them all. */
static unsigned int zero_run(struct engine *e, uint64_t *len)
{
	struct slot *h = slot_at(e, 0);
	unsigned int k;

	*len = h->len;
	for (k = 1; k < e->count; k++) {
		struct slot *s = slot_at(e, k);

		if (!s->ready || s->err || s->kind != SK_COPY ||
		    s->disk != h->disk || s->off != h->off + *len ||
		    *len + s->len > ZERO_RUN_MAX || !slot_zero(e, s))
			break;
		*len += s->len;
	}
	return k - 1;
}

static bool diff_bit(const struct slot *s, uint32_t i)
{
	return s->diff[i / 64] >> (i % 64) & 1;
}

static int handle_rescan(struct engine *e, struct slot *s)
{
	const uint8_t *buf = reader_buf(&e->rd, (unsigned int)(s - e->slots));
	struct disk *d = &e->disks[s->disk];
	uint32_t hc = e->hash_chunk, n = (s->len + hc - 1) / hc;

	if (!s->diff_known && rescan_compare(e, s, buf)) {
		/* Cannot happen (reads wait for their hashes); if it did,
		 * sending the chunk is always safe. */
		memset(s->diff, 0xff, sizeof(s->diff));
		s->diff_known = true;
	}
	while (s->done < s->len) {
		uint32_t i = s->done / hc, j, from, len;
		int rc;

		while (i < n && !diff_bit(s, i))
			i++;
		if (i >= n) {
			s->done = s->len;
			break;
		}
		for (j = i; j + 1 < n && diff_bit(s, j + 1); j++)
			;
		from = i * hc;
		len = ((j + 1) * hc < s->len ? (j + 1) * hc : s->len) - from;
		if (reader_is_zero(buf + from, len))
			rc = emit_zero(e, s, from, len);
		else
			rc = emit_data(e, s, from, len);
		if (rc)
			return rc;
		d->rs.differed += len;
		s->done = from + len;
	}
	return 0;
}

static int send_marks(struct engine *e)
{
	for (unsigned int i = 0; i < e->n_disks; i++) {
		struct disk *d = &e->disks[i];
		struct link_rec r = { .kind = SK_COPY, .disk = i };

		if (!d->mark_due || d->failed)
			continue;
		if (d->copy_sent <= d->mark_sent && d->mark_sent) {
			d->mark_due = false;
			continue;
		}
		if (!link_can_send(&e->ln, 16))
			return 1;
		r.off = d->copy_sent;
		if (link_send_sync_mark(&e->ln, &r))
			return -1;
		d->mark_sent = d->copy_sent;
		d->mark_due = false;
	}
	return 0;
}

/* Send the frames of the slots at the head of the queue, in order. */
static int send_ready(struct engine *e)
{
	while (e->count) {
		struct slot *s = slot_at(e, 0);
		struct disk *d = &e->disks[s->disk];
		int rc = 0;

		if (!s->ready)
			break;
		if (s->err && !d->failed) {
			disk_fail(e, d, "%s: read error at offset %" PRIu64
				  ": %s", d->name, s->off + s->got,
				  strerror(s->err));
		}
		if (d->failed) {
			release(e);
			continue;
		}
		if (s->kind == SK_RESCAN) {
			rc = handle_rescan(e, s);
		} else if (slot_zero(e, s)) {
			uint64_t len;
			unsigned int more = s->kind == SK_COPY ?
					    zero_run(e, &len) : 0;

			if (!more)
				len = s->len;
			rc = emit_zero(e, s, 0, len);
			if (!rc)
				for (unsigned int k = 0; k < more; k++)
					release(e);
		} else {
			rc = emit_data(e, s, 0, s->len);
		}
		if (rc)
			return rc;
		s->done = s->len;
		release(e);
		if (send_marks(e) < 0)
			return -1;
	}
	return send_marks(e) < 0 ? -1 : 0;
}

/* ---- the connection ------------------------------------------------- */

static bool abort_connect(void *arg)
{
	struct engine *e = arg;
	bool quit;

	pthread_mutex_lock(&e->sh->lock);
	quit = e->sh->quit;
	pthread_mutex_unlock(&e->sh->lock);
	return quit;
}

static void schedule_retry(struct engine *e, uint64_t now_ms)
{
	uint64_t delay = BACKOFF_MIN_MS;
	double jitter;

	for (unsigned int i = 1; i < e->failures && delay < BACKOFF_MAX_MS;
	     i++)
		delay *= 2;
	if (e->last_fail == LINK_FAIL_NOSPC && delay < 10000)
		delay = 10000;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	/* +-20 %, so that agents cut together do not return together. */
	jitter = 0.8 + 0.4 * ((double)rand() / RAND_MAX);
	e->next_connect_ms = now_ms + (uint64_t)((double)delay * jitter);
}

static void report_fail(struct engine *e, bool was_up)
{
	switch (e->last_fail) {
	case LINK_FAIL_NOSPC:
		status_error(e, "FAILED_TO_START_DATA_TRANSFER", e->last_why);
		break;
	case LINK_FAIL_REFUSED:
		status_error(e, "FAILED_TO_PAIR_REPLICATION_SERVER_WITH_AGENT",
			     e->last_why);
		break;
	default:
		status_error(e, was_up ? "UNSTABLE_NETWORK" :
			     "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
			     e->last_why);
	}
}

/* The connection ended (cut, ERROR, keepalive): take back what it did
 * not acknowledge and plan the next one. */
static void link_down(struct engine *e, uint64_t now_ms)
{
	uint64_t frames = link_unacked(&e->ln), bytes = e->ln.unacked_bytes;

	queue_reset(e);
	e->last_fail = e->ln.fail != LINK_FAIL_NONE ? e->ln.fail :
						      LINK_FAIL_NET;
	snprintf(e->last_why, sizeof(e->last_why), "%s",
		 e->ln.why[0] ? e->ln.why : "connection lost");
	link_close(&e->ln, false, 0);
	for (unsigned int i = 0; i < e->n_disks; i++) {
		rescan_reset(e, &e->disks[i]);
		e->disks[i].mark_due = false;
	}
	/* What it did not acknowledge is read again, after the round: no
	 * CP from that round. */
	e->idle_round = false;
	e->cp_wait_until_ms = 0;
	e->failures++;
	schedule_retry(e, now_ms);
	report_fail(e, true);
	repl_log("connection to the replicator lost: %s; %" PRIu64 " frames "
		 "(%" PRIu64 " payload bytes) not acknowledged will be sent "
		 "again; reconnecting in %.1f s", e->last_why, frames, bytes,
		 (double)(e->next_connect_ms - now_ms) / 1000.0);
}

static void close_graceful(struct engine *e)
{
	if (!e->ln.up && e->ln.fd < 0)
		return;
	queue_reset(e);
	link_close(&e->ln, e->ln.up, CLOSE_WAIT_MS);
	for (unsigned int i = 0; i < e->n_disks; i++) {
		rescan_reset(e, &e->disks[i]);
		e->disks[i].mark_due = false;
	}
	e->idle_round = false;
	e->cp_wait_until_ms = 0;
}

/* What WELCOME says about each disk's replica. */
static void on_welcome(struct engine *e)
{
	uint64_t last_cp = 0;

	for (unsigned int i = 0; i < e->n_disks; i++) {
		const struct ferry_welcome_disk *w = &e->ln.welcome.disks[i];
		struct disk *d = &e->disks[i];
		uint64_t mark = w->sync_mark > d->dev.size ? d->dev.size :
							     w->sync_mark;
		bool same = d->known &&
			    !memcmp(d->volume_id, w->volume_id, 16);

		if (w->last_cp > last_cp)
			last_cp = w->last_cp;
		if (same) {
			/* ACKs mean durable: the copy's acknowledged frames
			 * need not go again, even above sync_mark. */
			uint64_t resume = d->copy_acked > mark ? d->copy_acked :
								 mark;

			if (resume > d->dev.size)
				resume = d->dev.size;
			if (mark > d->mark_acked)
				d->mark_acked = mark;
			d->copy_next = d->copy_sent = resume;
			d->mark_sent = mark;
			d->mark_due = resume > mark;
			if (!disk_copied(d))
				repl_log("%s: initial copy resumes at %" PRIu64
					 " (replica's sync_mark %" PRIu64 ")",
					 d->name, resume, mark);
		} else {
			if (d->known)
				repl_log("%s: the replica is a new volume (it "
					 "was lost or replaced): copying the "
					 "disk again", d->name);
			rescan_cancel(e, d);
			memcpy(d->volume_id, w->volume_id, 16);
			d->known = true;
			d->copy_next = d->copy_sent = d->copy_acked = mark;
			d->mark_acked = d->mark_sent = mark;
			d->mark_due = false;
			repl_log("%s: %" PRIu64 " bytes, replica holds the "
				 "copy up to %" PRIu64 "%s", d->name,
				 d->dev.size, mark,
				 mark ? "; checking that part by hash" : "");
			if (mark)
				rescan_start(e, d, mark, "the agent has no "
					     "record of what the replica "
					     "holds");
		}
		d->resume_from = d->copy_next;
		if (d->copy_next < d->dev.size)
			extent_set_remove(&d->pending, d->copy_next,
					  d->dev.size - d->copy_next);
		if (!d->pending.n)
			d->pending_since_ms = 0;
	}
	if (last_cp > e->cp_id)
		e->cp_id = last_cp;
	if (e->cp_acked_id > e->cp_id)
		e->cp_id = e->cp_acked_id;
}

static void link_paths(struct engine *e, char *cert, char *key, char *ca,
		       size_t len)
{
	const struct agent_config *c = e->cfg;

	if (c->standalone) {
		snprintf(cert, len, "%s", c->cert);
		snprintf(key, len, "%s", c->key);
		snprintf(ca, len, "%s", c->ca);
		return;
	}
	snprintf(cert, len, "%s/%s", c->state_dir, AGENT_CERT_FILE);
	snprintf(key, len, "%s/%s", c->state_dir, AGENT_KEY_FILE);
	snprintf(ca, len, "%s/%s", c->state_dir, AGENT_CA_FILE);
}

static void try_connect(struct engine *e, uint64_t now_ms)
{
	static __thread char cert[AGENT_PATH_MAX + 32],
		key[AGENT_PATH_MAX + 32], ca[AGENT_PATH_MAX + 32];
	struct link_disk ld[AGENT_MAX_DISKS];
	const struct agent_config *c = e->cfg;
	struct link_params p = {
		.host = e->rt.replicator_host, .port = e->rt.replicator_port,
		/* Standalone without replicator-id, rt.replicator_id is
		 * only "host:port": any replicator of the CA there. */
		.replicator_id = !c->standalone || c->replicator_id[0] ?
				 e->rt.replicator_id : NULL,
		.replicator_assigned = !c->standalone,
		.cert = cert, .key = key, .ca = ca,
		.source_id = e->rt.source_server_id,
		.agent_version = AGENT_VERSION, .n_disks = e->n_disks,
		.disks = ld, .abort = abort_connect, .abort_arg = e,
	};
	bool same_why;

	link_paths(e, cert, key, ca, sizeof(cert));
	for (unsigned int i = 0; i < e->n_disks; i++) {
		ld[i].name = e->disks[i].name;
		ld[i].size = e->disks[i].dev.size;
		ld[i].block_size = e->disks[i].dev.block_size;
	}
	if (link_open(&e->ln, &p) == 0) {
		repl_log("connected to the replicator at %s (window %u frames, "
			 "%" PRIu64 " bytes)", e->ln.peer, e->ln.welcome.window,
			 e->ln.welcome.window_bytes);
		e->connected_once = true;
		e->last_up_ms = now_ms;
		e->last_fail = LINK_FAIL_NONE;
		e->last_why[0] = 0;
		if (strcmp(e->st_error, "NOT_CONVERGING"))
			status_error(e, "", "");
		/* A disk that failed still has: the link is not its cure. */
		for (unsigned int i = 0; i < e->n_disks; i++)
			if (e->disks[i].failed) {
				status_error(e, "UNSUPPORTED_VM_CONFIGURATION",
					     e->disks[i].error);
				break;
			}
		on_welcome(e);
		return;
	}
	same_why = e->last_fail == e->ln.fail &&
		   !strcmp(e->last_why, e->ln.why);
	e->last_fail = e->ln.fail;
	snprintf(e->last_why, sizeof(e->last_why), "%s", e->ln.why);
	link_close(&e->ln, false, 0);
	e->failures++;
	schedule_retry(e, now_ms);
	report_fail(e, false);
	/* One line per new reason, not one per attempt. */
	if (!same_why)
		repl_log("%s; retrying in %.1f s", e->last_why,
			 (double)(e->next_connect_ms - now_ms) / 1000.0);
	if (e->once && e->last_fail == LINK_FAIL_REFUSED)
		snprintf(e->fatal, sizeof(e->fatal), "%s", e->last_why);
	else if (e->once && now_ms - e->last_up_ms > ONCE_GIVE_UP_MS)
		snprintf(e->fatal, sizeof(e->fatal),
			 "no connection to the replicator for %d s: %.900s",
			 ONCE_GIVE_UP_MS / 1000, e->last_why);
}

/* ---- disks, runtime configuration, commands -------------------------- */

static void teardown_disks(struct engine *e, bool detach)
{
	close_graceful(e);
	for (unsigned int i = 0; i < e->n_disks; i++)
		disk_close(e, &e->disks[i], detach);
	e->n_disks = 0;
	e->disks_ready = false;
	e->round_active = false;
}

/*
 * Open the tracker's control device; when it is missing, load ferry.ko
 * (module_load.c says why the service's own modprobe may not have) and
 * try once more.
 */
static int open_tracker(struct engine *e, char *err, size_t errlen)
{
	const char *path = e->cfg->tracker_ctl[0] ? e->cfg->tracker_ctl : NULL;
	char why[256];
	struct ferry_err fe;
	struct utsname u;

	if (!ferry_ctl_open(&e->ctl, path, &fe))
		return 0;
	if (fe.errnum != ENOENT && fe.errnum != ENODEV && fe.errnum != ENXIO) {
		set_err(err, errlen, "%s", fe.msg);
		return -1;
	}
	if (module_load("ferry", why, sizeof(why))) {
		if (!strstr(why, "not found")) {
			set_err(err, errlen, "%s; and %s", fe.msg, why);
			return -1;
		}
		if (uname(&u))
			snprintf(u.release, sizeof(u.release), "$(uname -r)");
		set_err(err, errlen, "%s; and %s: DKMS has no ferry.ko for "
			"this kernel: install its headers, then run dkms "
			"autoinstall -k %s", fe.msg, why, u.release);
		return -1;
	}
	repl_log("loaded ferry.ko (modprobe ferry): its control device was "
		 "missing");
	if (ferry_ctl_open(&e->ctl, path, &fe)) {
		set_err(err, errlen, "%s (after modprobe ferry)", fe.msg);
		return -1;
	}
	return 0;
}

static int setup_disks(struct engine *e, char *err, size_t errlen)
{
	if (!e->once && !e->ctl_open) {
		if (open_tracker(e, err, errlen))
			return -1;
		e->ctl_open = true;
	}
	e->n_disks = 0;
	for (unsigned int i = 0; i < e->rt.n_disks; i++) {
		struct disk *d = &e->disks[i];

		if (disk_open(e, d, e->rt.disks[i], err, errlen))
			goto fail;
		e->n_disks++;
		/* Attach before anything is read (invariant 1). */
		if (!e->once && disk_attach(e, d, err, errlen))
			goto fail;
	}
	e->disks_ready = true;
	e->round_active = false;
	e->next_drain_ms = 0;
	return 0;
fail:
	for (unsigned int i = 0; i < e->n_disks; i++)
		disk_close(e, &e->disks[i], true);
	e->n_disks = 0;
	return -1;
}

static bool same_target(const struct agent_runtime *a,
			const struct agent_runtime *b)
{
	/* Another replicator ID at the same address is another target:
	 * the connection must be checked against it. */
	return !strcmp(a->replicator_id, b->replicator_id) &&
	       !strcmp(a->replicator_host, b->replicator_host) &&
	       a->replicator_port == b->replicator_port &&
	       !strcmp(a->source_server_id, b->source_server_id) &&
	       a->have_cert == b->have_cert;
}

static bool same_disks(const struct agent_runtime *a,
		       const struct agent_runtime *b)
{
	if (a->n_disks != b->n_disks)
		return false;
	for (unsigned int i = 0; i < a->n_disks; i++)
		if (strcmp(a->disks[i], b->disks[i]))
			return false;
	return true;
}

static void apply_runtime(struct engine *e, const struct agent_runtime *rt)
{
	const struct agent_config *c = e->cfg;
	uint64_t rate;

	if (e->have_rt && !same_disks(&e->rt, rt)) {
		repl_log("the disks to replicate changed; starting over on "
			 "the new set");
		teardown_disks(e, true);
	} else if (e->have_rt && !same_target(&e->rt, rt)) {
		repl_log("the replicator or the certificate changed; "
			 "reconnecting");
		close_graceful(e);
		e->next_connect_ms = 0;
	}
	e->rt = *rt;
	e->have_rt = true;
	e->codec = c->codec >= 0 ? (uint8_t)c->codec : rt->codec;
	if (e->codec > FERRY_CODEC_LZ4)
		e->codec = FERRY_CODEC_LZ4;
	rate = c->bandwidth_bps ? c->bandwidth_bps : rt->bandwidth_bps;
	throttle_set_rate(&e->th, rate, FERRY_WIRE_HDR_LEN +
			  FERRY_WIRE_MAX_PAYLOAD, eng_mono_ns());
}

static void command(struct engine *e, enum agent_cmd cmd)
{
	switch (cmd) {
	case AGENT_CMD_START:
		e->cmd_stopped = false;
		e->cmd_paused = false;
		break;
	case AGENT_CMD_STOP:
	case AGENT_CMD_UNINSTALL:
		e->cmd_stopped = true;
		break;
	case AGENT_CMD_PAUSE:
		e->cmd_paused = true;
		break;
	case AGENT_CMD_RESUME:
		e->cmd_paused = false;
		break;
	case AGENT_CMD_RETRY:
		e->failures = 0;
		e->next_connect_ms = 0;
		break;
	case AGENT_CMD_RESCAN:
		for (unsigned int i = 0; i < e->n_disks; i++)
			rescan_start(e, &e->disks[i], e->disks[i].copy_next,
				     "rescan command");
		break;
	case AGENT_CMD_NONE:
		break;
	}
}

/* Take what the control thread left: quit, configuration, commands. */
static void take_shared(struct engine *e)
{
	static __thread struct agent_runtime rt;
	enum agent_cmd cmds[32];
	unsigned int n;
	bool changed;

	pthread_mutex_lock(&e->sh->lock);
	e->quit = e->sh->quit;
	changed = e->sh->rt.valid &&
		  (!e->have_rt || e->sh->rt.version != e->rt.version);
	if (changed)
		rt = e->sh->rt;
	n = e->sh->n_cmds;
	memcpy(cmds, e->sh->cmds, n * sizeof(cmds[0]));
	e->sh->n_cmds = 0;
	pthread_mutex_unlock(&e->sh->lock);
	if (changed)
		apply_runtime(e, &rt);
	for (unsigned int i = 0; i < n; i++)
		command(e, cmds[i]);
}

/* Stop, start, pause, resume as the configuration and commands say. */
static void apply_state(struct engine *e)
{
	bool stopped = e->rt.stopped || e->cmd_stopped;
	bool paused = !stopped && (e->rt.paused || e->cmd_paused);

	if (stopped && !e->stopped) {
		repl_log("replication stopped: trackers detached");
		teardown_disks(e, true);
	} else if (!stopped && e->stopped) {
		repl_log("replication started");
	}
	e->stopped = stopped;
	if (paused && !e->paused) {
		repl_log("replication paused: writes are still tracked");
		close_graceful(e);
	} else if (!paused && e->paused) {
		repl_log("replication resumed");
		e->next_connect_ms = 0;
	}
	e->paused = paused;
}

static bool ready_to_connect(const struct engine *e)
{
	return e->have_rt && e->rt.have_replicator && e->rt.have_cert &&
	       e->rt.source_server_id[0] && e->rt.replicator_host[0] &&
	       e->disks_ready && e->n_disks;
}

/* ---- drain rounds ----------------------------------------------------- */

static void rounds(struct engine *e, uint64_t now_ms)
{
	unsigned int interval = e->cfg->drain_interval_ms ?
				e->cfg->drain_interval_ms : DEFAULT_DRAIN_MS;
	bool busy = eng_queue_has_kind(e, SK_DIRTY, true);

	if (e->once || !e->disks_ready || e->paused || e->stopped)
		return;
	/* A failed disk's ranges are never read: not a reason to wait. */
	for (unsigned int i = 0; i < e->n_disks && !busy; i++)
		if (!e->disks[i].failed && e->disks[i].pending.n)
			busy = true;
	if (e->round_active) {
		bool idle = !e->round_spoiled;

		/* The freezer thaws at the deadline on its own; a round
		 * that outlasts it makes no CP. */
		if (e->frozen && now_ms - e->freeze_ms >=
		    e->cfg->freeze_timeout_ms) {
			cp_thaw(e, now_ms);
			e->round_spoiled = true;
			idle = false;
		}
		if (busy)
			return;
		/* Every range the round drained has been read. */
		for (unsigned int i = 0; i < e->n_disks; i++) {
			struct disk *d = &e->disks[i];
			uint64_t w = d->writes_before;

			if (d->tracked && !d->failed && !disk_sample(e, d, &w))
				d->writes_after = w;
			if (d->writes_after != d->writes_before)
				idle = false;
		}
		if (e->frozen && cp_thaw(e, now_ms))
			idle = false;
		e->round_active = false;
		cp_round_end(e, idle, now_ms);
	}
	if (now_ms < e->next_drain_ms || !cp_allows_drain(e, now_ms))
		return;
	cp_maybe_freeze(e, now_ms);
	e->round_found = false;
	e->round_spoiled = false;
	e->round_wall_ms = eng_wall_ms();
	/* Every disk's counter before any drain: a write on one disk that
	 * completes after its drain, followed by a dependent write on
	 * another, must move a counter read after the first drain. */
	for (unsigned int i = 0; i < e->n_disks; i++) {
		struct disk *d = &e->disks[i];
		uint64_t w = 0;

		if (d->tracked && !d->failed && disk_sample(e, d, &w) == 0)
			d->writes_before = w;
	}
	for (unsigned int i = 0; i < e->n_disks; i++) {
		struct disk *d = &e->disks[i];

		if (d->tracked && !d->failed && disk_drain(e, d, now_ms) > 0)
			e->round_found = true;
	}
	e->round_active = true;
	e->idle_round = false;
	e->cp_wait_until_ms = 0;
	e->next_drain_ms = now_ms + interval;
}

/* ---- the loop --------------------------------------------------------- */

static bool once_done(struct engine *e)
{
	if (!e->ln.up || e->count || !eng_link_idle(e))
		return false;
	for (unsigned int i = 0; i < e->n_disks; i++) {
		struct disk *d = &e->disks[i];

		if (d->failed) {
			snprintf(e->fatal, sizeof(e->fatal), "%s", d->error);
			return true;
		}
		if (!disk_copied(d) || d->rs.active || d->pending.n)
			return false;
	}
	return !e->data_since_cp && e->cp_acked_id == e->cp_id;
}

static void wait_events(struct engine *e, uint64_t now_ms)
{
	struct pollfd pf[2] = {
		{ .fd = reader_fd(&e->rd), .events = POLLIN },
		{ .fd = -1 },
	};
	uint64_t now_ns = eng_mono_ns();
	int timeout = 100;

	if (e->ln.up) {
		if (SSL_pending(e->ln.ssl))
			return;
		pf[1].fd = link_fd(&e->ln);
		pf[1].events = link_poll_events(&e->ln);
	}
	if (e->throttle_until_ns > now_ns) {
		uint64_t t = (e->throttle_until_ns - now_ns + 999999) / 1000000;

		if (t < (uint64_t)timeout)
			timeout = (int)t;
	}
	if (!e->ln.up && e->next_connect_ms > now_ms &&
	    e->next_connect_ms - now_ms < (uint64_t)timeout)
		timeout = (int)(e->next_connect_ms - now_ms);
	if (!e->once && !e->round_active && e->next_drain_ms > now_ms &&
	    e->next_drain_ms - now_ms < (uint64_t)timeout)
		timeout = (int)(e->next_drain_ms - now_ms);
	poll(pf, 2, timeout);
}

static int engine_init(struct engine *e, struct agent_shared *sh,
		       const struct agent_config *cfg, bool once, char *err,
		       size_t errlen)
{
	static const struct link_ops ops = {
		.acked = on_acked, .lost = on_lost, .hash_resp = on_hash_resp,
	};
	struct link_ops o = ops;
	size_t zb, lb;

	e->sh = sh;
	e->cfg = cfg;
	e->once = once;
	e->start_ms = eng_mono_ms();
	e->last_up_ms = e->start_ms;
	e->last_cp_mono_ms = e->start_ms;
	e->data_since_cp = true;
	e->depth = cfg->queue_depth ? cfg->queue_depth : DEFAULT_DEPTH;
	if (e->depth < MIN_DEPTH)
		e->depth = MIN_DEPTH;
	e->chunk = cfg->read_chunk ? cfg->read_chunk : DEFAULT_CHUNK;
	if (e->chunk % 4096 || e->chunk > FERRY_WIRE_MAX_DATA) {
		set_err(err, errlen, "read-chunk %u: a multiple of 4096 up to "
			"%u bytes", e->chunk, FERRY_WIRE_MAX_DATA);
		return -1;
	}
	e->hash_chunk = HASH_CHUNK_MAX;
	while (e->chunk % e->hash_chunk)
		e->hash_chunk /= 2;
	srand((unsigned int)eng_mono_ns());
	if (reader_init(&e->rd, e->depth, e->chunk, err, errlen))
		return -1;
	e->slots = calloc(e->depth, sizeof(*e->slots));
	zb = ferry_codec_bound(FERRY_CODEC_ZSTD, e->chunk);
	lb = ferry_codec_bound(FERRY_CODEC_LZ4, e->chunk);
	e->enc_cap = zb > lb ? zb : lb;
	e->enc = malloc(e->enc_cap);
	if (!e->slots || !e->enc) {
		set_err(err, errlen, "out of memory for the read queue");
		return -1;
	}
	o.arg = e;
	if (link_init(&e->ln, &o, err, errlen))
		return -1;
	throttle_init(&e->th);
	return 0;
}

static void engine_free(struct engine *e)
{
	teardown_disks(e, false);
	link_free(&e->ln);
	reader_free(&e->rd);
	if (e->ctl_open)
		ferry_ctl_close(&e->ctl);
	free(e->slots);
	free(e->enc);
}

static int step(struct engine *e, uint64_t now_ms, char *err, size_t errlen)
{
	if (!e->ln.up && !e->paused && ready_to_connect(e) &&
	    now_ms >= e->next_connect_ms)
		try_connect(e, now_ms);
	if (!e->ln.up)
		return 0;
	for (unsigned int i = 0; i < e->n_disks; i++)
		if (!e->disks[i].failed && rescan_request(e, &e->disks[i]))
			return -1;
	if (fill(e, err, errlen))
		return -2;
	if (send_ready(e) < 0)
		return -1;
	/* Slots send_ready() freed take their next reads now: with nothing
	 * sent (a rescan whose chunks all match) no event would end the
	 * poll() before its timeout, and a rescan of small reads crawled
	 * at one queue per 100 ms. */
	if (e->count < e->depth && fill(e, err, errlen))
		return -2;
	cp_maybe(e, now_ms);
	if (link_pump(&e->ln) || link_tick(&e->ln, now_ms))
		return -1;
	return 0;
}

int replicate_run(struct agent_shared *sh, const struct agent_config *cfg,
		  struct freezer *fz, bool once, char *err, size_t errlen)
{
	struct engine *e = calloc(1, sizeof(*e));
	uint64_t next_setup_ms = 0;
	char why[AGENT_MSG_MAX];
	int rc = 0;

	if (!e) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	e->fz = once ? NULL : fz;
	if (engine_init(e, sh, cfg, once, err, errlen)) {
		engine_free(e);
		free(e);
		return -1;
	}
	for (;;) {
		uint64_t now_ms = eng_mono_ms();
		int r;

		take_shared(e);
		if (e->quit)
			break;
		apply_state(e);
		if (!e->disks_ready && !e->stopped && e->have_rt &&
		    e->rt.n_disks && now_ms >= next_setup_ms) {
			if (setup_disks(e, why, sizeof(why))) {
				status_error(e, "UNSUPPORTED_VM_CONFIGURATION",
					     why);
				if (once) {
					snprintf(e->fatal, sizeof(e->fatal),
						 "%s", why);
					break;
				}
				repl_log("%s; trying again in %d s", why,
					 SETUP_RETRY_MS / 1000);
				next_setup_ms = now_ms + SETUP_RETRY_MS;
			}
		}
		r = step(e, now_ms, why, sizeof(why));
		if (r == -2) {
			snprintf(e->fatal, sizeof(e->fatal), "%s", why);
			break;
		}
		if (r < 0)
			link_down(e, now_ms);
		rounds(e, now_ms);
		status_update(e, now_ms, false);
		if (e->fatal[0] || (once && e->disks_ready && once_done(e)))
			break;
		wait_events(e, now_ms);
		reader_reap(&e->rd, false, read_done, e);
		if (e->ln.up && link_pump(&e->ln))
			link_down(e, eng_mono_ms());
	}
	/* SIGTERM, or --once done: let the replicator acknowledge what is
	 * in flight, then say BYE. */
	close_graceful(e);
	status_update(e, eng_mono_ms(), true);
	if (once)
		status_summary(e);
	if (e->fatal[0]) {
		set_err(err, errlen, "%s", e->fatal);
		rc = -1;
	}
	engine_free(e);
	free(e);
	return rc;
}
