// SPDX-License-Identifier: GPL-2.0
/* keys.c - access keys and the `ferry-control keys` command. */
#include "keys.h"

#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "model.h"
#include "store.h"

const char keys_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS access_keys ("
	" id TEXT PRIMARY KEY,"
	" secret TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" role TEXT NOT NULL,"
	" session_token TEXT NOT NULL DEFAULT '',"
	" expires INTEGER NOT NULL DEFAULT 0,"
	" source_server_id TEXT NOT NULL DEFAULT '',"
	" replicator_id TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" active INTEGER NOT NULL DEFAULT 1);"
	"CREATE INDEX IF NOT EXISTS access_keys_server"
	" ON access_keys(source_server_id);";

static const struct {
	unsigned role;
	const char *name;
} roles[] = {
	{ ROLE_ADMIN, "admin" },
	{ ROLE_INSTALLER, "installer" },
	{ ROLE_AGENT, "agent" },
	{ ROLE_REPLICATOR, "replicator" },
};

unsigned keys_role_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcmp(name, roles[i].name))
			return roles[i].role;
	return 0;
}

const char *keys_role_name(unsigned role)
{
	size_t i;

	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (roles[i].role == role)
			return roles[i].name;
	return "?";
}

static void random_bytes(void *buf, size_t len)
{
	while (getrandom(buf, len, 0) != (ssize_t)len)
		;
}

/* AWS-looking key IDs: PREFIX and 16 characters of base32. */
static void new_key_id(const char *prefix, char out[32])
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	unsigned char rnd[16];
	size_t i, n = strlen(prefix);

	random_bytes(rnd, sizeof(rnd));
	memcpy(out, prefix, n);
	for (i = 0; i < 16; i++)
		out[n + i] = b32[rnd[i] & 31];
	out[n + 16] = '\0';
}

/* Base64 of NBYTES random bytes (OpenSSL's encoder). */
static void new_secret(size_t nbytes, char *out, size_t outlen)
{
	unsigned char rnd[64];

	if (nbytes > sizeof(rnd) || outlen < 4 * ((nbytes + 2) / 3) + 1)
		abort();
	random_bytes(rnd, nbytes);
	EVP_EncodeBlock((unsigned char *)out, rnd, (int)nbytes);
}

static void copy(char *dst, size_t len, const unsigned char *src)
{
	snprintf(dst, len, "%s", src ? (const char *)src : "");
}

int keys_lookup(struct store *st, const char *access_key_id,
		struct key_record *out)
{
	static const char sql[] =
		"SELECT id, secret, name, role, session_token, expires,"
		" source_server_id, replicator_id, active"
		" FROM access_keys WHERE id = ?";
	sqlite3_stmt *s = store_prepare(st, sql);
	int rc;

	if (!s)
		return -1;
	store_bind_text(s, 1, access_key_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		copy(out->access_key_id, sizeof(out->access_key_id),
		     sqlite3_column_text(s, 0));
		copy(out->secret, sizeof(out->secret), sqlite3_column_text(s, 1));
		copy(out->name, sizeof(out->name), sqlite3_column_text(s, 2));
		out->role = keys_role_parse(
			(const char *)sqlite3_column_text(s, 3));
		copy(out->session_token, sizeof(out->session_token),
		     sqlite3_column_text(s, 4));
		out->expires = sqlite3_column_int64(s, 5);
		copy(out->source_server_id, sizeof(out->source_server_id),
		     sqlite3_column_text(s, 6));
		copy(out->replicator_id, sizeof(out->replicator_id),
		     sqlite3_column_text(s, 7));
		out->active = sqlite3_column_int(s, 8);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? 1 : -1;
}

static int insert_key(struct store *st, const struct key_record *k,
		      time_t now)
{
	static const char sql[] =
		"INSERT INTO access_keys(id, secret, name, role, session_token,"
		" expires, source_server_id, replicator_id, created)"
		" VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *s = store_prepare(st, sql);
	int rc;

	if (!s)
		return -1;
	store_bind_text(s, 1, k->access_key_id);
	store_bind_text(s, 2, k->secret);
	store_bind_text(s, 3, k->name);
	store_bind_text(s, 4, keys_role_name(k->role));
	store_bind_text(s, 5, k->session_token);
	sqlite3_bind_int64(s, 6, k->expires);
	store_bind_text(s, 7, k->source_server_id);
	store_bind_text(s, 8, k->replicator_id);
	sqlite3_bind_int64(s, 9, now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int keys_create(struct store *st, const char *name, unsigned role,
		time_t now, struct key_record *out)
{
	memset(out, 0, sizeof(*out));
	new_key_id("AKIA", out->access_key_id);
	new_secret(30, out->secret, sizeof(out->secret));
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->role = role;
	out->active = true;
	return insert_key(st, out, now);
}

json_t *keys_issue_agent(struct store *st, const char *source_server_id,
			 int ttl, time_t now)
{
	struct key_record k = { .role = ROLE_AGENT, .active = true };
	char when[32];

	new_key_id("ASIA", k.access_key_id);
	new_secret(30, k.secret, sizeof(k.secret));
	new_secret(64, k.session_token, sizeof(k.session_token));
	snprintf(k.name, sizeof(k.name), "agent %s", source_server_id);
	snprintf(k.source_server_id, sizeof(k.source_server_id), "%s",
		 source_server_id);
	k.expires = now + ttl;
	/* Drop this server's credentials that have expired: an agent
	 * renewing every few hours would otherwise pile them up. */
	{
		static const char sql[] =
			"DELETE FROM access_keys WHERE source_server_id = ?"
			" AND expires > 0 AND expires < ?";
		sqlite3_stmt *s = store_prepare(st, sql);

		if (!s)
			return NULL;
		store_bind_text(s, 1, source_server_id);
		sqlite3_bind_int64(s, 2, now);
		sqlite3_step(s);
		sqlite3_reset(s);
	}
	if (insert_key(st, &k, now))
		return NULL;
	model_time(k.expires, when, sizeof(when));
	return json_pack("{s:s,s:s,s:s,s:s}", "accessKeyId", k.access_key_id,
			 "secretAccessKey", k.secret, "sessionToken",
			 k.session_token, "expiration", when);
}

int keys_bind_replicator(struct store *st, const char *access_key_id,
			 const char *replicator_id)
{
	static const char sql[] =
		"UPDATE access_keys SET replicator_id = ? WHERE id = ?";
	sqlite3_stmt *s = store_prepare(st, sql);
	int rc;

	if (!s)
		return -1;
	store_bind_text(s, 1, replicator_id);
	store_bind_text(s, 2, access_key_id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int keys_revoke_server(struct store *st, const char *source_server_id)
{
	static const char sql[] =
		"DELETE FROM access_keys WHERE source_server_id = ?";
	sqlite3_stmt *s = store_prepare(st, sql);
	int rc;

	if (!s)
		return -1;
	store_bind_text(s, 1, source_server_id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- the command line ---- */

static int keys_usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: ferry-control keys create --data-dir DIR --name NAME"
		" [--role admin|installer|replicator]\n"
		"       ferry-control keys list --data-dir DIR\n"
		"       ferry-control keys delete --data-dir DIR"
		" --access-key-id ID\n"
		"The secret of a new key is printed once, as JSON shaped like"
		" `aws iam create-access-key`.\n");
	return rc;
}

static int print_json(json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);

	json_decref(j);
	if (!text)
		return 1;
	puts(text);
	free(text);
	return 0;
}

static int cli_create(struct store *st, const char *name, const char *role)
{
	struct key_record k;
	unsigned r = keys_role_parse(role);
	char when[32];
	time_t now = time(NULL);

	if (!r || r == ROLE_AGENT) {
		fprintf(stderr,
			"ferry-control keys: unknown role '%s': use admin, installer or replicator\n",
			role);
		return 2;
	}
	if (!*name || strlen(name) > 63) {
		fprintf(stderr, "ferry-control keys: --name must be 1 to 63 characters\n");
		return 2;
	}
	if (store_begin(st) || keys_create(st, name, r, now, &k) ||
	    store_end(st, true)) {
		fprintf(stderr, "ferry-control keys: cannot store the new key\n");
		return 1;
	}
	model_time(now, when, sizeof(when));
	return print_json(json_pack(
		"{s:{s:s,s:s,s:s,s:s,s:s,s:s}}", "AccessKey", "UserName", name,
		"AccessKeyId", k.access_key_id, "Status", "Active",
		"SecretAccessKey", k.secret, "CreateDate", when, "Role",
		keys_role_name(r)));
}

static int cli_list(struct store *st)
{
	static const char sql[] =
		"SELECT id, name, role, created, expires, source_server_id"
		" FROM access_keys WHERE role != 'agent' ORDER BY created, id";
	json_t *list = json_array();
	sqlite3_stmt *s;
	char when[32];

	if (store_begin(st) || !(s = store_prepare(st, sql))) {
		json_decref(list);
		fprintf(stderr, "ferry-control keys: cannot read the keys\n");
		return 1;
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		model_time(sqlite3_column_int64(s, 3), when, sizeof(when));
		json_array_append_new(
			list,
			json_pack("{s:s,s:s,s:s,s:s,s:s}", "UserName",
				  sqlite3_column_text(s, 1), "AccessKeyId",
				  sqlite3_column_text(s, 0), "Status", "Active",
				  "CreateDate", when, "Role",
				  sqlite3_column_text(s, 2)));
	}
	sqlite3_reset(s);
	store_end(st, true);
	return print_json(json_pack("{s:o}", "AccessKeyMetadata", list));
}

static int cli_delete(struct store *st, const char *id)
{
	static const char sql[] = "DELETE FROM access_keys WHERE id = ?";
	sqlite3_stmt *s;
	int changed = 0;

	if (store_begin(st) || !(s = store_prepare(st, sql))) {
		fprintf(stderr, "ferry-control keys: cannot open the key store\n");
		return 1;
	}
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) == SQLITE_DONE)
		changed = sqlite3_changes(store_db(st));
	sqlite3_reset(s);
	store_end(st, true);
	if (!changed) {
		fprintf(stderr, "ferry-control keys: no access key %s\n", id);
		return 1;
	}
	return 0;
}

int keys_cli(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "name", required_argument, NULL, 'n' },
		{ "role", required_argument, NULL, 'r' },
		{ "access-key-id", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *dir = "/var/lib/ferry-control", *name = NULL;
	const char *role = "admin", *id = NULL, *verb;
	struct store *st;
	char err[512];
	int c, rc;

	if (argc < 2)
		return keys_usage(stderr, 2);
	verb = argv[1];
	if (!strcmp(verb, "-h") || !strcmp(verb, "--help"))
		return keys_usage(stdout, 0);
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': name = optarg; break;
		case 'r': role = optarg; break;
		case 'k': id = optarg; break;
		case 'h': return keys_usage(stdout, 0);
		default: return keys_usage(stderr, 2);
		}
	}
	if (strcmp(verb, "create") && strcmp(verb, "list") &&
	    strcmp(verb, "delete")) {
		fprintf(stderr, "ferry-control keys: unknown command '%s'\n", verb);
		return keys_usage(stderr, 2);
	}
	if (!strcmp(verb, "create") && !name) {
		fprintf(stderr, "ferry-control keys create: --name is required\n");
		return 2;
	}
	if (!strcmp(verb, "delete") && !id) {
		fprintf(stderr, "ferry-control keys delete: --access-key-id is required\n");
		return 2;
	}
	st = store_open(dir, err, sizeof(err));
	if (!st) {
		fprintf(stderr, "ferry-control keys: %s (is --data-dir right, and are you root?)\n",
			err);
		return 1;
	}
	/* A key printed once, or one deleted because it leaked, must not
	 * be undone by a power cut. */
	if (store_exec(st, "PRAGMA synchronous=FULL") < 0) {
		fprintf(stderr, "ferry-control keys: cannot make the database's commits durable\n");
		store_close(st);
		return 1;
	}
	if (!strcmp(verb, "create"))
		rc = cli_create(st, name, role);
	else if (!strcmp(verb, "list"))
		rc = cli_list(st);
	else
		rc = cli_delete(st, id);
	store_close(st);
	return rc;
}
