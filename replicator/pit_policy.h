/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pit_policy.h - a source server's point-in-time policy as ferry-control
 * gives it (MGN's pitPolicy, in GetReplicatorAssignmentsForMgn) turned
 * into the snapshot code's struct snap_policy (snapshot.h).
 */
#ifndef FERRY_REPLICATOR_PIT_POLICY_H
#define FERRY_REPLICATOR_PIT_POLICY_H

#include <stddef.h>

#include <jansson.h>

#include "snap_policy.h"

/*
 * RULES: a list of {"ruleID", "units": "MINUTE"|"HOUR"|"DAY", "interval",
 * "retentionDuration", "enabled"}; a rule keeps one snapshot per INTERVAL
 * UNITS for RETENTIONDURATION UNITS ("enabled" false: skipped; absent:
 * enabled).  0 with *P set, or -1 with ERR naming the rule at fault and
 * *P unchanged: not a list, a bad member, no enabled rule or more than
 * SNAP_MAX_RULES of them.
 */
int pit_policy_from_mgn(struct snap_policy *p, json_t *rules, char *err,
			size_t errlen);

/* P as pit_policy would spell it ("10m:1h, 1h:1d"), for log lines. */
void pit_policy_format(const struct snap_policy *p, char *buf, size_t len);

#endif
