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
 * A task whose replicator is lost (not heard from within the replicator
 * timeout, or none holds the server) is failed by ferry-control itself
 * (launch_sweep.c).  Images that are no longer wanted (a terminated or
 * superseded instance, a failed task's leftovers) are removed by the
 * replicator that wrote them when it is told so (launch_removal.c):
 * "removeLaunches" in the assignments, "removedLaunches" in its reports.
 * Every function runs in the caller's transaction and records an
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

/*
 * Fail the open task (JOB_ID, ID) for ERROR (ferry-control's own
 * verdict, not a replicator's report): LAUNCH_FAILED with ERROR as its
 * rawError, the server FAILED, the job COMPLETED if it was its last.
 * RID is the replicator that held the task ("" for none).  A task no
 * longer open is left alone.  0 or -1.
 */
int launch_task_fail(struct api_ctx *ctx, const char *job_id, const char *id,
		     const char *rid, const char *error);

/* ferry-control's periodic check (api_module.periodic): fail the open
 * tasks whose replicator is lost (launch_sweep.c). */
void launch_sweep(struct api_ctx *ctx);

/* Ask replicator RID to delete the images of task (JOB_ID, ID), if it
 * wrote any.  0 or -1. */
int launch_removal_request(struct api_ctx *ctx, const char *job_id,
			   const char *id, const char *rid);

/* The removals asked of RID, oldest first: [{"jobID",
 * "sourceServerID"}] (new reference), or NULL on error. */
json_t *launch_removals_pending(struct api_ctx *ctx, const char *rid);

/* RID reports the removals LIST ("removedLaunches"; NULL for none)
 * done: checked whole first, then forgotten.  0 or -1. */
int launch_removals_done(struct api_ctx *ctx, const char *rid, json_t *list);

#endif
