// SPDX-License-Identifier: GPL-2.0
/*
 * ops_source_servers.c - DescribeSourceServers and the operations that
 * change one source server's replication or lifecycle state.
 *
 * The state rules, from the documentation strings of MGN's model (and,
 * where it says nothing, MGN's console behaviour).  "drs" is
 * dataReplicationInfo.dataReplicationState, "lc" lifeCycle.state;
 * REPLICATING is INITIATING, INITIAL_SYNC, BACKLOG, CREATING_SNAPSHOT,
 * CONTINUOUS, RESCAN, STALLED, or no state reported yet.
 *
 * operation            allowed when            then                 agent
 * -------------------  ----------------------  -------------------  ---------
 * StartReplication     drs STOPPED             drs INITIATING, lc   start
 *                                              as before the stop
 * StopReplication      drs REPLICATING/PAUSED  drs STOPPED,         stop
 *                                              lc STOPPED
 * PauseReplication     drs REPLICATING         drs PAUSED           pause
 * ResumeReplication    drs PAUSED              drs INITIATING       resume
 * RetryDataReplication drs STALLED (else       drs INITIATING, no   retry
 *                      ValidationException:    error, initiation
 *                      the model lists no      restarted
 *                      ConflictException)
 * DisconnectFrom-      lc not DISCONNECTED     drs and lc           uninstall
 *   Service            and no cutover launch   DISCONNECTED, disks'
 *                      (CUTTING_OVER) running  totalStorageBytes 0,
 *                                              no lag or ETA
 * MarkAsArchived       lc DISCONNECTED/CUTOVER isArchived true      -
 * DeleteSourceServer   drs DISCONNECTED        record, replication  -
 *                      (disconnected, or       configuration, tags,
 *                      cutover finalized)      commands, keys gone
 * ChangeServerLife-    launchable: lagDuration lc as asked:         -
 *   CycleState         set and lc READY_FOR_   READY_FOR_TEST,
 *                      TEST..CUTOVER           READY_FOR_CUTOVER,
 *                                              CUTOVER
 *
 * An archived server refuses every change but DeleteSourceServer and
 * DisconnectFromService (ConflictException).  Refusals name the state
 * that stood in the way.  DisconnectFromService leaves the agent's
 * credentials valid so that it can still fetch its uninstall command;
 * ops_agent.c revokes them once the agent has it (keys_revoke_server),
 * and DeleteSourceServer revokes them at once.  An agent may disconnect
 * its own server (ferry-agent --disconnect, run by scripts/uninstall.sh):
 * its credentials end at once.
 */
#include <stdio.h>
#include <string.h>

#include "api_service.h"
#include "config.h"
#include "keys.h"
#include "model.h"
#include "paging.h"
#include "source_server.h"
#include "store.h"

#define DRS "dataReplicationInfo.dataReplicationState"
#define LC "lifeCycle.state"
#define PAGE_KIND "ss" /* paging.h: tokens of this listing */

static const char *const replicating[] = {
	"", "INITIATING", "INITIAL_SYNC", "BACKLOG", "CREATING_SNAPSHOT",
	"CONTINUOUS", "RESCAN", "STALLED", NULL
};
static const char *const replicating_or_paused[] = {
	"", "INITIATING", "INITIAL_SYNC", "BACKLOG", "CREATING_SNAPSHOT",
	"CONTINUOUS", "RESCAN", "STALLED", "PAUSED", NULL
};
static const char *const drs_stopped[] = { "STOPPED", NULL };
static const char *const drs_paused[] = { "PAUSED", NULL };
static const char *const drs_stalled[] = { "STALLED", NULL };
static const char *const drs_disconnected[] = { "DISCONNECTED", NULL };
static const char *const lc_connected[] = {
	"", "STOPPED", "NOT_READY", "READY_FOR_TEST", "TESTING",
	"READY_FOR_CUTOVER", "CUTOVER", "DISCOVERED", NULL
};
static const char *const lc_archivable[] = { "DISCONNECTED", "CUTOVER",
					     NULL };
static const char *const lc_launchable[] = {
	"READY_FOR_TEST", "TESTING", "READY_FOR_CUTOVER", "CUTTING_OVER",
	"CUTOVER", NULL
};
static const char *const lc_settable[] = { "READY_FOR_TEST",
					   "READY_FOR_CUTOVER", "CUTOVER",
					   NULL };
static const char *const lifecycle_enum[] = {
	"STOPPED", "NOT_READY", "READY_FOR_TEST", "TESTING",
	"READY_FOR_CUTOVER", "CUTTING_OVER", "CUTOVER", "DISCONNECTED",
	"DISCOVERED", NULL
};
static const char *const replication_type_enum[] = { "AGENT_BASED",
						     "SNAPSHOT_SHIPPING",
						     NULL };

static bool one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

/* "A, B or C" from LIST, skipping the empty state. */
static void list_text(const char *const *list, char *out, size_t len)
{
	size_t n = 0, count = 0, i = 0;
	const char *const *p;

	out[0] = '\0';
	for (p = list; *p; p++)
		if (**p)
			count++;
	for (p = list; *p && n < len; p++) {
		if (!**p)
			continue;
		n += (size_t)snprintf(out + n, len - n, "%s%s",
				      i == 0 ? "" :
				      i + 1 == count ? " or " : ", ", *p);
		i++;
	}
}

/* The model's pattern PREFIX[0-9a-zA-Z]{17}. */
static bool id_valid(const char *prefix, const char *id)
{
	size_t n = strlen(prefix), i;

	if (strlen(id) != n + 17 || strncmp(id, prefix, n))
		return false;
	for (i = n; i < n + 17; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'z') ||
		      (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

/*
 * The request's sourceServerID, checked against the model's pattern,
 * and its record (ResourceNotFoundException if none).  Also accepts the
 * accountID that newer models add, which must be ours.
 */
static json_t *require_server(struct api_ctx *ctx, json_t *in,
			      const char *const *known, const char **idp)
{
	const char *id = NULL, *account = NULL;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    model_get_string(ctx, in, "sourceServerID", true, 19, &id))
		return NULL;
	if (!id_valid("s-", id)) {
		api_invalid_field(ctx, "sourceServerID",
			"sourceServerID '%s' does not match ^s-[0-9a-zA-Z]{17}$",
			id);
		return NULL;
	}
	if (model_get_string(ctx, in, "accountID", false, 12, &account))
		return NULL;
	if (account && strcmp(account, ctx->cfg->account_id)) {
		api_not_found(ctx, "SOURCE_SERVER", id);
		return NULL;
	}
	*idp = id;
	return ss_require(ctx, id);
}

/* One state-changing operation of the table above. */
struct ss_action {
	const char *op;
	const char *what;		/* "pause replication of" */
	const char *const *drs_from;	/* allowed drs, or NULL */
	const char *const *lc_from;	/* allowed lc, or NULL */
	enum api_err refusal;		/* API_CONFLICT, or API_VALIDATION */
	bool archived_ok;
	void (*apply)(struct api_ctx *ctx, json_t *doc);
	const char *command;		/* for the agent, or NULL */
};

static void set_str(json_t *doc, const char *path, const char *v)
{
	ss_set(doc, path, json_string(v));
}

static void apply_start(struct api_ctx *ctx, json_t *doc)
{
	const char *before = ss_str(doc, "ferry.lifeCycleBeforeStop");

	set_str(doc, LC, *before ? before : "NOT_READY");
	set_str(doc, DRS, "INITIATING");
	json_object_del(json_object_get(doc, "ferry"), "lifeCycleBeforeStop");
}

static void apply_stop(struct api_ctx *ctx, json_t *doc)
{
	const char *lc = ss_str(doc, LC);

	if (strcmp(lc, "STOPPED"))
		set_str(doc, "ferry.lifeCycleBeforeStop", lc);
	set_str(doc, LC, "STOPPED");
	set_str(doc, DRS, "STOPPED");
	json_object_del(json_object_get(doc, "dataReplicationInfo"),
			"etaDateTime");
}

static void apply_pause(struct api_ctx *ctx, json_t *doc)
{
	set_str(doc, DRS, "PAUSED");
	json_object_del(json_object_get(doc, "dataReplicationInfo"),
			"etaDateTime");
}

static void apply_resume(struct api_ctx *ctx, json_t *doc)
{
	set_str(doc, DRS, "INITIATING");
}

static void apply_retry(struct api_ctx *ctx, json_t *doc)
{
	json_t *dri = json_object_get(doc, "dataReplicationInfo");

	set_str(doc, DRS, "INITIATING");
	json_object_del(dri, "dataReplicationError");
	/* MGN: "begin immediately upon next Handshake", so the initiation
	 * starts over now. */
	ss_set(doc, "dataReplicationInfo.dataReplicationInitiation.startDateTime",
	       model_time_json(ctx->now));
	ss_set(doc,
	       "dataReplicationInfo.dataReplicationInitiation.nextAttemptDateTime",
	       model_time_json(ctx->now));
}

static void apply_disconnect(struct api_ctx *ctx, json_t *doc)
{
	ss_replication_disconnected(doc);
	set_str(doc, LC, "DISCONNECTED");
}

static void apply_archive(struct api_ctx *ctx, json_t *doc)
{
	json_object_set_new(doc, "isArchived", json_true());
}

static const struct ss_action act_start = {
	"StartReplication", "start replication of", drs_stopped, NULL,
	API_CONFLICT, false, apply_start, "start"
};
static const struct ss_action act_stop = {
	"StopReplication", "stop replication of", replicating_or_paused,
	NULL, API_CONFLICT, false, apply_stop, "stop"
};
static const struct ss_action act_pause = {
	"PauseReplication", "pause replication of", replicating, NULL,
	API_CONFLICT, false, apply_pause, "pause"
};
static const struct ss_action act_resume = {
	"ResumeReplication", "resume replication of", drs_paused, NULL,
	API_CONFLICT, false, apply_resume, "resume"
};
static const struct ss_action act_retry = {
	"RetryDataReplication", "retry data replication of", drs_stalled,
	NULL, API_VALIDATION, false, apply_retry, "retry"
};
static const struct ss_action act_disconnect = {
	"DisconnectFromService", "disconnect", NULL, lc_connected,
	API_CONFLICT, true, apply_disconnect, "uninstall"
};
static const struct ss_action act_archive = {
	"MarkAsArchived", "archive", NULL, lc_archivable, API_CONFLICT,
	true, apply_archive, NULL
};

/* Record the refusal of ACT on server ID, whose STATE (named NAME) is
 * not one of ALLOWED. */
static int refuse(struct api_ctx *ctx, const struct ss_action *act,
		  const char *id, const char *name, const char *state,
		  const char *const *allowed)
{
	char list[300];

	list_text(allowed, list, sizeof(list));
	if (act->refusal == API_CONFLICT)
		return ss_conflict(ctx, id,
				"Cannot %s source server %s: its %s is %s; %s needs %s",
				act->what, id, name, *state ? state : "not yet known",
				act->op, list);
	return api_error(ctx, act->refusal,
			 "Cannot %s source server %s: its %s is %s; %s needs %s",
			 act->what, id, name, *state ? state : "not yet known",
			 act->op, list);
}

static int run_action(struct api_ctx *ctx, const struct ss_action *act,
		      json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", "accountID",
					     NULL };
	const char *id = NULL, *drs, *lc;
	json_t *doc = require_server(ctx, in, known, &id);
	int rc = -1;

	if (!doc)
		return -1;
	/* As the operator sees it: a replicator's staging error shows
	 * STALLED, which RetryDataReplication may then retry. */
	drs = ss_shown_state(doc);
	lc = ss_str(doc, LC);
	if (!act->archived_ok &&
	    json_is_true(json_object_get(doc, "isArchived"))) {
		ss_conflict(ctx, id, "Cannot %s source server %s: it is archived",
			 act->what, id);
		goto out;
	}
	if (act->drs_from && !one_of(drs, act->drs_from)) {
		refuse(ctx, act, id, "data replication state", drs,
		       act->drs_from);
		goto out;
	}
	if (act->lc_from && !one_of(lc, act->lc_from)) {
		refuse(ctx, act, id, "lifecycle state", lc, act->lc_from);
		goto out;
	}
	act->apply(ctx, doc);
	if (ss_save(ctx, doc, NULL))
		goto out;
	if (act->command && ss_command_push(ctx, id, act->command, NULL))
		goto out;
	*out = ss_public(ctx, doc);
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

static int op_start(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return run_action(ctx, &act_start, in, out);
}

static int op_stop(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return run_action(ctx, &act_stop, in, out);
}

static int op_pause(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return run_action(ctx, &act_pause, in, out);
}

static int op_resume(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return run_action(ctx, &act_resume, in, out);
}

static int op_retry(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return run_action(ctx, &act_retry, in, out);
}

static int op_disconnect(struct api_ctx *ctx, json_t *in, json_t **out)
{
	const char *id = json_string_value(json_object_get(in,
							   "sourceServerID"));
	bool by_agent = ctx->who->role == ROLE_AGENT;

	/* The agent's uninstaller (ferry-agent --disconnect) disconnects
	 * its own server, and no other. */
	if (by_agent && (!id || strcmp(id, ctx->who->source_server_id)))
		return api_error(ctx, API_ACCESS_DENIED,
				 "The credentials of source server %s may "
				 "only disconnect that server, not %s",
				 ctx->who->source_server_id, id ? id : "(none)");
	if (run_action(ctx, &act_disconnect, in, out))
		return -1;
	/* The agent is going away and will fetch no uninstall command:
	 * its credentials end now. */
	if (by_agent && keys_revoke_server(ctx->st, id))
		return api_error(ctx, API_INTERNAL, "Cannot revoke the "
				 "credentials of source server %s", id);
	return 0;
}

static int op_archive(struct api_ctx *ctx, json_t *in, json_t **out)
{
	return run_action(ctx, &act_archive, in, out);
}

static int op_delete(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", "accountID",
					     NULL };
	static const struct ss_action act = {
		"DeleteSourceServer", "delete", drs_disconnected, NULL,
		API_CONFLICT, true, NULL, NULL
	};
	const char *id = NULL;
	json_t *doc = require_server(ctx, in, known, &id);
	int rc;

	if (!doc)
		return -1;
	if (!one_of(ss_str(doc, DRS), drs_disconnected))
		rc = refuse(ctx, &act, id, "data replication state",
			    ss_str(doc, DRS), drs_disconnected);
	else
		rc = ss_delete(ctx, id);
	json_decref(doc);
	return rc;
}

static int op_change_lifecycle(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", "lifeCycle",
					     "accountID", NULL };
	static const char *const known_lc[] = { "state", NULL };
	static const struct ss_action act = {
		"ChangeServerLifeCycleState", "change the lifecycle state of",
		NULL, lc_launchable, API_CONFLICT, false, NULL, NULL
	};
	const char *id = NULL, *state = NULL, *lc;
	json_t *doc, *lifecycle;
	int rc = -1;

	/* Check the whole request before looking the server up. */
	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    model_get_object(ctx, in, "lifeCycle", true, &lifecycle) ||
	    model_only_keys(ctx, lifecycle, known_lc) ||
	    model_get_enum(ctx, lifecycle, "state", true, lc_settable, &state))
		return -1;
	doc = require_server(ctx, in, known, &id);
	if (!doc)
		return -1;
	lc = ss_str(doc, LC);
	if (json_is_true(json_object_get(doc, "isArchived"))) {
		ss_conflict(ctx, id, "Cannot %s source server %s: it is archived",
			 act.what, id);
		goto out;
	}
	if (!one_of(lc, lc_launchable)) {
		refuse(ctx, &act, id, "lifecycle state", lc, lc_launchable);
		goto out;
	}
	if (!*ss_str(doc, "dataReplicationInfo.lagDuration")) {
		ss_conflict(ctx, id,
			 "Cannot %s source server %s: it is not launchable (dataReplicationInfo.lagDuration is not set)",
			 act.what, id);
		goto out;
	}
	set_str(doc, LC, state);
	if (ss_save(ctx, doc, NULL))
		goto out;
	*out = ss_public(ctx, doc);
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* A list filter of strings, each checked by CHECK (a pattern prefix) or
 * ENUM; NULL *OUT when absent or empty (an empty list does not filter). */
static int list_filter(struct api_ctx *ctx, json_t *filters, const char *key,
		       size_t max, const char *id_prefix,
		       const char *const *allowed, json_t **out)
{
	char field[64];
	json_t *list, *v;
	size_t i;

	snprintf(field, sizeof(field), "filters.%s", key);
	if (model_get_array(ctx, filters, key, false, max, &list))
		return -1;
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);

		if (!s || (id_prefix && !id_valid(id_prefix, s)) ||
		    (allowed && !one_of(s, allowed)))
			return api_invalid_field(ctx, field,
				"%s: '%s' is not a valid value", field,
				s ? s : "(not a string)");
	}
	*out = list && json_array_size(list) ? list : NULL;
	return 0;
}

static void bind_list(sqlite3_stmt *s, int idx, json_t *list)
{
	if (list)
		store_bind_json(s, idx, list);
	else
		sqlite3_bind_null(s, idx);
}

/*
 * Pages follow creation order (seq); the filters go into one fixed
 * statement, NULL parameters disabling a filter and lists bound as JSON
 * arrays expanded by json_each().
 */
static int op_describe(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "filters", "maxResults",
					     "nextToken", NULL };
	static const char *const known_filters[] = {
		"sourceServerIDs", "isArchived", "replicationTypes",
		"lifeCycleStates", "applicationIDs", NULL
	};
	static const char sql[] =
		"SELECT seq, doc FROM source_servers WHERE seq > ?1"
		" AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))"
		" AND (?3 IS NULL OR is_archived = ?3)"
		" AND (?4 IS NULL OR replication_type IN"
		"      (SELECT value FROM json_each(?4)))"
		" AND (?5 IS NULL OR lifecycle_state IN"
		"      (SELECT value FROM json_each(?5)))"
		" AND (?6 IS NULL OR application_id IN"
		"      (SELECT value FROM json_each(?6)))"
		" ORDER BY seq LIMIT ?7";
	json_t *filters = NULL, *ids = NULL, *types = NULL, *states = NULL;
	json_t *apps = NULL, *items;
	long long limit, after, last = 0, n = 0;
	bool archived = false, has_archived = false;
	sqlite3_stmt *s;
	int rc;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    model_get_object(ctx, in, "filters", false, &filters) ||
	    paging_read(ctx, in, PAGE_KIND, &limit, &after))
		return -1;
	if (filters) {
		if (model_only_keys(ctx, filters, known_filters) ||
		    list_filter(ctx, filters, "sourceServerIDs", 200, "s-",
				NULL, &ids) ||
		    list_filter(ctx, filters, "replicationTypes", 2, NULL,
				replication_type_enum, &types) ||
		    list_filter(ctx, filters, "lifeCycleStates", 10, NULL,
				lifecycle_enum, &states) ||
		    list_filter(ctx, filters, "applicationIDs", 200, "app-",
				NULL, &apps) ||
		    model_get_bool(ctx, filters, "isArchived", false,
				   &archived))
			return -1;
		has_archived = json_is_boolean(json_object_get(filters,
							       "isArchived"));
	}
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	sqlite3_bind_int64(s, 1, after);
	bind_list(s, 2, ids);
	if (has_archived)
		sqlite3_bind_int(s, 3, archived);
	else
		sqlite3_bind_null(s, 3);
	bind_list(s, 4, types);
	bind_list(s, 5, states);
	bind_list(s, 6, apps);
	/* One more than asked tells whether another page follows. */
	sqlite3_bind_int64(s, 7, limit + 1);
	items = json_array();
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *doc;

		if (n == limit)
			break;
		last = sqlite3_column_int64(s, 0);
		doc = store_column_json(s, 1);
		if (!doc) {
			rc = SQLITE_CORRUPT;
			break;
		}
		json_array_append_new(items, ss_public(ctx, doc));
		json_decref(doc);
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(items);
		return api_error(ctx, API_INTERNAL,
				 "cannot list source servers (%s)",
				 sqlite3_errstr(rc));
	}
	*out = json_pack("{s:o}", "items", items);
	if (rc == SQLITE_ROW)
		return paging_set_token(ctx, *out, PAGE_KIND, last);
	return 0;
}

static const struct api_op ss_ops[] = {
	{ "DescribeSourceServers", "POST", "/DescribeSourceServers",
	  ROLE_ADMIN, 200, op_describe, false },
	{ "StartReplication", "POST", "/StartReplication", ROLE_ADMIN, 200,
	  op_start, false },
	{ "StopReplication", "POST", "/StopReplication", ROLE_ADMIN, 200,
	  op_stop, false },
	{ "PauseReplication", "POST", "/PauseReplication", ROLE_ADMIN, 200,
	  op_pause, false },
	{ "ResumeReplication", "POST", "/ResumeReplication", ROLE_ADMIN, 200,
	  op_resume, false },
	{ "RetryDataReplication", "POST", "/RetryDataReplication", ROLE_ADMIN,
	  200, op_retry, false },
	{ "DisconnectFromService", "POST", "/DisconnectFromService",
	  ROLE_ADMIN | ROLE_AGENT, 200, op_disconnect, false },
	{ "MarkAsArchived", "POST", "/MarkAsArchived", ROLE_ADMIN, 200,
	  op_archive, false },
	{ "DeleteSourceServer", "POST", "/DeleteSourceServer", ROLE_ADMIN,
	  204, op_delete, false },
	{ "ChangeServerLifeCycleState", "POST", "/ChangeServerLifeCycleState",
	  ROLE_ADMIN, 200, op_change_lifecycle, false },
};

const struct api_module api_module_source_servers = {
	.name = "source_servers",
	.schema_sql = NULL, /* the lead's ss_schema_sql holds the tables */
	.ops = ss_ops,
	.n_ops = sizeof(ss_ops) / sizeof(ss_ops[0]),
};
