// SPDX-License-Identifier: GPL-2.0
/*
 * ops_launch.c - MGN's launch lifecycle: StartTest, StartCutover,
 * FinalizeCutover, TerminateTargetInstances, and the launch tasks that
 * replicators carry out (launch.h).  "lc" is lifeCycle.state, "drs"
 * dataReplicationInfo.dataReplicationState.
 *
 * operation            allowed when                then
 * -------------------  --------------------------  ----------------------
 * StartTest            lc READY_FOR_TEST, TESTING  LAUNCH job (START_TEST),
 *                      or READY_FOR_CUTOVER        lc TESTING,
 *                                                  lastTest.initiated
 * StartCutover         lc READY_FOR_CUTOVER or     LAUNCH job (START_
 *                      CUTTING_OVER                CUTOVER), lc CUTTING_
 *                                                  OVER, lastCutover.
 *                                                  initiated
 * FinalizeCutover      lc CUTTING_OVER, the        lc CUTOVER, lastCutover.
 *                      cutover launched            finalized, drs
 *                                                  DISCONNECTED, agent:
 *                                                  uninstall
 * TerminateTarget-     a launchedInstance, lc not  TERMINATE job, done at
 *   Instances          TESTING, CUTTING_OVER or    once; launchedInstance
 *                      CUTOVER (MGN's rule)        removed, its images
 *                                                  removed by the replicator
 *
 * Every one also needs a server that is not archived and has no launch
 * still running (ConflictException naming the server, its state or the
 * running job); the launches need a replicator holding its volumes.
 * The relaunches (StartTest from TESTING, StartCutover from
 * CUTTING_OVER) are MGN's too.
 *
 * What ferry launches is the newest snapshot of each disk, exported by
 * the replicator as an image file; the "instance" that MGN would boot
 * is named by an ID of EC2's form ("i-" and 17 hex digits) that stands
 * for those images.  A launch task goes PENDING -> IN_PROGRESS (the
 * replicator started exporting) -> LAUNCHED or FAILED; the job is
 * STARTED with its first task and COMPLETED with its last.  A task whose
 * replicator is lost fails after the replicator timeout
 * (launch_sweep.c).  As in MGN, a new launch (test or cutover) first
 * terminates the server's launched test instance: its images are
 * removed (launch_removal.c).
 */
#include "launch.h"

#include <stdio.h>
#include <string.h>

#include "agent_state.h"
#include "api_service.h"
#include "config.h"
#include "jobs.h"
#include "model.h"
#include "source_server.h"
#include "store.h"

#define LC "lifeCycle.state"
#define MAX_SERVERS 200		/* MGN's StartTestRequestSourceServerIDs */
#define RAW_ERROR_MAX 65536	/* MGN's LargeBoundedString */
#define CLOCK_SKEW 300

static const char launch_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS launch_tasks ("
	" job_id TEXT NOT NULL,"
	" source_server_id TEXT NOT NULL,"
	" initiated_by TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" PRIMARY KEY (job_id, source_server_id));"
	"CREATE INDEX IF NOT EXISTS launch_tasks_server"
	" ON launch_tasks(source_server_id, status);"
	"CREATE INDEX IF NOT EXISTS launch_tasks_open"
	" ON launch_tasks(status, created);"
	/* The images replicators are to delete (launch_removal.c). */
	"CREATE TABLE IF NOT EXISTS launch_removals ("
	" job_id TEXT NOT NULL,"
	" source_server_id TEXT NOT NULL,"
	" replicator_id TEXT NOT NULL,"
	" requested INTEGER NOT NULL,"
	" PRIMARY KEY (job_id, source_server_id));"
	"CREATE INDEX IF NOT EXISTS launch_removals_replicator"
	" ON launch_removals(replicator_id, requested);";

/* One of the launches. */
struct launch_kind {
	const char *op;
	const char *what;	  /* "start a test of" */
	const char *initiated_by; /* the job's */
	const char *from;	  /* " A B " : the lc states allowed */
	const char *from_text;	  /* "A or B" */
	const char *state;	  /* lc afterwards */
	const char *last;	  /* "lastTest" or "lastCutover" */
};

static const struct launch_kind kind_test = {
	"StartTest", "start a test of", "START_TEST",
	" READY_FOR_TEST TESTING READY_FOR_CUTOVER ",
	"READY_FOR_TEST, TESTING or READY_FOR_CUTOVER", "TESTING", "lastTest"
};
static const struct launch_kind kind_cutover = {
	"StartCutover", "start the cutover of", "START_CUTOVER",
	" READY_FOR_CUTOVER CUTTING_OVER ",
	"READY_FOR_CUTOVER or CUTTING_OVER", "CUTTING_OVER", "lastCutover"
};

/* True if STATE is one of the words of LIST (" A B "). */
static bool state_in(const char *state, const char *list)
{
	char word[64];

	if (!*state || strlen(state) > sizeof(word) - 3)
		return false;
	snprintf(word, sizeof(word), " %s ", state);
	return strstr(list, word) != NULL;
}

/* MGN's SourceServerID pattern: s-[0-9a-zA-Z]{17}. */
static bool server_id_ok(const char *id)
{
	static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	return strlen(id) == 19 && !strncmp(id, "s-", 2) &&
	       strspn(id + 2, alnum) == 17;
}

static const char *shown_lc(const char *lc)
{
	return *lc ? lc : "not yet known";
}

/*
 * The first row of SQL, a query of one text column with the text
 * parameters A and B (B may be NULL), into OUT ("" if no row).  0 or -1.
 */
static int query_text(struct api_ctx *ctx, const char *sql, const char *a,
		      const char *b, char *out, size_t len)
{
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	out[0] = '\0';
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, a);
	if (b)
		store_bind_text(s, 2, b);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(out, len, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "database error: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

/* The server's running launch job into JOB ("" if none).  0 or -1. */
static int running_job(struct api_ctx *ctx, const char *id,
		       char job[MODEL_ID_MAX])
{
	return query_text(ctx,
			  "SELECT job_id FROM launch_tasks"
			  " WHERE source_server_id = ?"
			  " AND status IN ('PENDING', 'IN_PROGRESS') LIMIT 1",
			  id, NULL, job, MODEL_ID_MAX);
}

/*
 * The checks every operation here makes of one server: it exists, is
 * not archived and has no launch running.  Its record (new reference)
 * or NULL with the error recorded.
 */
static json_t *usable_server(struct api_ctx *ctx, const char *id,
			     const char *what)
{
	char job[MODEL_ID_MAX];
	json_t *doc = ss_require(ctx, id);

	if (!doc)
		return NULL;
	if (json_is_true(json_object_get(doc, "isArchived"))) {
		ss_conflict(ctx, id, "Cannot %s source server %s: it is archived",
			    what, id);
	} else if (!running_job(ctx, id, job) && *job) {
		ss_conflict(ctx, id,
			    "Cannot %s source server %s: its launch job %s is still running",
			    what, id, job);
	}
	if (ctx->err) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/*
 * The request of StartTest, StartCutover and TerminateTargetInstances:
 * {"sourceServerIDs": [1-200], "tags", "accountID"}.  *IDS gets the
 * distinct IDs, *DOCS their records, each a usable_server() for WHAT
 * (new references, NULL on error), *TAGS the tags (borrowed, may be
 * NULL).
 */
static int read_servers(struct api_ctx *ctx, json_t *in, const char *what,
			json_t **ids, json_t **docs, json_t **tags)
{
	static const char *const known[] = { "sourceServerIDs", "tags",
					     "accountID", NULL };
	const char *account = NULL;
	json_t *list, *v, *w;
	size_t i, k;

	*ids = *docs = NULL;
	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    model_get_array(ctx, in, "sourceServerIDs", true, MAX_SERVERS,
			    &list) ||
	    model_get_object(ctx, in, "tags", false, tags) ||
	    (*tags && model_check_tags(ctx, *tags, "tags")) ||
	    model_get_string(ctx, in, "accountID", false, 12, &account))
		return -1;
	if (!json_array_size(list))
		return api_invalid_field(ctx, "sourceServerIDs",
			"sourceServerIDs must list 1-%d source server IDs",
			MAX_SERVERS);
	*ids = json_array();
	json_array_foreach(list, i, v) {
		const char *id = json_string_value(v);
		bool seen = false;

		if (!id || !server_id_ok(id)) {
			json_decref(*ids);
			*ids = NULL;
			return api_invalid_field(ctx, "sourceServerIDs",
				"sourceServerIDs[%zu]: '%s' does not match ^s-[0-9a-zA-Z]{17}$",
				i, id ? id : "(not a string)");
		}
		json_array_foreach(*ids, k, w)
			seen = seen || json_equal(v, w);
		if (!seen)
			json_array_append(*ids, v);
	}
	if (account && strcmp(account, ctx->cfg->account_id)) {
		api_not_found(ctx, "SOURCE_SERVER",
			      json_string_value(json_array_get(*ids, 0)));
		goto fail;
	}
	*docs = json_array();
	json_array_foreach(*ids, i, v) {
		json_t *doc = usable_server(ctx, json_string_value(v), what);

		if (!doc)
			goto fail;
		json_array_append_new(*docs, doc);
	}
	return 0;
fail:
	json_decref(*ids);
	json_decref(*docs);
	*ids = *docs = NULL;
	return -1;
}

/* Task (JOB, ID) made with STATUS (INITIATED_BY its job's), or its
 * STATUS changed. */
static int set_task(struct api_ctx *ctx, const char *job, const char *id,
		    const char *status, const char *initiated_by)
{
	static const char sql[] =
		"INSERT INTO launch_tasks(job_id, source_server_id,"
		" initiated_by, status, created) VALUES(?1, ?2, ?3, ?4, ?5)"
		" ON CONFLICT(job_id, source_server_id) DO UPDATE"
		" SET status = ?4";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, job);
	store_bind_text(s, 2, id);
	store_bind_text(s, 3, initiated_by);
	store_bind_text(s, 4, status);
	sqlite3_bind_int64(s, 5, ctx->now);
	return sql_step_done(ctx, s, "store the launch task");
}

/* {"job": the public JOB} into *OUT. */
static int answer_job(struct api_ctx *ctx, json_t *job, json_t **out)
{
	json_t *pub = job_public(ctx, job);

	if (!pub)
		return ctx->err ? -1 : api_error(ctx, API_INTERNAL,
						 "out of memory");
	*out = json_pack("{s:o}", "job", pub);
	return 0;
}

/*
 * Terminate the server's launched instance (DOC's launchedInstance), if
 * any and, with ONLY_TEST, if a test launch made it: the record loses it
 * and the replicator that wrote its images is asked to delete them.
 * *IID gets the instance's ID ("" if none was terminated).  0 or -1.
 */
static int terminate_instance(struct api_ctx *ctx, json_t *doc,
			      bool only_test, char iid[MODEL_ID_MAX])
{
	const char *id = ss_str(doc, "sourceServerID");
	char job_id[MODEL_ID_MAX], path[128];
	json_t *job;
	int rc = 0;

	iid[0] = '\0';
	snprintf(job_id, sizeof(job_id), "%s",
		 ss_str(doc, "launchedInstance.jobID"));
	if (!*ss_str(doc, "launchedInstance.ec2InstanceID"))
		return 0;
	job = *job_id ? job_load(ctx, job_id) : NULL;
	if (ctx->err)
		return -1;
	if (only_test && strcmp(ss_str(job, "initiatedBy"), "START_TEST")) {
		json_decref(job);
		return 0;
	}
	snprintf(iid, MODEL_ID_MAX, "%s",
		 ss_str(doc, "launchedInstance.ec2InstanceID"));
	/* The replicator that wrote them, which may no longer be the
	 * server's. */
	snprintf(path, sizeof(path), "ferry.launches.%s.replicatorID", id);
	if (job && *ss_str(job, path))
		rc = launch_removal_request(ctx, job_id, id,
					    ss_str(job, path));
	json_decref(job);
	json_object_del(doc, "launchedInstance");
	return rc;
}

/* StartTest and StartCutover. */
static int start_launch(struct api_ctx *ctx, const struct launch_kind *k,
			json_t *in, json_t **out)
{
	json_t *ids, *tags = NULL, *docs, *doc, *job = NULL;
	const char *job_id;
	char path[64];
	size_t i;
	int rc = -1;

	/* Every server is checked before anything changes. */
	if (read_servers(ctx, in, k->what, &ids, &docs, &tags))
		return -1;
	json_array_foreach(docs, i, doc) {
		const char *id = ss_str(doc, "sourceServerID");
		const char *lc = ss_str(doc, LC);

		if (!state_in(lc, k->from)) {
			ss_conflict(ctx, id,
				    "Cannot %s source server %s: its lifecycle state is %s; %s needs %s",
				    k->what, id, shown_lc(lc), k->op,
				    k->from_text);
			goto out;
		}
		if (!*ss_replicator(doc)) {
			ss_conflict(ctx, id,
				    "Cannot %s source server %s: no replicator holds its staging volumes",
				    k->what, id);
			goto out;
		}
	}
	job = job_create(ctx, "LAUNCH", k->initiated_by, ids, tags);
	if (!job)
		goto out;
	job_id = ss_str(job, "jobID");
	if (job_log_add(ctx, job_id, "JOB_START", ctx->now, NULL))
		goto out;
	snprintf(path, sizeof(path), "lifeCycle.%s", k->last);
	json_array_foreach(docs, i, doc) {
		const char *id = ss_str(doc, "sourceServerID");

		char old_iid[MODEL_ID_MAX];

		if (set_task(ctx, job_id, id, "PENDING", k->initiated_by) ||
		    terminate_instance(ctx, doc, true, old_iid))
			goto out;
		ss_set(doc, LC, json_string(k->state));
		/* A new launch starts a new record of it: an older
		 * finalized/reverted no longer applies. */
		ss_set(doc, path,
		       json_pack("{s:{s:s,s:o}}", "initiated", "jobID", job_id,
				 "apiCallDateTime",
				 model_time_json(ctx->now)));
		if (ss_save(ctx, doc, NULL))
			goto out;
	}
	rc = answer_job(ctx, job, out);
out:
	json_decref(job);
	json_decref(docs);
	json_decref(ids);
	return rc;
}

static int op_start_test(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return start_launch(ctx, &kind_test, in, out);
}

static int op_start_cutover(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return start_launch(ctx, &kind_cutover, in, out);
}

static int op_finalize(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", "accountID",
					     NULL };
	static const char what[] = "finalize the cutover of";
	const char *id = NULL, *account = NULL, *lc;
	json_t *doc;
	int rc = -1;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    model_get_string(ctx, in, "sourceServerID", true, 19, &id) ||
	    model_get_string(ctx, in, "accountID", false, 12, &account))
		return -1;
	if (!server_id_ok(id))
		return api_invalid_field(ctx, "sourceServerID",
			"sourceServerID '%s' does not match ^s-[0-9a-zA-Z]{17}$",
			id);
	if (account && strcmp(account, ctx->cfg->account_id))
		return api_not_found(ctx, "SOURCE_SERVER", id);
	doc = usable_server(ctx, id, what);
	if (!doc)
		return -1;
	lc = ss_str(doc, LC);
	if (strcmp(lc, "CUTTING_OVER")) {
		ss_conflict(ctx, id,
			    "Cannot %s source server %s: its lifecycle state is %s; FinalizeCutover needs CUTTING_OVER",
			    what, id, shown_lc(lc));
		goto out;
	}
	/* Ending replication without the cutover instance would leave
	 * nothing to run the workload on. */
	if (strcmp(ss_str(doc, "launchedInstance.jobID"),
		   ss_str(doc, "lifeCycle.lastCutover.initiated.jobID"))) {
		ss_conflict(ctx, id,
			    "Cannot %s source server %s: its cutover launch (job %s) launched no instance; launch it again with StartCutover",
			    what, id,
			    ss_str(doc, "lifeCycle.lastCutover.initiated.jobID"));
		goto out;
	}
	/* MGN: replication ends and the agent uninstalls itself; the
	 * launched instance stays. */
	ss_replication_disconnected(doc);
	ss_set(doc, LC, json_string("CUTOVER"));
	ss_set(doc, "lifeCycle.lastCutover.finalized",
	       json_pack("{s:o}", "apiCallDateTime",
			 model_time_json(ctx->now)));
	if (ss_save(ctx, doc, NULL) ||
	    ss_command_push(ctx, id, "uninstall", NULL))
		goto out;
	*out = ss_public(ctx, doc);
	rc = *out ? 0 : -1;
out:
	json_decref(doc);
	return rc;
}

/*
 * The stand-in instances have nothing running to stop: the job is done
 * at once.  Their images are removed by the replicators that wrote them
 * when they next fetch their assignments.
 */
static int op_terminate(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char what[] = "terminate the launched instance of";
	json_t *ids, *tags = NULL, *docs, *doc, *job = NULL, *ps;
	const char *job_id;
	size_t i;
	int rc = -1;

	if (read_servers(ctx, in, what, &ids, &docs, &tags))
		return -1;
	json_array_foreach(docs, i, doc) {
		const char *id = ss_str(doc, "sourceServerID");
		const char *lc = ss_str(doc, LC);

		if (state_in(lc, " TESTING CUTTING_OVER CUTOVER ")) {
			ss_conflict(ctx, id,
				    "Cannot %s source server %s: its lifecycle state is %s; TerminateTargetInstances needs another than TESTING, CUTTING_OVER or CUTOVER",
				    what, id, lc);
			goto out;
		}
		if (!*ss_str(doc, "launchedInstance.ec2InstanceID")) {
			ss_conflict(ctx, id,
				    "Cannot %s source server %s: it has no launched instance",
				    what, id);
			goto out;
		}
	}
	job = job_create(ctx, "TERMINATE", "TERMINATE", ids, tags);
	if (!job)
		goto out;
	job_id = ss_str(job, "jobID");
	ps = json_object_get(job, "participatingServers");
	json_array_foreach(docs, i, doc) {
		json_t *p = json_array_get(ps, i);
		char iid[MODEL_ID_MAX];

		if (terminate_instance(ctx, doc, false, iid) ||
		    ss_save(ctx, doc, NULL))
			goto out;
		json_object_set_new(p, "launchStatus",
				    json_string("TERMINATED"));
		json_object_set_new(p, "launchedEc2InstanceID",
				    json_string(iid));
	}
	json_object_set_new(job, "status", json_string("COMPLETED"));
	if (job_log_add(ctx, job_id, "JOB_START", ctx->now, NULL) ||
	    job_log_add(ctx, job_id, "JOB_END", ctx->now, NULL) ||
	    job_save(ctx, job))
		goto out;
	rc = answer_job(ctx, job, out);
out:
	json_decref(job);
	json_decref(docs);
	json_decref(ids);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The replicator's side (launch.h) */

json_t *launch_pending(struct api_ctx *ctx, const char *rid)
{
	static const char sql[] =
		"SELECT t.job_id, t.source_server_id, t.initiated_by"
		" FROM launch_tasks t JOIN assignments a"
		" ON a.source_server_id = t.source_server_id"
		" WHERE a.replicator_id = ?"
		" AND t.status IN ('PENDING', 'IN_PROGRESS')"
		" ORDER BY t.created, t.rowid";
	static const char *const keys[] = { "jobID", "sourceServerID",
					     "initiatedBy" };
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	json_t *list;

	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return NULL;
	}
	store_bind_text(s, 1, rid);
	list = store_rows_json(s, keys, 3);
	if (!list) {
		api_error(ctx, API_INTERNAL, "cannot list launch tasks: %s",
			  sqlite3_errmsg(store_db(ctx->st)));
		return NULL;
	}
	return list;
}

static const char *const report_status[] = { "IN_PROGRESS", "LAUNCHED",
					     "FAILED", NULL };

/* A time of the report: ISO-8601 within the clock skew, else now. */
static time_t report_time(struct api_ctx *ctx, json_t *r, const char *key)
{
	const char *s = json_string_value(json_object_get(r, key));
	time_t t = s ? model_time_parse(s) : -1;

	return t <= 0 || t > ctx->now ? ctx->now : t;
}

/* Check item IDX of the report without changing anything. */
static int check_item(struct api_ctx *ctx, json_t *r, size_t idx)
{
	static const char *const known[] = {
		"jobID", "sourceServerID", "launchStatus", "startDateTime",
		"endDateTime", "snapshotDateTime", "error", "images", NULL
	};
	static const char *const times[] = { "startDateTime", "endDateTime",
					     "snapshotDateTime", NULL };
	const char *job = NULL, *id = NULL, *status = NULL, *err = NULL;
	const char *t;
	json_t *images = NULL, *img;
	char field[64];
	size_t i;

	snprintf(field, sizeof(field), "launches[%zu]", idx);
	if (!json_is_object(r))
		return api_invalid_field(ctx, field, "%s must be an object",
					 field);
	if (model_only_keys(ctx, r, known) ||
	    model_get_string(ctx, r, "jobID", true, 24, &job) ||
	    model_get_string(ctx, r, "sourceServerID", true, 19, &id) ||
	    model_get_enum(ctx, r, "launchStatus", true, report_status,
			   &status) ||
	    model_get_string(ctx, r, "error", false, RAW_ERROR_MAX, &err) ||
	    model_get_array(ctx, r, "images", false, 1000, &images))
		return -1;
	for (i = 0; times[i]; i++) {
		t = NULL;
		if (model_get_string(ctx, r, times[i], false, 32, &t))
			return -1;
		if (t && (model_time_parse(t) < 0 ||
			  model_time_parse(t) > ctx->now + CLOCK_SKEW))
			return api_invalid_field(ctx, field,
				"%s.%s must be an ISO-8601 time not in the future",
				field, times[i]);
	}
	if (!strcmp(status, "FAILED") && !err)
		return api_invalid_field(ctx, field,
			"%s: a FAILED launch must say why (error)", field);
	json_array_foreach(images, i, img) {
		static const char *const img_known[] = {
			"deviceName", "path", "format", "bytes", NULL
		};
		const char *s;
		long long b;

		if (!json_is_object(img))
			return api_invalid_field(ctx, field,
				"%s.images[%zu] must be an object", field, i);
		if (model_only_keys(ctx, img, img_known) ||
		    model_get_string(ctx, img, "deviceName", true, 256, &s) ||
		    model_get_string(ctx, img, "path", true, 4096, &s) ||
		    model_get_string(ctx, img, "format", true, 16, &s) ||
		    model_get_int(ctx, img, "bytes", true, 0, 1LL << 62, &b))
			return -1;
	}
	return 0;
}

/* The replicator the server is assigned to is RID: AccessDenied
 * otherwise. */
static int check_owner(struct api_ctx *ctx, const char *rid, const char *id)
{
	char owner[64];

	if (query_text(ctx,
		       "SELECT replicator_id FROM assignments"
		       " WHERE source_server_id = ?",
		       id, NULL, owner, sizeof(owner)))
		return -1;
	if (strcmp(owner, rid))
		return api_error(ctx, API_ACCESS_DENIED,
				 "Source server %s is not assigned to replicator %s",
				 id, rid);
	return 0;
}

/* The task's status into STATUS ("" if there is no such task). */
static int task_status(struct api_ctx *ctx, const char *job, const char *id,
		       char status[16])
{
	return query_text(ctx,
			  "SELECT status FROM launch_tasks"
			  " WHERE job_id = ? AND source_server_id = ?",
			  job, id, status, 16);
}

static json_t *participant(json_t *job, const char *id)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(job, "participatingServers"), i, p)
		if (!strcmp(ss_str(p, "sourceServerID"), id))
			return p;
	return NULL;
}

/* The launch of ID in JOB succeeded: its instance ID, the job's entry
 * and the server's launchedInstance. */
static int launched(struct api_ctx *ctx, json_t *job, json_t *p,
		    const char *id, time_t end)
{
	const char *job_id = ss_str(job, "jobID");
	char iid[MODEL_ID_MAX];
	json_t *doc, *data;
	int rc;

	model_new_id("i-", iid);
	data = json_pack("{s:s}", "sourceServerID", id);
	rc = job_log_add(ctx, job_id, "SNAPSHOT_END", end, data);
	json_object_set_new(data, "targetInstanceID", json_string(iid));
	rc = rc ? rc : job_log_add(ctx, job_id, "LAUNCH_START", end, data);
	json_decref(data);
	if (rc)
		return -1;
	json_object_set_new(p, "launchStatus", json_string("LAUNCHED"));
	json_object_set_new(p, "launchedEc2InstanceID", json_string(iid));
	doc = ss_load(ctx, id);
	if (!doc)	/* deleted meanwhile: the job still says what ran */
		return ctx->err ? -1 : 0;
	ss_set(doc, "launchedInstance",
	       json_pack("{s:s,s:s,s:s}", "ec2InstanceID", iid, "jobID",
			 job_id, "firstBoot", "WAITING"));
	rc = ss_save(ctx, doc, NULL);
	json_decref(doc);
	return rc;
}

static bool job_done(json_t *job)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(job, "participatingServers"), i, p)
		if (!state_in(ss_str(p, "launchStatus"),
			      " LAUNCHED FAILED TERMINATED "))
			return false;
	return true;
}

/*
 * Move task (JOB_ID, ID) of JOB, its participant P, on to STATUS as R
 * says (the report's times, images and error), for replicator RID: the
 * job's log and entry, the task, the job's end.  Stores JOB.
 */
static int finish_task(struct api_ctx *ctx, json_t *job, json_t *p,
		       const char *rid, const char *id, const char *status,
		       json_t *r)
{
	const char *job_id = ss_str(job, "jobID");
	char path[128];
	json_t *data = json_pack("{s:s}", "sourceServerID", id);
	int rc = -1;

	if (!strcmp(status, "LAUNCHED")) {
		if (launched(ctx, job, p, id,
			     report_time(ctx, r, "endDateTime")))
			goto out;
	} else if (!strcmp(status, "FAILED")) {
		json_object_set_new(data, "rawError",
				    json_incref(json_object_get(r, "error")));
		if (job_log_add(ctx, job_id, "LAUNCH_FAILED",
				report_time(ctx, r, "endDateTime"), data))
			goto out;
		json_object_set_new(p, "launchStatus", json_string("FAILED"));
	}
	if (strcmp(status, "IN_PROGRESS")) {
		/* Where the images are: ferry's own, not in MGN's Job. */
		snprintf(path, sizeof(path), "ferry.launches.%s", id);
		ss_set(job, path, json_pack("{s:s,s:O*,s:O*,s:O*}",
			"replicatorID", rid, "snapshotDateTime",
			json_object_get(r, "snapshotDateTime"), "images",
			json_object_get(r, "images"), "error",
			json_object_get(r, "error")));
		if (set_task(ctx, job_id, id, status, ""))
			goto out;
	}
	/* A server finished (by ferry-control's verdict, before any
	 * report) is a job under way. */
	if (!strcmp(ss_str(job, "status"), "PENDING"))
		json_object_set_new(job, "status", json_string("STARTED"));
	if (job_done(job)) {
		json_object_set_new(job, "status", json_string("COMPLETED"));
		if (job_log_add(ctx, job_id, "JOB_END", ctx->now, NULL))
			goto out;
	}
	rc = job_save(ctx, job);
out:
	json_decref(data);
	return rc;
}

/* The job of an open task (new reference) and its participant *P, or
 * NULL with the error recorded. */
static json_t *task_job(struct api_ctx *ctx, const char *job_id,
			const char *id, json_t **p)
{
	json_t *job = job_load(ctx, job_id);

	*p = job ? participant(job, id) : NULL;
	if (!*p) {
		json_decref(job);
		if (!ctx->err)
			api_error(ctx, API_INTERNAL,
				  "launch task of %s has no job %s", id,
				  job_id);
		return NULL;
	}
	return job;
}

static int apply_item(struct api_ctx *ctx, const char *rid, json_t *r)
{
	const char *job_id = ss_str(r, "jobID");
	const char *id = ss_str(r, "sourceServerID");
	const char *status = ss_str(r, "launchStatus");
	char cur[16];
	json_t *job, *p, *data;
	int rc = -1;

	if (task_status(ctx, job_id, id, cur))
		return -1;
	/* Unknown, or reported before (the answer was lost), or failed by
	 * ferry-control meanwhile (launch_sweep.c): nothing to do, and the
	 * replicator may forget it. */
	if (!*cur || !state_in(cur, " PENDING IN_PROGRESS "))
		return 0;
	if (check_owner(ctx, rid, id))
		return -1;
	job = task_job(ctx, job_id, id, &p);
	if (!job)
		return -1;
	data = json_pack("{s:s}", "sourceServerID", id);
	if (!strcmp(cur, "PENDING")) {
		if (!strcmp(ss_str(job, "status"), "PENDING"))
			json_object_set_new(job, "status",
					    json_string("STARTED"));
		json_object_set_new(p, "launchStatus",
				    json_string("IN_PROGRESS"));
		if (job_log_add(ctx, job_id, "SNAPSHOT_START",
				report_time(ctx, r, "startDateTime"), data) ||
		    set_task(ctx, job_id, id, "IN_PROGRESS", ""))
			goto out;
	}
	rc = finish_task(ctx, job, p, rid, id, status, r);
out:
	json_decref(data);
	json_decref(job);
	return rc;
}

int launch_task_fail(struct api_ctx *ctx, const char *job_id, const char *id,
		     const char *rid, const char *error)
{
	char cur[16];
	json_t *job, *p, *r;
	int rc;

	if (task_status(ctx, job_id, id, cur))
		return -1;
	if (!state_in(cur, " PENDING IN_PROGRESS "))
		return 0;
	job = task_job(ctx, job_id, id, &p);
	if (!job)
		return -1;
	r = json_pack("{s:s}", "error", error);
	rc = finish_task(ctx, job, p, rid, id, "FAILED", r);
	json_decref(r);
	json_decref(job);
	return rc;
}

int launch_report(struct api_ctx *ctx, const char *rid, json_t *list)
{
	json_t *r;
	size_t i;

	json_array_foreach(list, i, r)
		if (check_item(ctx, r, i))
			return -1;
	json_array_foreach(list, i, r)
		if (apply_item(ctx, rid, r))
			return -1;
	return 0;
}

static const struct api_op launch_ops[] = {
	{ "StartTest", "POST", "/StartTest", ROLE_ADMIN, 202, op_start_test,
	  false },
	{ "StartCutover", "POST", "/StartCutover", ROLE_ADMIN, 202,
	  op_start_cutover, false },
	{ "FinalizeCutover", "POST", "/FinalizeCutover", ROLE_ADMIN, 200,
	  op_finalize, false },
	{ "TerminateTargetInstances", "POST", "/TerminateTargetInstances",
	  ROLE_ADMIN, 202, op_terminate, false },
};

const struct api_module api_module_launch = {
	.name = "launch",
	.schema_sql = launch_schema_sql,
	.ops = launch_ops,
	.n_ops = sizeof(launch_ops) / sizeof(launch_ops[0]),
	.periodic = launch_sweep,
};
