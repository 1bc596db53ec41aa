// SPDX-License-Identifier: GPL-2.0
/*
 * launch_removal.c - images a replicator is to delete (launch.h).
 *
 * A launch's images live on the replicator that exported them,
 * DATA_DIR/launch/<jobID>/<sourceServerID>/.  They are unwanted once
 * their instance is terminated (TerminateTargetInstances, or a newer
 * launch superseding a test instance) or their task was failed by
 * ferry-control while the replicator was silent.  Each is a row of
 * launch_removals addressed to that replicator, listed in its
 * assignments ("removeLaunches") until it reports the directory gone
 * ("removedLaunches"), so a replicator that is down meanwhile deletes
 * them when it is back.
 */
#include <stdio.h>
#include <string.h>

#include "agent_state.h"
#include "launch.h"
#include "model.h"
#include "source_server.h"
#include "store.h"

#define MAX_REMOVALS 10000	/* per answer and per report */

int launch_removal_request(struct api_ctx *ctx, const char *job_id,
			   const char *id, const char *rid)
{
	/* A second request (a retried operation) keeps the first time. */
	static const char sql[] =
		"INSERT INTO launch_removals(job_id, source_server_id,"
		" replicator_id, requested) VALUES(?1, ?2, ?3, ?4)"
		" ON CONFLICT(job_id, source_server_id) DO UPDATE"
		" SET replicator_id = ?3";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, job_id);
	store_bind_text(s, 2, id);
	store_bind_text(s, 3, rid);
	sqlite3_bind_int64(s, 4, ctx->now);
	return sql_step_done(ctx, s, "store the removal of launch images");
}

json_t *launch_removals_pending(struct api_ctx *ctx, const char *rid)
{
	static const char sql[] =
		"SELECT job_id, source_server_id FROM launch_removals"
		" WHERE replicator_id = ? ORDER BY requested, rowid LIMIT ?";
	static const char *const keys[] = { "jobID", "sourceServerID" };
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	json_t *list;

	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return NULL;
	}
	store_bind_text(s, 1, rid);
	sqlite3_bind_int(s, 2, MAX_REMOVALS);
	list = store_rows_json(s, keys, 2);
	if (!list) {
		api_error(ctx, API_INTERNAL,
			  "cannot list the launch images to remove: %s",
			  sqlite3_errmsg(store_db(ctx->st)));
		return NULL;
	}
	return list;
}

int launch_removals_done(struct api_ctx *ctx, const char *rid, json_t *list)
{
	static const char *const known[] = { "jobID", "sourceServerID",
					     NULL };
	static const char sql[] =
		"DELETE FROM launch_removals WHERE job_id = ?"
		" AND source_server_id = ? AND replicator_id = ?";
	const char *job, *id;
	char field[64];
	json_t *r;
	size_t i;

	if (json_array_size(list) > MAX_REMOVALS)
		return api_invalid_field(ctx, "removedLaunches",
			"removedLaunches may list at most %d items",
			MAX_REMOVALS);
	json_array_foreach(list, i, r) {
		snprintf(field, sizeof(field), "removedLaunches[%zu]", i);
		if (!json_is_object(r))
			return api_invalid_field(ctx, field,
						 "%s must be an object",
						 field);
		if (model_only_keys(ctx, r, known) ||
		    model_get_string(ctx, r, "jobID", true, 24, &job) ||
		    model_get_string(ctx, r, "sourceServerID", true, 19, &id))
			return -1;
	}
	/* One not asked of RID (another's, or done before) is no error:
	 * a report repeated after a lost answer. */
	json_array_foreach(list, i, r) {
		sqlite3_stmt *s = store_prepare(ctx->st, sql);

		if (!s)
			return api_error(ctx, API_INTERNAL, "database error");
		store_bind_text(s, 1, ss_str(r, "jobID"));
		store_bind_text(s, 2, ss_str(r, "sourceServerID"));
		store_bind_text(s, 3, rid);
		if (sql_step_done(ctx, s, "forget a removal of launch images"))
			return -1;
	}
	return 0;
}
