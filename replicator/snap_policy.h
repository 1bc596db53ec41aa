/* SPDX-License-Identifier: GPL-2.0 */
/*
 * snap_policy.h - a point-in-time policy: which snapshots to keep.
 * snapshot.c applies it; pit_policy.c makes one from ferry-control's.
 */
#ifndef FERRY_REPLICATOR_SNAP_POLICY_H
#define FERRY_REPLICATOR_SNAP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAX_RULES 8

/* "INTERVAL:RETENTION": keep one snapshot per INTERVAL for RETENTION. */
struct snap_rule {
	uint64_t interval_ms, retention_ms;
};

struct snap_policy {
	unsigned int n;
	struct snap_rule rule[SNAP_MAX_RULES];
};

#define SNAP_DEFAULT_POLICY "10m:1h, 1h:1d, 1d:7d"

/* Parse "10m:1h, 1h:1d" (units s, m, h, d, w) into *P.  0, or -1 with
 * ERR and *P unchanged (also if snap_policy_check() refuses it). */
int snap_policy_parse(struct snap_policy *p, const char *s, char *err,
		      size_t errlen);

/* The most snapshots a policy may keep at once (1s:1h keeps 3601): a
 * snapshot is read through the deltas of all later ones, an open file
 * each, and the server lists them all at each CP.  Below snapshot.c's
 * MAX_SNAPS, which leaves room for those taken before a prune. */
#define SNAP_MAX_KEPT 4000
uint64_t snap_policy_kept(const struct snap_policy *p);

/* 0 if P keeps at most SNAP_MAX_KEPT snapshots, else -1 with ERR. */
int snap_policy_check(const struct snap_policy *p, char *err, size_t errlen);

#endif
