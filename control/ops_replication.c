// SPDX-License-Identifier: GPL-2.0
/*
 * ops_replication.c - replication configuration templates and the
 * replication configuration of each source server (MGN's public API).
 *
 * Members, enums and limits follow the MGN model of Debian's awscli
 * (unknown members are refused).  Where the model leaves things open:
 * - new servers start from the oldest template; changing a template
 *   does not change configurations already made from it;
 * - the last template cannot be deleted (ConflictException);
 * - replicatedDisks entries name the server's disks and change only the
 *   members they give; disks not named keep their settings;
 * - ebsEncryption CUSTOM needs ebsEncryptionKeyArn, DEFAULT takes none;
 * - an archived or disconnected server's configuration cannot be
 *   changed (ConflictException), only read.
 *
 * pitPolicy (AWS DRS's PITPolicyRule list; not in MGN's model) is a
 * ferry extension, kept in the private "ferry" member of templates and
 * configurations: absent unless an administrator set it, so that the
 * replicator's own pit_policy applies to the server (docs/api.md).
 */
#include "replication.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_service.h"
#include "log.h"
#include "model.h"
#include "paging.h"
#include "source_server.h"
#include "store.h"
#include "tags.h"

#define TPL_TYPE "REPLICATION_CONFIGURATION_TEMPLATE"
#define TPL_ARN_TYPE "replication-configuration-template"
#define CFG_TYPE "REPLICATION_CONFIGURATION"
#define PAGE_KIND "rct" /* paging.h: tokens of this listing */

/*
 * seq orders templates by creation: pagination follows it, and the
 * oldest template is the one new source servers start from.
 */
static const char repl_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS repl_templates ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT NOT NULL UNIQUE,"
	" doc TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS repl_configs ("
	" source_server_id TEXT PRIMARY KEY,"
	" doc TEXT NOT NULL);";

static const char *const routing_enum[] = { "PRIVATE_IP", "PUBLIC_IP", NULL };
static const char *const large_disk_enum[] = { "GP2", "ST1", "GP3", NULL };
static const char *const encryption_enum[] = { "DEFAULT", "CUSTOM", NULL };
static const char *const disk_type_enum[] = {
	"AUTO", "GP2", "IO1", "SC1", "ST1", "STANDARD", "GP3", "IO2", NULL
};

/* ------------------------------------------------------------------ */
/* Checks of request members, named in fieldList as the model names them */

enum kind { K_BOOL, K_LONG, K_STR, K_ENUM, K_SUBNET, K_SG_LIST, K_TAGS };

struct member {
	const char *key;
	enum kind kind;
	const char *const *allowed; /* K_ENUM */
	long long min, max;	    /* K_LONG: value; K_STR: length */
};

/* The settings shared by templates and configurations. */
static const struct member settings[] = {
	{ "associateDefaultSecurityGroup", K_BOOL, NULL, 0, 0 },
	{ "bandwidthThrottling", K_LONG, NULL, 0, LLONG_MAX },
	{ "createPublicIP", K_BOOL, NULL, 0, 0 },
	{ "dataPlaneRouting", K_ENUM, routing_enum, 0, 0 },
	{ "defaultLargeStagingDiskType", K_ENUM, large_disk_enum, 0, 0 },
	{ "ebsEncryption", K_ENUM, encryption_enum, 0, 0 },
	{ "ebsEncryptionKeyArn", K_STR, NULL, 20, 2048 },
	{ "replicationServerInstanceType", K_STR, NULL, 0, 255 },
	{ "replicationServersSecurityGroupsIDs", K_SG_LIST, NULL, 0, 32 },
	{ "stagingAreaSubnetId", K_SUBNET, NULL, 0, 255 },
	{ "stagingAreaTags", K_TAGS, NULL, 0, 0 },
	{ "useDedicatedReplicationServer", K_BOOL, NULL, 0, 0 },
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* A member's value, NULL when absent or null (both mean "not given"). */
static json_t *member_of(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_null(v) ? NULL : v;
}

/* Length in characters (code points) of valid UTF-8, as the model counts. */
static size_t utf8_len(const char *s, size_t bytes)
{
	size_t n = 0, i;

	for (i = 0; i < bytes; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

static int check_str(struct api_ctx *ctx, json_t *v, const char *name,
		     long long min, long long max)
{
	size_t len;

	if (!json_is_string(v))
		return api_invalid_field(ctx, name, "%s must be a string",
					 name);
	len = utf8_len(json_string_value(v), json_string_length(v));
	if ((long long)len < min || (long long)len > max)
		return api_invalid_field(ctx, name,
					 "%s must be %lld to %lld characters long",
					 name, min, max);
	if (memchr(json_string_value(v), '\0', json_string_length(v)))
		return api_invalid_field(ctx, name,
					 "%s must not contain NUL characters",
					 name);
	return 0;
}

/* PREFIX then at least 8 hex digits: ^sg-[0-9a-fA-F]{8,}$ and the like. */
static bool hex_name(const char *s, const char *prefix)
{
	size_t n = strlen(prefix), i;

	if (strncmp(s, prefix, n))
		return false;
	for (i = n; s[i]; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return i - n >= 8;
}

static int check_hex_name(struct api_ctx *ctx, json_t *v, const char *name,
			  const char *prefix)
{
	if (check_str(ctx, v, name, 0, 255))
		return -1;
	if (!hex_name(json_string_value(v), prefix))
		return api_invalid_field(ctx, name,
					 "%s: '%.64s' does not match ^%s[0-9a-fA-F]{8,}$",
					 name, json_string_value(v), prefix);
	return 0;
}

static int check_member(struct api_ctx *ctx, const struct member *m,
			json_t *v, const char *name)
{
	size_t i;
	json_t *e;

	switch (m->kind) {
	case K_BOOL:
		if (!json_is_boolean(v))
			return api_invalid_field(ctx, name,
						 "%s must be a boolean", name);
		return 0;
	case K_LONG:
		if (!json_is_integer(v))
			return api_invalid_field(ctx, name,
						 "%s must be an integer", name);
		if (json_integer_value(v) < m->min ||
		    json_integer_value(v) > m->max)
			return api_invalid_field(ctx, name,
						 "%s must be at least %lld",
						 name, m->min);
		return 0;
	case K_STR:
		return check_str(ctx, v, name, m->min, m->max);
	case K_ENUM:
		if (!json_is_string(v))
			return api_invalid_field(ctx, name,
						 "%s must be a string", name);
		for (i = 0; m->allowed[i]; i++)
			if (!strcmp(json_string_value(v), m->allowed[i]))
				return 0;
		return api_invalid_field(ctx, name,
					 "%s: '%.64s' is not a valid value",
					 name, json_string_value(v));
	case K_SUBNET:
		return check_hex_name(ctx, v, name, "subnet-");
	case K_SG_LIST:
		if (!json_is_array(v))
			return api_invalid_field(ctx, name,
						 "%s must be a list", name);
		if ((long long)json_array_size(v) > m->max)
			return api_invalid_field(ctx, name,
						 "%s must have at most %lld items",
						 name, m->max);
		json_array_foreach(v, i, e)
			if (check_hex_name(ctx, e, name, "sg-"))
				return -1;
		return 0;
	case K_TAGS:
		return model_check_tags(ctx, v, name);
	}
	return api_error(ctx, API_INTERNAL, "unknown member kind");
}

/* ------------------------------------------------------------------ */
/* pitPolicy (ferry extension) */

/*
 * The replicator keeps at most 8 enabled rules (SNAP_MAX_RULES) and
 * rules of up to a century: refuse here what it would refuse, so that
 * a policy accepted is a policy applied.
 */
#define PIT_MAX_RULES 8
/* Snapshots a policy may keep at once, as the replicator's SNAP_MAX_KEPT
 * (replicator/snap_policy.h): each is read through all later ones. */
#define PIT_MAX_KEPT 4000
#define PIT_CENTURY_MINUTES (100LL * 366 * 1440)

static const struct {
	const char *name;
	long long minutes;
} pit_units[] = {
	{ "MINUTE", 1 }, { "HOUR", 60 }, { "DAY", 1440 },
};
#define N_PIT_UNITS (sizeof(pit_units) / sizeof(pit_units[0]))

static const char *const pit_rule_keys[] = {
	"ruleID", "units", "interval", "retentionDuration", "enabled", NULL
};

/* The stored policy of DOC (a template or configuration), NULL if unset. */
static json_t *stored_pit(json_t *doc)
{
	json_t *v = json_object_get(json_object_get(doc, "ferry"),
				    "pitPolicy");

	return json_is_array(v) && json_array_size(v) ? v : NULL;
}

/* Set DOC's policy to PIT (stolen), or unset it with PIT NULL. */
static void store_pit(json_t *doc, json_t *pit)
{
	json_t *ferry = json_object_get(doc, "ferry");

	if (pit) {
		if (!json_is_object(ferry)) {
			ferry = json_object();
			json_object_set_new(doc, "ferry", ferry);
		}
		json_object_set_new(ferry, "pitPolicy", pit);
		return;
	}
	json_object_del(ferry, "pitPolicy");
	if (json_is_object(ferry) && !json_object_size(ferry))
		json_object_del(doc, "ferry");
}

/* Member KEY of rule R (named NAME): a whole number of UNIT, 1..century. */
static int check_pit_count(struct api_ctx *ctx, json_t *r, const char *name,
			   const char *key, size_t u, json_int_t *out)
{
	long long max = PIT_CENTURY_MINUTES / pit_units[u].minutes;
	char field[64];
	json_t *v = json_object_get(r, key);

	snprintf(field, sizeof(field), "%s.%s", name, key);
	if (!v || json_is_null(v))
		return api_invalid_field(ctx, field, "%s is required", field);
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > max)
		return api_invalid_field(ctx, field,
					 "%s must be a whole number of %ss from 1 to %lld (a century)",
					 field, pit_units[u].name, max);
	*out = json_integer_value(v);
	return 0;
}

/*
 * Check the pitPolicy V of a request: AWS DRS's PITPolicyRule list,
 * with ruleID required and unique.  *OUT is the policy to store, each
 * rule with all five members, or NULL for null or [] (unset).
 */
static int check_pit_policy(struct api_ctx *ctx, json_t *v, json_t **out)
{
	json_t *rules, *r, *m;
	char name[32], field[64];
	const char *key, *u;
	size_t i, j, k, enabled = 0;
	json_int_t kept = 0;

	*out = NULL;
	if (json_is_null(v) || (json_is_array(v) && !json_array_size(v)))
		return 0;
	if (!json_is_array(v))
		return api_invalid_field(ctx, "pitPolicy",
					 "pitPolicy must be a list of rules {ruleID, units, interval, retentionDuration, enabled}, or null to unset it");
	if (json_array_size(v) > PIT_MAX_RULES)
		return api_invalid_field(ctx, "pitPolicy",
					 "pitPolicy has %zu rules; the replicator keeps at most %d",
					 json_array_size(v), PIT_MAX_RULES);
	rules = json_array();
	json_array_foreach(v, i, r) {
		json_int_t id, interval, retention;

		snprintf(name, sizeof(name), "pitPolicy[%zu]", i);
		if (!json_is_object(r)) {
			api_invalid_field(ctx, name, "%s must be an object",
					  name);
			goto bad;
		}
		json_object_foreach(r, key, m) {
			for (j = 0; pit_rule_keys[j]; j++)
				if (!strcmp(key, pit_rule_keys[j]))
					break;
			if (!pit_rule_keys[j]) {
				snprintf(field, sizeof(field), "%s.%.24s",
					 name, key);
				api_invalid_field(ctx, field,
						  "%s: unknown member (a rule has ruleID, units, interval, retentionDuration, enabled)",
						  field);
				goto bad;
			}
		}
		snprintf(field, sizeof(field), "%s.ruleID", name);
		m = json_object_get(r, "ruleID");
		if (!json_is_integer(m) || json_integer_value(m) < 0) {
			api_invalid_field(ctx, field,
					  "%s is required: a whole number from 0, unique in the policy",
					  field);
			goto bad;
		}
		id = json_integer_value(m);
		for (j = 0; j < i; j++)
			if (json_integer_value(json_object_get(
				    json_array_get(v, j), "ruleID")) == id) {
				api_invalid_field(ctx, field,
						  "%s: ruleID %" JSON_INTEGER_FORMAT " is given twice (pitPolicy[%zu] has it too)",
						  field, id, j);
				goto bad;
			}
		snprintf(field, sizeof(field), "%s.units", name);
		u = json_string_value(json_object_get(r, "units"));
		for (k = 0; u && k < N_PIT_UNITS; k++)
			if (!strcmp(u, pit_units[k].name))
				break;
		if (!u || k == N_PIT_UNITS) {
			api_invalid_field(ctx, field,
					  "%s must be MINUTE, HOUR or DAY", field);
			goto bad;
		}
		if (check_pit_count(ctx, r, name, "interval", k, &interval) ||
		    check_pit_count(ctx, r, name, "retentionDuration", k,
				    &retention))
			goto bad;
		if (retention < interval) {
			snprintf(field, sizeof(field), "%s.retentionDuration",
				 name);
			api_invalid_field(ctx, field,
					  "%s (%" JSON_INTEGER_FORMAT ") is shorter than its interval (%" JSON_INTEGER_FORMAT "): the rule would keep no snapshot",
					  field, retention, interval);
			goto bad;
		}
		/* DRS's default: a rule is enabled unless it says not. */
		m = json_object_get(r, "enabled");
		if (m && !json_is_null(m) && !json_is_boolean(m)) {
			snprintf(field, sizeof(field), "%s.enabled", name);
			api_invalid_field(ctx, field,
					  "%s must be true or false", field);
			goto bad;
		}
		enabled += !json_is_false(m);
		if (!json_is_false(m))
			kept += retention / interval + 1;
		json_array_append_new(rules, json_pack(
			"{s:I,s:s,s:I,s:I,s:b}", "ruleID", id,
			"units", pit_units[k].name, "interval", interval,
			"retentionDuration", retention,
			"enabled", !json_is_false(m)));
	}
	/* A policy without an enabled rule keeps only the first snapshot;
	 * who wants the replicator's policy unsets this one. */
	if (!enabled) {
		api_invalid_field(ctx, "pitPolicy",
				  "pitPolicy has no enabled rule: enable one, or give null to leave the server to the replicator's pit_policy");
		goto bad;
	}
	if (kept > PIT_MAX_KEPT) {
		api_invalid_field(ctx, "pitPolicy",
				  "pitPolicy keeps up to %" JSON_INTEGER_FORMAT " snapshots, more than %d: reading the oldest goes through every later one; take them less often or keep them for less time",
				  kept, PIT_MAX_KEPT);
		goto bad;
	}
	*out = rules;
	return 0;
bad:
	json_decref(rules);
	return -1;
}

/* A pitPolicy member of IN, if any, checked and stored into DOC. */
static int apply_pit_policy(struct api_ctx *ctx, json_t *in, json_t *doc)
{
	json_t *v = json_object_get(in, "pitPolicy"), *pit;

	if (!v)
		return 0;
	if (check_pit_policy(ctx, v, &pit))
		return -1;
	store_pit(doc, pit);
	return 0;
}

/*
 * Check the settings IN gives and copy them into DOC; with REQUIRED,
 * every setting but ebsEncryptionKeyArn must be given (the Create
 * request's list).  Then check that the result is consistent: a CUSTOM
 * encryption needs its key, a DEFAULT one takes none.
 */
static int apply_settings(struct api_ctx *ctx, json_t *in, json_t *doc,
			  bool required)
{
	const char *enc;
	size_t i;

	for (i = 0; i < N_SETTINGS; i++) {
		const struct member *m = &settings[i];
		json_t *v = member_of(in, m->key);

		if (!v) {
			if (required && strcmp(m->key, "ebsEncryptionKeyArn"))
				return api_invalid_field(ctx, m->key,
							 "%s is required",
							 m->key);
			continue;
		}
		if (check_member(ctx, m, v, m->key))
			return -1;
		json_object_set_new(doc, m->key, json_deep_copy(v));
	}
	enc = ss_str(doc, "ebsEncryption");
	if (!strcmp(enc, "CUSTOM") && !*ss_str(doc, "ebsEncryptionKeyArn"))
		return api_invalid_field(ctx, "ebsEncryptionKeyArn",
					 "ebsEncryptionKeyArn is required when ebsEncryption is CUSTOM");
	if (strcmp(enc, "CUSTOM")) {
		if (member_of(in, "ebsEncryptionKeyArn"))
			return api_invalid_field(ctx, "ebsEncryptionKeyArn",
						 "ebsEncryptionKeyArn is only allowed when ebsEncryption is CUSTOM");
		json_object_del(doc, "ebsEncryptionKeyArn");
	}
	return 0;
}

/* ^PREFIX[0-9a-zA-Z]{17}$: the model's pattern of MGN's own IDs. */
static int check_own_id(struct api_ctx *ctx, json_t *v, const char *name,
			const char *prefix)
{
	const char *s;
	size_t n = strlen(prefix), i;

	if (!json_is_string(v))
		return api_invalid_field(ctx, name, "%s must be a string",
					 name);
	s = json_string_value(v);
	if (json_string_length(v) != n + 17 || strncmp(s, prefix, n))
		goto bad;
	for (i = n; i < n + 17; i++)
		if (!strchr("0123456789abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", s[i]))
			goto bad;
	return 0;
bad:
	return api_invalid_field(ctx, name,
				 "%s: '%.64s' does not match ^%s[0-9a-zA-Z]{17}$",
				 name, s, prefix);
}

/* A required ID member of the request, checked against its pattern. */
static const char *get_own_id(struct api_ctx *ctx, json_t *in,
			      const char *key, const char *prefix)
{
	json_t *v = member_of(in, key);

	if (!v) {
		api_invalid_field(ctx, key, "%s is required", key);
		return NULL;
	}
	if (check_own_id(ctx, v, key, prefix))
		return NULL;
	return json_string_value(v);
}

/* ------------------------------------------------------------------ */
/* Storage */

static json_t *load_doc(struct api_ctx *ctx, const char *sql, const char *id)
{
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	json_t *doc = NULL;
	int rc;

	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return NULL;
	}
	if (id)
		store_bind_text(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		doc = store_column_json(s, 0);
	else if (rc != SQLITE_DONE)
		api_error(ctx, API_INTERNAL,
			  "cannot read replication settings: %s",
			  sqlite3_errmsg(store_db(ctx->st)));
	sqlite3_reset(s);
	return doc;
}

static int save_doc(struct api_ctx *ctx, const char *sql, const char *id,
		    json_t *doc)
{
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	if (doc)
		store_bind_json(s, 2, doc);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL,
				 "cannot write replication settings of %s: %s",
				 id, sqlite3_errmsg(store_db(ctx->st)));
	return 0;
}

static json_t *tpl_load(struct api_ctx *ctx, const char *id)
{
	static const char sql[] = "SELECT doc FROM repl_templates WHERE id = ?";

	return load_doc(ctx, sql, id);
}

bool repl_template_exists(struct api_ctx *ctx, const char *template_id)
{
	json_t *doc = tpl_load(ctx, template_id);

	json_decref(doc);
	return doc != NULL;
}

/* The oldest template, the one new source servers start from. */
static json_t *tpl_first(struct api_ctx *ctx)
{
	static const char sql[] =
		"SELECT doc FROM repl_templates ORDER BY seq LIMIT 1";

	return load_doc(ctx, sql, NULL);
}

static int tpl_save(struct api_ctx *ctx, json_t *doc)
{
	static const char sql[] =
		"INSERT INTO repl_templates(id, doc) VALUES(?1, ?2)"
		" ON CONFLICT(id) DO UPDATE SET doc = ?2";

	return save_doc(ctx, sql,
			ss_str(doc, "replicationConfigurationTemplateID"), doc);
}

static long long tpl_count(struct api_ctx *ctx)
{
	static const char sql[] = "SELECT count(*) FROM repl_templates";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	long long n = -1;

	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return -1;
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	else
		api_error(ctx, API_INTERNAL, "cannot count templates: %s",
			  sqlite3_errmsg(store_db(ctx->st)));
	sqlite3_reset(s);
	return n;
}

static json_t *cfg_load(struct api_ctx *ctx, const char *id)
{
	static const char sql[] =
		"SELECT doc FROM repl_configs WHERE source_server_id = ?";

	return load_doc(ctx, sql, id);
}

static int cfg_save(struct api_ctx *ctx, json_t *doc)
{
	static const char sql[] =
		"INSERT INTO repl_configs(source_server_id, doc) VALUES(?1, ?2)"
		" ON CONFLICT(source_server_id) DO UPDATE SET doc = ?2";

	return save_doc(ctx, sql, ss_str(doc, "sourceServerID"), doc);
}

/* ------------------------------------------------------------------ */
/* Documents */

/*
 * The policy ferry-control gave every template and configuration before
 * pitPolicy could be set (MGN's default, the same as the replicator's
 * default pit_policy): nobody chose it, so the migration unsets it.
 */
static json_t *old_default_pit_policy(void)
{
	return json_pack("[{s:i,s:s,s:i,s:i,s:b},{s:i,s:s,s:i,s:i,s:b},"
			 "{s:i,s:s,s:i,s:i,s:b}]",
			 "ruleID", 1, "units", "MINUTE", "interval", 10,
			 "retentionDuration", 60, "enabled", 1,
			 "ruleID", 2, "units", "HOUR", "interval", 1,
			 "retentionDuration", 24, "enabled", 1,
			 "ruleID", 3, "units", "DAY", "interval", 1,
			 "retentionDuration", 7, "enabled", 1);
}

/* The answer for a stored document: without our private members, with
 * pitPolicy when one is set. */
static json_t *public_doc(json_t *doc)
{
	json_t *out = json_deep_copy(doc), *pit = stored_pit(doc);

	json_object_del(out, "ferry");
	if (pit)
		json_object_set_new(out, "pitPolicy", json_deep_copy(pit));
	return out;
}

static json_t *tpl_public(struct api_ctx *ctx, json_t *doc)
{
	json_t *out = public_doc(doc);
	json_t *tags = tags_get(ctx, ss_str(doc, "arn"));

	json_object_set_new(out, "tags", tags ? tags : json_object());
	return out;
}

/* The disks the server reported, or NULL if it reported none. */
static json_t *server_disks(json_t *ss)
{
	json_t *d = json_object_get(json_object_get(ss, "sourceProperties"),
				    "disks");

	return json_is_array(d) ? d : NULL;
}

static json_t *find_disk(json_t *list, const char *name)
{
	size_t i;
	json_t *d;

	json_array_foreach(list, i, d)
		if (!strcmp(ss_str(d, "deviceName"), name))
			return d;
	return NULL;
}

/*
 * replicatedDisks for DISKS (objects with deviceName), keeping the
 * settings of disks OLD already has; the boot disk is the one DISKS
 * marks, else the one OLD marks, else the first.
 */
static json_t *disks_from(json_t *disks, json_t *old)
{
	json_t *out = json_array(), *d, *prev, *e;
	bool marked = false, old_marked = false, have_boot = false;
	size_t i;

	json_array_foreach(disks, i, d) {
		marked |= json_is_true(json_object_get(d, "isBootDisk"));
		prev = find_disk(old, ss_str(d, "deviceName"));
		old_marked |= prev &&
			      json_is_true(json_object_get(prev, "isBootDisk"));
	}
	json_array_foreach(disks, i, d) {
		const char *name = ss_str(d, "deviceName");
		bool boot;

		if (!*name || find_disk(out, name))
			continue;
		prev = find_disk(old, name);
		if (marked)
			boot = json_is_true(json_object_get(d, "isBootDisk"));
		else if (old_marked)
			boot = prev && json_is_true(json_object_get(
					       prev, "isBootDisk"));
		else
			boot = true;
		/* One boot disk: the first that qualifies. */
		boot = boot && !have_boot;
		have_boot |= boot;
		e = prev ? json_deep_copy(prev) :
			   json_pack("{s:s,s:s}", "deviceName", name,
				     "stagingDiskType", "AUTO");
		json_object_set_new(e, "isBootDisk", json_boolean(boot));
		json_array_append_new(out, e);
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* Helpers for the other groups */

int repl_default_template(struct api_ctx *ctx)
{
	char id[MODEL_ID_MAX], arn[MODEL_ARN_MAX];
	long long n = tpl_count(ctx);
	json_t *doc;
	int rc;

	if (n < 0)
		return -1;
	if (n > 0)
		return 0;
	model_new_id("rct-", id);
	model_arn(ctx, TPL_ARN_TYPE, id, arn);
	/* No subnet or security groups: ferry's staging area is its
	 * registered replicators, not an EC2 subnet. */
	doc = json_pack("{s:s,s:s,s:b,s:i,s:b,s:s,s:s,s:s,s:s,s:[],s:{},"
			"s:b}",
			"replicationConfigurationTemplateID", id,
			"arn", arn,
			"associateDefaultSecurityGroup", 1,
			"bandwidthThrottling", 0,
			"createPublicIP", 0,
			"dataPlaneRouting", "PRIVATE_IP",
			"defaultLargeStagingDiskType", "GP3",
			"ebsEncryption", "DEFAULT",
			"replicationServerInstanceType", "t3.small",
			"replicationServersSecurityGroupsIDs",
			"stagingAreaTags",
			"useDedicatedReplicationServer", 0);
	if (!doc)
		return api_error(ctx, API_INTERNAL, "out of memory");
	rc = tpl_save(ctx, doc);
	json_decref(doc);
	return rc;
}

int repl_config_create(struct api_ctx *ctx, const char *source_server_id,
		       json_t *disks)
{
	json_t *ss = ss_load(ctx, source_server_id);
	json_t *doc, *tpl = NULL, *list, *pit;
	size_t i;
	int rc = -1;

	if (ctx->err != API_OK)
		goto out;
	if (!disks)
		disks = server_disks(ss);
	doc = cfg_load(ctx, source_server_id);
	if (ctx->err != API_OK)
		goto out;
	if (!doc) {
		if (repl_default_template(ctx))
			goto out;
		tpl = tpl_first(ctx);
		if (!tpl) {
			api_error(ctx, API_INTERNAL,
				  "no replication configuration template");
			goto out;
		}
		doc = json_object();
		for (i = 0; i < N_SETTINGS; i++) {
			json_t *v = json_object_get(tpl, settings[i].key);

			if (v)
				json_object_set_new(doc, settings[i].key,
						    json_deep_copy(v));
		}
		/* The template's policy if one is set, else none. */
		pit = stored_pit(tpl);
		if (pit)
			store_pit(doc, json_deep_copy(pit));
		json_object_set_new(doc, "name", json_string(ss_str(
			ss, "sourceProperties.identificationHints.hostname")));
		json_object_set_new(doc, "sourceServerID",
				    json_string(source_server_id));
	}
	/* Without a disk list (none reported yet) keep what there is. */
	if (disks || !json_object_get(doc, "replicatedDisks")) {
		list = disks_from(disks,
				  json_object_get(doc, "replicatedDisks"));
		json_object_set_new(doc, "replicatedDisks", list);
	}
	rc = cfg_save(ctx, doc);
	json_decref(doc);
out:
	json_decref(tpl);
	json_decref(ss);
	return rc;
}

json_t *repl_config_get(struct api_ctx *ctx, const char *source_server_id)
{
	json_t *doc = cfg_load(ctx, source_server_id), *ss, *pit;

	if (!doc && ctx->err == API_OK) {
		ss = ss_load(ctx, source_server_id);
		if (!ss)
			return NULL;
		json_decref(ss);
		if (repl_config_create(ctx, source_server_id, NULL))
			return NULL;
		doc = cfg_load(ctx, source_server_id);
	}
	if (!doc)
		return NULL;
	pit = stored_pit(doc);
	if (pit)
		json_object_set_new(doc, "pitPolicy", json_deep_copy(pit));
	json_object_del(doc, "ferry");
	return doc;
}

int repl_config_delete(struct api_ctx *ctx, const char *source_server_id)
{
	static const char sql[] =
		"DELETE FROM repl_configs WHERE source_server_id = ?";

	return save_doc(ctx, sql, source_server_id, NULL);
}

/* ------------------------------------------------------------------ */
/* Templates */

static int op_create_template(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"associateDefaultSecurityGroup", "bandwidthThrottling",
		"createPublicIP", "dataPlaneRouting",
		"defaultLargeStagingDiskType", "ebsEncryption",
		"ebsEncryptionKeyArn", "replicationServerInstanceType",
		"replicationServersSecurityGroupsIDs", "stagingAreaSubnetId",
		"stagingAreaTags", "tags", "useDedicatedReplicationServer",
		"pitPolicy", /* ferry extension */
		NULL
	};
	char id[MODEL_ID_MAX], arn[MODEL_ARN_MAX];
	json_t *doc, *tags = member_of(in, "tags");
	int rc = -1;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known))
		return -1;
	if (tags && model_check_tags(ctx, tags, "tags"))
		return -1;
	model_new_id("rct-", id);
	model_arn(ctx, TPL_ARN_TYPE, id, arn);
	doc = json_pack("{s:s,s:s}",
			"replicationConfigurationTemplateID", id, "arn", arn);
	if (apply_settings(ctx, in, doc, true) ||
	    apply_pit_policy(ctx, in, doc) || tpl_save(ctx, doc))
		goto out;
	if (tags && json_object_size(tags) && tags_set(ctx, arn, tags))
		goto out;
	*out = tpl_public(ctx, doc);
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

static bool in_list(json_t *ids, const char *id)
{
	size_t i;
	json_t *v;

	json_array_foreach(ids, i, v)
		if (!strcmp(json_string_value(v), id))
			return true;
	return false;
}

/*
 * Pages follow creation order; nextToken names the seq of the last
 * template answered, so templates deleted or created between pages
 * neither repeat nor shift the rest.
 */
static int op_describe_templates(struct api_ctx *ctx, json_t *in,
				 json_t **out)
{
	static const char *const known[] = {
		"maxResults", "nextToken",
		"replicationConfigurationTemplateIDs", NULL
	};
	static const char sql[] =
		"SELECT seq, id, doc FROM repl_templates WHERE seq > ?"
		" ORDER BY seq";
	long long max, after, last = 0;
	json_t *ids = NULL, *v, *items;
	sqlite3_stmt *s;
	size_t i;
	int rc;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known) ||
	    paging_read(ctx, in, PAGE_KIND, &max, &after) ||
	    model_get_array(ctx, in, "replicationConfigurationTemplateIDs",
			    false, 200, &ids))
		return -1;
	json_array_foreach(ids, i, v)
		if (check_own_id(ctx, v, "replicationConfigurationTemplateIDs",
				 "rct-"))
			return -1;
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	sqlite3_bind_int64(s, 1, after);
	items = json_array();
	*out = json_pack("{s:o}", "items", items);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 1);
		json_t *doc;

		if (ids && !in_list(ids, id))
			continue;
		if ((long long)json_array_size(items) == max) {
			/* One more matches: the caller has another page. */
			paging_set_token(ctx, *out, PAGE_KIND, last);
			break;
		}
		doc = store_column_json(s, 2);
		if (!doc)
			continue;
		last = sqlite3_column_int64(s, 0);
		json_array_append_new(items, tpl_public(ctx, doc));
		json_decref(doc);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return api_error(ctx, API_INTERNAL, "cannot list templates: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	return ctx->err == API_OK ? 0 : -1;
}

static json_t *tpl_require(struct api_ctx *ctx, json_t *in)
{
	const char *id = get_own_id(ctx, in,
				    "replicationConfigurationTemplateID",
				    "rct-");
	json_t *doc;

	if (!id)
		return NULL;
	doc = tpl_load(ctx, id);
	if (!doc && ctx->err == API_OK)
		api_not_found(ctx, TPL_TYPE, id);
	return doc;
}

/* Only the members given change; templates do not touch the
 * configurations already made from them (as in MGN). */
static int op_update_template(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"arn", "associateDefaultSecurityGroup", "bandwidthThrottling",
		"createPublicIP", "dataPlaneRouting",
		"defaultLargeStagingDiskType", "ebsEncryption",
		"ebsEncryptionKeyArn", "replicationConfigurationTemplateID",
		"replicationServerInstanceType",
		"replicationServersSecurityGroupsIDs", "stagingAreaSubnetId",
		"stagingAreaTags", "useDedicatedReplicationServer",
		"pitPolicy", /* ferry extension */
		NULL
	};
	json_t *doc, *arn;
	int rc = -1;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known))
		return -1;
	doc = tpl_require(ctx, in);
	if (!doc)
		return -1;
	arn = member_of(in, "arn");
	if (arn) {
		if (check_str(ctx, arn, "arn", 20, 2048))
			goto out;
		if (strcmp(json_string_value(arn), ss_str(doc, "arn"))) {
			api_invalid_field(ctx, "arn",
					  "arn is not the ARN of template %s",
					  ss_str(doc,
						 "replicationConfigurationTemplateID"));
			goto out;
		}
	}
	if (apply_settings(ctx, in, doc, false) ||
	    apply_pit_policy(ctx, in, doc) || tpl_save(ctx, doc))
		goto out;
	*out = tpl_public(ctx, doc);
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/*
 * New source servers start from the oldest template, so one template
 * must always remain: deleting the last one is a ConflictException.
 */
static int op_delete_template(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"replicationConfigurationTemplateID", NULL
	};
	static const char sql[] = "DELETE FROM repl_templates WHERE id = ?";
	json_t *doc;
	char id[MODEL_ID_MAX];
	long long n;
	int rc = -1;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known))
		return -1;
	doc = tpl_require(ctx, in);
	if (!doc)
		return -1;
	snprintf(id, sizeof(id), "%s",
		 ss_str(doc, "replicationConfigurationTemplateID"));
	n = tpl_count(ctx);
	if (n < 0)
		goto out;
	if (n == 1) {
		api_error(ctx, API_CONFLICT,
			  "Replication configuration template %s is the last one; new source servers need a template",
			  id);
		api_error_field(ctx, "resourceId", json_string(id));
		api_error_field(ctx, "resourceType", json_string(TPL_TYPE));
		goto out;
	}
	if (save_doc(ctx, sql, id, NULL) ||
	    tags_delete_all(ctx, ss_str(doc, "arn")))
		goto out;
	*out = NULL;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Configurations */

/* The source server named by the request, checked; NULL on error. */
static json_t *server_require(struct api_ctx *ctx, json_t *in)
{
	const char *id = get_own_id(ctx, in, "sourceServerID", "s-");

	return id ? ss_require(ctx, id) : NULL;
}

static int op_get_config(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", NULL };
	json_t *ss, *doc;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known))
		return -1;
	ss = server_require(ctx, in);
	if (!ss)
		return -1;
	doc = repl_config_get(ctx, ss_str(ss, "sourceServerID"));
	json_decref(ss);
	if (!doc && ctx->err == API_OK)
		return api_error(ctx, API_INTERNAL, "configuration lost");
	if (!doc)
		return -1;
	*out = doc; /* with pitPolicy only when one is set */
	return 0;
}

static const struct member disk_members[] = {
	{ "deviceName", K_STR, NULL, 0, 256 },
	{ "iops", K_LONG, NULL, 0, LLONG_MAX },
	{ "isBootDisk", K_BOOL, NULL, 0, 0 },
	{ "stagingDiskType", K_ENUM, disk_type_enum, 0, 0 },
	{ "throughput", K_LONG, NULL, 0, LLONG_MAX },
};
#define N_DISK_MEMBERS (sizeof(disk_members) / sizeof(disk_members[0]))

/*
 * Apply the request's replicatedDisks to the configuration's list LIST.
 * Each entry names one of the server's disks (NAMES) and changes only
 * the members it gives; disks it does not name keep their settings.
 */
static int apply_disks(struct api_ctx *ctx, json_t *req, json_t *names,
		       json_t *list, const char *ssid)
{
	char name[96];
	const char *key;
	json_t *d, *v, *e;
	size_t i, j, boots = 0;

	if (!json_is_array(req))
		return api_invalid_field(ctx, "replicatedDisks",
					 "replicatedDisks must be a list");
	if (json_array_size(req) > 60)
		return api_invalid_field(ctx, "replicatedDisks",
					 "replicatedDisks must have at most 60 items");
	json_array_foreach(req, i, d) {
		const char *dev;

		snprintf(name, sizeof(name), "replicatedDisks[%zu]", i);
		if (!json_is_object(d))
			return api_invalid_field(ctx, name,
						 "%s must be an object", name);
		json_object_foreach(d, key, v) {
			for (j = 0; j < N_DISK_MEMBERS; j++)
				if (!strcmp(key, disk_members[j].key))
					break;
			if (j == N_DISK_MEMBERS) {
				snprintf(name, sizeof(name),
					 "replicatedDisks[%zu].%.32s", i, key);
				return api_invalid_field(ctx, name,
							 "Unknown member '%.64s'",
							 key);
			}
			snprintf(name, sizeof(name), "replicatedDisks[%zu].%s",
				 i, key);
			if (!json_is_null(v) &&
			    check_member(ctx, &disk_members[j], v, name))
				return -1;
		}
		snprintf(name, sizeof(name), "replicatedDisks[%zu].deviceName",
			 i);
		dev = ss_str(d, "deviceName");
		if (!*dev)
			return api_invalid_field(ctx, name,
						 "%s is required", name);
		if (!find_disk(names, dev))
			return api_invalid_field(ctx, name,
						 "Source server %s has no disk '%.64s'",
						 ssid, dev);
		for (j = 0; j < i; j++)
			if (!strcmp(ss_str(json_array_get(req, j),
					   "deviceName"), dev))
				return api_invalid_field(ctx, name,
							 "Disk '%.64s' is given twice",
							 dev);
		e = find_disk(list, dev);
		if (!e) {
			/* A disk the agent reported after the list was made. */
			e = json_pack("{s:s,s:b,s:s}", "deviceName", dev,
				      "isBootDisk", 0, "stagingDiskType",
				      "AUTO");
			json_array_append_new(list, e);
		}
		json_object_foreach(d, key, v)
			if (!json_is_null(v))
				json_object_set_new(e, key, json_deep_copy(v));
	}
	json_array_foreach(list, i, e)
		boots += json_is_true(json_object_get(e, "isBootDisk"));
	if (boots > 1)
		return api_invalid_field(ctx, "replicatedDisks",
					 "Only one disk can be the boot disk");
	return 0;
}

/*
 * MGN refuses to change the settings of a server that no longer
 * replicates: archived, or disconnected from the service.
 */
static int server_changeable(struct api_ctx *ctx, json_t *ss)
{
	const char *id = ss_str(ss, "sourceServerID");
	const char *why = NULL;

	if (json_is_true(json_object_get(ss, "isArchived")))
		why = "is archived";
	else if (!strcmp(ss_str(ss, "lifeCycle.state"), "DISCONNECTED"))
		why = "is disconnected from the service";
	else if (!strcmp(ss_str(ss, "dataReplicationInfo.dataReplicationState"),
			 "DISCONNECTED"))
		why = "is disconnected from the service";
	if (!why)
		return 0;
	api_error(ctx, API_CONFLICT, "Source server %s %s", id, why);
	api_error_field(ctx, "resourceId", json_string(id));
	api_error_field(ctx, "resourceType", json_string("SOURCE_SERVER"));
	return -1;
}

static int op_update_config(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"associateDefaultSecurityGroup", "bandwidthThrottling",
		"createPublicIP", "dataPlaneRouting",
		"defaultLargeStagingDiskType", "ebsEncryption",
		"ebsEncryptionKeyArn", "name", "replicatedDisks",
		"replicationServerInstanceType",
		"replicationServersSecurityGroupsIDs", "sourceServerID",
		"stagingAreaSubnetId", "stagingAreaTags",
		"useDedicatedReplicationServer",
		"pitPolicy", /* ferry extension */
		NULL
	};
	json_t *ss, *doc = NULL, *v, *names;
	const char *id;
	int rc = -1;

	if (api_require_initialized(ctx) || model_only_keys(ctx, in, known))
		return -1;
	ss = server_require(ctx, in);
	if (!ss)
		return -1;
	id = ss_str(ss, "sourceServerID");
	if (server_changeable(ctx, ss))
		goto out;
	doc = repl_config_get(ctx, id);
	if (!doc)
		goto out;
	/* repl_config_get() lifted the policy out of our private member. */
	v = json_object_get(doc, "pitPolicy");
	if (v)
		store_pit(doc, json_incref(v));
	json_object_del(doc, "pitPolicy");
	v = member_of(in, "name");
	if (v) {
		if (check_str(ctx, v, "name", 0, 128))
			goto out;
		json_object_set(doc, "name", v);
	}
	if (apply_settings(ctx, in, doc, false) ||
	    apply_pit_policy(ctx, in, doc))
		goto out;
	v = member_of(in, "replicatedDisks");
	if (v) {
		names = server_disks(ss);
		if (!names)
			names = json_object_get(doc, "replicatedDisks");
		if (apply_disks(ctx, v, names,
				json_object_get(doc, "replicatedDisks"), id))
			goto out;
	}
	if (cfg_save(ctx, doc))
		goto out;
	*out = public_doc(doc);
	rc = 0;
out:
	json_decref(doc);
	json_decref(ss);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Migration */

#define META_PIT_EXPLICIT "repl_pit_policy_explicit"

/* Unset the old implicit policy in the documents of one table. */
static int unset_old_default(struct store *st, const char *select,
			     const char *update, long long *n, char *err,
			     size_t errlen)
{
	sqlite3_stmt *s = store_prepare(st, select), *u;
	json_t *def = old_default_pit_policy(), *doc, *found = json_array();
	size_t i;
	int rc;

	if (!s || !def || !found)
		goto fail;
	/* Collect first: the cached statements must not interleave. */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		doc = store_column_json(s, 1);
		if (json_equal(json_object_get(json_object_get(doc, "ferry"),
					       "pitPolicy"), def) ||
		    json_is_null(json_object_get(json_object_get(doc, "ferry"),
						 "pitPolicy"))) {
			store_pit(doc, NULL);
			json_array_append_new(found, json_pack(
				"[s,o]", (const char *)sqlite3_column_text(s, 0),
				doc));
		} else {
			json_decref(doc);
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		goto fail;
	json_array_foreach(found, i, doc) {
		u = store_prepare(st, update);
		if (!u)
			goto fail;
		store_bind_text(u, 1, json_string_value(json_array_get(doc,
								       0)));
		store_bind_json(u, 2, json_array_get(doc, 1));
		rc = sqlite3_step(u);
		sqlite3_reset(u);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	*n += (long long)json_array_size(found);
	json_decref(def);
	json_decref(found);
	return 0;
fail:
	snprintf(err, errlen,
		 "replication settings: cannot unset the old default pitPolicy: %s (is control.db writable and intact?)",
		 sqlite3_errmsg(store_db(st)));
	json_decref(def);
	json_decref(found);
	return -1;
}

/*
 * Before pitPolicy could be set, every template and configuration got
 * the old default, which would override the replicator's pit_policy:
 * once, unset it where it is still exactly that default (nobody could
 * have chosen it through the API).  After this, a policy equal to the
 * default is an administrator's choice and is kept.
 */
static int repl_migrate(struct store *st, char *err, size_t errlen)
{
	char *mark = store_meta_get(st, META_PIT_EXPLICIT);
	long long n = 0;

	if (mark) {
		free(mark);
		return 0;
	}
	if (unset_old_default(st, "SELECT id, doc FROM repl_templates",
			      "UPDATE repl_templates SET doc = ?2"
			      " WHERE id = ?1", &n, err, errlen) ||
	    unset_old_default(st,
			      "SELECT source_server_id, doc FROM repl_configs",
			      "UPDATE repl_configs SET doc = ?2"
			      " WHERE source_server_id = ?1", &n, err,
			      errlen))
		return -1;
	if (store_meta_set(st, META_PIT_EXPLICIT, "1")) {
		snprintf(err, errlen,
			 "replication settings: cannot record the pitPolicy migration: %s",
			 sqlite3_errmsg(store_db(st)));
		return -1;
	}
	if (n)
		log_info("replication settings: the old default pitPolicy of %lld templates and configurations is now unset (the replicator's pit_policy applies)",
			 n);
	return 0;
}

static const struct api_op repl_ops[] = {
	{ "CreateReplicationConfigurationTemplate", "POST",
	  "/CreateReplicationConfigurationTemplate", ROLE_ADMIN, 201,
	  op_create_template, false },
	{ "DescribeReplicationConfigurationTemplates", "POST",
	  "/DescribeReplicationConfigurationTemplates", ROLE_ADMIN, 200,
	  op_describe_templates, false },
	{ "UpdateReplicationConfigurationTemplate", "POST",
	  "/UpdateReplicationConfigurationTemplate", ROLE_ADMIN, 200,
	  op_update_template, false },
	{ "DeleteReplicationConfigurationTemplate", "POST",
	  "/DeleteReplicationConfigurationTemplate", ROLE_ADMIN, 204,
	  op_delete_template, false },
	{ "GetReplicationConfiguration", "POST",
	  "/GetReplicationConfiguration", ROLE_ADMIN, 200, op_get_config,
	  false },
	{ "UpdateReplicationConfiguration", "POST",
	  "/UpdateReplicationConfiguration", ROLE_ADMIN, 200,
	  op_update_config, false },
};

const struct api_module api_module_replication = {
	.name = "replication",
	.schema_sql = repl_schema_sql,
	.ops = repl_ops,
	.n_ops = sizeof(repl_ops) / sizeof(repl_ops[0]),
	.migrate = repl_migrate,
	.periodic = NULL,
};
