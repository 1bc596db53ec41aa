/* SPDX-License-Identifier: GPL-2.0 */
/*
 * jobs.h - MGN jobs (the Job shape), made by the launch operations
 * (StartTest, StartCutover, TerminateTargetInstances) and answered by
 * DescribeJobs.  A job is kept as one JSON document in the jobs table
 * (ops_jobs.c); its tags live in the tags table under its ARN.  Every
 * function runs in the caller's transaction and records an api_error()
 * on failure.
 */
#ifndef FERRY_CONTROL_JOBS_H
#define FERRY_CONTROL_JOBS_H

#include <stdbool.h>
#include <time.h>
#include <jansson.h>

#include "api.h"

/*
 * Make and store a new job: TYPE "LAUNCH" or "TERMINATE", INITIATED_BY
 * "START_TEST", "START_CUTOVER", "DIAGNOSTIC" or "TERMINATE", status
 * PENDING, one participating server {"sourceServerID", "launchStatus":
 * "PENDING"} per string of the array SERVER_IDS, creationDateTime now.
 * TAGS (an object, may be NULL) become the job's tags.  Returns the job
 * as stored (new reference, without "tags") or NULL.
 */
json_t *job_create(struct api_ctx *ctx, const char *type,
		   const char *initiated_by, json_t *server_ids,
		   json_t *tags);

/* The stored job (new reference), or NULL if there is none (no error
 * recorded unless the database failed). */
json_t *job_load(struct api_ctx *ctx, const char *job_id);

/*
 * Store the changes made to a job document from job_load()/job_create()
 * (status, participatingServers[].launchStatus / launchedEc2InstanceID,
 * endDateTime, ...).  Setting status COMPLETED without an endDateTime
 * sets it to now.  0 or -1 (ResourceNotFoundException if the job is
 * gone).
 */
int job_save(struct api_ctx *ctx, json_t *job);

/* A copy of JOB as the public API answers it (with "tags", without
 * ferry's private "ferry" member), or NULL. */
json_t *job_public(struct api_ctx *ctx, json_t *job);

/*
 * Record log item EVENT (MGN's JobLogEvent: "JOB_START", "SNAPSHOT_START",
 * "LAUNCH_START", "JOB_END", ...) of job JOB_ID at WHEN, with DATA (an
 * object of JobLogEventData members, borrowed; NULL or empty for none).
 * DescribeJobLogItems answers them.  0 or -1.
 */
int job_log_add(struct api_ctx *ctx, const char *job_id, const char *event,
		time_t when, json_t *data);

/* True if JOB_ID names a stored job. */
bool job_exists(struct api_ctx *ctx, const char *job_id);

#endif
