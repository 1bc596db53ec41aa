// SPDX-License-Identifier: GPL-2.0
/*
 * rescan.c - bringing a replica up to date by hash exchange, when the
 * agent cannot trust what it knows (docs/protocol.md sections 7 and 9):
 * HASH_REQ over [0, end) in segments of 4096 chunks, each chunk of the
 * source read with io_uring and hashed (XXH3-128), and only the chunks
 * whose hashes differ sent.
 *
 * Ordering, which makes the comparison sound: a segment's HASH_REQ goes
 * only after every read queued before the rescan was triggered has been
 * sent (the barrier), and the segment's reads are queued only after its
 * HASH_REQ went.  So the replica's hash covers everything read before
 * the trigger, the comparison reads the source after it, and a chunk
 * found different is sent after every older read of it.  Writes during
 * the rescan are in the tracker and follow as usual.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "repl_log.h"

static struct rescan_seg *seg_at(struct disk *d, uint64_t off)
{
	for (int i = 0; i < RESCAN_SEGS; i++) {
		struct rescan_seg *g = &d->rs.seg[i];

		if (g->used && off >= g->off && off < g->off + g->len)
			return g;
	}
	return NULL;
}

void rescan_start(struct engine *e, struct disk *d, uint64_t end,
		  const char *why)
{
	struct rescan *rs = &d->rs;
	uint64_t bs = d->dev.block_size;

	if (rs->active) {
		rs->again = true;
		return;
	}
	end = (end + bs - 1) / bs * bs;
	if (end > d->dev.size)
		end = d->dev.size;
	if (!end)
		return;
	for (int i = 0; i < RESCAN_SEGS; i++) {
		if (!rs->seg[i].hashes) {
			rs->seg[i].hashes = malloc((size_t)FERRY_WIRE_MAX_HASHES *
						   FERRY_WIRE_HASH_LEN);
			if (!rs->seg[i].hashes) {
				disk_fail(e, d, "%s: out of memory for a "
					  "rescan", d->name);
				return;
			}
		}
		rs->seg[i].used = rs->seg[i].have = false;
	}
	rs->active = true;
	rs->again = false;
	rs->end = end;
	rs->req_next = rs->read_next = rs->done = 0;
	rs->compared = rs->differed = 0;
	rs->barrier = e->queued_total;
	repl_log("%s: rescanning [0, %" PRIu64 ") by hash comparison (%s)",
		 d->name, end, why);
}

void rescan_reset(struct engine *e, struct disk *d)
{
	struct rescan *rs = &d->rs;

	if (!rs->active)
		return;
	rs->req_next = rs->read_next = rs->done;
	for (int i = 0; i < RESCAN_SEGS; i++)
		rs->seg[i].used = rs->seg[i].have = false;
	rs->barrier = e->queued_total;
}

void rescan_cancel(struct engine *e, struct disk *d)
{
	d->rs.active = false;
	d->rs.again = false;
	for (int i = 0; i < RESCAN_SEGS; i++)
		d->rs.seg[i].used = d->rs.seg[i].have = false;
}

int rescan_request(struct engine *e, struct disk *d)
{
	struct rescan *rs = &d->rs;
	uint64_t per_req = (uint64_t)e->hash_chunk * FERRY_WIRE_MAX_HASHES;

	if (!rs->active || e->sent_total < rs->barrier)
		return 0;
	for (int i = 0; i < RESCAN_SEGS && rs->req_next < rs->end; i++) {
		struct rescan_seg *g = &rs->seg[i];
		struct link_rec r = { .kind = SK_RESCAN,
				      .disk = (uint32_t)(d - e->disks) };

		if (g->used)
			continue;
		if (!link_can_send(&e->ln, 24))
			break;
		r.off = rs->req_next;
		r.len = rs->end - rs->req_next < per_req ?
			rs->end - rs->req_next : per_req;
		g->used = true;
		g->have = false;
		g->off = r.off;
		g->len = r.len;
		g->count = (uint32_t)((r.len + e->hash_chunk - 1) /
				      e->hash_chunk);
		g->req_seq = e->ln.next_seq;
		if (link_send_hash_req(&e->ln, &r, e->hash_chunk))
			return -1;
		rs->req_next += r.len;
	}
	return 0;
}

bool rescan_next_read(struct engine *e, struct disk *d, uint64_t *off,
		      uint32_t *len)
{
	struct rescan *rs = &d->rs;
	struct rescan_seg *g;
	uint64_t left;

	if (!rs->active || rs->read_next >= rs->end)
		return false;
	g = seg_at(d, rs->read_next);
	if (!g || !g->have)
		return false;
	left = g->off + g->len - rs->read_next;
	*off = rs->read_next;
	*len = left < e->chunk ? (uint32_t)left : e->chunk;
	return true;
}

void rescan_read_queued(struct engine *e, struct disk *d, uint64_t off,
			uint32_t len)
{
	d->rs.read_next = off + len;
}

/* The segment waiting for HASH_RESP SEQ, of any disk (*DI: its disk). */
static struct rescan_seg *seg_waiting(struct engine *e, uint64_t seq,
				      unsigned int *di)
{
	for (unsigned int i = 0; i < e->n_disks; i++) {
		for (int j = 0; j < RESCAN_SEGS; j++) {
			struct rescan_seg *g = &e->disks[i].rs.seg[j];

			if (g->used && !g->have && g->req_seq == seq) {
				*di = i;
				return g;
			}
		}
	}
	return NULL;
}

/* The seqs of the HASH_REQs still unanswered, into BUF: "2 3", or
 * "none". */
static void seqs_waiting(struct engine *e, char *buf, size_t size)
{
	size_t n = 0;

	snprintf(buf, size, "none");
	for (unsigned int i = 0; i < e->n_disks; i++) {
		for (int j = 0; j < RESCAN_SEGS; j++) {
			const struct rescan_seg *g = &e->disks[i].rs.seg[j];
			int w;

			if (!g->used || g->have)
				continue;
			w = snprintf(buf + n, size - n, "%s%" PRIu64,
				     n ? " " : "", g->req_seq);
			if (w < 0 || (size_t)w >= size - n) {
				/* Cut short: say so, where it fits. */
				if (size > 4)
					snprintf(buf + size - 4, 4, "...");
				return;
			}
			n += (size_t)w;
		}
	}
}

void rescan_on_hash_resp(struct engine *e, uint64_t seq,
			 const struct ferry_hash_resp *h)
{
	struct rescan_seg *g;
	struct disk *d;
	unsigned int di;
	char why[AGENT_MSG_MAX];

	/* Not what was asked: never trust it.  Asking again from here would
	 * skip what the segments before it have not compared yet, and
	 * ignoring it leaves a segment waiting for hashes that never come
	 * (the rescan hangs, PINGs keep the link up): start over from what
	 * is done, on a new connection. */
	g = seg_waiting(e, seq, &di);
	if (!g) {
		char waiting[256];

		seqs_waiting(e, waiting, sizeof(waiting));
		snprintf(why, sizeof(why), "replicator %s: HASH_RESP %" PRIu64
			 " (disk %u, offset %" PRIu64 ") answers no "
			 "outstanding HASH_REQ; outstanding: %s", e->ln.peer,
			 seq, h->disk, h->offset, waiting);
		link_abort(&e->ln, why);
		return;
	}
	d = &e->disks[di];
	if (h->disk != di) {
		snprintf(why, sizeof(why), "%s: HASH_RESP %" PRIu64 " answers "
			 "disk %u, asked %u", d->name, seq, h->disk, di);
		link_abort(&e->ln, why);
		return;
	}
	if (h->offset != g->off || h->chunk != e->hash_chunk ||
	    h->count != g->count) {
		snprintf(why, sizeof(why), "%s: HASH_RESP %" PRIu64 " answers "
			 "offset %" PRIu64 " chunk %u count %u, asked %"
			 PRIu64 " %u %u", d->name, seq, h->offset, h->chunk,
			 h->count, g->off, e->hash_chunk, g->count);
		link_abort(&e->ln, why);
		return;
	}
	memcpy(g->hashes, h->hashes, (size_t)h->count * FERRY_WIRE_HASH_LEN);
	g->have = true;
}

int rescan_compare(struct engine *e, struct slot *s, const uint8_t *buf)
{
	struct disk *d = &e->disks[s->disk];
	struct rescan_seg *g = seg_at(d, s->off);
	uint32_t hc = e->hash_chunk, n = (s->len + hc - 1) / hc;
	uint64_t first;

	if (!g || !g->have || s->off + s->len > g->off + g->len)
		return -1;
	first = (s->off - g->off) / hc;
	memset(s->diff, 0, sizeof(s->diff));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t clen = s->len - i * hc < hc ? s->len - i * hc : hc;
		uint8_t local[FERRY_WIRE_HASH_LEN];

		ferry_hash128(buf + (size_t)i * hc, clen, local);
		if (memcmp(local, g->hashes + (first + i) * FERRY_WIRE_HASH_LEN,
			   FERRY_WIRE_HASH_LEN))
			s->diff[i / 64] |= 1ull << (i % 64);
	}
	s->diff_known = true;
	return 0;
}

void rescan_slot_done(struct engine *e, struct disk *d, const struct slot *s)
{
	struct rescan *rs = &d->rs;

	if (!rs->active)
		return;
	rs->done = s->off + s->len;
	rs->compared += s->len;
	for (int i = 0; i < RESCAN_SEGS; i++) {
		struct rescan_seg *g = &rs->seg[i];

		if (g->used && g->off + g->len <= rs->done)
			g->used = g->have = false;
	}
	if (rs->done < rs->end)
		return;
	repl_log("%s: rescan done: %" PRIu64 " bytes compared, %" PRIu64
		 " differed and were sent", d->name, rs->compared,
		 rs->differed);
	rs->active = false;
	if (rs->again) {
		rs->again = false;
		rescan_start(e, d, d->copy_next,
			     "tracking was lost again while it ran");
	}
}
