/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agent_state.h - what the agent operations (ops_agent.c) and the
 * replicator operations (ops_replicator.c) share: the assignment of
 * source servers to replicators and the progress of a server's
 * dataReplicationInitiation steps.
 *
 * Assignments live in the assignments table (ops_replicator.c); the
 * replicator a server is assigned to is also copied into its record as
 * "ferry.replicatorID", which is what ss_replicator() reads.
 */
#ifndef FERRY_CONTROL_AGENT_STATE_H
#define FERRY_CONTROL_AGENT_STATE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "api.h"

/*
 * Progress of replication initiation, in the order of MGN's
 * DataReplicationInitiationStepName list: each stage marks the steps
 * before it SUCCEEDED (or SKIPPED for cloud-only steps) and its own step
 * IN_PROGRESS.
 */
enum init_stage {
	INIT_WAIT,	     /* registered, no replicator yet */
	INIT_STAGING_DISKS,  /* replicator assigned, volumes not reported */
	INIT_PAIR,	     /* replicator holds the volumes */
	INIT_CONNECT,	     /* the agent knows its replicator */
	INIT_DONE,	     /* data flows: every step succeeded */
};

/* Rewrite DOC's dataReplicationInfo.dataReplicationInitiation.steps for
 * STAGE unless they already show a later one (never goes back unless
 * RESET).  Sets startDateTime if missing. */
void init_steps(json_t *doc, enum init_stage stage, bool reset, time_t now);

/* Mark the step that ERROR (a DataReplicationErrorString "FAILED_TO_X")
 * names as FAILED, if there is one. */
void init_step_failed(json_t *doc, const char *error);

/*
 * Give the server of DOC (already saved, with its sourceProperties) a
 * replicator: keep its current one if that is still acceptable, else
 * the least loaded live replicator with room, honouring
 * useDedicatedReplicationServer from its replication configuration;
 * with none, the server waits (assigned when a replicator registers or
 * reports).  Updates DOC's "ferry.replicatorID" and initiation steps;
 * the caller saves DOC.  0 or -1 (error recorded).
 */
int assign_server(struct api_ctx *ctx, json_t *doc);

/* Update the disk size the server's assignment accounts for, after new
 * source properties.  0 or -1. */
int assign_update_bytes(struct api_ctx *ctx, json_t *doc);

/* {"replicatorID","address","port"} of REPLICATOR_ID (new reference), or
 * NULL (no such replicator, or on error with the error recorded). */
json_t *replicator_endpoint(struct api_ctx *ctx, const char *replicator_id);

/* Step S (an INSERT, UPDATE or DELETE) to its end and reset it; on
 * failure record InternalServerException "cannot WHAT: ..." and -1. */
int sql_step_done(struct api_ctx *ctx, sqlite3_stmt *s, const char *what);

/* Sum of sourceProperties.disks[].bytes of DOC. */
long long doc_disk_bytes(json_t *doc);

#endif
