// SPDX-License-Identifier: GPL-2.0
/* source_server.c - source server records and the agent command queue. */
#include "source_server.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "model.h"
#include "replication.h"
#include "store.h"
#include "tags.h"

#define DRS_PATH "dataReplicationInfo.dataReplicationState"

/*
 * seq orders records by creation for stable pagination; the columns
 * beside doc are copies of doc's fields, kept by ss_save(), for filters
 * and the AGENT_NOT_SEEN sweep.
 */
const char ss_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS source_servers ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT NOT NULL UNIQUE,"
	" machine_key TEXT UNIQUE,"
	" is_archived INTEGER NOT NULL DEFAULT 0,"
	" lifecycle_state TEXT NOT NULL DEFAULT '',"
	" replication_type TEXT NOT NULL DEFAULT '',"
	" application_id TEXT NOT NULL DEFAULT '',"
	" replication_state TEXT NOT NULL DEFAULT '',"
	" last_seen INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL,"
	" doc TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS source_servers_seen"
	" ON source_servers(last_seen);"
	"CREATE TABLE IF NOT EXISTS commands ("
	" id INTEGER PRIMARY KEY,"
	" source_server_id TEXT NOT NULL,"
	" command TEXT NOT NULL,"
	" args TEXT,"
	" created INTEGER NOT NULL,"
	" delivered INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS commands_server"
	" ON commands(source_server_id, id);";

static json_t *load_by(struct api_ctx *ctx, const char *sql, const char *arg)
{
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	json_t *doc = NULL;

	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return NULL;
	}
	store_bind_text(s, 1, arg);
	if (sqlite3_step(s) == SQLITE_ROW)
		doc = store_column_json(s, 0);
	sqlite3_reset(s);
	return doc;
}

/*
 * Parsed records kept by ss_save_keep() (the heartbeat's), so that the
 * next ss_load of the same server skips parsing its document: the
 * heartbeat's cost was mostly parsing and re-serialising it.  The
 * database stays the truth: an entry holds exactly what the row holds,
 * and is dropped when anything else saves or deletes the record, and
 * ignored after any rollback (store_generation).  Direct-mapped by ID,
 * a collision evicts; used only under the store lock.
 */
#define SS_CACHE_SLOTS 4096

static struct ss_cache_slot {
	struct store *st;
	unsigned long generation;
	char id[24];
	json_t *doc;
} ss_cache[SS_CACHE_SLOTS];

static struct ss_cache_slot *cache_slot(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return &ss_cache[h % SS_CACHE_SLOTS];
}

static void cache_drop(struct ss_cache_slot *c)
{
	json_decref(c->doc);
	c->doc = NULL;
	c->st = NULL;
}

/* The cached record of ID, now the caller's, or NULL. */
static json_t *cache_take(struct api_ctx *ctx, const char *id)
{
	struct ss_cache_slot *c = cache_slot(id);
	json_t *doc;

	if (!c->doc || c->st != ctx->st || strcmp(c->id, id))
		return NULL;
	if (c->generation != store_generation(ctx->st)) {
		cache_drop(c);
		return NULL;
	}
	doc = c->doc;
	c->doc = NULL;
	c->st = NULL;
	return doc;
}

static void cache_forget_id(const char *id)
{
	struct ss_cache_slot *c = cache_slot(id);

	if (c->doc && !strcmp(c->id, id))
		cache_drop(c);
}

void ss_cache_forget(struct store *st)
{
	size_t i;

	for (i = 0; i < SS_CACHE_SLOTS; i++)
		if (ss_cache[i].doc && ss_cache[i].st == st)
			cache_drop(&ss_cache[i]);
}

json_t *ss_load(struct api_ctx *ctx, const char *id)
{
	static const char sql[] = "SELECT doc FROM source_servers WHERE id = ?";
	json_t *doc = cache_take(ctx, id);

	return doc ? doc : load_by(ctx, sql, id);
}

json_t *ss_find_by_machine(struct api_ctx *ctx, const char *machine_key)
{
	static const char sql[] =
		"SELECT doc FROM source_servers WHERE machine_key = ?";

	return load_by(ctx, sql, machine_key);
}

json_t *ss_require(struct api_ctx *ctx, const char *id)
{
	json_t *doc;

	if (ctx->who && ctx->who->role == ROLE_AGENT &&
	    strcmp(id, ctx->who->source_server_id)) {
		api_error(ctx, API_ACCESS_DENIED,
			  "These credentials belong to source server %s, not %s",
			  ctx->who->source_server_id, id);
		return NULL;
	}
	doc = ss_load(ctx, id);
	if (!doc)
		api_not_found(ctx, "SOURCE_SERVER", id);
	return doc;
}

/* Bind the columns that ss_save's statements share (see upd and ins). */
static void bind_columns(struct api_ctx *ctx, sqlite3_stmt *s, json_t *doc,
			 const char *id)
{
	time_t seen = model_time_parse(
		ss_str(doc, "lifeCycle.lastSeenByServiceDateTime"));

	store_bind_text(s, 1, id);
	sqlite3_bind_int(s, 3, json_is_true(json_object_get(doc, "isArchived")));
	store_bind_text(s, 4, ss_str(doc, "lifeCycle.state"));
	store_bind_text(s, 5, ss_str(doc, "replicationType"));
	store_bind_text(s, 6, ss_str(doc, "applicationID"));
	store_bind_text(s, 7, ss_str(doc, "dataReplicationInfo.dataReplicationState"));
	sqlite3_bind_int64(s, 8, seen > 0 ? seen : 0);
	sqlite3_bind_int64(s, 9, ctx->now);
}

/*
 * Bind DOC as text to parameter IDX: serialised on the stack when it
 * fits (a record is a few KiB), which spares json_dumps' growing buffer.
 */
static int bind_doc(sqlite3_stmt *s, int idx, const json_t *doc)
{
	char buf[16384];
	size_t n = json_dumpb(doc, buf, sizeof(buf), JSON_COMPACT);

	if (n == 0)
		return SQLITE_NOMEM;
	if (n > sizeof(buf))
		return store_bind_json(s, idx, doc);
	return sqlite3_bind_text(s, idx, buf, (int)n, SQLITE_TRANSIENT);
}

int ss_save(struct api_ctx *ctx, json_t *doc, const char *machine_key)
{
	/*
	 * Most saves rewrite an existing record and keep its machine key
	 * (heartbeats): a plain UPDATE, which leaves the machine_key index
	 * alone, where the upsert would try an insert first and rewrite
	 * that index entry.  (?2 and ?9 are unused there: SQLite numbers
	 * parameters up to the highest one written.)
	 */
	static const char upd[] =
		"UPDATE source_servers SET is_archived = ?3,"
		" lifecycle_state = ?4, replication_type = ?5,"
		" application_id = ?6, replication_state = ?7,"
		" last_seen = ?8, doc = ?10 WHERE id = ?1";
	static const char ins[] =
		"INSERT INTO source_servers(id, machine_key, is_archived,"
		" lifecycle_state, replication_type, application_id,"
		" replication_state, last_seen, created, doc)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
		" ON CONFLICT(id) DO UPDATE SET"
		" machine_key = coalesce(?2, machine_key),"
		" is_archived = ?3, lifecycle_state = ?4,"
		" replication_type = ?5, application_id = ?6,"
		" replication_state = ?7, last_seen = ?8, doc = ?10";
	const char *id = ss_str(doc, "sourceServerID");
	sqlite3_stmt *s;
	int rc;

	if (!*id)
		return api_error(ctx, API_INTERNAL, "record without an ID");
	cache_forget_id(id);
	if (!machine_key) {
		s = store_prepare(ctx->st, upd);
		if (!s)
			return api_error(ctx, API_INTERNAL, "database error");
		bind_columns(ctx, s, doc, id);
		if (bind_doc(s, 10, doc) != SQLITE_OK) {
			sqlite3_reset(s);
			return api_error(ctx, API_INTERNAL,
					 "cannot serialise source server %s",
					 id);
		}
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return api_error(ctx, API_INTERNAL,
					 "cannot save source server %s: %s", id,
					 sqlite3_errmsg(store_db(ctx->st)));
		if (sqlite3_changes(store_db(ctx->st)) > 0)
			return 0;
		/* A new record: insert it below. */
	}
	s = store_prepare(ctx->st, ins);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	bind_columns(ctx, s, doc, id);
	store_bind_text(s, 2, machine_key);
	bind_doc(s, 10, doc);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "cannot save source server %s: %s",
				 id, sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

int ss_save_keep(struct api_ctx *ctx, json_t *doc)
{
	const char *id = ss_str(doc, "sourceServerID");
	struct ss_cache_slot *c;

	if (ss_save(ctx, doc, NULL))
		return -1;
	if (strlen(id) >= sizeof(c->id))
		return 0; /* not one of ours: not worth keeping */
	c = cache_slot(id);
	cache_drop(c);
	c->st = ctx->st;
	c->generation = store_generation(ctx->st);
	strcpy(c->id, id);
	c->doc = json_incref(doc);
	return 0;
}

static int run_one(struct api_ctx *ctx, const char *sql, const char *arg)
{
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, arg);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "database error: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

int ss_delete(struct api_ctx *ctx, const char *id)
{
	static const char del_ss[] = "DELETE FROM source_servers WHERE id = ?";
	static const char del_cmd[] =
		"DELETE FROM commands WHERE source_server_id = ?";
	char arn[MODEL_ARN_MAX];

	model_arn(ctx, "source-server", id, arn);
	cache_forget_id(id);
	if (run_one(ctx, del_ss, id) || run_one(ctx, del_cmd, id))
		return -1;
	if (tags_delete_all(ctx, arn))
		return -1;
	if (repl_config_delete(ctx, id))
		return -1;
	if (keys_revoke_server(ctx->st, id))
		return api_error(ctx, API_INTERNAL, "cannot revoke keys of %s", id);
	return 0;
}

/*
 * The replicator's staging error (ferry.stagingError, which its reports
 * set and clear; ops_replicator.c), if it applies: reported by the
 * server's current replicator, and the server still replicating.  It is
 * kept apart from the agent's dataReplicationError, which the heartbeat
 * owns, and only laid over it in what the API shows.
 */
static json_t *staging_error(json_t *doc)
{
	json_t *se = json_object_get(json_object_get(doc, "ferry"),
				     "stagingError");

	if (!json_is_object(se) || !*ss_str(se, "message") ||
	    strcmp(ss_str(se, "replicatorID"), ss_replicator(doc)) ||
	    json_is_true(json_object_get(doc, "isArchived")) ||
	    !strcmp(ss_str(doc, "lifeCycle.state"), "DISCONNECTED") ||
	    !strcmp(ss_str(doc, DRS_PATH), "DISCONNECTED"))
		return NULL;
	return se;
}

/* PAUSED and STOPPED are the operator's: they stand over any error. */
static bool service_state(const char *s)
{
	return !strcmp(s, "PAUSED") || !strcmp(s, "STOPPED");
}

const char *ss_shown_state(json_t *doc)
{
	const char *drs = ss_str(doc, DRS_PATH);

	return staging_error(doc) && !service_state(drs) ? "STALLED" : drs;
}

json_t *ss_public(struct api_ctx *ctx, json_t *doc)
{
	json_t *out = json_deep_copy(doc);
	json_t *tags = NULL, *se = staging_error(out), *info;
	const char *arn = ss_str(doc, "arn");

	info = json_object_get(out, "dataReplicationInfo");
	if (se && json_is_object(info)) {
		/* Replication cannot go on until space is freed: STALLED,
		 * as MGN shows a server whose staging area fails.  An
		 * AGENT_NOT_SEEN stays shown: until the agent is back,
		 * nothing can clear the staging error. */
		if (!service_state(ss_str(info, "dataReplicationState"))) {
			json_object_set_new(info, "dataReplicationState",
					    json_string("STALLED"));
			json_object_del(info, "etaDateTime");
		}
		if (strcmp(ss_str(info, "dataReplicationError.error"),
			   "AGENT_NOT_SEEN"))
			json_object_set_new(info, "dataReplicationError",
				json_pack("{s:s,s:O}", "error",
					  SS_STAGING_ERROR_MGN, "rawError",
					  json_object_get(se, "message")));
	}
	if (*arn)
		tags = tags_get(ctx, arn);
	json_object_set_new(out, "tags", tags ? tags : json_object());
	json_object_del(out, "ferry"); /* our private members */
	return out;
}

const char *ss_replicator(json_t *doc)
{
	return ss_str(doc, "ferry.replicatorID");
}

int ss_command_push(struct api_ctx *ctx, const char *id, const char *command,
		    json_t *args)
{
	static const char sql[] =
		"INSERT INTO commands(source_server_id, command, args, created)"
		" VALUES(?, ?, ?, ?)";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	store_bind_text(s, 2, command);
	if (args)
		store_bind_json(s, 3, args);
	sqlite3_bind_int64(s, 4, ctx->now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "cannot queue %s for %s",
				 command, id);
	return 0;
}

/* Walk "a.b.c" through nested objects. */
static json_t *walk(json_t *doc, const char *path, json_t **parent,
		    const char **leaf, bool create)
{
	char key[128];
	const char *dot;
	json_t *cur = doc, *next;

	while ((dot = strchr(path, '.'))) {
		size_t n = (size_t)(dot - path);

		if (n >= sizeof(key) || !json_is_object(cur))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		next = json_object_get(cur, key);
		if (!next && create) {
			next = json_object();
			json_object_set_new(cur, key, next);
		}
		cur = next;
		path = dot + 1;
	}
	if (!json_is_object(cur))
		return NULL;
	*parent = cur;
	*leaf = path;
	return json_object_get(cur, path);
}

const char *ss_str(json_t *doc, const char *path)
{
	json_t *parent;
	const char *leaf;
	json_t *v = walk(doc, path, &parent, &leaf, false);

	return json_is_string(v) ? json_string_value(v) : "";
}

int ss_set(json_t *doc, const char *path, json_t *value)
{
	json_t *parent = NULL;
	const char *leaf;

	walk(doc, path, &parent, &leaf, true);
	if (!parent) {
		json_decref(value);
		return -1;
	}
	return json_object_set_new(parent, leaf, value);
}

int ss_conflict(struct api_ctx *ctx, const char *id, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (ctx->err != API_OK)
		return -1; /* the first error recorded wins */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_error(ctx, API_CONFLICT, "%s", msg);
	api_error_field(ctx, "code", json_string("CONFLICT"));
	api_error_field(ctx, "resourceId", json_string(id));
	api_error_field(ctx, "resourceType", json_string("SOURCE_SERVER"));
	return -1;
}

void ss_replication_disconnected(json_t *doc)
{
	json_t *dri, *disks, *d;
	size_t i;

	ss_set(doc, "dataReplicationInfo.dataReplicationState",
	       json_string("DISCONNECTED"));
	dri = json_object_get(doc, "dataReplicationInfo");
	json_object_del(dri, "lagDuration");
	json_object_del(dri, "etaDateTime");
	json_object_del(dri, "dataReplicationError");
	disks = json_object_get(dri, "replicatedDisks");
	json_array_foreach(disks, i, d)
		json_object_set_new(d, "totalStorageBytes", json_integer(0));
}
