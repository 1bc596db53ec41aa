// SPDX-License-Identifier: GPL-2.0
/* store.c - the SQLite database behind ferry-control. */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "keys.h"
#include "log.h"
#include "source_server.h"

#define STORE_STMT_CACHE 256
#define STORE_BATCH_MAX 64

struct store_job {
	store_job_fn fn;
	void *arg;
	bool durable;	/* its commit must survive a power cut */
	bool done, ok;
	struct store_job *next;
};

struct store {
	sqlite3 *db;
	pthread_mutex_t lock;
	struct {
		const char *sql; /* the caller's text: compared by address */
		sqlite3_stmt *stmt;
	} cache[STORE_STMT_CACHE];
	int n_cache;
	/* group commit: jobs waiting for a leader */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct store_job *head, **tail;
	bool leader;
	unsigned long generation; /* see store_generation() */
};

/* Generations of all stores come from one sequence (store_open and the
 * rollbacks, each under its store's lock or before the store is shared). */
static unsigned long generation_seq;
static pthread_mutex_t generation_lock = PTHREAD_MUTEX_INITIALIZER;

static void new_generation(struct store *st)
{
	pthread_mutex_lock(&generation_lock);
	st->generation = ++generation_seq;
	pthread_mutex_unlock(&generation_lock);
}

unsigned long store_generation(struct store *st)
{
	return st->generation;
}

static const char core_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta ("
	" key TEXT PRIMARY KEY, value TEXT NOT NULL);";

sqlite3 *store_db(struct store *st)
{
	return st->db;
}

int store_exec(struct store *st, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("store: %s (running: %.80s)", msg ? msg : "?", sql);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int apply_schema(struct store *st, const char *name, const char *sql,
			char *err, size_t errlen)
{
	char *msg = NULL;

	if (!sql)
		return 0;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "schema of %s: %s", name,
			 msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* MOD's migration in one transaction: all of it or none. */
static int migrate(struct store *st, const struct api_module *mod,
		   char *err, size_t errlen)
{
	if (store_exec(st, "BEGIN IMMEDIATE") < 0) {
		snprintf(err, errlen, "migration of %s: cannot begin: %s",
			 mod->name, sqlite3_errmsg(st->db));
		return -1;
	}
	if (mod->migrate(st, err, errlen) < 0) {
		store_exec(st, "ROLLBACK");
		return -1;
	}
	if (store_exec(st, "COMMIT") < 0) {
		snprintf(err, errlen, "migration of %s: cannot commit: %s",
			 mod->name, sqlite3_errmsg(st->db));
		store_exec(st, "ROLLBACK");
		return -1;
	}
	return 0;
}

struct store *store_open(const char *dir, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	char path[4096];
	size_t m;
	int rc;

	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->qlock, NULL);
	pthread_cond_init(&st->qcond, NULL);
	st->tail = &st->head;
	new_generation(st);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create data directory %s: %s",
			 dir, strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/control.db", dir);
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		goto fail;
	}
	/* The secrets are in here: owner only, whatever the umask was. */
	if (chmod(path, 0600) < 0) {
		snprintf(err, errlen, "chmod 0600 %s: %s", path,
			 strerror(errno));
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 5000);
	/*
	 * WAL with synchronous=NORMAL: a commit is atomic and survives
	 * kill -9 of this process (the WAL is in the page cache and is
	 * replayed at the next open); only a power cut may lose the last
	 * transactions, never corrupt the database.  Those that must
	 * survive it too (store_run_durable) commit with FULL.
	 */
	if (apply_schema(st, "settings",
			 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 "PRAGMA foreign_keys=ON;",
			 err, errlen) ||
	    apply_schema(st, "store", core_schema_sql, err, errlen) ||
	    apply_schema(st, "keys", keys_schema_sql, err, errlen) ||
	    apply_schema(st, "source servers", ss_schema_sql, err, errlen))
		goto fail;
	for (m = 0; m < api_n_modules; m++)
		if (api_modules[m] &&
		    apply_schema(st, api_modules[m]->name,
				 api_modules[m]->schema_sql, err, errlen))
			goto fail;
	for (m = 0; m < api_n_modules; m++)
		if (api_modules[m] && api_modules[m]->migrate &&
		    migrate(st, api_modules[m], err, errlen))
			goto fail;
	return st;
fail:
	store_close(st);
	return NULL;
}

void store_close(struct store *st)
{
	int i;

	if (!st)
		return;
	ss_cache_forget(st);
	for (i = 0; i < st->n_cache; i++)
		sqlite3_finalize(st->cache[i].stmt);
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->qlock);
	pthread_cond_destroy(&st->qcond);
	free(st);
}

void store_lock(struct store *st)
{
	pthread_mutex_lock(&st->lock);
}

void store_unlock(struct store *st)
{
	pthread_mutex_unlock(&st->lock);
}

int store_begin(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	if (store_exec(st, "BEGIN IMMEDIATE") < 0) {
		pthread_mutex_unlock(&st->lock);
		return -1;
	}
	return 0;
}

int store_end(struct store *st, bool ok)
{
	if (ok && store_exec(st, "COMMIT") < 0)
		ok = false;
	if (!ok) {
		store_exec(st, "ROLLBACK");
		new_generation(st);
	}
	pthread_mutex_unlock(&st->lock);
	return ok ? 0 : -1;
}

/*
 * The statements of every group commit, prepared once (store_prepare
 * caches by address): sqlite3_exec would parse them again for each job.
 */
static const char sql_begin[] = "BEGIN IMMEDIATE";
/* Outside a transaction only: SQLite refuses to change it inside one. */
static const char sql_sync_full[] = "PRAGMA synchronous=FULL";
static const char sql_sync_normal[] = "PRAGMA synchronous=NORMAL";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";
static const char sql_savepoint[] = "SAVEPOINT job";
static const char sql_rollback_to[] = "ROLLBACK TO job";
static const char sql_release[] = "RELEASE job";

static int exec_cached(struct store *st, const char *sql)
{
	sqlite3_stmt *s = store_prepare(st, sql);
	int rc;

	if (!s)
		return -1;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_error("store: %s (running: %s)", sqlite3_errmsg(st->db),
			  sql);
		return -1;
	}
	return 0;
}

/* Run a batch of jobs in one transaction (the leader, under st->lock). */
static void run_batch(struct store *st, struct store_job *batch)
{
	struct store_job *j;
	bool durable = false, began;

	for (j = batch; j; j = j->next)
		durable |= j->durable;
	/* A job that needs a flushed commit and cannot have one fails. */
	began = (!durable || exec_cached(st, sql_sync_full) == 0) &&
		exec_cached(st, sql_begin) == 0;

	for (j = batch; j; j = j->next) {
		j->ok = false;
		if (!began || exec_cached(st, sql_savepoint))
			continue;
		j->ok = j->fn(j->arg);
		if (!j->ok) {
			new_generation(st);
			if (exec_cached(st, sql_rollback_to))
				began = false; /* the transaction is unusable */
		}
		if (began && exec_cached(st, sql_release))
			began = false;
	}
	if (began && exec_cached(st, sql_commit) == 0) {
		if (durable)
			exec_cached(st, sql_sync_normal);
		return;
	}
	/* Not cached: after an error the transaction may already be gone,
	 * and sqlite3_exec's message is the one worth logging. */
	if (sqlite3_get_autocommit(st->db) == 0)
		store_exec(st, sql_rollback);
	if (durable)
		exec_cached(st, sql_sync_normal);
	new_generation(st);
	for (j = batch; j; j = j->next)
		j->ok = false;
}

static int run_job(struct store *st, store_job_fn fn, void *arg,
		   bool durable)
{
	struct store_job job = { .fn = fn, .arg = arg, .durable = durable };

	pthread_mutex_lock(&st->qlock);
	*st->tail = &job;
	st->tail = &job.next;
	while (!job.done) {
		struct store_job *batch, *j, **cut;
		int n = 0;

		if (st->leader) {
			pthread_cond_wait(&st->qcond, &st->qlock);
			continue;
		}
		/* Lead: take what is queued (up to a bound, so that one
		 * leader does not serve others forever). */
		st->leader = true;
		batch = st->head;
		for (cut = &st->head; *cut && n < STORE_BATCH_MAX;
		     cut = &(*cut)->next)
			n++;
		st->head = *cut;
		*cut = NULL;
		if (!st->head)
			st->tail = &st->head;
		pthread_mutex_unlock(&st->qlock);

		pthread_mutex_lock(&st->lock);
		run_batch(st, batch);
		pthread_mutex_unlock(&st->lock);

		pthread_mutex_lock(&st->qlock);
		for (j = batch; j; j = j->next)
			j->done = true;
		st->leader = false;
		pthread_cond_broadcast(&st->qcond);
	}
	pthread_mutex_unlock(&st->qlock);
	return job.ok ? 0 : -1;
}

int store_run(struct store *st, store_job_fn fn, void *arg)
{
	return run_job(st, fn, arg, false);
}

int store_run_durable(struct store *st, store_job_fn fn, void *arg)
{
	return run_job(st, fn, arg, true);
}

sqlite3_stmt *store_prepare(struct store *st, const char *sql)
{
	sqlite3_stmt *s;
	int i;

	for (i = 0; i < st->n_cache; i++) {
		if (st->cache[i].sql == sql) {
			s = st->cache[i].stmt;
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return s;
		}
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s,
			       NULL) != SQLITE_OK) {
		log_error("store: cannot prepare '%.80s': %s", sql,
			  sqlite3_errmsg(st->db));
		return NULL;
	}
	if (st->n_cache < STORE_STMT_CACHE) {
		st->cache[st->n_cache].sql = sql;
		st->cache[st->n_cache].stmt = s;
		st->n_cache++;
	} else {
		/* More distinct statements than expected: a bug, but keep
		 * working (this one leaks until close). */
		log_error("store: statement cache full");
	}
	return s;
}

int store_bind_text(sqlite3_stmt *s, int idx, const char *v)
{
	if (!v)
		return sqlite3_bind_null(s, idx);
	return sqlite3_bind_text(s, idx, v, -1, SQLITE_TRANSIENT);
}

json_t *store_column_json(sqlite3_stmt *s, int col)
{
	const char *text = (const char *)sqlite3_column_text(s, col);

	if (!text)
		return NULL;
	return json_loadb(text, (size_t)sqlite3_column_bytes(s, col), 0,
			  NULL);
}

int store_bind_json(sqlite3_stmt *s, int idx, const json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);

	if (!text)
		return SQLITE_NOMEM;
	return sqlite3_bind_text(s, idx, text, -1, free);
}

json_t *store_rows_json(sqlite3_stmt *s, const char *const *keys,
			unsigned int n)
{
	json_t *list = json_array();
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *row = json_object();

		for (unsigned int i = 0; i < n; i++) {
			const char *v = (const char *)sqlite3_column_text(
				s, (int)i);

			json_object_set_new(row, keys[i], v ? json_string(v)
							    : json_null());
		}
		json_array_append_new(list, row);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return NULL;
	}
	return list;
}

static char *meta_get_locked(struct store *st, const char *key)
{
	static const char sql[] = "SELECT value FROM meta WHERE key = ?";
	sqlite3_stmt *s = store_prepare(st, sql);
	char *v = NULL;

	if (!s)
		return NULL;
	store_bind_text(s, 1, key);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return v;
}

char *store_meta_get(struct store *st, const char *key)
{
	return meta_get_locked(st, key);
}

int store_meta_set(struct store *st, const char *key, const char *value)
{
	static const char sql[] =
		"INSERT INTO meta(key, value) VALUES(?, ?)"
		" ON CONFLICT(key) DO UPDATE SET value = excluded.value";
	sqlite3_stmt *s = store_prepare(st, sql);
	int rc;

	if (!s)
		return -1;
	store_bind_text(s, 1, key);
	store_bind_text(s, 2, value);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_error("store: cannot set %s: %s", key,
			  sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}
