/* SPDX-License-Identifier: GPL-2.0 */
/*
 * engine.h - the replication thread's state, shared by its files:
 *
 *   replicate.c   the loop: connect, fill the read queue, send in order,
 *                 drain rounds, commands, shutdown
 *   disk.c        one source disk: device, tracker, what it still owes
 *   rescan.c      hash exchange over a disk (docs/protocol.md section 9)
 *   cp.c          consistency points
 *   repl_status.c the status in struct agent_shared, the --once summary
 *
 * The read queue is a ring of DEPTH slots, each with its registered
 * buffer; slots are filled in order and their frames sent in that same
 * order, whatever order the reads complete in.  Sending in the order of
 * reading is what keeps the replica from going back in time: a later
 * read of a block carries newer (or the same) data and is applied after
 * an earlier one.
 */
#ifndef FERRY_AGENT_ENGINE_H
#define FERRY_AGENT_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "config.h"
#include "extent.h"
#include "freeze.h"
#include "link.h"
#include "reader.h"
#include "throttle.h"
#include "tracker.h"

/* Why a range is read: the kinds of struct link_rec too. */
enum slot_kind {
	SK_NONE,
	SK_COPY,	/* the initial copy, in order from its cursor */
	SK_DIRTY,	/* written since: from the tracker */
	SK_RESCAN,	/* compared with the replica's hashes */
};

#define MARK_EVERY (64ull << 20)	/* SYNC_MARK every 64 MiB of copy */
#define ZERO_RUN_MAX (1ull << 30)	/* longest ZERO frame we send */
#define HASH_CHUNK_MAX (64u << 10)	/* rescan hash chunk */
#define RESCAN_SEGS 2			/* HASH_REQs ahead of the reads */

struct slot {
	bool busy;		/* in the queue */
	bool ready;		/* read complete (or failed) */
	uint8_t kind;		/* enum slot_kind */
	unsigned int disk;
	uint64_t off;
	uint32_t len, got;	/* bytes asked, bytes read so far */
	uint32_t done;		/* bytes of it already handled */
	int err;		/* errno of a failed read */
	uint64_t epoch_ms;	/* SK_DIRTY: when the drain found it */
	bool zero_known, zero;	/* SK_COPY, SK_DIRTY: all zero? */
	bool diff_known;	/* SK_RESCAN: diff[] computed */
	uint64_t diff[4];	/* hash chunks that differ (<= 256) */
};

struct rescan_seg {
	bool used;		/* HASH_REQ sent, reads to do */
	bool have;		/* HASH_RESP arrived */
	uint64_t req_seq;	/* the HASH_REQ's seq */
	uint64_t off, len;
	uint32_t count;
	uint8_t *hashes;	/* count * FERRY_WIRE_HASH_LEN */
};

struct rescan {
	bool active;
	bool again;		/* triggered again while running */
	uint64_t end;		/* [0, end) is compared */
	uint64_t req_next;	/* next HASH_REQ offset */
	uint64_t read_next;	/* next read offset */
	uint64_t done;		/* compared and handled below this */
	uint64_t barrier;	/* slots queued before the trigger */
	uint64_t compared;	/* rescannedStorageBytes */
	uint64_t differed;	/* bytes found different */
	struct rescan_seg seg[RESCAN_SEGS];
};

struct disk_counters {
	uint64_t data_frames, data_raw, data_wire;
	uint64_t zero_frames, zero_bytes;
	uint64_t copy_sent;	/* raw bytes of copy frames sent */
	uint64_t resent;	/* raw bytes sent again after a cut */
	uint64_t payload;	/* payload bytes of every frame */
};

struct disk {
	char name[AGENT_NAME_MAX];	/* MGN's deviceName, also the path */
	struct reader_dev dev;
	bool open;
	/* tracker */
	struct ferry_blkdev bdev;
	bool tracked;
	uint64_t generation;
	uint64_t drain_seq;		/* the tracker's number of our last
					 * drain: a gap is another process's */
	uint32_t granularity;
	uint64_t writes_before, writes_after;	/* of the current round */
	uint64_t tracker_dirty;		/* bytes, at the last stats */
	/* the replica */
	bool known;			/* volume_id seen in this run, and
					 * the tracker kept since */
	uint8_t volume_id[16];
	uint64_t copy_next;		/* next copy read */
	uint64_t copy_sent;		/* copy frames sent below this */
	uint64_t copy_acked;		/* ... acknowledged below this */
	uint64_t copy_high;		/* highest copy_sent this run */
	uint64_t mark_sent, mark_acked;	/* SYNC_MARKs */
	bool mark_due;
	uint64_t resume_from;		/* where this connection's copy began */
	/* what it owes beside the copy */
	struct extent_set pending;	/* to read and send */
	uint64_t pending_since_ms;	/* oldest change in it */
	uint64_t lost_bytes;		/* sent, not acknowledged at cuts */
	struct rescan rs;
	/* a device that cannot go on (removed, resized, read error) */
	bool failed;
	char error[AGENT_MSG_MAX];
	struct disk_counters c;
};

struct engine {
	struct agent_shared *sh;
	const struct agent_config *cfg;
	bool once;
	/* parts */
	struct reader rd;
	struct link ln;
	struct throttle th;
	struct ferry_ctl ctl;
	bool ctl_open;
	uint8_t *enc;			/* one encoded DATA payload */
	size_t enc_cap;
	bool enc_valid;			/* enc holds the head's next frame */
	uint8_t enc_codec;
	uint32_t enc_len, enc_from, enc_raw;
	uint64_t enc_xxh3;
	uint32_t chunk;			/* read size */
	uint32_t hash_chunk;
	unsigned int depth;
	/* disks */
	struct disk disks[AGENT_MAX_DISKS];
	unsigned int n_disks;
	bool disks_ready;
	/* read queue */
	struct slot *slots;
	unsigned int head, count;
	uint64_t queued_total;		/* slots ever queued */
	uint64_t sent_total;		/* slots ever sent (handled) */
	unsigned int rr;		/* round robin over disks */
	/* runtime configuration, as last taken from sh->rt */
	struct agent_runtime rt;
	bool have_rt;
	bool cmd_paused, cmd_stopped;
	bool paused, stopped;		/* in force */
	uint8_t codec;
	/* connection */
	bool connected_once;
	uint64_t next_connect_ms;
	unsigned int failures;		/* in a row */
	uint64_t last_up_ms;		/* last successful WELCOME */
	enum link_fail last_fail;	/* of the last attempt or cut */
	char last_why[AGENT_MSG_MAX];
	uint64_t throttle_until_ns;
	/* drain rounds */
	bool round_active;
	bool round_found;		/* the round's drain found changes */
	uint64_t next_drain_ms;
	bool idle_round;		/* the last round saw no write */
	uint64_t cp_wait_until_ms;	/* hold drains for a CP's acks */
	/* consistency points */
	struct freezer *fz;		/* NULL: no freezes */
	bool frozen;			/* this round runs under a freeze */
	bool round_spoiled;		/* its freeze ended too early */
	uint64_t freeze_ms;		/* when it began */
	uint64_t freeze_held_ms;	/* how long the last one held */
	uint64_t next_freeze_ms;	/* not before (after a failure) */
	uint64_t freezes, freeze_cps;	/* freezes made, CPs they gave */
	uint64_t cp_id;			/* last sent (or WELCOME's last_cp) */
	uint64_t cp_acked_id;
	bool data_since_cp;		/* frames sent after the last CP */
	uint64_t last_cp_ms;		/* wall time of the last acked CP */
	uint64_t last_cp_mono_ms;	/* and monotonic (or the start) */
	uint64_t round_wall_ms;		/* wall time of the round's drain */
	/* status */
	uint64_t behind_since_ms;	/* 0: not behind */
	bool behind;
	uint64_t status_ms;		/* last status update */
	uint64_t rate_ms, rate_bytes;	/* acknowledged-bytes rate sample */
	double rate_bps;
	uint64_t acked_bytes;		/* raw bytes acknowledged, this run */
	uint64_t start_ms;
	char st_error[64];		/* MGN's DataReplicationErrorString */
	char st_raw[AGENT_MSG_MAX];	/* and the detail */
	bool quit;
	char fatal[AGENT_MSG_MAX];	/* --once: why it gave up */
};

/* Monotonic and wall clocks. */
uint64_t eng_mono_ms(void);
uint64_t eng_mono_ns(void);
uint64_t eng_wall_ms(void);

/* disk.c */
int disk_open(struct engine *e, struct disk *d, const char *name, char *err,
	      size_t errlen);
/* Close D's device; DETACH: stop tracking it too. */
void disk_close(struct engine *e, struct disk *d, bool detach);
int disk_attach(struct engine *e, struct disk *d, char *err, size_t errlen);
void disk_detach(struct engine *e, struct disk *d);
/* One drain of D's tracker into its pending set (minus what the copy
 * will read anyway).  Triggers a rescan when tracking was lost.  Returns
 * the bytes drained, or -1 if the disk failed. */
int64_t disk_drain(struct engine *e, struct disk *d, uint64_t now_ms);
/* ferry_stats_get: D's write counter into *WRITES, dirty bytes into
 * d->tracker_dirty.  0 or -1 (tracking lost: handled as in drain). */
int disk_sample(struct engine *e, struct disk *d, uint64_t *writes);
/* Add [OFF, OFF + LEN) to D's pending set, found at EPOCH_MS. */
void disk_owe(struct engine *e, struct disk *d, uint64_t off, uint64_t len,
	      uint64_t epoch_ms);
/* Has D's initial copy been acknowledged to the end? */
static inline bool disk_copied(const struct disk *d)
{
	return d->mark_acked >= d->dev.size;
}
void disk_fail(struct engine *e, struct disk *d, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* rescan.c */
/* Compare [0, END) of D with the replica, because WHY. */
void rescan_start(struct engine *e, struct disk *d, uint64_t end,
		  const char *why);
/* After a cut: go on from what was handled, on the next connection. */
void rescan_reset(struct engine *e, struct disk *d);
void rescan_cancel(struct engine *e, struct disk *d);
/* Send the HASH_REQs that may go now. */
int rescan_request(struct engine *e, struct disk *d);
/* The next read of the rescan, if its hashes are there: *OFF, *LEN. */
bool rescan_next_read(struct engine *e, struct disk *d, uint64_t *off,
		      uint32_t *len);
void rescan_read_queued(struct engine *e, struct disk *d, uint64_t off,
			uint32_t len);
void rescan_on_hash_resp(struct engine *e, uint64_t seq,
			 const struct ferry_hash_resp *h);
/* The hash chunks of slot S (whose data is in BUF) that differ from the
 * replica, into s->diff.  0, or -1 if its hashes are missing. */
int rescan_compare(struct engine *e, struct slot *s, const uint8_t *buf);
/* Slot S is handled: progress and, at the end, the rescan's end. */
void rescan_slot_done(struct engine *e, struct disk *d, const struct slot *s);

/* cp.c */
/* Send a consistency point if the disks' replicas now form one
 * crash-consistent image (docs/agent.md). */
void cp_maybe(struct engine *e, uint64_t now_ms);
/* Called at the end of a drain round: the disks saw no write from
 * before its drain to after its reads. */
void cp_round_end(struct engine *e, bool idle, uint64_t now_ms);
/* May the next drain round start (a CP is not waiting for its round)? */
bool cp_allows_drain(const struct engine *e, uint64_t now_ms);
/* Before a round's drain: freeze the filesystems if the disks are busy,
 * the last CP is old and the dirty set is small (docs/agent.md, "Under a
 * steady write load"). */
void cp_maybe_freeze(struct engine *e, uint64_t now_ms);
/* At the end of a frozen round's reads: thaw.  0, or 1 if the freeze did
 * not hold the whole round (no CP from it). */
int cp_thaw(struct engine *e, uint64_t now_ms);

/* repl_status.c */
void status_update(struct engine *e, uint64_t now_ms, bool force);
void status_summary(struct engine *e);
/* Set the error shown with the state ("" clears). */
void status_error(struct engine *e, const char *error, const char *raw);

/* replicate.c */
bool eng_link_idle(const struct engine *e);	/* nothing queued or
						 * unacknowledged */
bool eng_queue_has_kind(const struct engine *e, uint8_t kind,
			bool unread_only);

#endif
