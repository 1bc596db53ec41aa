/* SPDX-License-Identifier: GPL-2.0 */
/*
 * launch.h - the replicator's part of MGN's launches (StartTest,
 * StartCutover at ferry-control; docs/api.md, docs/replicator.md).
 *
 * ferry-control lists the launch tasks of the servers assigned here in
 * GetReplicatorAssignmentsForMgn ("launches"); a worker thread exports
 * the newest snapshot of each of the server's disks to
 * DATA_DIR/launch/<jobID>/<sourceServerID>/<disk>.img (or .qcow2 with
 * launch_format = qcow2), with a manifest launch.json next to them, and
 * the reports (UpdateReplicatorInfoForMgn "launches") carry each task's
 * state until ferry-control has taken its outcome.  A task whose
 * directory is complete (a restart after the export, before the report)
 * is reported from its manifest, not exported again.  Images that
 * ferry-control no longer wants are deleted when it says so.
 * Thread-safe.
 */
#ifndef FERRY_REPLICATOR_LAUNCH_H
#define FERRY_REPLICATOR_LAUNCH_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"

#define LAUNCH_DIR "launch"		/* under the data directory */
#define LAUNCH_MANIFEST "launch.json"

/* Start the worker (with control-url).  0, or -1 with ERR. */
int launch_start(const struct rep_config *cfg, char *err, size_t errlen);

/* Stop the worker, after the export it is running, if any. */
void launch_stop(void);

/* Take the "launches" list of GetReplicatorAssignmentsForMgn: queue the
 * tasks not known yet. */
void launch_offer(json_t *launches);

/* The "launches" member of the next report: the tasks started or
 * finished (new reference; an empty array when there are none). */
json_t *launch_reports(void);

/* ferry-control took the report SENT (launch_reports()): forget the
 * finished tasks in it. */
void launch_reported(json_t *sent);

/*
 * Take the "removeLaunches" list of GetReplicatorAssignmentsForMgn
 * ([{"jobID", "sourceServerID"}]: a terminated or superseded instance,
 * a task ferry-control failed): delete each one's directory under
 * DATA_DIR/launch and forget its task.  One still being exported is
 * left for a later list.  Returns the ones gone, for the next report's
 * "removedLaunches" (new reference).
 */
json_t *launch_remove(json_t *list);

/* `ferry-replicator launch list --data-dir DIR`; the exit status. */
int launch_cli(int argc, char **argv);

#endif
