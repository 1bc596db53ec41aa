// SPDX-License-Identifier: GPL-2.0
/*
 * ops_replicator.c - the operations ferry-replicator calls (register,
 * heartbeat, assignments), the assignment of source servers to
 * replicators, and the replication initiation steps that follow it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "agent_state.h"
#include "ca.h"
#include "config.h"
#include "keys.h"
#include "launch.h"
#include "model.h"
#include "replication.h"
#include "source_server.h"
#include "store.h"

#define REPLICATOR_ID_MAX 31	/* struct api_principal's replicator_id */
#define MAX_BYTES (1LL << 62)
#define MAX_SERVERS_PER_REPLICATOR 10000
#define DEFAULT_MAX_SERVERS 100
#define PENDING_BATCH 100	/* waiting servers assigned per call */
#define CLOCK_SKEW 300		/* snapshot times this far ahead are wrong */
#define CSR_MAX 16384
#define CERT_DAYS 365
#define STAGING_CODE_MAX 64
#define STAGING_MESSAGE_MAX 65536	/* MGN's LargeBoundedString */

/*
 * replicators: one row per registered ferry-replicator.
 * assignments: which replicator holds each source server's staging
 * volumes (replicator_id '' while it waits for one), the disk bytes it
 * accounts for, whether it asked for a dedicated replicator, the
 * replicator's last per-disk report and the newest snapshot it reported.
 * Rows of deleted servers are ignored through joins with source_servers.
 */
static const char replicator_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS replicators ("
	" id TEXT PRIMARY KEY,"
	" address TEXT NOT NULL,"
	" port INTEGER NOT NULL,"
	" capacity_bytes INTEGER NOT NULL,"
	" free_bytes INTEGER NOT NULL,"
	" max_source_servers INTEGER NOT NULL,"
	" key_id TEXT NOT NULL DEFAULT '',"
	" registered INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS assignments ("
	" source_server_id TEXT PRIMARY KEY,"
	" replicator_id TEXT NOT NULL DEFAULT '',"
	" dedicated INTEGER NOT NULL DEFAULT 0,"
	" bytes INTEGER NOT NULL DEFAULT 0,"
	" assigned INTEGER NOT NULL DEFAULT 0,"
	" staged TEXT,"
	" snapshot INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS assignments_replicator"
	" ON assignments(replicator_id);";

/* ------------------------------------------------------------------ */
/* Replication initiation steps */

/* MGN's DataReplicationInitiationStepName, in order. */
static const char *const step_names[] = {
	"WAIT", "CREATE_SECURITY_GROUP", "LAUNCH_REPLICATION_SERVER",
	"BOOT_REPLICATION_SERVER", "AUTHENTICATE_WITH_SERVICE",
	"DOWNLOAD_REPLICATION_SOFTWARE", "CREATE_STAGING_DISKS",
	"ATTACH_STAGING_DISKS", "PAIR_REPLICATION_SERVER_WITH_AGENT",
	"CONNECT_AGENT_TO_REPLICATION_SERVER", "START_DATA_TRANSFER",
};
#define N_STEPS (sizeof(step_names) / sizeof(step_names[0]))

/* The first step not yet done at each stage. */
static const size_t stage_step[] = {
	[INIT_WAIT] = 0, [INIT_STAGING_DISKS] = 6, [INIT_PAIR] = 8,
	[INIT_CONNECT] = 9, [INIT_DONE] = N_STEPS,
};

void init_steps(json_t *doc, enum init_stage stage, bool reset, time_t now)
{
	json_t *init, *steps;
	json_t *cur = json_object_get(json_object_get(doc, "ferry"),
				      "initStage");
	size_t i, first = stage_step[stage];

	/* The hot path ends here: the heartbeat asks for INIT_DONE on
	 * every call. */
	if (!reset && json_is_integer(cur) &&
	    json_integer_value(cur) >= (json_int_t)stage)
		return;
	ss_set(doc, "ferry.initStage", json_integer(stage));
	init = json_object_get(json_object_get(doc, "dataReplicationInfo"),
			       "dataReplicationInitiation");
	if (!json_is_object(init)) {
		init = json_object();
		ss_set(doc, "dataReplicationInfo.dataReplicationInitiation",
		       init);
	}
	if (!json_object_get(init, "startDateTime"))
		json_object_set_new(init, "startDateTime",
				    model_time_json(now));
	steps = json_array();
	for (i = 0; i < N_STEPS; i++) {
		/* ferry-replicator is installed by the operator: there is
		 * no security group to create and nothing to download. */
		bool cloud_only = i == 1 || i == 5;
		const char *status = i < first ? (cloud_only ? "SKIPPED" :
							       "SUCCEEDED") :
				     i == first ? "IN_PROGRESS" :
						  "NOT_STARTED";

		json_array_append_new(steps,
				      json_pack("{s:s,s:s}", "name",
						step_names[i], "status",
						status));
	}
	json_object_set_new(init, "steps", steps);
}

void init_step_failed(json_t *doc, const char *error)
{
	json_t *steps = json_object_get(
		json_object_get(json_object_get(doc, "dataReplicationInfo"),
				"dataReplicationInitiation"),
		"steps");
	json_t *st;
	size_t i;

	if (strncmp(error, "FAILED_TO_", 10))
		return;
	json_array_foreach(steps, i, st)
		if (!strcmp(ss_str(st, "name"), error + 10))
			json_object_set_new(st, "status",
					    json_string("FAILED"));
}

/* ------------------------------------------------------------------ */
/* Assignment */

long long doc_disk_bytes(json_t *doc)
{
	json_t *d;
	long long sum = 0;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(doc,
							   "sourceProperties"),
					   "disks"), i, d) {
		long long b = json_integer_value(json_object_get(d, "bytes"));

		/* Each disk may be up to MAX_BYTES (2^62): a few of them
		 * would overflow, so the sum stops at LLONG_MAX (fits no
		 * replicator). */
		if (b > LLONG_MAX - sum)
			return LLONG_MAX;
		sum += b > 0 ? b : 0;
	}
	return sum;
}

int sql_step_done(struct api_ctx *ctx, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "cannot %s: %s", what,
				 sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

/* The server's current assignment: 1 with the replicator ('' = waiting)
 * in RID, 0 if it has none, -1 on error. */
static int current_assignment(struct api_ctx *ctx, const char *id,
			      char rid[REPLICATOR_ID_MAX + 1])
{
	static const char sql[] =
		"SELECT replicator_id FROM assignments"
		" WHERE source_server_id = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(rid, REPLICATOR_ID_MAX + 1, "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "database error: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return rc == SQLITE_ROW;
}

/*
 * May the server stay on replicator RID?  Yes while the replicator is
 * registered and dedication holds both ways; capacity was accounted when
 * it was placed there, and moving it would abandon its staging volumes.
 */
static int may_stay(struct api_ctx *ctx, const char *id, const char *rid,
		    bool dedicated)
{
	static const char sql[] =
		"SELECT (SELECT count(*) FROM replicators WHERE id = ?2),"
		" count(a.source_server_id), coalesce(max(a.dedicated), 0)"
		" FROM assignments a JOIN source_servers s"
		" ON s.id = a.source_server_id"
		" WHERE a.replicator_id = ?2 AND a.source_server_id != ?1"
		" AND s.is_archived = 0 AND s.lifecycle_state != 'DISCONNECTED'"
		" AND s.replication_state != 'DISCONNECTED'";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc, ok = 0;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	store_bind_text(s, 2, rid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		ok = sqlite3_column_int(s, 0) == 1 &&
		     sqlite3_column_int(s, 2) == 0 &&
		     (!dedicated || sqlite3_column_int(s, 1) == 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return api_error(ctx, API_INTERNAL, "database error: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return ok;
}

/*
 * The least loaded live replicator with room for NEED bytes more (its
 * capacity minus the disks of the servers it holds) and a free slot;
 * for a dedicated server, an empty one; never one that holds a dedicated
 * server.  0 with RID ("" if none) or -1.
 */
static int pick_replicator(struct api_ctx *ctx, const char *id,
			   long long need, bool dedicated,
			   char rid[REPLICATOR_ID_MAX + 1])
{
	static const char sql[] =
		"SELECT r.id FROM replicators r LEFT JOIN"
		" (SELECT a.replicator_id AS rid, a.bytes AS bytes,"
		"  a.dedicated AS ded FROM assignments a"
		"  JOIN source_servers s ON s.id = a.source_server_id"
		"  WHERE a.replicator_id != '' AND a.source_server_id != ?1"
		"  AND s.is_archived = 0"
		"  AND s.lifecycle_state != 'DISCONNECTED'"
		"  AND s.replication_state != 'DISCONNECTED') l"
		" ON l.rid = r.id"
		" WHERE r.last_seen >= ?2"
		" GROUP BY r.id"
		" HAVING coalesce(max(l.ded), 0) = 0"
		" AND count(l.rid) < r.max_source_servers"
		" AND coalesce(sum(l.bytes), 0) + ?3 <= r.capacity_bytes"
		" AND (?4 = 0 OR count(l.rid) = 0)"
		" ORDER BY count(l.rid), coalesce(sum(l.bytes), 0), r.id"
		" LIMIT 1";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	rid[0] = '\0';
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2,
			   (long long)ctx->now - ctx->cfg->replicator_timeout);
	sqlite3_bind_int64(s, 3, need);
	sqlite3_bind_int(s, 4, dedicated);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(rid, REPLICATOR_ID_MAX + 1, "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "database error: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

static int save_assignment(struct api_ctx *ctx, const char *id,
			   const char *rid, bool dedicated, long long bytes)
{
	static const char sql[] =
		"INSERT INTO assignments(source_server_id, replicator_id,"
		" dedicated, bytes, assigned) VALUES(?1, ?2, ?3, ?4, ?5)"
		" ON CONFLICT(source_server_id) DO UPDATE SET"
		" assigned = CASE WHEN replicator_id = ?2 THEN assigned"
		"  ELSE ?5 END,"
		" staged = CASE WHEN replicator_id = ?2 THEN staged"
		"  ELSE NULL END,"
		" snapshot = CASE WHEN replicator_id = ?2 THEN snapshot"
		"  ELSE 0 END,"
		" replicator_id = ?2, dedicated = ?3, bytes = ?4";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	store_bind_text(s, 2, rid);
	sqlite3_bind_int(s, 3, dedicated);
	sqlite3_bind_int64(s, 4, bytes);
	sqlite3_bind_int64(s, 5, ctx->now);
	return sql_step_done(ctx, s, "save the assignment");
}

int assign_server(struct api_ctx *ctx, json_t *doc)
{
	const char *id = ss_str(doc, "sourceServerID");
	char cur[REPLICATOR_ID_MAX + 1] = "", rid[REPLICATOR_ID_MAX + 1];
	long long need = doc_disk_bytes(doc);
	bool dedicated;
	json_t *cfg;
	int have, ok;

	cfg = repl_config_get(ctx, id);
	if (!cfg)
		return ctx->err ? -1 :
		       api_error(ctx, API_INTERNAL,
				 "no replication configuration for %s", id);
	dedicated = json_is_true(json_object_get(cfg,
					"useDedicatedReplicationServer"));
	json_decref(cfg);
	have = current_assignment(ctx, id, cur);
	if (have < 0)
		return -1;
	if (*cur) {
		ok = may_stay(ctx, id, cur, dedicated);
		if (ok < 0)
			return -1;
		if (ok) {
			snprintf(rid, sizeof(rid), "%s", cur);
			goto save;
		}
	}
	if (pick_replicator(ctx, id, need, dedicated, rid))
		return -1;
save:
	if (save_assignment(ctx, id, rid, dedicated, need))
		return -1;
	/* A staging error is about the staging volumes of the replicator
	 * that reported it. */
	if (strcmp(rid, cur))
		json_object_del(json_object_get(doc, "ferry"), "stagingError");
	if (*rid) {
		ss_set(doc, "ferry.replicatorID", json_string(rid));
		init_steps(doc, INIT_STAGING_DISKS, *cur && strcmp(rid, cur),
			   ctx->now);
	} else {
		json_object_del(json_object_get(doc, "ferry"), "replicatorID");
		init_steps(doc, INIT_WAIT, *cur != '\0', ctx->now);
	}
	return 0;
}

int assign_update_bytes(struct api_ctx *ctx, json_t *doc)
{
	static const char sql[] =
		"UPDATE assignments SET bytes = ? WHERE source_server_id = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	sqlite3_bind_int64(s, 1, doc_disk_bytes(doc));
	store_bind_text(s, 2, ss_str(doc, "sourceServerID"));
	return sql_step_done(ctx, s, "update the assignment");
}

json_t *replicator_endpoint(struct api_ctx *ctx, const char *replicator_id)
{
	static const char sql[] =
		"SELECT address, port FROM replicators WHERE id = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	json_t *out = NULL;
	int rc;

	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return NULL;
	}
	store_bind_text(s, 1, replicator_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		out = json_pack("{s:s,s:s,s:i}", "replicatorID", replicator_id,
				"address",
				(const char *)sqlite3_column_text(s, 0),
				"port", sqlite3_column_int(s, 1));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		api_error(ctx, API_INTERNAL, "database error: %s",
			  sqlite3_errmsg(store_db(ctx->st)));
	return out;
}

/* Place servers waiting for a replicator, oldest first, a bounded number
 * per call.  0 or -1. */
static int assign_pending(struct api_ctx *ctx)
{
	static const char sel[] =
		"SELECT source_server_id FROM assignments"
		" WHERE replicator_id = '' ORDER BY rowid LIMIT ?";
	static const char del[] =
		"DELETE FROM assignments WHERE source_server_id = ?";
	char ids[PENDING_BATCH][MODEL_ID_MAX];
	sqlite3_stmt *s = store_prepare(ctx->st, sel);
	int n = 0, i, rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	sqlite3_bind_int(s, 1, PENDING_BATCH);
	while (n < PENDING_BATCH && (rc = sqlite3_step(s)) == SQLITE_ROW)
		snprintf(ids[n++], MODEL_ID_MAX, "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	for (i = 0; i < n; i++) {
		json_t *doc = ss_load(ctx, ids[i]);

		if (ctx->err)
			return -1;
		/* Deleted, disconnected or archived while waiting: it no
		 * longer needs a replicator (registering again re-queues). */
		if (!doc || json_is_true(json_object_get(doc, "isArchived")) ||
		    !strcmp(ss_str(doc, "lifeCycle.state"), "DISCONNECTED")) {
			json_decref(doc);
			s = store_prepare(ctx->st, del);
			if (!s)
				return api_error(ctx, API_INTERNAL,
						 "database error");
			store_bind_text(s, 1, ids[i]);
			if (sql_step_done(ctx, s, "drop an assignment"))
				return -1;
			continue;
		}
		rc = assign_server(ctx, doc);
		if (!rc && *ss_replicator(doc))
			rc = ss_save(ctx, doc, NULL);
		json_decref(doc);
		if (rc)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Replicator records */

static bool valid_replicator_id(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' &&
		    *s != '_')
			return false;
	return true;
}

/* An IP address or a DNS name (letters, digits, hyphens, dots). */
static bool valid_address(const char *s)
{
	unsigned char buf[16];
	size_t label = 0;

	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return true;
	if (strlen(s) > 253)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (!label)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*s) || *s == '-') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

static int get_replicator_id(struct api_ctx *ctx, json_t *in, bool required,
			     const char **out)
{
	if (model_get_string(ctx, in, "replicatorID", required,
			     REPLICATOR_ID_MAX, out))
		return -1;
	if (*out && !valid_replicator_id(*out))
		return api_invalid_field(ctx, "replicatorID",
			"replicatorID may hold only letters, digits, '.', '-' and '_'");
	return 0;
}

static int replicator_exists(struct api_ctx *ctx, const char *rid,
			     char key_id[32])
{
	static const char sql[] = "SELECT key_id FROM replicators WHERE id = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, rid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && key_id)
		snprintf(key_id, 32, "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "database error: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return rc == SQLITE_ROW;
}

/*
 * The replicator the caller acts for: a replicator key's own (a
 * "replicatorID" in the request must name it); an administrator names
 * one.  0 with RID, or -1.
 */
static int caller_replicator(struct api_ctx *ctx, json_t *in,
			     char rid[REPLICATOR_ID_MAX + 1])
{
	const char *req = NULL;
	bool admin = ctx->who->role == ROLE_ADMIN;
	int rc;

	if (get_replicator_id(ctx, in, admin, &req))
		return -1;
	if (!admin) {
		if (!ctx->who->replicator_id[0])
			return api_error(ctx, API_ACCESS_DENIED,
					 "Key %s is not bound to a replicator: call RegisterReplicatorForMgn first",
					 ctx->who->access_key_id);
		if (req && strcmp(req, ctx->who->replicator_id))
			return api_error(ctx, API_ACCESS_DENIED,
					 "Key %s acts for replicator %s, not %s",
					 ctx->who->access_key_id,
					 ctx->who->replicator_id, req);
		req = ctx->who->replicator_id;
	}
	snprintf(rid, REPLICATOR_ID_MAX + 1, "%s", req);
	rc = replicator_exists(ctx, rid, NULL);
	if (rc < 0)
		return -1;
	if (!rc)
		return api_not_found(ctx, "REPLICATOR", rid);
	return 0;
}

static int count_assigned(struct api_ctx *ctx, const char *rid)
{
	static const char sql[] =
		"SELECT count(*) FROM assignments a JOIN source_servers s"
		" ON s.id = a.source_server_id WHERE a.replicator_id = ?"
		" AND s.is_archived = 0 AND s.lifecycle_state != 'DISCONNECTED'"
		" AND s.replication_state != 'DISCONNECTED'";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int n = -1;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, rid);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	return n < 0 ? api_error(ctx, API_INTERNAL, "database error") : n;
}

/* ------------------------------------------------------------------ */
/* RegisterReplicatorForMgn */

static int op_register(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"replicatorID", "address", "port", "capacityBytes",
		"freeBytes", "maxSourceServers", "csr", NULL
	};
	static const char sql[] =
		"INSERT INTO replicators(id, address, port, capacity_bytes,"
		" free_bytes, max_source_servers, key_id, registered,"
		" last_seen) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
		" ON CONFLICT(id) DO UPDATE SET address = ?2, port = ?3,"
		" capacity_bytes = ?4, free_bytes = ?5,"
		" max_source_servers = ?6,"
		" key_id = CASE WHEN ?7 = '' THEN key_id ELSE ?7 END,"
		" last_seen = ?8";
	const char *rid = NULL, *addr = NULL, *csr = NULL;
	long long port = 0, cap = 0, freeb = 0, max = DEFAULT_MAX_SERVERS;
	bool admin = ctx->who->role == ROLE_ADMIN;
	char key_id[32] = "", err[256] = "";
	char *cert = NULL;
	sqlite3_stmt *s;
	int exists, n;

	if (model_only_keys(ctx, in, known) ||
	    get_replicator_id(ctx, in, true, &rid) ||
	    model_get_string(ctx, in, "address", true, 253, &addr) ||
	    model_get_int(ctx, in, "port", true, 1, 65535, &port) ||
	    model_get_int(ctx, in, "capacityBytes", true, 1, MAX_BYTES,
			  &cap) ||
	    model_get_int(ctx, in, "freeBytes", true, 0, MAX_BYTES, &freeb) ||
	    model_get_int(ctx, in, "maxSourceServers", false, 1,
			  MAX_SERVERS_PER_REPLICATOR, &max) ||
	    model_get_string(ctx, in, "csr", false, CSR_MAX, &csr))
		return -1;
	if (!valid_address(addr))
		return api_invalid_field(ctx, "address",
			"address must be an IP address or a DNS name");
	if (freeb > cap)
		return api_invalid_field(ctx, "freeBytes",
			"freeBytes cannot exceed capacityBytes");
	if (!admin && ctx->who->replicator_id[0] &&
	    strcmp(ctx->who->replicator_id, rid))
		return api_error(ctx, API_ACCESS_DENIED,
				 "Key %s already acts for replicator %s",
				 ctx->who->access_key_id,
				 ctx->who->replicator_id);
	exists = replicator_exists(ctx, rid, key_id);
	if (exists < 0)
		return -1;
	/* A name held by another replicator key that still exists is not
	 * up for grabs: that key's replicator would lose its servers.  An
	 * administrator may move it (replacing a machine).  A name an
	 * administrator registered has no key: only an administrator may
	 * change it, or any replicator key could take its servers. */
	if (exists && !admin && !*key_id)
		return api_error(ctx, API_CONFLICT,
				 "Replicator %s was registered by an "
				 "administrator: a replicator key cannot take "
				 "it over (use another name, or an "
				 "administrator's key)", rid);
	if (exists && !admin && *key_id &&
	    strcmp(key_id, ctx->who->access_key_id)) {
		struct key_record k;

		if (keys_lookup(ctx->st, key_id, &k) == 0 && k.active)
			return api_error(ctx, API_CONFLICT,
					 "Replicator %s is registered with another key",
					 rid);
	}
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, rid);
	store_bind_text(s, 2, addr);
	sqlite3_bind_int(s, 3, (int)port);
	sqlite3_bind_int64(s, 4, cap);
	sqlite3_bind_int64(s, 5, freeb);
	sqlite3_bind_int64(s, 6, max);
	store_bind_text(s, 7, admin ? "" : ctx->who->access_key_id);
	sqlite3_bind_int64(s, 8, ctx->now);
	if (sql_step_done(ctx, s, "save the replicator"))
		return -1;
	if (!admin && keys_bind_replicator(ctx->st, ctx->who->access_key_id,
					   rid))
		return api_error(ctx, API_INTERNAL,
				 "cannot bind key %s to replicator %s",
				 ctx->who->access_key_id, rid);
	if (assign_pending(ctx))
		return -1;
	n = count_assigned(ctx, rid);
	if (n < 0)
		return -1;
	if (csr) {
		const char *names[1] = { addr };

		cert = ca_sign_csr(ctx->ca, csr, CA_SERVER_REPLICATOR, rid,
				   names, 1, CERT_DAYS, err, sizeof(err));
		if (!cert)
			return api_invalid_field(ctx, "csr",
				"Cannot sign the certificate request: %s",
				err);
	}
	*out = json_pack("{s:s,s:i}", "replicatorID", rid,
			 "assignedSourceServers", n);
	if (*out && cert) {
		json_object_set_new(*out, "certificate", json_string(cert));
		json_object_set_new(*out, "caCertificate",
				    json_string(ca_cert_pem(ctx->ca)));
	}
	free(cert);
	return *out ? 0 : api_error(ctx, API_INTERNAL, "out of memory");
}

/* ------------------------------------------------------------------ */
/* UpdateReplicatorInfoForMgn: the replicator's heartbeat */

/* stagingError.code: 1-64 of [A-Z0-9_] ("STAGING_DISK_FULL"). */
static bool valid_staging_code(const char *s)
{
	for (; *s; s++)
		if (!(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    *s != '_')
			return false;
	return true;
}

/*
 * The replicator's staging error of the server, kept as
 * ferry.stagingError {"code", "message", "replicatorID", "since"}, apart
 * from the agent's dataReplicationError (ss_public() shows it); IN is
 * the report's stagingError, NULL when it has none (cleared).  True if
 * DOC changed.
 */
static bool set_staging_error(struct api_ctx *ctx, json_t *doc,
			      const char *rid, json_t *in)
{
	json_t *ferry = json_object_get(doc, "ferry");
	json_t *cur = json_object_get(ferry, "stagingError");

	if (!in) {
		if (!cur)
			return false;
		json_object_del(ferry, "stagingError");
		return true;
	}
	if (json_is_object(cur) &&
	    json_equal(json_object_get(cur, "code"),
		       json_object_get(in, "code")) &&
	    json_equal(json_object_get(cur, "message"),
		       json_object_get(in, "message")) &&
	    !strcmp(ss_str(cur, "replicatorID"), rid))
		return false;
	ss_set(doc, "ferry.stagingError",
	       json_pack("{s:O,s:O,s:s,s:o}", "code",
			 json_object_get(in, "code"), "message",
			 json_object_get(in, "message"), "replicatorID", rid,
			 "since", json_is_object(cur) ?
				  json_incref(json_object_get(cur, "since")) :
				  model_time_json(ctx->now)));
	return true;
}

/* Check one reported server and store what the replicator says of it.
 * *UNKNOWN is set when the server no longer exists or is assigned to no
 * replicator (the replicator may drop its volumes). */
static int report_server(struct api_ctx *ctx, const char *rid, json_t *r,
			 size_t idx, bool *unknown)
{
	static const char *const known[] = {
		"sourceServerID", "replicatedDisks", "lastSnapshotDateTime",
		"stagingError", NULL
	};
	static const char *const disk_known[] = {
		"deviceName", "replicatedStorageBytes", NULL
	};
	static const char *const staging_known[] = { "code", "message",
						     NULL };
	static const char sel[] =
		"SELECT a.replicator_id, a.snapshot FROM assignments a"
		" JOIN source_servers s ON s.id = a.source_server_id"
		" WHERE a.source_server_id = ?";
	static const char upd[] =
		"UPDATE assignments SET staged = ?, snapshot = ?"
		" WHERE source_server_id = ?";
	const char *id = NULL, *snap_s = NULL, *code = NULL, *msg = NULL;
	char owner[REPLICATOR_ID_MAX + 1] = "", field[64];
	json_t *disks = NULL, *d, *doc, *staging = NULL;
	long long prev = 0;
	time_t snap = 0;
	sqlite3_stmt *s;
	size_t i;
	int rc;

	*unknown = false;
	snprintf(field, sizeof(field), "sourceServers[%zu]", idx);
	if (!json_is_object(r))
		return api_invalid_field(ctx, field, "%s must be an object",
					 field);
	if (model_only_keys(ctx, r, known) ||
	    model_get_string(ctx, r, "sourceServerID", true, 19, &id) ||
	    model_get_array(ctx, r, "replicatedDisks", false, 1000, &disks) ||
	    model_get_string(ctx, r, "lastSnapshotDateTime", false, 32,
			     &snap_s) ||
	    model_get_object(ctx, r, "stagingError", false, &staging))
		return -1;
	if (staging && (model_only_keys(ctx, staging, staging_known) ||
			model_get_string(ctx, staging, "code", true,
					 STAGING_CODE_MAX, &code) ||
			model_get_string(ctx, staging, "message", true,
					 STAGING_MESSAGE_MAX, &msg)))
		return -1;
	if (code && !valid_staging_code(code)) {
		char sub[96];

		snprintf(sub, sizeof(sub), "%s.stagingError.code", field);
		return api_invalid_field(ctx, sub,
			"%s '%.64s' must be upper-case letters, digits and '_'",
			sub, code);
	}
	json_array_foreach(disks, i, d) {
		long long b;
		const char *name;

		if (model_only_keys(ctx, d, disk_known) ||
		    model_get_string(ctx, d, "deviceName", true, 256, &name) ||
		    model_get_int(ctx, d, "replicatedStorageBytes", true, 0,
				  MAX_BYTES, &b))
			return -1;
	}
	if (snap_s) {
		snap = model_time_parse(snap_s);
		if (snap < 0 || snap > ctx->now + CLOCK_SKEW)
			return api_invalid_field(ctx, "lastSnapshotDateTime",
				"%s.lastSnapshotDateTime must be an ISO-8601 time not in the future",
				field);
	}
	s = store_prepare(ctx->st, sel);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		snprintf(owner, sizeof(owner), "%s",
			 (const char *)sqlite3_column_text(s, 0));
		prev = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "database error");
	if (!*owner) {
		*unknown = true;
		return 0;
	}
	if (strcmp(owner, rid))
		return api_error(ctx, API_ACCESS_DENIED,
				 "Source server %s is not assigned to replicator %s",
				 id, rid);
	s = store_prepare(ctx->st, upd);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	if (disks)
		store_bind_json(s, 1, disks);
	sqlite3_bind_int64(s, 2, snap > prev ? snap : prev);
	store_bind_text(s, 3, id);
	if (sql_step_done(ctx, s, "store the replicator's report"))
		return -1;

	/* The record is rewritten only when something MGN shows changes:
	 * a newer snapshot, the first report of its staging volumes, a
	 * staging error set, changed or cleared. */
	doc = ss_load(ctx, id);
	if (!doc)
		return ctx->err ? -1 : 0;
	rc = set_staging_error(ctx, doc, rid, staging);
	if (snap > prev) {
		ss_set(doc, "dataReplicationInfo.lastSnapshotDateTime",
		       model_time_json(snap));
		/* MGN: ready for testing once the first consistent
		 * snapshot exists. */
		if (!strcmp(ss_str(doc, "lifeCycle.state"), "NOT_READY"))
			ss_set(doc, "lifeCycle.state",
			       json_string("READY_FOR_TEST"));
		rc = 1;
	}
	if (json_integer_value(json_object_get(json_object_get(doc, "ferry"),
					       "initStage")) < INIT_PAIR) {
		init_steps(doc, INIT_PAIR, false, ctx->now);
		rc = 1;
	}
	if (rc)
		rc = ss_save(ctx, doc, NULL);
	json_decref(doc);
	return rc;
}

static int op_update(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"replicatorID", "freeBytes", "capacityBytes", "sourceServers",
		"launches", "removedLaunches", NULL
	};
	static const char sql[] =
		"UPDATE replicators SET free_bytes = ?,"
		" capacity_bytes = coalesce(?, capacity_bytes), last_seen = ?"
		" WHERE id = ?";
	char rid[REPLICATOR_ID_MAX + 1];
	long long freeb = 0, cap = -1;
	json_t *list, *r, *unknown, *launches, *removed;
	sqlite3_stmt *s;
	size_t i;

	if (model_only_keys(ctx, in, known) ||
	    model_get_int(ctx, in, "freeBytes", true, 0, MAX_BYTES, &freeb) ||
	    model_get_int(ctx, in, "capacityBytes", false, 1, MAX_BYTES,
			  &cap) ||
	    model_get_array(ctx, in, "sourceServers", false,
			    MAX_SERVERS_PER_REPLICATOR, &list) ||
	    model_get_array(ctx, in, "launches", false,
			    MAX_SERVERS_PER_REPLICATOR, &launches) ||
	    model_get_array(ctx, in, "removedLaunches", false,
			    MAX_SERVERS_PER_REPLICATOR, &removed) ||
	    caller_replicator(ctx, in, rid))
		return -1;
	if (cap >= 0 && freeb > cap)
		return api_invalid_field(ctx, "freeBytes",
			"freeBytes cannot exceed capacityBytes");
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	sqlite3_bind_int64(s, 1, freeb);
	if (cap >= 0)
		sqlite3_bind_int64(s, 2, cap);
	sqlite3_bind_int64(s, 3, ctx->now);
	store_bind_text(s, 4, rid);
	if (sql_step_done(ctx, s, "update the replicator"))
		return -1;
	unknown = json_array();
	json_array_foreach(list, i, r) {
		bool gone;

		if (report_server(ctx, rid, r, i, &gone)) {
			json_decref(unknown);
			return -1;
		}
		if (gone)
			json_array_append(unknown,
					  json_object_get(r, "sourceServerID"));
	}
	if (launch_report(ctx, rid, launches) ||
	    launch_removals_done(ctx, rid, removed) || assign_pending(ctx)) {
		json_decref(unknown);
		return -1;
	}
	*out = json_pack("{s:s,s:o}", "replicatorID", rid,
			 "unknownSourceServerIDs", unknown);
	return *out ? 0 : api_error(ctx, API_INTERNAL, "out of memory");
}

/* ------------------------------------------------------------------ */
/* GetReplicatorAssignmentsForMgn */

static json_t *assignment_entry(struct api_ctx *ctx, const char *id,
				bool dedicated, json_t *staged)
{
	json_t *doc = ss_load(ctx, id), *cfg, *e, *disks, *names, *d;
	char uri[128];
	size_t i;

	if (!doc)
		return NULL;
	cfg = repl_config_get(ctx, id);
	if (!cfg) {
		json_decref(doc);
		return NULL;
	}
	disks = json_object_get(json_object_get(doc, "sourceProperties"),
				"disks");
	names = json_array();
	json_array_foreach(json_object_get(cfg, "replicatedDisks"), i, d)
		json_array_append_new(names,
				      json_string(ss_str(d, "deviceName")));
	snprintf(uri, sizeof(uri), "urn:ferry:source-server:%s", id);
	e = json_pack("{s:s,s:s,s:s,s:O,s:o,s:s,s:s,s:b,s:O,s:o}",
		      "sourceServerID", id, "certificateCN", id,
		      "certificateURI", uri,
		      "disks", disks ? disks : json_null(),
		      "replicatedDisks", names,
		      "dataReplicationState",
		      ss_str(doc, "dataReplicationInfo.dataReplicationState"),
		      "lifeCycleState", ss_str(doc, "lifeCycle.state"),
		      "dedicated", dedicated,
		      "pitPolicy",
		      json_object_get(cfg, "pitPolicy") ?
			      json_object_get(cfg, "pitPolicy") : json_null(),
		      "staged", staged ? staged : json_array());
	json_decref(cfg);
	json_decref(doc);
	return e;
}

static int op_assignments(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "replicatorID", NULL };
	static const char sql[] =
		"SELECT a.source_server_id, a.dedicated, a.staged"
		" FROM assignments a JOIN source_servers s"
		" ON s.id = a.source_server_id WHERE a.replicator_id = ?"
		" AND s.is_archived = 0 AND s.lifecycle_state != 'DISCONNECTED'"
		" AND s.replication_state != 'DISCONNECTED'"
		" ORDER BY a.assigned, a.source_server_id";
	char rid[REPLICATOR_ID_MAX + 1];
	json_t *rows, *row, *list, *removals;
	sqlite3_stmt *s;
	size_t i;
	int rc;

	if (model_only_keys(ctx, in, known) ||
	    caller_replicator(ctx, in, rid))
		return -1;
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, rid);
	/* Rows first, records after: the loads below use the connection. */
	rows = json_array();
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *staged = store_column_json(s, 2);

		json_array_append_new(rows, json_pack("[s,b,o]",
			(const char *)sqlite3_column_text(s, 0),
			sqlite3_column_int(s, 1),
			staged ? staged : json_null()));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(rows);
		return api_error(ctx, API_INTERNAL, "database error");
	}
	list = json_array();
	json_array_foreach(rows, i, row) {
		json_t *staged = json_array_get(row, 2);
		json_t *e = assignment_entry(
			ctx, json_string_value(json_array_get(row, 0)),
			json_is_true(json_array_get(row, 1)),
			json_is_array(staged) ? json_incref(staged) : NULL);

		if (ctx->err) {
			json_decref(e);
			json_decref(list);
			json_decref(rows);
			return -1;
		}
		if (e)
			json_array_append_new(list, e);
	}
	json_decref(rows);
	rows = launch_pending(ctx, rid);
	removals = rows ? launch_removals_pending(ctx, rid) : NULL;
	if (!removals) {
		json_decref(rows);
		json_decref(list);
		return -1;
	}
	*out = json_pack("{s:s,s:o,s:o,s:o}", "replicatorID", rid,
			 "sourceServers", list, "launches", rows,
			 "removeLaunches", removals);
	return *out ? 0 : api_error(ctx, API_INTERNAL, "out of memory");
}

static const struct api_op replicator_ops[] = {
	{ "RegisterReplicatorForMgn", "POST", "/RegisterReplicatorForMgn",
	  ROLE_REPLICATOR | ROLE_ADMIN, 200, op_register, true },
	{ "UpdateReplicatorInfoForMgn", "POST", "/UpdateReplicatorInfoForMgn",
	  ROLE_REPLICATOR | ROLE_ADMIN, 200, op_update, false },
	{ "GetReplicatorAssignmentsForMgn", "POST",
	  "/GetReplicatorAssignmentsForMgn", ROLE_REPLICATOR | ROLE_ADMIN, 200,
	  op_assignments, false },
};

const struct api_module api_module_replicator = {
	.name = "replicator",
	.schema_sql = replicator_schema_sql,
	.ops = replicator_ops,
	.n_ops = sizeof(replicator_ops) / sizeof(replicator_ops[0]),
	.periodic = NULL,
};
