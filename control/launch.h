/* SPDX-License-Identifier: GPL-2.0 */
/*
 * launch.h - how the launch operations (ops_launch.c) reach the
 * replicators that carry them out (ops_replicator.c).
 *
 * StartTest and StartCutover make one launch task per source server of
 * the job (the launch_tasks table).  The replicator that holds the
 * server's staging volumes learns of the open tasks through
 * GetReplicatorAssignmentsForMgn ("launches"), exports the newest
 * snapshot of each disk and reports the outcome through
 * UpdateReplicatorInfoForMgn ("launches"), which completes the job.
 * Both functions run in the caller's transaction and record an
 * api_error() on failure.
 */
#ifndef FERRY_CONTROL_LAUNCH_H
#define FERRY_CONTROL_LAUNCH_H

#include <jansson.h>

#include "api.h"

/* The open tasks (PENDING or IN_PROGRESS) of servers assigned to
 * replicator RID, oldest first: [{"jobID", "sourceServerID",
 * "initiatedBy"}] (new reference), or NULL on error. */
json_t *launch_pending(struct api_ctx *ctx, const char *rid);

/*
 * Apply replicator RID's reports LIST (the "launches" member of its
 * heartbeat; NULL for none): checks every item first, then moves each
 * task, its job, the job's log and the source server on.  Reports of
 * unknown or already finished tasks are ignored (a report repeated after
 * a lost answer).  0 or -1.
 */
int launch_report(struct api_ctx *ctx, const char *rid, json_t *list);

#endif
