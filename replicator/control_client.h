/* SPDX-License-Identifier: GPL-2.0 */
/*
 * control_client.h - ferry-replicator's side of ferry-control: it
 * registers (RegisterReplicatorForMgn, optionally with a CSR for its
 * server certificate), then a background thread polls its assignments
 * (GetReplicatorAssignmentsForMgn; also at once when a connection meets
 * a source server it does not know) and reports free space, per-disk
 * replicated bytes, snapshot times and staging errors (a full data
 * directory) (UpdateReplicatorInfoForMgn) every report-interval seconds.
 * docs/api.md has the operations.
 *
 * The assignments are kept in memory and in DATA_DIR/control-assignments
 * .json, so that the replicator goes on serving them while ferry-control
 * is unreachable, also across its own restarts.  All functions are
 * thread-safe; without control-url nothing here is used and
 * ctl_assignment_find() finds nothing.
 */
#ifndef FERRY_REPLICATOR_CONTROL_CLIENT_H
#define FERRY_REPLICATOR_CONTROL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Files under the data directory (not directories: those are source
 * servers' volumes). */
#define CTL_ASSIGNMENTS_FILE "control-assignments.json"
#define CTL_CERT_FILE "control-cert.pem"
#define CTL_KEY_FILE "control-key.pem"

/*
 * Before serving: read the credentials, load the saved assignments and,
 * when CFG has no cert/key, get them: register with a CSR (new key in
 * DATA_DIR/control-key.pem, 0600) or, if ferry-control cannot be reached,
 * use the ones a previous run stored.  Sets CFG->cert, ->key and (when
 * unset) ->ca.  LISTENING is the bound "ADDR:PORT" (the real port).  0,
 * or -1 with ERR.
 */
int ctl_init(struct rep_config *cfg, const char *listening, char *err,
	     size_t errlen);

/*
 * The server certificate ferry-control issued was renewed in place
 * (DATA_DIR/control-cert.pem, same key): serve new connections with it.
 * Called from the report thread.  0, or -1 with ERR.
 */
typedef int (*ctl_cert_renewed_fn)(void *arg, char *err, size_t errlen);

/* Start the report thread; it ends when STOP_FD becomes readable.  It
 * renews ferry-control's certificate (cert-renew-days) and then calls
 * RENEWED(ARG). */
int ctl_start(int stop_fd, ctl_cert_renewed_fn renewed, void *arg,
	      char *err, size_t errlen);

/* Wait for the report thread to end (after STOP_FD turned readable). */
void ctl_stop(void);

/*
 * Whether ferry-control assigns disk DISK of source server SOURCE to this
 * replicator: 1 with *SIZE its size in bytes (0: any), else 0.
 * *KNOWN_SOURCE tells whether SOURCE is assigned at all.
 */
int ctl_assignment_find(const char *source, const char *disk, uint64_t *size,
			int *known_source);

/*
 * SOURCE's own point-in-time policy (MGN's pitPolicy in its assignment,
 * disabled rules left out) into *P: true if ferry-control assigns SOURCE
 * here with a valid policy, else false (the caller uses its pit_policy).
 */
bool ctl_assignment_pit(const char *source, struct snap_policy *p);

/*
 * SOURCE (or one of its disks) is not in the table: have the report
 * thread fetch the assignments from ferry-control now, so that a server
 * assigned since the last poll is not refused, and wait for that fetch,
 * at most a few seconds.  Callers meanwhile share one fetch; fetches
 * start at least a second apart whoever asks.  0 when a fetch that
 * started after this call is done (look again), -1 otherwise (without
 * control-url, after a timeout or while stopping).
 */
int ctl_assignment_refresh(const char *source);

/* stagingError.code of a volume that ran out of space. */
#define CTL_STAGING_DISK_FULL "STAGING_DISK_FULL"

/*
 * Writing a staging volume of SOURCE failed for want of space (ENOSPC or
 * EDQUOT: the wire error NOSPC).  PATH is the volume's file (NULL: the
 * source server's directory is named), DETAIL the storage error's
 * message.  Every report from now on carries the server's stagingError
 * {"code": "STAGING_DISK_FULL", "message": "staging volume PATH: No
 * space left on device (N bytes free); free space under --data-dir DIR
 * (DETAIL)"} until ctl_staging_ok().  A no-op without control-url.
 */
void ctl_staging_full(const char *source, const char *path,
		      const char *detail);

/*
 * Writes to SOURCE's staging volumes were made durable (a group commit
 * with data in it succeeded): clear its stagingError, if any.  Cheap
 * when no server has one: connections call it at every commit.
 */
void ctl_staging_ok(const char *source);

/* Record that SOURCE's newest consistent snapshot was taken at UNIX_MS
 * (ms since the epoch); the next report carries it.  Older times are
 * ignored.  For the snapshot code; a no-op without control-url. */
void ctl_note_snapshot(const char *source, int64_t unix_ms);

#endif
