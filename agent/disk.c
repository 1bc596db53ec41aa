// SPDX-License-Identifier: GPL-2.0
/*
 * disk.c - one source disk of the replication thread: its device, its
 * tracker (ferry.ko through lib/tracker.c) and what it still owes the
 * replicator beside the initial copy (engine.h).
 *
 * The tracker is attached before anything of the disk is read, so every
 * write that completes after the copy read a block is in a later drain
 * (docs/tracker.md).  Whatever shows that tracking was lost — the
 * tracker gone (module reload: ENOENT), another generation (someone
 * detached and attached), the overflow flag — makes the disk rescan the
 * part the copy has passed (invariant 2 of DESIGN.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "errmsg.h"
#include "repl_log.h"

void disk_fail(struct engine *e, struct disk *d, const char *fmt, ...)
{
	va_list ap;

	if (d->failed)
		return;
	d->failed = true;
	va_start(ap, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	/* Nothing of it is read or sent any more (a restart compares the
	 * whole disk again): what it owed must not hold up the rounds of
	 * the other disks, nor count in their backlog and lag. */
	extent_set_clear(&d->pending);
	d->pending_since_ms = 0;
	repl_log("%s", d->error);
	status_error(e, "UNSUPPORTED_VM_CONFIGURATION", d->error);
}

int disk_open(struct engine *e, struct disk *d, const char *name, char *err,
	      size_t errlen)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	extent_set_init(&d->pending);
	if (reader_open(name, &d->dev, err, errlen))
		return -1;
	d->open = true;
	if (!d->dev.direct)
		repl_log("%s: no O_DIRECT on this file's filesystem; reading "
			 "it through the page cache", name);
	return 0;
}

void disk_close(struct engine *e, struct disk *d, bool detach)
{
	if (detach)
		disk_detach(e, d);
	rescan_cancel(e, d);
	for (int i = 0; i < RESCAN_SEGS; i++) {
		free(d->rs.seg[i].hashes);
		d->rs.seg[i].hashes = NULL;
	}
	extent_set_free(&d->pending);
	if (d->open)
		reader_close(&d->dev);
	d->open = false;
}

int disk_attach(struct engine *e, struct disk *d, char *err, size_t errlen)
{
	struct ferry_err fe;
	struct ferry_stats st;
	bool adopted = false;

	if (!d->dev.blockdev) {
		set_err(err, errlen,
			"%s is not a block device: the tracker follows block "
			"devices only (use --once for a cold copy of an "
			"image)", d->name);
		return -1;
	}
	d->bdev.major = d->dev.major;
	d->bdev.minor = d->dev.minor;
	snprintf(d->bdev.name, sizeof(d->bdev.name), "%s", d->name);
	if (ferry_attach(&e->ctl, &d->bdev, e->cfg->granularity,
			 &d->generation, &fe)) {
		if (fe.errnum != EEXIST) {
			set_err(err, errlen, "%s", fe.msg);
			return -1;
		}
		/* A tracker left by an earlier agent: ours now.  What it
		 * recorded is not needed: everything is read after this
		 * (rescan below the replica's sync_mark, copy above). */
		adopted = true;
	}
	memset(&st, 0, sizeof(st));
	if (ferry_stats_get(&e->ctl, &d->bdev, &st, &fe)) {
		set_err(err, errlen, "%s", fe.msg);
		return -1;
	}
	/* One that no longer follows this disk (resized since, or left
	 * on a disk removed and added again under the same number) would
	 * fail it at the first drain, at every restart: start afresh. */
	if (adopted && ((st.status & (FERRY_STATUS_GONE |
				      FERRY_STATUS_RESIZED)) ||
			st.size != d->dev.size)) {
		repl_log("%s: the tracker left from before follows %s (%" PRIu64
			 " bytes at its attach, now %" PRIu64 "): attaching "
			 "a new one", d->name, st.status & FERRY_STATUS_GONE ?
			 "a disk removed since" : "another size",
			 (uint64_t)st.size, d->dev.size);
		if (ferry_detach(&e->ctl, &d->bdev, &fe) ||
		    ferry_attach(&e->ctl, &d->bdev, e->cfg->granularity,
				 &d->generation, &fe) ||
		    ferry_stats_get(&e->ctl, &d->bdev, &st, &fe)) {
			set_err(err, errlen, "%s", fe.msg);
			return -1;
		}
		adopted = false;
	}
	d->generation = st.generation;
	d->drain_seq = st.drains;
	d->granularity = st.granularity;
	d->writes_before = d->writes_after = st.writes;
	d->tracked = true;
	d->known = false;	/* what the replica holds must be checked */
	if (adopted) {
		struct ferry_drain_info info;

		if (ferry_drain(&e->ctl, &d->bdev, 0, NULL, NULL, &info,
				&fe)) {
			set_err(err, errlen, "%s", fe.msg);
			return -1;
		}
		d->drain_seq = info.sequence;
	}
	repl_log("%s: tracking writes (generation %016" PRIx64 ", %u bytes "
		 "per bit%s)", d->name, d->generation, d->granularity,
		 adopted ? ", tracker kept from before" : "");
	return 0;
}

void disk_detach(struct engine *e, struct disk *d)
{
	struct ferry_err fe;

	if (!d->tracked)
		return;
	if (ferry_detach(&e->ctl, &d->bdev, &fe) && fe.errnum != ENOENT)
		repl_log("%s", fe.msg);
	d->tracked = false;
	d->known = false;
}

void disk_owe(struct engine *e, struct disk *d, uint64_t off, uint64_t len,
	      uint64_t epoch_ms)
{
	if (!len || d->failed)
		return;
	if (extent_set_add(&d->pending, off, len)) {
		/* No memory for the range: the only safe answer is to
		 * compare the whole disk again later. */
		repl_log("%s: out of memory for the dirty ranges; the disk "
			 "will be rescanned", d->name);
		rescan_start(e, d, d->copy_next, "out of memory");
		return;
	}
	if (!d->pending_since_ms || epoch_ms < d->pending_since_ms)
		d->pending_since_ms = epoch_ms;
}

/* Tracking was lost or cannot be trusted: attach again if needed and
 * compare what the copy has passed. */
static int tracking_lost(struct engine *e, struct disk *d, const char *why)
{
	char err[AGENT_MSG_MAX];

	repl_log("%s: %s; rescanning it", d->name, why);
	if (!d->tracked) {
		bool known = d->known;

		if (disk_attach(e, d, err, sizeof(err))) {
			disk_fail(e, d, "%s: cannot track writes again: %s",
				  d->name, err);
			return -1;
		}
		/* A new tracker, the same replica: the rescan below
		 * covers what the lost tracking might have missed. */
		d->known = known;
	}
	rescan_start(e, d, d->copy_next, why);
	return 0;
}

struct drain_ctx {
	struct extent_set *set;
	bool nomem;
};

static int drain_one(void *arg, const struct ferry_extent *x)
{
	struct drain_ctx *c = arg;

	if (extent_set_add(c->set, x->offset, x->length))
		c->nomem = true;
	return 0;
}

static int64_t handle_status(struct engine *e, struct disk *d,
			     uint32_t status, uint64_t generation)
{
	char why[128];

	if (status & FERRY_STATUS_GONE) {
		disk_fail(e, d, "%s was removed from the system (the tracker "
			  "reports it gone); replication of it stopped",
			  d->name);
		return -1;
	}
	if (status & FERRY_STATUS_RESIZED) {
		disk_fail(e, d, "%s changed size since it was attached; "
			  "restart ferry-agent to replicate its new size",
			  d->name);
		return -1;
	}
	if (generation != d->generation) {
		snprintf(why, sizeof(why), "tracker generation changed "
			 "(%016" PRIx64 " -> %016" PRIx64 ": detached and "
			 "attached again)", d->generation, generation);
		d->generation = generation;
		return tracking_lost(e, d, why);
	}
	if (status & FERRY_STATUS_OVERFLOW)
		return tracking_lost(e, d, "the tracker could not record "
				     "every write (overflow)");
	return 0;
}

int64_t disk_drain(struct engine *e, struct disk *d, uint64_t now_ms)
{
	struct extent_set set = EXTENT_SET_INIT;
	struct drain_ctx c = { .set = &set };
	struct ferry_drain_info info;
	struct ferry_err fe;
	bool same_gen;
	int64_t found;

	if (!d->tracked || d->failed)
		return 0;
	if (ferry_drain(&e->ctl, &d->bdev, 0, drain_one, &c, &info, &fe)) {
		extent_set_free(&set);
		if (fe.errnum == ENOENT) {
			d->tracked = false;
			return tracking_lost(e, d, "its tracker is gone "
					     "(ferry.ko reloaded or the "
					     "disk detached)");
		}
		/* Another process drained while we paged: what it took,
		 * and the pages we had read, are in no set we will see. */
		if (fe.errnum == ESTALE) {
			struct ferry_stats st = { 0 };

			/* Counted from its sets so far: only a later gap
			 * is news. */
			if (!ferry_stats_get(&e->ctl, &d->bdev, &st, &fe))
				d->drain_seq = st.drains;
			return tracking_lost(e, d, "another process drained "
					     "its tracker (ferryctl tracker "
					     "drain, or a second agent?)");
		}
		disk_fail(e, d, "%s", fe.msg);
		return -1;
	}
	same_gen = info.generation == d->generation;
	if (handle_status(e, d, info.status, info.generation) < 0) {
		extent_set_free(&set);
		return -1;
	}
	/* Sets are numbered per attach; one taken by someone else is
	 * missing from ours (a new generation is rescanned already). */
	if (same_gen && info.sequence != d->drain_seq + 1) {
		repl_log("%s: tracker set %" PRIu64 " follows our set %"
			 PRIu64 ": the sets between were drained by another "
			 "process", d->name, info.sequence, d->drain_seq);
		if (tracking_lost(e, d, "another process drained its "
				  "tracker (ferryctl tracker drain, or a "
				  "second agent?)") < 0) {
			extent_set_free(&set);
			return -1;
		}
	}
	d->drain_seq = info.sequence;
	if (c.nomem) {
		extent_set_free(&set);
		tracking_lost(e, d, "out of memory for a drained set");
		return 0;
	}
	/* What lies ahead of the copy's reads is read by the copy, after
	 * this drain, so after those writes completed. */
	if (d->copy_next < d->dev.size)
		extent_set_remove(&set, d->copy_next,
				  d->dev.size - d->copy_next);
	found = (int64_t)extent_set_bytes(&set);
	if (found) {
		if (extent_set_union(&d->pending, &set)) {
			extent_set_free(&set);
			tracking_lost(e, d, "out of memory for the dirty "
				      "ranges");
			return 0;
		}
		if (!d->pending_since_ms)
			d->pending_since_ms = now_ms;
	}
	extent_set_free(&set);
	return found;
}

int disk_sample(struct engine *e, struct disk *d, uint64_t *writes)
{
	struct ferry_stats st;
	struct ferry_err fe;

	if (!d->tracked || d->failed)
		return 0;
	memset(&st, 0, sizeof(st));
	if (ferry_stats_get(&e->ctl, &d->bdev, &st, &fe)) {
		if (fe.errnum == ENOENT) {
			d->tracked = false;
			return tracking_lost(e, d, "its tracker is gone "
					     "(ferry.ko reloaded or the "
					     "disk detached)");
		}
		disk_fail(e, d, "%s", fe.msg);
		return -1;
	}
	*writes = st.writes;
	d->tracker_dirty = st.dirty_blocks * (uint64_t)st.granularity;
	if (d->tracker_dirty > d->dev.size)
		d->tracker_dirty = d->dev.size;
	return 0;
}
