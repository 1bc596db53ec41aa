// SPDX-License-Identifier: GPL-2.0
/*
 * launch_sweep.c - launch tasks whose replicator is lost (launch.h).
 *
 * A launch task is carried out by the replicator that holds the
 * server's staging volumes, which learns of it when it fetches its
 * assignments.  If that replicator stops reporting, or no replicator
 * holds the server, nothing else would ever finish the task and its job
 * would stay PENDING or STARTED.  So a task fails once no word came from
 * its replicator for the replicator timeout (--replicator-timeout) since
 * the later of the task's creation and the replicator's last report: a
 * replicator busy exporting still reports every report-interval.  The
 * timeout is the one that stops new servers being placed on a silent
 * replicator (ops_replicator.c), so one notion of "lost" holds for both.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "launch.h"
#include "log.h"
#include "model.h"
#include "store.h"

#define SWEEP_BATCH 50		/* tasks failed per second at most */
#define RID_MAX 32
#define ADDR_MAX 254
#define ERROR_MAX 1024

struct lost_task {
	char job[MODEL_ID_MAX];
	char id[MODEL_ID_MAX];
	char rid[RID_MAX];	/* "" if the server has none */
	char addr[ADDR_MAX];	/* "" if RID is not registered */
	long long last_seen;	/* of RID, 0 if none */
};

/* Why the task of T failed and what the user can do, into OUT. */
static void lost_reason(const struct api_ctx *ctx, const struct lost_task *t,
			char *out, size_t len)
{
	int timeout = ctx->cfg->replicator_timeout;
	char when[32];

	if (!*t->rid) {
		snprintf(out, len,
			 "No replicator holds the staging volumes of source server %s (none with room for its disks was heard from within %d s), so nothing could launch it; start or register a ferry-replicator with room for its disks, let it replicate the server, then launch again",
			 t->id, timeout);
	} else if (!*t->addr) {
		snprintf(out, len,
			 "Replicator %s, which held the staging volumes of source server %s, is no longer registered, so nothing could launch it; register a ferry-replicator as %s again (or let the server be placed on another one), then launch again",
			 t->rid, t->id, t->rid);
	} else {
		model_time((time_t)t->last_seen, when, sizeof(when));
		snprintf(out, len,
			 "Replicator %s (%s), which holds the staging volumes of source server %s, has not reported since %s (more than the replicator timeout of %d s), so the launch was given up; restart ferry-replicator there and check that it reaches ferry-control, or replace it by registering another replicator as %s, then launch again",
			 t->rid, t->addr, t->id, when, timeout, t->rid);
	}
}

/* Up to SWEEP_BATCH open tasks past their deadline into T.  The count,
 * or -1. */
static int find_lost(struct api_ctx *ctx, struct lost_task *t)
{
	/* max(a, b) is SQLite's scalar max. */
	static const char sql[] =
		"SELECT t.job_id, t.source_server_id,"
		" coalesce(a.replicator_id, ''), coalesce(r.address, ''),"
		" coalesce(r.last_seen, 0)"
		" FROM launch_tasks t"
		" LEFT JOIN assignments a"
		" ON a.source_server_id = t.source_server_id"
		" LEFT JOIN replicators r ON r.id = a.replicator_id"
		" WHERE t.status IN ('PENDING', 'IN_PROGRESS')"
		" AND max(t.created, coalesce(r.last_seen, 0)) <= ?"
		" ORDER BY t.created, t.rowid LIMIT ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int n = 0, rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	sqlite3_bind_int64(s, 1,
			   (long long)ctx->now - ctx->cfg->replicator_timeout);
	sqlite3_bind_int(s, 2, SWEEP_BATCH);
	/* Collected first: failing a task rewrites the tables scanned. */
	while (n < SWEEP_BATCH && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		snprintf(t[n].job, sizeof(t[n].job), "%s",
			 (const char *)sqlite3_column_text(s, 0));
		snprintf(t[n].id, sizeof(t[n].id), "%s",
			 (const char *)sqlite3_column_text(s, 1));
		snprintf(t[n].rid, sizeof(t[n].rid), "%s",
			 (const char *)sqlite3_column_text(s, 2));
		snprintf(t[n].addr, sizeof(t[n].addr), "%s",
			 (const char *)sqlite3_column_text(s, 3));
		t[n].last_seen = sqlite3_column_int64(s, 4);
		n++;
	}
	sqlite3_reset(s);
	if (n < SWEEP_BATCH && rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL,
				 "cannot list the open launch tasks: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return n;
}

void launch_sweep(struct api_ctx *ctx)
{
	static struct lost_task t[SWEEP_BATCH]; /* under the store's lock */
	char why[ERROR_MAX];
	int n = find_lost(ctx, t), i;

	for (i = 0; i < n; i++) {
		lost_reason(ctx, &t[i], why, sizeof(why));
		if (launch_task_fail(ctx, t[i].job, t[i].id, t[i].rid, why))
			return;
		/* Whatever the replicator made of it before it went silent
		 * goes when it is back. */
		if (*t[i].addr &&
		    launch_removal_request(ctx, t[i].job, t[i].id, t[i].rid))
			return;
		log_info("launch %s of %s failed: %s", t[i].job, t[i].id, why);
	}
}
