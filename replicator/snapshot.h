/* SPDX-License-Identifier: GPL-2.0 */
/*
 * snapshot.h - point-in-time snapshots of staging volumes, taken at
 * consistency points (docs/replicator.md, "Snapshots").
 *
 * DATA_DIR/<source>/snapshots/<cp_id>.snap describes one snapshot (its
 * disks, each with its store); DATA_DIR/<source>/snapshots/<cp_id>/ holds
 * its data: <file>.img, a reflinked copy of the volume (FICLONE), or
 * <file>.delta, the copy-on-write log of the blocks the volume had at
 * this snapshot and changed before the next one.  Storage functions
 * return 0 or a ferry_wire_error code with a message in ERR.
 */
#ifndef FERRY_REPLICATOR_SNAPSHOT_H
#define FERRY_REPLICATOR_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/wire.h"
#include "snap_policy.h"

struct volume;

/*
 * Volume V (locked, without metadata) is about to be created anew: 0 if
 * no copy-on-write snapshot holds its disk; else IO, and ERR says why
 * (such a snapshot reads the blocks it does not hold from the volume, so
 * a new one would change it).
 */
int snap_may_start_afresh(const struct volume *v, const char *data_dir,
			  char *err, size_t errlen);

/*
 * Volume V (opened by volume_open) is about to be written: find its
 * newest snapshot and, if that one is a copy-on-write one, open its
 * delta so that volume_write()/volume_zero() keep the old blocks.  V is
 * locked already (volume_open(), its caller, locks the .img first).
 */
int snap_attach(struct volume *v, const char *data_dir, char *err,
		size_t errlen);

/* Before [OFF, OFF+LEN) of V is overwritten (ZEROING: with zeros): copy
 * the blocks not yet kept into the newest snapshot's delta, durably;
 * when zeroing, not those that read as zeros already. */
int snap_cow_before(struct volume *v, uint64_t off, uint64_t len,
		    bool zeroing, char *err, size_t errlen);

/* Free V's copy-on-write state (volume_close()). */
void snap_cow_close(struct volume *v);

/* Whether a snapshot is due at CP CP_ID of the N volumes VOLS of SOURCE:
 * all fully copied, and none yet or POLICY's shortest interval since the
 * newest. */
bool snap_due(const struct volume *vols, unsigned int n, const char *data_dir,
	      const char *source, const struct snap_policy *policy,
	      uint64_t cp_id);

/*
 * A CP CP_ID is applied and everything up to it durable on the N volumes
 * VOLS of one connection (all of SOURCE): take a snapshot if POLICY says
 * one is due (or none exists yet and every volume is fully copied), then
 * prune what POLICY no longer keeps.  Returns 1 if taken, 0 if not due or
 * the snapshots are busy (an export), or an error code with ERR; NOSPC
 * only before the snapshot was committed (it can be tried again).
 */
int snap_at_cp(struct volume *vols, unsigned int n, const char *data_dir,
	       const char *source, const struct snap_policy *policy,
	       uint64_t cp_id, uint64_t cp_time_ms, char *err, size_t errlen);

/*
 * The staging filesystem is full while SOURCE's volumes are written:
 * delete SOURCE's oldest snapshot, unless it is the newest snapshot of
 * one of its disks (the one that disk's copy-on-write keeps blocks for),
 * so that replication can go on; point in time history gives way to the
 * replica itself.  1 if one was deleted
 * (logged), 0 if there is none to spare or the snapshots are busy (an
 * export), or an error code with ERR.
 */
int snap_yield_oldest(const char *data_dir, const char *source, char *err,
		      size_t errlen);

/* One disk exported by snap_export_newest(). */
struct snap_export {
	char name[FERRY_WIRE_MAX_NAME + 1];	/* the source's device name */
	char path[4096 + 300];			/* the image file */
	uint64_t size;				/* the disk's bytes */
};

/*
 * Export every disk of SOURCE's newest snapshot into the existing
 * directory OUT_DIR, as FILE.img (raw, sparse) or FILE.qcow2 (QCOW2,
 * through qemu-img), FILE being the escaped disk name of its staging
 * volume.  OUT (FERRY_WIRE_MAX_DISKS entries) gets *N_OUT disks;
 * *CP_ID and *TIME_MS (the consistency point's time) name the snapshot.
 * Holds the snapshots' shared lock meanwhile, as `snapshot export` does.
 * 0, or -1 with ERR.
 */
int snap_export_newest(const char *data_dir, const char *source,
		       const char *out_dir, bool qcow2,
		       struct snap_export *out, unsigned int *n_out,
		       uint64_t *cp_id, uint64_t *time_ms, char *err,
		       size_t errlen);

/* `ferry-replicator snapshot ...`; returns the exit status. */
int snap_cli(int argc, char **argv);

#endif
