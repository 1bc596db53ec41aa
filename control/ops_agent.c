// SPDX-License-Identifier: GPL-2.0
/*
 * ops_agent.c - the operations ferry-agent calls: registration, its
 * credentials and data-plane certificate, runtime configuration, the
 * heartbeat, commands and source properties; and the AGENT_NOT_SEEN
 * sweep.  MGN's agent operation names, ferry's shapes (docs/api.md).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "agent_state.h"
#include "ca.h"
#include "config.h"
#include "keys.h"
#include "model.h"
#include "replication.h"
#include "source_server.h"
#include "store.h"
#include "tags.h"

#define TEXT_MAX 256		/* MGN's BoundedString */
#define RAW_ERROR_MAX 65536	/* MGN's LargeBoundedString */
#define MAX_CPUS 256		/* MGN's Cpus list */
#define MAX_NICS 32		/* MGN's NetworkInterfaces list */
#define MAX_IPS 64
#define MAX_DISKS 1000		/* MGN's Disks list */
#define MAX_BYTES (1LL << 62)	/* far above any disk or RAM */
#define CSR_MAX 16384
#define CERT_DAYS 90		/* the agent asks again well before */
#define MAX_COMMANDS 100	/* per GetAgentCommandForMgn answer */
#define MAX_ACKS 1000

/* ------------------------------------------------------------------ */
/* Validation of nested members, naming the field as "disks[2].bytes" */

static int bad(struct api_ctx *ctx, const char *field, const char *what)
{
	return api_invalid_field(ctx, field, "%s %s", field, what);
}

/* Printable text of 1..MAX bytes (UTF-8 allowed, control characters not:
 * these strings end up in logs and the console). */
static int get_text(struct api_ctx *ctx, json_t *obj, const char *key,
		    const char *field, bool required, size_t max,
		    const char **out)
{
	json_t *v = json_object_get(obj, key);
	const unsigned char *p;
	size_t len;

	if (!v || json_is_null(v))
		return required ? bad(ctx, field, "is required") : 0;
	if (!json_is_string(v))
		return bad(ctx, field, "must be a string");
	len = json_string_length(v);
	if (len < 1 || len > max) {
		return api_invalid_field(ctx, field,
					 "%s must be 1 to %zu characters long",
					 field, max);
	}
	for (p = (const unsigned char *)json_string_value(v); len--; p++)
		if (*p < 0x20 || *p == 0x7f)
			return bad(ctx, field,
				   "must not contain control characters");
	*out = json_string_value(v);
	return 0;
}

static int get_num(struct api_ctx *ctx, json_t *obj, const char *key,
		   const char *field, bool required, long long min,
		   long long max, long long *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return required ? bad(ctx, field, "is required") : 0;
	if (!json_is_integer(v))
		return bad(ctx, field, "must be an integer");
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return api_invalid_field(ctx, field,
					 "%s must be between %lld and %lld",
					 field, min, max);
	*out = json_integer_value(v);
	return 0;
}

static int only_keys(struct api_ctx *ctx, json_t *obj, const char *field,
		     const char *const *known)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(obj))
		return bad(ctx, field, "must be an object");
	json_object_foreach(obj, key, v) {
		for (i = 0; known[i]; i++)
			if (!strcmp(key, known[i]))
				break;
		if (!known[i])
			return api_invalid_field(ctx, field,
						 "%s: unknown member '%.64s'",
						 field, key);
	}
	return 0;
}

/* "aa:bb:cc:dd:ee:ff" in any case, ':' or '-' separated, into lower-case
 * colon form; false if it is not a 48-bit MAC address. */
static bool parse_mac(const char *s, char out[18])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	if (strlen(s) != 17)
		return false;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':' && s[i] != '-')
				return false;
			out[i] = ':';
		} else {
			if (!isxdigit((unsigned char)s[i]))
				return false;
			out[i] = hex[isdigit((unsigned char)s[i]) ?
				     s[i] - '0' :
				     tolower((unsigned char)s[i]) - 'a' + 10];
		}
	}
	out[17] = '\0';
	return true;
}

static bool valid_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
}

/* ------------------------------------------------------------------ */
/* Host facts (RegisterAgentForMgn, UpdateAgentSourcePropertiesForMgn) */

static json_t *read_cpus(struct api_ctx *ctx, json_t *list)
{
	static const char *const known[] = { "cores", "modelName", NULL };
	json_t *out = json_array(), *c;
	char field[64];
	size_t i;

	json_array_foreach(list, i, c) {
		long long cores = 0;
		const char *model = NULL;

		snprintf(field, sizeof(field), "cpus[%zu]", i);
		if (only_keys(ctx, c, field, known))
			goto fail;
		snprintf(field, sizeof(field), "cpus[%zu].cores", i);
		if (get_num(ctx, c, "cores", field, true, 1, 4096, &cores))
			goto fail;
		snprintf(field, sizeof(field), "cpus[%zu].modelName", i);
		if (get_text(ctx, c, "modelName", field, false, TEXT_MAX,
			     &model))
			goto fail;
		json_array_append_new(out, json_pack("{s:I}", "cores",
						     (json_int_t)cores));
		if (model)
			json_object_set_new(json_array_get(out, i),
					    "modelName", json_string(model));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static json_t *read_nics(struct api_ctx *ctx, json_t *list)
{
	static const char *const known[] = { "macAddress", "ips", "isPrimary",
					     NULL };
	json_t *out = json_array(), *n, *ip;
	char field[64], mac[18];
	int primaries = 0;
	size_t i, j;

	json_array_foreach(list, i, n) {
		json_t *ips = json_array(), *prim;
		const char *m = NULL;

		snprintf(field, sizeof(field), "networkInterfaces[%zu]", i);
		if (only_keys(ctx, n, field, known))
			goto fail_ips;
		snprintf(field, sizeof(field),
			 "networkInterfaces[%zu].macAddress", i);
		if (get_text(ctx, n, "macAddress", field, true, 17, &m))
			goto fail_ips;
		if (!parse_mac(m, mac)) {
			api_invalid_field(ctx, field,
				"%s: '%s' is not a MAC address (aa:bb:cc:dd:ee:ff)",
				field, m);
			goto fail_ips;
		}
		for (j = 0; j < i; j++) {
			if (!strcmp(mac, ss_str(json_array_get(out, j),
						"macAddress"))) {
				bad(ctx, field, "repeats another interface's");
				goto fail_ips;
			}
		}
		snprintf(field, sizeof(field), "networkInterfaces[%zu].ips",
			 i);
		json_array_foreach(json_object_get(n, "ips"), j, ip) {
			if (j >= MAX_IPS) {
				bad(ctx, field, "has more than 64 addresses");
				goto fail_ips;
			}
			if (!json_is_string(ip) ||
			    !valid_ip(json_string_value(ip))) {
				bad(ctx, field,
				    "must list IPv4 or IPv6 addresses");
				goto fail_ips;
			}
			json_array_append(ips, ip);
		}
		if (json_object_get(n, "ips") &&
		    !json_is_array(json_object_get(n, "ips"))) {
			bad(ctx, field, "must be a list");
			goto fail_ips;
		}
		prim = json_object_get(n, "isPrimary");
		snprintf(field, sizeof(field),
			 "networkInterfaces[%zu].isPrimary", i);
		if (prim && !json_is_boolean(prim)) {
			bad(ctx, field, "must be a boolean");
			goto fail_ips;
		}
		if (json_is_true(prim) && ++primaries > 1) {
			bad(ctx, field, "is set on more than one interface");
			goto fail_ips;
		}
		json_array_append_new(out, json_pack("{s:s,s:o,s:b}",
						     "macAddress", mac,
						     "ips", ips, "isPrimary",
						     json_is_true(prim)));
		continue;
fail_ips:
		json_decref(ips);
		goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* Disks as {"deviceName","bytes"} for the record; *CONFIG_DISKS gets the
 * same with "isBootDisk" for repl_config_create(). */
static json_t *read_disks(struct api_ctx *ctx, json_t *list,
			  json_t **config_disks)
{
	static const char *const known[] = { "deviceName", "bytes",
					     "isBootDisk", NULL };
	json_t *out = json_array(), *cfg = json_array(), *d;
	char field[64];
	int boots = 0;
	size_t i, j;

	json_array_foreach(list, i, d) {
		const char *name = NULL;
		long long bytes = 0;
		json_t *boot;

		snprintf(field, sizeof(field), "disks[%zu]", i);
		if (only_keys(ctx, d, field, known))
			goto fail;
		snprintf(field, sizeof(field), "disks[%zu].deviceName", i);
		if (get_text(ctx, d, "deviceName", field, true, TEXT_MAX,
			     &name))
			goto fail;
		for (j = 0; j < i; j++) {
			if (!strcmp(name, ss_str(json_array_get(out, j),
						 "deviceName"))) {
				bad(ctx, field, "repeats another disk's");
				goto fail;
			}
		}
		snprintf(field, sizeof(field), "disks[%zu].bytes", i);
		if (get_num(ctx, d, "bytes", field, true, 0, MAX_BYTES,
			    &bytes))
			goto fail;
		snprintf(field, sizeof(field), "disks[%zu].isBootDisk", i);
		boot = json_object_get(d, "isBootDisk");
		if (boot && !json_is_boolean(boot)) {
			bad(ctx, field, "must be a boolean");
			goto fail;
		}
		if (json_is_true(boot) && ++boots > 1) {
			bad(ctx, field, "is set on more than one disk");
			goto fail;
		}
		json_array_append_new(out, json_pack("{s:s,s:I}", "deviceName",
						     name, "bytes",
						     (json_int_t)bytes));
		json_array_append_new(cfg, json_pack("{s:s,s:I,s:b}",
						     "deviceName", name,
						     "bytes", (json_int_t)bytes,
						     "isBootDisk",
						     json_is_true(boot)));
	}
	*config_disks = cfg;
	return out;
fail:
	json_decref(out);
	json_decref(cfg);
	return NULL;
}

/*
 * The instance type MGN's right-sizing would suggest: the cheapest
 * general, compute or memory type (us-east-1 on-demand prices, USD per
 * hour, as a ranking only) with at least the source's vCPUs and RAM.
 */
static const char *recommend_type(long long vcpus, long long ram_bytes)
{
	static const struct {
		const char *name;
		int vcpus, gib;
		double price;
	} types[] = {
		{ "t3.micro", 2, 1, 0.0104 },	 { "t3.small", 2, 2, 0.0208 },
		{ "t3.medium", 2, 4, 0.0416 },	 { "t3.large", 2, 8, 0.0832 },
		{ "c5.large", 2, 4, 0.085 },	 { "m5.large", 2, 8, 0.096 },
		{ "r5.large", 2, 16, 0.126 },	 { "t3.xlarge", 4, 16, 0.1664 },
		{ "c5.xlarge", 4, 8, 0.17 },	 { "m5.xlarge", 4, 16, 0.192 },
		{ "r5.xlarge", 4, 32, 0.252 },	 { "t3.2xlarge", 8, 32, 0.3328 },
		{ "c5.2xlarge", 8, 16, 0.34 },	 { "m5.2xlarge", 8, 32, 0.384 },
		{ "r5.2xlarge", 8, 64, 0.504 },	 { "c5.4xlarge", 16, 32, 0.68 },
		{ "m5.4xlarge", 16, 64, 0.768 }, { "r5.4xlarge", 16, 128, 1.008 },
		{ "c5.9xlarge", 36, 72, 1.53 },	 { "m5.8xlarge", 32, 128, 1.536 },
		{ "r5.8xlarge", 32, 256, 2.016 }, { "m5.12xlarge", 48, 192, 2.304 },
		{ "c5.18xlarge", 72, 144, 3.06 }, { "r5.12xlarge", 48, 384, 3.024 },
		{ "m5.16xlarge", 64, 256, 3.072 }, { "r5.16xlarge", 64, 512, 4.032 },
		{ "m5.24xlarge", 96, 384, 4.608 }, { "r5.24xlarge", 96, 768, 6.048 },
	};
	long long gib = (ram_bytes + (1LL << 30) - 1) >> 30;
	const char *best = NULL;
	double best_price = 0;
	size_t i;

	if (vcpus <= 0 || ram_bytes <= 0)
		return NULL;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (types[i].vcpus < vcpus || types[i].gib < gib)
			continue;
		if (!best || types[i].price < best_price) {
			best = types[i].name;
			best_price = types[i].price;
		}
	}
	return best;
}

/*
 * Read the host facts of IN into PROPS (MGN's SourceProperties shape),
 * replacing the members present.  *CONFIG_DISKS (if IN has disks) gets
 * the disk list for repl_config_create(); NULL otherwise.
 */
static int read_facts(struct api_ctx *ctx, json_t *in, json_t *props,
		      bool registering, json_t **config_disks)
{
	json_t *hints = json_object_get(props, "identificationHints");
	const char *host = NULL, *fqdn = NULL, *os = NULL;
	json_t *v, *list;
	long long ram = -1;

	*config_disks = NULL;
	if (get_text(ctx, in, "hostname", "hostname", registering, TEXT_MAX,
		     &host) ||
	    get_text(ctx, in, "fqdn", "fqdn", false, TEXT_MAX, &fqdn) ||
	    get_num(ctx, in, "ramBytes", "ramBytes", false, 0, MAX_BYTES,
		    &ram))
		return -1;
	v = json_object_get(in, "os");
	if (v) {
		static const char *const known[] = { "fullString", NULL };

		if (only_keys(ctx, v, "os", known) ||
		    get_text(ctx, v, "fullString", "os.fullString", true,
			     TEXT_MAX, &os))
			return -1;
	}
	if (!json_is_object(hints)) {
		hints = json_object();
		json_object_set_new(props, "identificationHints", hints);
	}
	if (host)
		json_object_set_new(hints, "hostname", json_string(host));
	if (fqdn)
		json_object_set_new(hints, "fqdn", json_string(fqdn));
	if (ram >= 0)
		json_object_set_new(props, "ramBytes", json_integer(ram));
	if (os)
		json_object_set_new(props, "os",
				    json_pack("{s:s}", "fullString", os));

	if (model_get_array(ctx, in, "cpus", false, MAX_CPUS, &list))
		return -1;
	if (list) {
		json_t *cpus = read_cpus(ctx, list);

		if (!cpus)
			return -1;
		json_object_set_new(props, "cpus", cpus);
	}
	if (model_get_array(ctx, in, "networkInterfaces", false, MAX_NICS,
			    &list))
		return -1;
	if (list) {
		json_t *nics = read_nics(ctx, list);

		if (!nics)
			return -1;
		json_object_set_new(props, "networkInterfaces", nics);
	}
	if (model_get_array(ctx, in, "disks", registering, MAX_DISKS, &list))
		return -1;
	if (list) {
		json_t *disks = read_disks(ctx, list, config_disks);

		if (!disks)
			return -1;
		json_object_set_new(props, "disks", disks);
	}
	/* Right-size from whatever facts the record now holds. */
	{
		long long vcpus = 0;
		size_t i;
		const char *type;

		json_array_foreach(json_object_get(props, "cpus"), i, v)
			vcpus += json_integer_value(json_object_get(v,
								    "cores"));
		type = recommend_type(vcpus, json_integer_value(
					  json_object_get(props, "ramBytes")));
		if (type)
			json_object_set_new(props, "recommendedInstanceType",
					    json_string(type));
		else
			json_object_del(props, "recommendedInstanceType");
	}
	json_object_set_new(props, "lastUpdatedDateTime",
			    model_time_json(ctx->now));
	return 0;
}

/*
 * Make dataReplicationInfo.replicatedDisks follow sourceProperties.disks:
 * counters of disks still present are kept, new disks start at zero.
 */
static void sync_replicated_disks(json_t *doc)
{
	json_t *info = json_object_get(doc, "dataReplicationInfo");
	json_t *old = json_object_get(info, "replicatedDisks");
	json_t *out = json_array(), *d, *o;
	size_t i, j;

	json_array_foreach(json_object_get(json_object_get(doc,
							   "sourceProperties"),
					   "disks"), i, d) {
		const char *name = ss_str(d, "deviceName");
		json_t *rd = NULL;

		json_array_foreach(old, j, o) {
			if (!strcmp(ss_str(o, "deviceName"), name)) {
				rd = json_deep_copy(o);
				break;
			}
		}
		if (!rd)
			rd = json_pack("{s:s,s:i,s:i,s:i}", "deviceName", name,
				       "replicatedStorageBytes", 0,
				       "rescannedStorageBytes", 0,
				       "backloggedStorageBytes", 0);
		json_object_set(rd, "totalStorageBytes",
				json_object_get(d, "bytes"));
		json_array_append_new(out, rd);
	}
	ss_set(doc, "dataReplicationInfo.replicatedDisks", out);
}

/* A fresh dataReplicationInfo: replication (re)starts. */
static void restart_replication_info(json_t *doc, time_t now)
{
	json_t *lc = json_object_get(doc, "lifeCycle");

	ss_set(doc, "dataReplicationInfo",
	       json_pack("{s:s}", "dataReplicationState", "INITIATING"));
	init_steps(doc, INIT_WAIT, true, now);
	json_object_del(lc, "firstByteDateTime");
	json_object_del(lc, "elapsedReplicationDuration");
	sync_replicated_disks(doc);
}

/*
 * machine_key: a digest of the machine ID rather than the ID itself,
 * which systemd asks applications not to expose (machine-id(5)).
 */
static void machine_key(const char *machine_id, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	static const char salt[] = "ferry-control machine:";
	unsigned char md[32];
	unsigned int n = 0, i;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(c, salt, sizeof(salt) - 1) &&
	    EVP_DigestUpdate(c, machine_id, strlen(machine_id)))
		EVP_DigestFinal_ex(c, md, &n);
	EVP_MD_CTX_free(c);
	if (n != sizeof(md))	/* OpenSSL failing SHA-256 means no memory */
		memset(md, 0, sizeof(md));
	for (i = 0; i < sizeof(md); i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static int drop_commands(struct api_ctx *ctx, const char *id)
{
	static const char sql[] =
		"DELETE FROM commands WHERE source_server_id = ?";
	sqlite3_stmt *s = store_prepare(ctx->st, sql);
	int rc;

	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 :
	       api_error(ctx, API_INTERNAL, "cannot clear commands of %s", id);
}

static json_t *issue_credentials(struct api_ctx *ctx, const char *id)
{
	json_t *creds = keys_issue_agent(ctx->st, id, ctx->cfg->session_ttl,
					 ctx->now);

	if (!creds)
		api_error(ctx, API_INTERNAL,
			  "cannot issue credentials for %s", id);
	return creds;
}

/* ------------------------------------------------------------------ */
/* RegisterAgentForMgn */

static int op_register(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"hostname", "fqdn", "machineId", "agentVersion", "cpus",
		"ramBytes", "os", "networkInterfaces", "disks", "tags",
		"userProvidedID", NULL
	};
	const char *mid = NULL, *version = NULL, *upid = NULL;
	char key[65], id[MODEL_ID_MAX], arn[MODEL_ARN_MAX];
	json_t *doc, *props, *tags, *cfg_disks = NULL, *creds;
	bool fresh = false, reactivate = false;
	int rc = -1;

	if (model_only_keys(ctx, in, known) ||
	    get_text(ctx, in, "machineId", "machineId", true, TEXT_MAX,
		     &mid) ||
	    get_text(ctx, in, "agentVersion", "agentVersion", false, 64,
		     &version) ||
	    get_text(ctx, in, "userProvidedID", "userProvidedID", false,
		     TEXT_MAX, &upid) ||
	    model_get_object(ctx, in, "tags", false, &tags))
		return -1;
	if (tags && model_check_tags(ctx, tags, "tags"))
		return -1;
	machine_key(mid, key);

	doc = ss_find_by_machine(ctx, key);
	if (ctx->err)
		return -1;
	if (!doc) {
		fresh = true;
		model_new_id("s-", id);
		model_arn(ctx, "source-server", id, arn);
		doc = json_pack("{s:s,s:s,s:b,s:s,s:{s:s,s:o},s:{}}",
				"sourceServerID", id, "arn", arn,
				"isArchived", 0, "replicationType",
				"AGENT_BASED", "lifeCycle", "state",
				"NOT_READY", "addedToServiceDateTime",
				model_time_json(ctx->now),
				"sourceProperties");
		if (!doc)
			return api_error(ctx, API_INTERNAL, "out of memory");
	} else {
		snprintf(id, sizeof(id), "%s", ss_str(doc, "sourceServerID"));
		snprintf(arn, sizeof(arn), "%s", ss_str(doc, "arn"));
		/* A disconnected or archived server that comes back starts
		 * over, as a new installation of MGN's agent does. */
		reactivate = json_is_true(json_object_get(doc, "isArchived")) ||
			     !strcmp(ss_str(doc, "lifeCycle.state"),
				     "DISCONNECTED");
	}
	props = json_object_get(doc, "sourceProperties");
	if (!json_is_object(props)) {
		props = json_object();
		json_object_set_new(doc, "sourceProperties", props);
	}
	if (read_facts(ctx, in, props, true, &cfg_disks))
		goto out;
	if (upid)
		json_object_set_new(doc, "userProvidedID", json_string(upid));
	if (version)
		ss_set(doc, "ferry.agentVersion", json_string(version));
	if (fresh || reactivate) {
		ss_set(doc, "lifeCycle.state", json_string("NOT_READY"));
		json_object_set_new(doc, "isArchived", json_false());
		restart_replication_info(doc, ctx->now);
		/* Commands queued for the old installation (such as the
		 * uninstall of DisconnectFromService) must not reach the
		 * new one. */
		if (reactivate && drop_commands(ctx, id))
			goto out;
	} else {
		sync_replicated_disks(doc);
	}
	/* Registering is the agent's first sign of life: the AGENT_NOT_SEEN
	 * clock starts here. */
	ss_set(doc, "lifeCycle.lastSeenByServiceDateTime",
	       model_time_json(ctx->now));
	if (ss_save(ctx, doc, key) ||
	    repl_config_create(ctx, id, cfg_disks) ||
	    tags_set(ctx, arn, tags) || assign_server(ctx, doc) ||
	    ss_save(ctx, doc, NULL))
		goto out;
	/* A known machine registering again is a new installation: the
	 * old one's credentials end here.  Kept, they would come back to
	 * life with the server (a disconnect revokes them only when its
	 * uninstall is acknowledged, and the command was just dropped), and
	 * their holder could refresh them for ever. */
	if (!fresh && keys_revoke_server(ctx->st, id)) {
		api_error(ctx, API_INTERNAL, "cannot revoke the credentials "
			  "of the earlier installation of %s", id);
		goto out;
	}
	creds = issue_credentials(ctx, id);
	if (!creds)
		goto out;
	*out = json_pack("{s:s,s:s,s:o}", "sourceServerID", id, "arn", arn,
			 "credentials", creds);
	rc = 0;
out:
	json_decref(cfg_disks);
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Operations of the agent's own credentials */

/*
 * The caller's source server: the agent's own; a "sourceServerID" in
 * the request must name it (AccessDeniedException otherwise).
 */
static json_t *own_server(struct api_ctx *ctx, json_t *in)
{
	const char *id = ctx->who->source_server_id;
	json_t *doc;

	if (model_get_string(ctx, in, "sourceServerID", false, 19, &id))
		return NULL;
	doc = ss_require(ctx, id);
	/* A finalized cutover disconnects too (lifeCycle CUTOVER, data
	 * replication DISCONNECTED): the agent only fetches its
	 * uninstall command. */
	if (doc && (!strcmp(ss_str(doc, "lifeCycle.state"), "DISCONNECTED") ||
		    !strcmp(ss_str(doc,
				   "dataReplicationInfo.dataReplicationState"),
			    "DISCONNECTED"))) {
		api_error(ctx, API_ACCESS_DENIED,
			  "Source server %s is disconnected from the service: register the agent again",
			  id);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static int op_refresh(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", NULL };
	json_t *doc, *creds;

	if (model_only_keys(ctx, in, known))
		return -1;
	doc = own_server(ctx, in);
	if (!doc)
		return -1;
	creds = issue_credentials(ctx, ss_str(doc, "sourceServerID"));
	json_decref(doc);
	if (!creds)
		return -1;
	*out = json_pack("{s:o}", "credentials", creds);
	return 0;
}

static int op_certificate(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", "csr", NULL };
	const char *csr = NULL;
	char err[256] = "";
	char *cert;
	json_t *doc;

	if (model_only_keys(ctx, in, known) ||
	    model_get_string(ctx, in, "csr", true, CSR_MAX, &csr))
		return -1;
	doc = own_server(ctx, in);
	if (!doc)
		return -1;
	cert = ca_sign_csr(ctx->ca, csr, CA_CLIENT_SOURCE_SERVER,
			   ss_str(doc, "sourceServerID"), NULL, 0, CERT_DAYS,
			   err, sizeof(err));
	json_decref(doc);
	if (!cert)
		return api_invalid_field(ctx, "csr",
					 "Cannot sign the certificate request: %s",
					 err);
	*out = json_pack("{s:s,s:s}", "certificate", cert, "caCertificate",
			 ca_cert_pem(ctx->ca));
	free(cert);
	return *out ? 0 : api_error(ctx, API_INTERNAL, "out of memory");
}

/* Heartbeat often enough that two lost beats do not trip AGENT_NOT_SEEN,
 * but no more than every 30 s (MGN's agents report about that often). */
static int heartbeat_interval(const struct control_config *cfg)
{
	int s = cfg->agent_timeout / 4;

	return s < 1 ? 1 : s > 30 ? 30 : s;
}

static int op_runtime(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID", NULL };
	const char *id, *state, *rid;
	json_t *doc, *cfg, *rep = NULL, *disks, *d;
	long long mbps;
	size_t i;
	int beat = heartbeat_interval(ctx->cfg);

	if (model_only_keys(ctx, in, known))
		return -1;
	doc = own_server(ctx, in);
	if (!doc)
		return -1;
	id = ss_str(doc, "sourceServerID");
	cfg = repl_config_get(ctx, id);
	if (!cfg) {
		json_decref(doc);
		return ctx->err ? -1 :
		       api_error(ctx, API_INTERNAL,
				 "no replication configuration for %s", id);
	}
	rid = ss_replicator(doc);
	if (*rid) {
		rep = replicator_endpoint(ctx, rid);
		if (ctx->err)
			goto fail;
	}
	/* The agent now knows where to connect: MGN's pairing step. */
	if (rep) {
		long long stage = json_integer_value(
			json_object_get(json_object_get(doc, "ferry"),
					"initStage"));

		if (stage == INIT_PAIR) {
			init_steps(doc, INIT_CONNECT, false, ctx->now);
			if (ss_save(ctx, doc, NULL))
				goto fail;
		}
	}
	disks = json_array();
	json_array_foreach(json_object_get(cfg, "replicatedDisks"), i, d)
		json_array_append_new(disks,
				      json_string(ss_str(d, "deviceName")));
	mbps = json_integer_value(json_object_get(cfg, "bandwidthThrottling"));
	state = ss_str(doc, "dataReplicationInfo.dataReplicationState");
	/*
	 * Compression: zstd where bandwidth is scarce (a throttled link or
	 * the public internet), else lz4, which costs the source server
	 * less CPU on a fast private link.
	 */
	*out = json_pack("{s:s,s:o,s:I,s:s,s:O,s:i,s:i,s:b,s:b,s:o,s:s}",
			 "sourceServerID", id,
			 "replicator", rep ? rep : json_null(),
			 "bandwidthThrottling", (json_int_t)mbps,
			 "compression",
			 mbps > 0 || !strcmp(ss_str(cfg, "dataPlaneRouting"),
					     "PUBLIC_IP") ? "zstd" : "lz4",
			 "pitPolicy",
			 json_object_get(cfg, "pitPolicy") ?
				 json_object_get(cfg, "pitPolicy") :
				 json_null(),
			 "heartbeatIntervalSeconds", beat,
			 "commandPollSeconds", beat < 10 ? beat : 10,
			 "dataReplicationPaused", !strcmp(state, "PAUSED"),
			 "dataReplicationStopped", !strcmp(state, "STOPPED"),
			 "replicatedDisks", disks,
			 "lifeCycleState", ss_str(doc, "lifeCycle.state"));
	json_decref(cfg);
	json_decref(doc);
	return *out ? 0 : api_error(ctx, API_INTERNAL, "out of memory");
fail:
	json_decref(rep);
	json_decref(cfg);
	json_decref(doc);
	return -1;
}

/* ------------------------------------------------------------------ */
/* UpdateAgentReplicationInfoForMgn: the heartbeat, the hot path */

/* The DataReplicationState values an agent can be in (MGN's enum minus
 * the service-owned DISCONNECTED and the agentless snapshot states). */
static const char *const agent_states[] = {
	"INITIATING", "INITIAL_SYNC", "BACKLOG", "CREATING_SNAPSHOT",
	"CONTINUOUS", "PAUSED", "RESCAN", "STALLED", "STOPPED", NULL
};

/* MGN's DataReplicationErrorString. */
static const char *const error_strings[] = {
	"AGENT_NOT_SEEN", "SNAPSHOTS_FAILURE", "NOT_CONVERGING",
	"UNSTABLE_NETWORK", "FAILED_TO_CREATE_SECURITY_GROUP",
	"FAILED_TO_LAUNCH_REPLICATION_SERVER",
	"FAILED_TO_BOOT_REPLICATION_SERVER",
	"FAILED_TO_AUTHENTICATE_WITH_SERVICE",
	"FAILED_TO_DOWNLOAD_REPLICATION_SOFTWARE",
	"FAILED_TO_CREATE_STAGING_DISKS", "FAILED_TO_ATTACH_STAGING_DISKS",
	"FAILED_TO_PAIR_REPLICATION_SERVER_WITH_AGENT",
	"FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
	"FAILED_TO_START_DATA_TRANSFER", "UNSUPPORTED_VM_CONFIGURATION",
	"LAST_SNAPSHOT_JOB_FAILED", NULL
};

static bool is_service_state(const char *s)
{
	/* PauseReplication and StopReplication set these; only the
	 * service's Resume/Start operations leave them. */
	return !strcmp(s, "PAUSED") || !strcmp(s, "STOPPED");
}

/* Merge the reported disks into INFO's replicatedDisks, which
 * sync_replicated_disks() keeps in the order of the record's disks. */
static int merge_disks(struct api_ctx *ctx, json_t *info, json_t *list,
		       bool *any_bytes)
{
	static const char *const known[] = {
		"deviceName", "totalStorageBytes", "replicatedStorageBytes",
		"rescannedStorageBytes", "backloggedStorageBytes", NULL
	};
	static const char *const counters[] = {
		"totalStorageBytes", "replicatedStorageBytes",
		"rescannedStorageBytes", "backloggedStorageBytes"
	};
	json_t *have = json_object_get(info, "replicatedDisks"), *d, *h;
	char field[64];
	size_t i, j, k;

	json_array_foreach(list, i, d) {
		const char *name = NULL;
		long long v[4] = { -1, -1, -1, -1 };

		snprintf(field, sizeof(field), "replicatedDisks[%zu]", i);
		if (only_keys(ctx, d, field, known))
			return -1;
		snprintf(field, sizeof(field),
			 "replicatedDisks[%zu].deviceName", i);
		if (get_text(ctx, d, "deviceName", field, true, TEXT_MAX,
			     &name))
			return -1;
		h = NULL;
		json_array_foreach(have, j, h)
			if (!strcmp(ss_str(h, "deviceName"), name))
				break;
		if (j == json_array_size(have))
			return api_invalid_field(ctx, field,
				"%s: '%s' is not a disk of this source server (report it with UpdateAgentSourcePropertiesForMgn first)",
				field, name);
		for (k = 0; k < 4; k++) {
			snprintf(field, sizeof(field),
				 "replicatedDisks[%zu].%s", i, counters[k]);
			if (get_num(ctx, d, counters[k], field, false, 0,
				    MAX_BYTES, &v[k]))
				return -1;
		}
		if (v[0] < 0)
			v[0] = json_integer_value(
				json_object_get(h, "totalStorageBytes"));
		if (v[1] > v[0] || v[2] > v[0])
			return api_invalid_field(ctx, field,
				"replicatedDisks[%zu]: replicated and rescanned bytes cannot exceed totalStorageBytes",
				i);
		for (k = 0; k < 4; k++)
			if (v[k] >= 0)
				json_object_set_new(h, counters[k],
						    json_integer(v[k]));
		if (json_integer_value(json_object_get(
			    h, "replicatedStorageBytes")) > 0)
			*any_bytes = true;
	}
	return 0;
}

static int op_heartbeat(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"sourceServerID", "dataReplicationState", "replicatedDisks",
		"lagSeconds", "etaSeconds", "etaDateTime", "backlogBytes",
		"dataReplicationError", NULL
	};
	static const char *const err_known[] = { "error", "rawError", NULL };
	const char *state = NULL, *eta_str = NULL, *stored, *error = NULL;
	const char *raw = NULL;
	long long lag = -1, eta = -1, backlog = -1;
	json_t *doc, *info, *lc, *disks, *err_in;
	bool any_bytes = false;
	time_t start;
	char buf[32];
	int rc = -1;

	if (model_only_keys(ctx, in, known) ||
	    model_get_enum(ctx, in, "dataReplicationState", true,
			   agent_states, &state) ||
	    model_get_int(ctx, in, "lagSeconds", false, 0, MAX_BYTES, &lag) ||
	    model_get_int(ctx, in, "etaSeconds", false, 0, MAX_BYTES, &eta) ||
	    model_get_string(ctx, in, "etaDateTime", false, 32, &eta_str) ||
	    model_get_int(ctx, in, "backlogBytes", false, 0, MAX_BYTES,
			  &backlog) ||
	    model_get_array(ctx, in, "replicatedDisks", false, MAX_DISKS,
			    &disks) ||
	    model_get_object(ctx, in, "dataReplicationError", false, &err_in))
		return -1;
	if (eta >= 0 && eta_str)
		return api_invalid_field(ctx, "etaDateTime",
			"Give etaSeconds or etaDateTime, not both");
	if (eta_str) {
		time_t t = model_time_parse(eta_str);

		if (t < 0)
			return api_invalid_field(ctx, "etaDateTime",
				"etaDateTime must be an ISO-8601 time such as 2024-01-31T12:00:00Z");
		eta = t > ctx->now ? t - ctx->now : 0;
	}
	if (err_in && (only_keys(ctx, err_in, "dataReplicationError",
				 err_known) ||
		       model_get_enum(ctx, err_in, "error", true,
				      error_strings, &error) ||
		       get_text(ctx, err_in, "rawError",
				"dataReplicationError.rawError", false,
				RAW_ERROR_MAX, &raw)))
		return -1;
	if (error && !strcmp(error, "AGENT_NOT_SEEN"))
		return api_invalid_field(ctx, "dataReplicationError.error",
			"AGENT_NOT_SEEN is the service's to report");

	doc = own_server(ctx, in);
	if (!doc)
		return -1;
	info = json_object_get(doc, "dataReplicationInfo");
	lc = json_object_get(doc, "lifeCycle");
	if (!json_is_object(info) || !json_is_object(lc)) {
		api_error(ctx, API_INTERNAL, "record of %s is incomplete",
			  ss_str(doc, "sourceServerID"));
		goto out;
	}
	if (disks && merge_disks(ctx, info, disks, &any_bytes))
		goto out;

	stored = ss_str(info, "dataReplicationState");
	/* The service's PAUSED/STOPPED stand until its own operations end
	 * them (the agent learns through its commands); any other state is
	 * the agent's to report, STALLED after AGENT_NOT_SEEN included. */
	if (!is_service_state(stored) && !is_service_state(state))
		json_object_set_new(info, "dataReplicationState",
				    json_string(state));
	if (error)
		json_object_set_new(info, "dataReplicationError",
				    raw ? json_pack("{s:s,s:s}", "error", error,
						    "rawError", raw) :
					  json_pack("{s:s}", "error", error));
	else	/* AGENT_NOT_SEEN included: the agent is back */
		json_object_del(info, "dataReplicationError");

	if (lag >= 0) {
		model_duration(lag, buf, sizeof(buf));
		json_object_set_new(info, "lagDuration", json_string(buf));
	} else {
		json_object_del(info, "lagDuration");
	}
	if (eta >= 0)
		json_object_set_new(info, "etaDateTime",
				    model_time_json(ctx->now + eta));
	else
		json_object_del(info, "etaDateTime");
	if (backlog >= 0)
		ss_set(doc, "ferry.backlogBytes", json_integer(backlog));

	/* Initiation is over once data flows. */
	if (strcmp(state, "INITIATING") && strcmp(state, "STALLED") &&
	    !is_service_state(state))
		init_steps(doc, INIT_DONE, false, ctx->now);
	else if (error && !strcmp(state, "INITIATING"))
		init_step_failed(doc, error);

	json_object_set_new(lc, "lastSeenByServiceDateTime",
			    model_time_json(ctx->now));
	if (any_bytes && !*ss_str(lc, "firstByteDateTime"))
		json_object_set_new(lc, "firstByteDateTime",
				    model_time_json(ctx->now));
	start = model_time_parse(ss_str(
		info, "dataReplicationInitiation.startDateTime"));
	if (start > 0) {
		model_duration(ctx->now - start, buf, sizeof(buf));
		json_object_set_new(lc, "elapsedReplicationDuration",
				    json_string(buf));
	}
	/* Kept parsed for the next heartbeat; only read from here on. */
	if (ss_save_keep(ctx, doc))
		goto out;
	*out = json_pack("{s:s,s:s}", "dataReplicationState",
			 ss_shown_state(doc), "lastSeenByServiceDateTime",
			 ss_str(lc, "lastSeenByServiceDateTime"));
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* GetAgentCommandForMgn */

/*
 * Forget the acknowledged commands.  The agent of a disconnected server
 * acknowledges its "uninstall" last: its credentials go then
 * (DisconnectFromService leaves them valid until the agent has it).
 */
static int ack_commands(struct api_ctx *ctx, const char *id, json_t *acks)
{
	static const char sql[] =
		"DELETE FROM commands WHERE source_server_id = ? AND id = ?"
		" RETURNING command";
	bool uninstall = false;
	sqlite3_stmt *s;
	json_t *a;
	size_t i;

	json_array_foreach(acks, i, a)
		if (!json_is_integer(a) || json_integer_value(a) < 1)
			return api_invalid_field(ctx, "ackCommandIDs",
				"ackCommandIDs must list positive integers (commandID)");
	s = store_prepare(ctx->st, sql);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	/* IDs of other servers' commands simply match nothing. */
	json_array_foreach(acks, i, a) {
		int rc;

		store_bind_text(s, 1, id);
		sqlite3_bind_int64(s, 2, json_integer_value(a));
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			if (!strcmp((const char *)sqlite3_column_text(s, 0),
				    "uninstall"))
				uninstall = true;
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return api_error(ctx, API_INTERNAL,
					 "cannot acknowledge commands: %s",
					 sqlite3_errmsg(store_db(ctx->st)));
	}
	if (uninstall && keys_revoke_server(ctx->st, id))
		return api_error(ctx, API_INTERNAL,
				 "cannot revoke the credentials of %s", id);
	return 0;
}

static int op_commands(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "sourceServerID",
					     "ackCommandIDs", NULL };
	static const char sel[] =
		"SELECT id, command, args, created, delivered FROM commands"
		" WHERE source_server_id = ? ORDER BY id LIMIT ?";
	static const char mark[] =
		"UPDATE commands SET delivered = ? WHERE source_server_id = ?"
		" AND delivered = 0 AND id <= ?";
	const char *id = ctx->who->source_server_id;
	json_t *acks, *list;
	sqlite3_stmt *s;
	long long last = 0;
	bool undelivered = false;
	int rc;

	if (model_only_keys(ctx, in, known) ||
	    model_get_string(ctx, in, "sourceServerID", false, 19, &id) ||
	    model_get_array(ctx, in, "ackCommandIDs", false, MAX_ACKS, &acks))
		return -1;
	/* The agent's own server only; no record load on this polled path. */
	if (strcmp(id, ctx->who->source_server_id))
		return api_error(ctx, API_ACCESS_DENIED,
				 "These credentials belong to source server %s, not %s",
				 ctx->who->source_server_id, id);
	if (acks && ack_commands(ctx, id, acks))
		return -1;
	s = store_prepare(ctx->st, sel);
	if (!s)
		return api_error(ctx, API_INTERNAL, "database error");
	store_bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, MAX_COMMANDS);
	list = json_array();
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *c = json_pack("{s:I,s:s,s:o}", "commandID",
				      (json_int_t)sqlite3_column_int64(s, 0),
				      "command",
				      (const char *)sqlite3_column_text(s, 1),
				      "createdDateTime",
				      model_time_json(sqlite3_column_int64(s,
									   3)));
		json_t *args = store_column_json(s, 2);

		json_object_set_new(c, "args", args ? args : json_object());
		json_array_append_new(list, c);
		last = sqlite3_column_int64(s, 0);
		if (!sqlite3_column_int64(s, 4))
			undelivered = true;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return api_error(ctx, API_INTERNAL, "cannot read commands: %s",
				 sqlite3_errmsg(store_db(ctx->st)));
	}
	/* First delivery time, for the operators' view; a write only when
	 * something new goes out. */
	if (undelivered) {
		s = store_prepare(ctx->st, mark);
		if (!s) {
			json_decref(list);
			return api_error(ctx, API_INTERNAL, "database error");
		}
		sqlite3_bind_int64(s, 1, ctx->now);
		store_bind_text(s, 2, id);
		sqlite3_bind_int64(s, 3, last);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			json_decref(list);
			return api_error(ctx, API_INTERNAL,
					 "cannot mark commands delivered");
		}
	}
	*out = json_pack("{s:s,s:o}", "sourceServerID", id, "commands", list);
	return *out ? 0 : api_error(ctx, API_INTERNAL, "out of memory");
}

/* ------------------------------------------------------------------ */
/* UpdateAgentSourcePropertiesForMgn */

static int op_properties(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = {
		"sourceServerID", "hostname", "fqdn", "agentVersion", "cpus",
		"ramBytes", "os", "networkInterfaces", "disks", NULL
	};
	const char *version = NULL;
	json_t *doc, *props, *cfg_disks = NULL;
	int rc = -1;

	if (model_only_keys(ctx, in, known) ||
	    get_text(ctx, in, "agentVersion", "agentVersion", false, 64,
		     &version))
		return -1;
	doc = own_server(ctx, in);
	if (!doc)
		return -1;
	props = json_object_get(doc, "sourceProperties");
	if (!json_is_object(props)) {
		props = json_object();
		json_object_set_new(doc, "sourceProperties", props);
	}
	if (read_facts(ctx, in, props, false, &cfg_disks))
		goto out;
	if (version)
		ss_set(doc, "ferry.agentVersion", json_string(version));
	if (cfg_disks) {
		sync_replicated_disks(doc);
		if (assign_update_bytes(ctx, doc))
			goto out;
	}
	if (ss_save(ctx, doc, NULL) ||
	    (cfg_disks && repl_config_create(ctx, ss_str(doc,
							  "sourceServerID"),
					     cfg_disks)))
		goto out;
	*out = json_pack("{s:s,s:O}", "sourceServerID",
			 ss_str(doc, "sourceServerID"), "sourceProperties",
			 props);
	rc = 0;
out:
	json_decref(cfg_disks);
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* AGENT_NOT_SEEN */

#define SWEEP_BATCH 1000
/* Rows just behind the watermark are looked at again, so a sweep whose
 * transaction failed to commit is made good by the next ones. */
#define SWEEP_OVERLAP 10

/*
 * Servers whose last heartbeat is older than the timeout.  Only rows
 * whose last_seen crossed the cutoff since the previous sweep are read
 * (an index range), so servers flagged long ago cost nothing.  The
 * watermark lives in memory: after a restart the first sweep reads every
 * silent server once.  Serialised by the store lock like every handler.
 */
static long long swept_until;

static void agent_sweep(struct api_ctx *ctx)
{
	static const char sql[] =
		"SELECT id, last_seen FROM source_servers"
		" WHERE last_seen > ? AND last_seen <= ? AND is_archived = 0"
		" AND lifecycle_state NOT IN ('DISCONNECTED', 'CUTOVER')"
		" AND replication_state NOT IN ('DISCONNECTED', '')"
		" ORDER BY last_seen LIMIT ?";
	long long cutoff = (long long)ctx->now - ctx->cfg->agent_timeout;
	long long from = swept_until > SWEEP_OVERLAP ?
				 swept_until - SWEEP_OVERLAP : 0;
	static char ids[SWEEP_BATCH][MODEL_ID_MAX]; /* under the lock */
	static long long seen[SWEEP_BATCH];
	sqlite3_stmt *s;
	int n = 0, i, rc;

	if (cutoff <= from)
		return;
	s = store_prepare(ctx->st, sql);
	if (!s) {
		api_error(ctx, API_INTERNAL, "database error");
		return;
	}
	sqlite3_bind_int64(s, 1, from);
	sqlite3_bind_int64(s, 2, cutoff);
	sqlite3_bind_int(s, 3, SWEEP_BATCH);
	/* Collect first: the records are rewritten below, and SQLite does
	 * not promise a stable scan of a table changed under it. */
	while (n < SWEEP_BATCH && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		snprintf(ids[n], sizeof(ids[n]), "%s",
			 (const char *)sqlite3_column_text(s, 0));
		seen[n++] = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	for (i = 0; i < n; i++) {
		json_t *doc = ss_load(ctx, ids[i]);
		json_t *info = json_object_get(doc, "dataReplicationInfo");
		const char *state = ss_str(info, "dataReplicationState");
		char when[32], raw[96];

		if (!json_is_object(info) ||
		    !strcmp(ss_str(info, "dataReplicationError.error"),
			    "AGENT_NOT_SEEN")) {
			json_decref(doc);
			continue;
		}
		model_time(seen[i], when, sizeof(when));
		snprintf(raw, sizeof(raw), "No word from the agent since %s",
			 when);
		json_object_set_new(info, "dataReplicationError",
				    json_pack("{s:s,s:s}", "error",
					      "AGENT_NOT_SEEN", "rawError",
					      raw));
		/* MGN shows a silent agent as stalled replication; a pause or
		 * stop the operator asked for stays as it is. */
		if (!is_service_state(state))
			json_object_set_new(info, "dataReplicationState",
					    json_string("STALLED"));
		json_object_del(info, "etaDateTime");
		rc = ss_save(ctx, doc, NULL);
		json_decref(doc);
		if (rc)
			return;
	}
	swept_until = n == SWEEP_BATCH ? seen[n - 1] : cutoff;
}

static const struct api_op agent_ops[] = {
	{ "RegisterAgentForMgn", "POST", "/RegisterAgentForMgn",
	  ROLE_INSTALLER | ROLE_ADMIN, 200, op_register, true },
	{ "RefreshAgentCredentialsForMgn", "POST",
	  "/RefreshAgentCredentialsForMgn", ROLE_AGENT, 200, op_refresh,
	  true },
	{ "IssueClientCertificateForMgn", "POST",
	  "/IssueClientCertificateForMgn", ROLE_AGENT, 200, op_certificate,
	  false },
	{ "GetAgentRuntimeConfigurationForMgn", "POST",
	  "/GetAgentRuntimeConfigurationForMgn", ROLE_AGENT, 200,
	  op_runtime, false },
	{ "UpdateAgentReplicationInfoForMgn", "POST",
	  "/UpdateAgentReplicationInfoForMgn", ROLE_AGENT, 200,
	  op_heartbeat, false },
	{ "GetAgentCommandForMgn", "POST", "/GetAgentCommandForMgn",
	  ROLE_AGENT, 200, op_commands, false },
	{ "UpdateAgentSourcePropertiesForMgn", "POST",
	  "/UpdateAgentSourcePropertiesForMgn", ROLE_AGENT, 200,
	  op_properties, false },
};

const struct api_module api_module_agent = {
	.name = "agent",
	.schema_sql = NULL, /* the commands table is source_server.c's */
	.ops = agent_ops,
	.n_ops = sizeof(agent_ops) / sizeof(agent_ops[0]),
	.periodic = agent_sweep,
};
