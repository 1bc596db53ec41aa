// SPDX-License-Identifier: GPL-2.0
/*
 * ops_tags.c - TagResource, UntagResource and ListTagsForResource, and
 * the tags table the other groups read through tags.h.
 *
 * Tags are rows (arn, key, value) rather than a member of each
 * resource's document so that one set of operations serves every
 * resource type, and deleting a resource drops its tags in one DELETE.
 */
#include "tags.h"

#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "jobs.h"
#include "model.h"
#include "replication.h"
#include "source_server.h"
#include "store.h"

static const char tags_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS tags ("
	" arn TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" PRIMARY KEY(arn, key)) WITHOUT ROWID;";

static int db_error(struct api_ctx *ctx, const char *what)
{
	return api_error(ctx, API_INTERNAL, "%s: %s", what,
			 sqlite3_errmsg(store_db(ctx->st)));
}

json_t *tags_get(struct api_ctx *ctx, const char *arn)
{
	static const char sql[] =
		"SELECT key, value FROM tags WHERE arn = ? ORDER BY key";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	json_t *tags;
	int rc;

	if (!s) {
		db_error(ctx, "cannot read tags");
		return NULL;
	}
	tags = json_object();
	store_bind_text(s, 1, arn);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_object_set_new(tags,
				    (const char *)sqlite3_column_text(s, 0),
				    json_string((const char *)
						sqlite3_column_text(s, 1)));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(tags);
		db_error(ctx, "cannot read tags");
		return NULL;
	}
	return tags;
}

static long long tags_count_new(struct api_ctx *ctx, const char *arn,
				json_t *tags)
{
	static const char sql[] =
		"SELECT 1 FROM tags WHERE arn = ? AND key = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	const char *key;
	json_t *v;
	long long n = 0;

	if (!s)
		return db_error(ctx, "cannot read tags");
	json_object_foreach(tags, key, v) {
		store_bind_text(s, 1, arn);
		store_bind_text(s, 2, key);
		if (sqlite3_step(s) != SQLITE_ROW)
			n++;
		sqlite3_reset(s);
	}
	return n;
}

static long long tags_count(struct api_ctx *ctx, const char *arn)
{
	static const char sql[] = "SELECT count(*) FROM tags WHERE arn = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	long long n = -1;

	if (!s)
		return db_error(ctx, "cannot count tags");
	store_bind_text(s, 1, arn);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (n < 0)
		return db_error(ctx, "cannot count tags");
	return n;
}

int tags_set(struct api_ctx *ctx, const char *arn, json_t *tags)
{
	static const char sql[] =
		"INSERT INTO tags(arn, key, value) VALUES(?, ?, ?)"
		" ON CONFLICT(arn, key) DO UPDATE SET value = excluded.value";
	sqlite3_stmt *s;
	long long have, added;
	const char *key;
	json_t *v;

	if (!tags)
		return 0;
	if (model_check_tags(ctx, tags, "tags"))
		return -1;
	have = tags_count(ctx, arn);
	added = have < 0 ? -1 : tags_count_new(ctx, arn, tags);
	if (have < 0 || added < 0)
		return -1;
	if (have + added > TAGS_MAX)
		return api_invalid_field(ctx, "tags",
			"tags: %s would have %lld tags, more than the %d allowed",
			arn, have + added, TAGS_MAX);
	s = store_prepare(ctx->st, sql);
	if (!s)
		return db_error(ctx, "cannot save tags");
	json_object_foreach(tags, key, v) {
		int rc;

		store_bind_text(s, 1, arn);
		store_bind_text(s, 2, key);
		store_bind_text(s, 3, json_string_value(v));
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return db_error(ctx, "cannot save tags");
	}
	return 0;
}

int tags_delete_all(struct api_ctx *ctx, const char *arn)
{
	static const char sql[] = "DELETE FROM tags WHERE arn = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return db_error(ctx, "cannot delete tags");
	store_bind_text(s, 1, arn);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_error(ctx, "cannot delete tags");
	return 0;
}

static int tags_delete_key(struct api_ctx *ctx, const char *arn,
			   const char *key)
{
	static const char sql[] = "DELETE FROM tags WHERE arn = ? AND key = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return db_error(ctx, "cannot delete tags");
	store_bind_text(s, 1, arn);
	store_bind_text(s, 2, key);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_error(ctx, "cannot delete tags");
	return 0;
}

/*
 * The resource named by the path's ARN must exist here:
 * arn:aws:mgn:REGION:ACCOUNT:TYPE/ID with our region and account and a
 * TYPE this endpoint keeps.  An ARN that is not one at all is a
 * ValidationException; a well-formed one naming nothing we hold is
 * ResourceNotFoundException, as MGN answers for another account's ARN.
 */
static const char *require_resource(struct api_ctx *ctx)
{
	static const char prefix[] = "arn:aws:mgn:";
	const char *arn = ctx->path_param, *p, *colon, *slash, *id;
	char type[64];
	size_t n, alen = arn ? strlen(arn) : 0;
	bool found = false;

	if (alen < 20 || alen > 2048 || strncmp(arn, prefix, strlen(prefix)))
		goto invalid;
	p = arn + strlen(prefix);
	colon = strchr(p, ':');
	if (!colon)
		goto invalid;
	n = (size_t)(colon - p);
	if (n != strlen(ctx->cfg->region) ||
	    strncmp(p, ctx->cfg->region, n))
		goto missing;
	p = colon + 1;
	colon = strchr(p, ':');
	if (!colon)
		goto invalid;
	n = (size_t)(colon - p);
	if (n != strlen(ctx->cfg->account_id) ||
	    strncmp(p, ctx->cfg->account_id, n))
		goto missing;
	p = colon + 1;
	slash = strchr(p, '/');
	if (!slash || slash == p || !slash[1])
		goto invalid;
	n = (size_t)(slash - p);
	if (n >= sizeof(type))
		goto missing;
	memcpy(type, p, n);
	type[n] = '\0';
	id = slash + 1;

	if (!strcmp(type, "source-server")) {
		json_t *doc = ss_load(ctx, id);

		found = doc != NULL;
		json_decref(doc);
	} else if (!strcmp(type, "job")) {
		found = job_exists(ctx, id);
	} else if (!strcmp(type, "replication-configuration-template")) {
		found = repl_template_exists(ctx, id);
	}
	if (ctx->err != API_OK)
		return NULL;
	if (found)
		return arn;
missing:
	api_not_found(ctx, "RESOURCE", arn);
	return NULL;
invalid:
	api_invalid_field(ctx, "resourceArn",
			  "resourceArn '%.200s' is not an Application Migration Service ARN",
			  arn ? arn : "");
	return NULL;
}

static int op_tag_resource(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "tags", NULL };
	const char *arn;
	json_t *tags;

	if (model_only_keys(ctx, in, known) ||
	    model_get_object(ctx, in, "tags", true, &tags))
		return -1;
	arn = require_resource(ctx);
	if (!arn)
		return -1;
	return tags_set(ctx, arn, tags);
}

static int op_untag_resource(struct api_ctx *ctx, json_t *in, json_t **out)
{
	json_t *keys = json_object_get(ctx->query, "tagKeys"), *v;
	const char *arn;
	size_t i;

	if (!json_is_array(keys) || !json_array_size(keys))
		return api_invalid_field(ctx, "tagKeys", "tagKeys is required");
	json_array_foreach(keys, i, v) {
		if (!json_is_string(v) || json_string_length(v) > 256)
			return api_invalid_field(ctx, "tagKeys",
				"tagKeys: each key must be at most 256 characters");
	}
	arn = require_resource(ctx);
	if (!arn)
		return -1;
	json_array_foreach(keys, i, v) {
		if (tags_delete_key(ctx, arn, json_string_value(v)))
			return -1;
	}
	return 0;
}

static int op_list_tags(struct api_ctx *ctx, json_t *in, json_t **out)
{
	const char *arn = require_resource(ctx);
	json_t *tags;

	if (!arn)
		return -1;
	tags = tags_get(ctx, arn);
	if (!tags)
		return -1;
	*out = json_pack("{s:o}", "tags", tags);
	return 0;
}

static const struct api_op tags_ops[] = {
	{ "TagResource", "POST", "/tags/", ROLE_ADMIN, 200, op_tag_resource,
	  false },
	{ "UntagResource", "DELETE", "/tags/", ROLE_ADMIN, 200,
	  op_untag_resource, false },
	{ "ListTagsForResource", "GET", "/tags/", ROLE_ADMIN, 200,
	  op_list_tags, false },
};

const struct api_module api_module_tags = {
	.name = "tags",
	.schema_sql = tags_schema_sql,
	.ops = tags_ops,
	.n_ops = sizeof(tags_ops) / sizeof(tags_ops[0]),
};
