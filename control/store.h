/* SPDX-License-Identifier: GPL-2.0 */
/*
 * store.h - ferry-control's state: one SQLite database in WAL mode,
 * DATA_DIR/control.db.  SQLite gives atomic, durable transactions that
 * survive kill -9; WAL lets readers run beside the writer.
 *
 * One connection, serialised by a mutex: handlers run one at a time
 * inside store_begin()/store_end(), each in one transaction.
 */
#ifndef FERRY_CONTROL_STORE_H
#define FERRY_CONTROL_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <jansson.h>

struct store;

/* Open (creating) DIR/control.db, apply the core schema and every
 * module's schema.  On error returns NULL with a message in ERR. */
struct store *store_open(const char *dir, char *err, size_t errlen);
void store_close(struct store *st);
sqlite3 *store_db(struct store *st);

/* Lock the store and BEGIN IMMEDIATE; store_end() commits if OK is true,
 * else rolls back, then unlocks.  Return 0 or -1 (message in ERR).  Their
 * commits are as durable as store_run()'s; store_exec(st, "PRAGMA
 * synchronous=FULL") first makes them survive a power cut too. */
int store_begin(struct store *st);
int store_end(struct store *st, bool ok);

/*
 * Run FN(ARG) in a transaction, with group commit: the requests of
 * several threads that arrive together run one after the other in one
 * transaction, each inside its own savepoint (so one that fails changes
 * nothing), and one COMMIT makes them all durable.  The commit, not the
 * work, was most of a small request's time under the lock.
 * FN returns true to keep its changes.  Returns 0 when FN returned true
 * and the transaction committed, -1 otherwise.
 */
typedef bool (*store_job_fn)(void *arg);
int store_run(struct store *st, store_job_fn fn, void *arg);
/*
 * store_run() whose commit also survives a power cut: the transaction it
 * joins commits with synchronous=FULL (the WAL flushed).  For answers a
 * caller cannot do without once given, such as credentials whose
 * predecessor it then forgets.
 */
int store_run_durable(struct store *st, store_job_fn fn, void *arg);

/* Lock the store for reads outside a transaction (one SELECT is atomic
 * on its own); store_unlock() releases it. */
void store_lock(struct store *st);
void store_unlock(struct store *st);

/* Key/value settings of the installation (meta table): account ID,
 * InitializeService done, ... GET returns a malloc'd copy or NULL. */
char *store_meta_get(struct store *st, const char *key);
int store_meta_set(struct store *st, const char *key, const char *value);

/*
 * A number that changes whenever a transaction or a job's savepoint of
 * ST is rolled back, and that no other store opened by this process
 * shares: in-memory copies of rows (ss_save_keep) are valid only while it
 * is unchanged.  Read under the store lock.
 */
unsigned long store_generation(struct store *st);

/* Run SQL with no result; -1 on error (logged with the SQL's context). */
int store_exec(struct store *st, const char *sql);

/* Prepare a statement (cached per SQL text for the store's life: do not
 * finalize it; it is reset for you by the next store_prepare of the same
 * text).  NULL on error (logged). */
sqlite3_stmt *store_prepare(struct store *st, const char *sql);

/* Bind helpers returning the statement for chaining in simple cases. */
int store_bind_text(sqlite3_stmt *s, int idx, const char *v);

/* Read column COL as parsed JSON (new reference) or NULL. */
json_t *store_column_json(sqlite3_stmt *s, int col);
/* Bind J serialised compactly (does not steal). */
int store_bind_json(sqlite3_stmt *s, int idx, const json_t *j);

/* Step S to its end: an array with one object per row, KEYS[i] naming
 * text column i (N columns).  NULL on a database error (S is reset
 * either way; sqlite3_errmsg() says what failed). */
json_t *store_rows_json(sqlite3_stmt *s, const char *const *keys,
			unsigned int n);

#endif
