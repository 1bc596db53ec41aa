/* SPDX-License-Identifier: GPL-2.0 */
/*
 * source_server.h - the source server records that several operation
 * groups share.  A record is MGN's SourceServer shape kept as one JSON
 * document (the `doc` column), with the fields that filters and lookups
 * need copied into indexed columns by ss_save().
 *
 * Members that are ferry's own and not MGN's (the assigned replicator,
 * the agent's last report, ...) live under the "ferry" member of the
 * document, which ss_public() removes: e.g. "ferry.replicatorID".
 *
 * Tags live in the tags table (ops_tags.c), keyed by ARN; ss_public()
 * adds them when a record is answered.
 */
#ifndef FERRY_CONTROL_SOURCE_SERVER_H
#define FERRY_CONTROL_SOURCE_SERVER_H

#include <jansson.h>
#include <stdbool.h>

#include "api.h"

extern const char ss_schema_sql[];

/* The record (new reference), or NULL if there is none (no error set). */
json_t *ss_load(struct api_ctx *ctx, const char *id);

/* As ss_load, but records ResourceNotFoundException when missing, and
 * AccessDeniedException when an agent asks for another server. */
json_t *ss_require(struct api_ctx *ctx, const char *id);

/* The record of the server whose agent gave MACHINE_KEY at
 * registration, or NULL. */
json_t *ss_find_by_machine(struct api_ctx *ctx, const char *machine_key);

/* Insert or replace the record DOC (its sourceServerID names it).
 * MACHINE_KEY may be NULL to keep the stored one.  0 or -1 (error set). */
int ss_save(struct api_ctx *ctx, json_t *doc, const char *machine_key);

/*
 * ss_save(CTX, DOC, NULL), then keep DOC (a reference) as the parsed
 * copy of the row for the next ss_load of this server, which hands it
 * over instead of parsing the row again.  The caller must not change DOC
 * afterwards (reading it is fine); for frequent saves (heartbeats).
 */
int ss_save_keep(struct api_ctx *ctx, json_t *doc);

/* Drop the parsed records kept for ST (store_close). */
struct store;
void ss_cache_forget(struct store *st);

/* Delete the record, its replication configuration, tags and commands. */
int ss_delete(struct api_ctx *ctx, const char *id);

/*
 * MGN's DataReplicationErrorString shown for a replicator's staging error
 * (ferry.stagingError: its data directory is full).  MGN's enum has no
 * "staging disk full"; its staging disks are EBS volumes, and running out
 * of staging capacity (the EBS quota) is what FAILED_TO_CREATE_STAGING_
 * DISKS reports.  A staging volume is a sparse file whose blocks are
 * allocated as data arrives, so a full filesystem is that failure too.
 */
#define SS_STAGING_ERROR_MGN "FAILED_TO_CREATE_STAGING_DISKS"

/*
 * A copy of DOC as the public API answers it (with "tags").  A staging
 * error the server's replicator reports is laid over the agent's view:
 * dataReplicationState STALLED (PAUSED and STOPPED stay) and
 * dataReplicationError {SS_STAGING_ERROR_MGN, the replicator's message}
 * (an AGENT_NOT_SEEN stays); the stored record keeps the agent's.
 */
json_t *ss_public(struct api_ctx *ctx, json_t *doc);

/* dataReplicationInfo.dataReplicationState as ss_public() shows it. */
const char *ss_shown_state(json_t *doc);

/* The replicator assigned to the server, "" if none. */
const char *ss_replicator(json_t *doc);

/*
 * Commands waiting for the agent (GetAgentCommandForMgn): "start",
 * "stop", "pause", "resume", "retry", "rescan", "uninstall".  ARGS may
 * be NULL.
 */
int ss_command_push(struct api_ctx *ctx, const char *id,
		    const char *command, json_t *args);

/* ConflictException about source server ID, with MGN's code,
 * resourceId and resourceType.  Returns -1; the first error recorded
 * wins. */
int ss_conflict(struct api_ctx *ctx, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Replication of DOC ends (DisconnectFromService, FinalizeCutover), as
 * MGN shows it: dataReplicationState DISCONNECTED, no lag, ETA or error,
 * every replicated disk's totalStorageBytes 0.  The caller sets the
 * lifecycle state.
 */
void ss_replication_disconnected(json_t *doc);

/* Small accessors on DOC; missing members read as "" / 0. */
const char *ss_str(json_t *doc, const char *path); /* "lifeCycle.state" */
int ss_set(json_t *doc, const char *path, json_t *value); /* steals */

#endif
