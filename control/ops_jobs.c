// SPDX-License-Identifier: GPL-2.0
/*
 * ops_jobs.c - the jobs table (jobs.h) and DescribeJobs.
 *
 * seq orders jobs by creation: DescribeJobs answers the latest first, as
 * MGN does, and its nextToken is the seq of the last job answered.
 * A job's log items (job_log) are answered oldest first, paged by their
 * own seq.
 */
#include "jobs.h"

#include <string.h>

#include "api_service.h"
#include "config.h"
#include "model.h"
#include "paging.h"
#include "source_server.h"
#include "store.h"
#include "tags.h"

static const char jobs_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS jobs ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT NOT NULL UNIQUE,"
	" created INTEGER NOT NULL,"
	" doc TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);"
	"CREATE TABLE IF NOT EXISTS job_log ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" job_id TEXT NOT NULL,"
	" time INTEGER NOT NULL,"
	" event TEXT NOT NULL,"
	" data TEXT);"
	"CREATE INDEX IF NOT EXISTS job_log_job ON job_log(job_id, seq);";

static const char *const job_types[] = { "LAUNCH", "TERMINATE", NULL };
static const char *const job_initiators[] = {
	"START_TEST", "START_CUTOVER", "DIAGNOSTIC", "TERMINATE", NULL
};

static bool one_of(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

/* The model's JobID: "mgnjob-" and 17 letters or digits. */
static bool job_id_valid(const char *id)
{
	size_t i;

	if (strlen(id) != 24 || strncmp(id, "mgnjob-", 7))
		return false;
	for (i = 7; i < 24; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'z') ||
		      (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

static int job_insert(struct api_ctx *ctx, json_t *job)
{
	static const char sql[] =
		"INSERT INTO jobs(id, created, doc) VALUES(?, ?, ?)";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, ss_str(job, "jobID"));
	sqlite3_bind_int64(s, 2, ctx->now);
	store_bind_json(s, 3, job);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "cannot store job %s: %s",
				 ss_str(job, "jobID"),
				 sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

json_t *job_create(struct api_ctx *ctx, const char *type,
		   const char *initiated_by, json_t *server_ids, json_t *tags)
{
	char id[MODEL_ID_MAX], arn[MODEL_ARN_MAX];
	json_t *job, *servers, *v;
	size_t i;

	if (!one_of(type, job_types) || !one_of(initiated_by, job_initiators) ||
	    !json_is_array(server_ids)) {
		api_error(ctx, API_INTERNAL, "job_create: bad arguments");
		return NULL;
	}
	model_new_id("mgnjob-", id);
	model_arn(ctx, "job", id, arn);
	servers = json_array();
	json_array_foreach(server_ids, i, v) {
		if (!json_is_string(v)) {
			json_decref(servers);
			api_error(ctx, API_INTERNAL,
				  "job_create: server IDs must be strings");
			return NULL;
		}
		json_array_append_new(servers,
			json_pack("{s:O,s:s}", "sourceServerID", v,
				  "launchStatus", "PENDING"));
	}
	job = json_pack("{s:s,s:s,s:o,s:s,s:s,s:s,s:o}", "jobID", id,
			"arn", arn, "creationDateTime",
			model_time_json(ctx->now), "type", type,
			"initiatedBy", initiated_by, "status", "PENDING",
			"participatingServers", servers);
	if (!job) {
		api_error(ctx, API_INTERNAL, "out of memory");
		return NULL;
	}
	if (job_insert(ctx, job) || tags_set(ctx, arn, tags)) {
		json_decref(job);
		return NULL;
	}
	return job;
}

json_t *job_load(struct api_ctx *ctx, const char *job_id)
{
	static const char sql[] = "SELECT doc FROM jobs WHERE id = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	json_t *job = NULL;
	int rc;

	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return NULL;
	}
	store_bind_text(s, 1, job_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		job = store_column_json(s, 0);
	else if (rc != SQLITE_DONE)
		api_error(ctx, API_INTERNAL, "cannot read job %s: %s", job_id,
			  sqlite3_errmsg(store_db(ctx->st)));
	sqlite3_reset(s);
	return job;
}

bool job_exists(struct api_ctx *ctx, const char *job_id)
{
	json_t *job = job_load(ctx, job_id);

	json_decref(job);
	return job != NULL;
}

int job_save(struct api_ctx *ctx, json_t *job)
{
	static const char sql[] = "UPDATE jobs SET doc = ? WHERE id = ?";
	const char *id = ss_str(job, "jobID");
	sqlite3_stmt *s;
	int rc;

	if (!strcmp(ss_str(job, "status"), "COMPLETED") &&
	    !*ss_str(job, "endDateTime"))
		json_object_set_new(job, "endDateTime",
				    model_time_json(ctx->now));
	json_object_del(job, "tags"); /* kept in the tags table */
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_json(s, 1, job);
	store_bind_text(s, 2, id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "cannot save job %s: %s",
				 id, sqlite3_errmsg(store_db(ctx->st)));
	if (sqlite3_changes(store_db(ctx->st)) != 1)
		return api_not_found(ctx, "JOB", id);
	return 0;
}

json_t *job_public(struct api_ctx *ctx, json_t *job)
{
	json_t *tags = tags_get(ctx, ss_str(job, "arn")), *out;

	if (!tags)
		return NULL;
	out = json_deep_copy(job);
	json_object_del(out, "ferry"); /* ferry's own, not MGN's */
	json_object_set_new(out, "tags", tags);
	return out;
}

static const char *const log_events[] = {
	"JOB_START", "SERVER_SKIPPED", "CLEANUP_START", "CLEANUP_END",
	"CLEANUP_FAIL", "SNAPSHOT_START", "SNAPSHOT_END", "SNAPSHOT_FAIL",
	"USING_PREVIOUS_SNAPSHOT", "CONVERSION_START", "CONVERSION_END",
	"CONVERSION_FAIL", "LAUNCH_START", "LAUNCH_FAILED", "JOB_CANCEL",
	"JOB_END", NULL
};

int job_log_add(struct api_ctx *ctx, const char *job_id, const char *event,
		time_t when, json_t *data)
{
	static const char sql[] =
		"INSERT INTO job_log(job_id, time, event, data)"
		" VALUES(?, ?, ?, ?)";
	sqlite3_stmt *s;
	int rc;

	if (!one_of(event, log_events))
		return api_error(ctx, API_INTERNAL,
				 "job_log_add: unknown event %s", event);
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, job_id);
	sqlite3_bind_int64(s, 2, when);
	store_bind_text(s, 3, event);
	if (data && json_object_size(data))
		store_bind_json(s, 4, data);
	else
		sqlite3_bind_null(s, 4);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL,
				 "cannot log %s of job %s: %s", event, job_id,
				 sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

/* ISO-8601 date filter member NAME of FILTERS into *T (unchanged if
 * absent). */
static int read_date(struct api_ctx *ctx, json_t *filters, const char *name,
		     long long *t)
{
	const char *s = NULL;
	char field[32];
	time_t v;

	snprintf(field, sizeof(field), "filters.%s", name);
	if (model_get_string(ctx, filters, name, false, 32, &s))
		return -1;
	if (!s)
		return 0;
	v = model_time_parse(s);
	if (v < 0 || strlen(s) < 19)
		return api_invalid_field(ctx, field,
			"%s: '%s' is not an ISO-8601 date and time such as 2024-01-31T12:00:00Z",
			field, s);
	*t = v;
	return 0;
}

/*
 * Filters go into one fixed statement (NULL parameters disable a
 * filter); the ID list is bound as a JSON array and expanded by
 * json_each().
 */
static int op_describe_jobs(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "filters", "maxResults",
					     "nextToken", NULL };
	static const char *const known_filters[] = { "jobIDs", "fromDate",
						     "toDate", NULL };
	static const char sql[] =
		"SELECT seq, doc FROM jobs"
		" WHERE (?1 = 0 OR seq < ?1)"
		" AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))"
		" AND (?3 IS NULL OR created >= ?3)"
		" AND (?4 IS NULL OR created <= ?4)"
		" ORDER BY seq DESC LIMIT ?5";
	json_t *filters = NULL, *ids = NULL, *items, *v;
	long long limit, after, from = -1, to = -1, last = 0, n = 0;
	sqlite3_stmt *s;
	size_t i;
	int rc;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    model_get_object(ctx, in, "filters", false, &filters) ||
	    paging_read(ctx, in, "jobs", &limit, &after))
		return -1;
	if (filters) {
		if (model_only_keys(ctx, filters, known_filters) ||
		    model_get_array(ctx, filters, "jobIDs", false, 1000,
				    &ids) ||
		    read_date(ctx, filters, "fromDate", &from) ||
		    read_date(ctx, filters, "toDate", &to))
			return -1;
		json_array_foreach(ids, i, v) {
			if (!json_is_string(v) ||
			    !job_id_valid(json_string_value(v)))
				return api_invalid_field(ctx, "filters.jobIDs",
					"filters.jobIDs: each item must be a job ID such as mgnjob-0123456789abcdef0");
		}
		if (ids && !json_array_size(ids))
			ids = NULL; /* an empty list does not filter */
	}
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	sqlite3_bind_int64(s, 1, after);
	if (ids)
		store_bind_json(s, 2, ids);
	else
		sqlite3_bind_null(s, 2);
	if (from >= 0)
		sqlite3_bind_int64(s, 3, from);
	else
		sqlite3_bind_null(s, 3);
	if (to >= 0)
		sqlite3_bind_int64(s, 4, to);
	else
		sqlite3_bind_null(s, 4);
	/* One more than asked tells whether another page follows. */
	sqlite3_bind_int64(s, 5, limit + 1);
	items = json_array();
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *job, *pub;

		if (n == limit)
			break;
		last = sqlite3_column_int64(s, 0);
		job = store_column_json(s, 1);
		pub = job ? job_public(ctx, job) : NULL;
		json_decref(job);
		if (!pub) {
			rc = SQLITE_ERROR;
			break;
		}
		json_array_append_new(items, pub);
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(items);
		return api_error(ctx, API_INTERNAL, "cannot list jobs");
	}
	*out = json_pack("{s:o}", "items", items);
	if (rc == SQLITE_ROW)
		paging_set_token(ctx, *out, "jobs", last);
	return 0;
}

/* Oldest first, as a job proceeds; nextToken is the seq of the last
 * item answered. */
static int op_describe_log(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "jobID", "maxResults",
					     "nextToken", "accountID", NULL };
	static const char sql[] =
		"SELECT seq, time, event, data FROM job_log"
		" WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
	const char *id = NULL, *account = NULL;
	long long limit, after, last = 0, n = 0;
	json_t *items;
	sqlite3_stmt *s;
	int rc;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    model_get_string(ctx, in, "jobID", true, 24, &id) ||
	    model_get_string(ctx, in, "accountID", false, 12, &account) ||
	    paging_read(ctx, in, "joblog", &limit, &after))
		return -1;
	if (!job_id_valid(id))
		return api_invalid_field(ctx, "jobID",
			"jobID '%s' does not match ^mgnjob-[0-9a-zA-Z]{17}$",
			id);
	if ((account && strcmp(account, ctx->cfg->account_id)) ||
	    !job_exists(ctx, id))
		return ctx->err ? -1 : api_not_found(ctx, "JOB", id);
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, after);
	/* One more than asked tells whether another page follows. */
	sqlite3_bind_int64(s, 3, limit + 1);
	items = json_array();
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *item, *data;

		if (n == limit)
			break;
		last = sqlite3_column_int64(s, 0);
		item = json_pack("{s:o,s:s}", "logDateTime",
				 model_time_json(sqlite3_column_int64(s, 1)),
				 "event",
				 (const char *)sqlite3_column_text(s, 2));
		data = store_column_json(s, 3);
		if (data)
			json_object_set_new(item, "eventData", data);
		json_array_append_new(items, item);
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(items);
		return api_error(ctx, API_INTERNAL,
				 "cannot list the log of job %s", id);
	}
	*out = json_pack("{s:o}", "items", items);
	if (rc == SQLITE_ROW)
		return paging_set_token(ctx, *out, "joblog", last);
	return 0;
}

static const struct api_op jobs_ops[] = {
	{ "DescribeJobs", "POST", "/DescribeJobs", ROLE_ADMIN, 200,
	  op_describe_jobs, false },
	{ "DescribeJobLogItems", "POST", "/DescribeJobLogItems", ROLE_ADMIN,
	  200, op_describe_log, false },
};

const struct api_module api_module_jobs = {
	.name = "jobs",
	.schema_sql = jobs_schema_sql,
	.ops = jobs_ops,
	.n_ops = sizeof(jobs_ops) / sizeof(jobs_ops[0]),
};
