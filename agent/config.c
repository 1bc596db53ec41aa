// SPDX-License-Identifier: GPL-2.0
/*
 * config.c - ferry-agent's configuration (config.h): agent.conf's `key =
 * value` lines and the same keys as --flags, defaults, the final check,
 * and removing the installer's secret once the agent has registered.
 *
 * Keys are written with '-' (endpoint, ca-bundle, secret-access-key);
 * '_' is accepted for '-', and the installer's aws- prefixed spellings
 * for the keys.  docs/agent.md, "Configuration", lists them all.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errmsg.h"
#include "hostinfo.h"
#include "peer_id.h"
#include "tracker.h"
#include "wire.h"

#define LINE_MAX_LEN 8192

void agent_config_defaults(struct agent_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s",
		 AGENT_STATE_DIR);
	snprintf(cfg->region, sizeof(cfg->region), "us-east-1");
	cfg->codec = -1;
	cfg->not_converging_s = 1800;
	cfg->freeze = true;
	cfg->freeze_max_bytes = 16ull << 20;
	cfg->freeze_timeout_ms = 2000;
	cfg->cp_interval_s = 60;
}

/* ---- one key ---------------------------------------------------------- */

struct key;
typedef int (*setter)(struct agent_config *c, const struct key *k,
		      const char *v, char *why, size_t len);

struct key {
	const char *name;
	setter set;
	size_t off;		/* of the member in struct agent_config */
	size_t size;		/* strings: the buffer */
	uint64_t min, max;	/* numbers */
};

#define MEMBER(m) offsetof(struct agent_config, m), \
	sizeof(((struct agent_config *)0)->m)

static void *member(struct agent_config *c, const struct key *k)
{
	return (char *)c + k->off;
}

static int set_text(struct agent_config *c, const struct key *k,
		    const char *v, char *why, size_t len)
{
	if (strlen(v) >= k->size) {
		set_err(why, len, "longer than %zu characters", k->size - 1);
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			set_err(why, len, "control characters are not "
				"allowed");
			return -1;
		}
	memcpy(member(c, k), v, strlen(v) + 1);
	return 0;
}

static int set_path(struct agent_config *c, const struct key *k,
		    const char *v, char *why, size_t len)
{
	if (v[0] && v[0] != '/') {
		set_err(why, len, "'%s' is not an absolute path", v);
		return -1;
	}
	return set_text(c, k, v, why, len);
}

/* A certificate ID as ferry-control issues them (peer_id.h); "" unsets. */
static int set_id(struct agent_config *c, const struct key *k,
		  const char *v, char *why, size_t len)
{
	if (v[0] && !ferry_id_valid(v)) {
		set_err(why, len, "'%s' is not an ID: 1-%d of letters, "
			"digits, '.', '_' and '-', not starting with '.'", v,
			FERRY_ID_MAX);
		return -1;
	}
	return set_text(c, k, v, why, len);
}

/* https://HOST[:PORT][/PATH]; "" unsets. */
static int set_url(struct agent_config *c, const struct key *k,
		   const char *v, char *why, size_t len)
{
	if (v[0] && (strncasecmp(v, "https://", 8) || !v[8] ||
		     strchr(v, ' '))) {
		set_err(why, len, "'%s' is not an https:// URL (https://HOST"
			"[:PORT])", v);
		return -1;
	}
	return set_text(c, k, v, why, len);
}

/* A proxy: [SCHEME://][USER:PASS@]HOST:PORT as libcurl takes it. */
static int set_proxy(struct agent_config *c, const struct key *k,
		     const char *v, char *why, size_t len)
{
	static const char *const schemes[] = {
		"http://", "https://", "socks4://", "socks4a://",
		"socks5://", "socks5h://",
	};
	const char *sep = strstr(v, "://");

	if (v[0] && sep) {
		size_t i;

		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if (!strncasecmp(v, schemes[i], strlen(schemes[i])))
				break;
		if (i == sizeof(schemes) / sizeof(schemes[0])) {
			set_err(why, len, "'%.*s' is not a proxy scheme "
				"(http, https, socks5)", (int)(sep - v), v);
			return -1;
		}
	}
	if (v[0] && (strchr(v, ' ') || !strchr(sep ? sep + 3 : v, ':'))) {
		set_err(why, len, "want [http://]HOST:PORT");
		return -1;
	}
	return set_text(c, k, v, why, len);
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int set_bool(struct agent_config *c, const struct key *k,
		    const char *v, char *why, size_t len)
{
	if (parse_bool(v, member(c, k))) {
		set_err(why, len, "'%s' is not yes or no", v);
		return -1;
	}
	return 0;
}

static int number(const struct key *k, const char *v, bool bytes,
		  uint64_t *out, char *why, size_t len)
{
	unsigned long long n;
	char *end;

	if (bytes) {
		if (ferry_parse_bytes(v, out)) {
			set_err(why, len, "'%s' is not a byte count (4096, "
				"64K, 16M)", v);
			return -1;
		}
	} else {
		errno = 0;
		n = strtoull(v, &end, 10);
		if (!isdigit((unsigned char)v[0]) || errno || *end) {
			set_err(why, len, "'%s' is not a number", v);
			return -1;
		}
		*out = n;
	}
	if (*out < k->min || *out > k->max) {
		set_err(why, len, "%s is out of range: %llu to %llu", v,
			(unsigned long long)k->min,
			(unsigned long long)k->max);
		return -1;
	}
	return 0;
}

static int store_number(struct agent_config *c, const struct key *k,
			uint64_t n)
{
	switch (k->size) {
	case sizeof(uint64_t):
		*(uint64_t *)member(c, k) = n;
		break;
	case sizeof(uint32_t):
		*(uint32_t *)member(c, k) = (uint32_t)n;
		break;
	default:
		return -1;
	}
	return 0;
}

static int set_uint(struct agent_config *c, const struct key *k,
		    const char *v, char *why, size_t len)
{
	uint64_t n;

	if (number(k, v, false, &n, why, len))
		return -1;
	return store_number(c, k, n);
}

static int set_bytes(struct agent_config *c, const struct key *k,
		     const char *v, char *why, size_t len)
{
	uint64_t n;

	if (number(k, v, true, &n, why, len))
		return -1;
	return store_number(c, k, n);
}

static int set_granularity(struct agent_config *c, const struct key *k,
			   const char *v, char *why, size_t len)
{
	uint64_t n;

	if (number(k, v, true, &n, why, len))
		return -1;
	if (!ferry_granularity_valid(n)) {
		set_err(why, len, "%s is not a power of two from %u to %u "
			"bytes", v, FERRY_GRAN_MIN, FERRY_GRAN_MAX);
		return -1;
	}
	c->granularity = (uint32_t)n;
	return 0;
}

static int set_chunk(struct agent_config *c, const struct key *k,
		     const char *v, char *why, size_t len)
{
	uint64_t n;

	if (number(k, v, true, &n, why, len))
		return -1;
	if (n % 4096) {
		set_err(why, len, "%s is not a multiple of 4096", v);
		return -1;
	}
	c->read_chunk = (uint32_t)n;
	return 0;
}

static int set_codec(struct agent_config *c, const struct key *k,
		     const char *v, char *why, size_t len)
{
	if (!strcasecmp(v, "auto") || !v[0])
		c->codec = -1;
	else if (!strcasecmp(v, "none") || !strcasecmp(v, "raw"))
		c->codec = FERRY_CODEC_RAW;
	else if (!strcasecmp(v, "zstd"))
		c->codec = FERRY_CODEC_ZSTD;
	else if (!strcasecmp(v, "lz4"))
		c->codec = FERRY_CODEC_LZ4;
	else {
		set_err(why, len, "'%s' is not auto, zstd, lz4 or none", v);
		return -1;
	}
	return 0;
}

/* Megabits per second, as MGN's bandwidthThrottling; fractions allowed
 * (0.5 is 62500 bytes per second); 0 follows ferry-control. */
static int set_mbps(struct agent_config *c, const struct key *k,
		    const char *v, char *why, size_t len)
{
	char *end;
	double mbps;

	errno = 0;
	mbps = strtod(v, &end);
	if (!v[0] || *end || errno || !isfinite(mbps) || mbps < 0 ||
	    mbps > 1e7) {
		set_err(why, len, "'%s' is not a rate in Mbit/s (0 to "
			"10000000)", v);
		return -1;
	}
	c->bandwidth_bps = (uint64_t)(mbps * 125000.0 + 0.5);
	if (mbps > 0 && !c->bandwidth_bps)
		c->bandwidth_bps = 1;
	return 0;
}

/* Comma- or blank-separated list; WORD gets each item. */
static int each_item(const char *v, int (*word)(struct agent_config *,
						const char *, char *, size_t),
		     struct agent_config *c, char *why, size_t len)
{
	char item[AGENT_PATH_MAX];

	while (*v) {
		size_t n = strcspn(v, ", \t");

		if (n >= sizeof(item)) {
			set_err(why, len, "an item is too long");
			return -1;
		}
		if (n) {
			memcpy(item, v, n);
			item[n] = '\0';
			if (word(c, item, why, len))
				return -1;
		}
		v += n;
		v += strspn(v, ", \t");
	}
	return 0;
}

static int add_device(struct agent_config *c, const char *d, char *why,
		      size_t len)
{
	char path[AGENT_PATH_MAX];

	/* "vda" is /dev/vda, as the installer's --devices accepts. */
	if (d[0] != '/')
		snprintf(path, sizeof(path), "/dev/%.4000s", d);
	else
		snprintf(path, sizeof(path), "%s", d);
	for (unsigned int i = 0; i < c->n_devices; i++)
		if (!strcmp(c->devices[i], path))
			return 0;
	if (c->n_devices == AGENT_MAX_DISKS) {
		set_err(why, len, "more than %d devices", AGENT_MAX_DISKS);
		return -1;
	}
	snprintf(c->devices[c->n_devices++], sizeof(c->devices[0]), "%s",
		 path);
	return 0;
}

/* devices = /dev/vda,/dev/vdb: replaces the list (flags override the
 * file); empty: discover. */
static int set_devices(struct agent_config *c, const struct key *k,
		       const char *v, char *why, size_t len)
{
	c->n_devices = 0;
	return each_item(v, add_device, c, why, len);
}

static int add_tag(struct agent_config *c, const char *t, char *why,
		   size_t len)
{
	const char *eq = strchr(t, '=');
	size_t kl = eq ? (size_t)(eq - t) : 0;
	unsigned int i;

	if (!eq || !kl) {
		set_err(why, len, "'%s' is not KEY=VALUE", t);
		return -1;
	}
	if (kl > 128 || strlen(eq + 1) > 256) {
		set_err(why, len, "tag '%.*s': keys have at most 128 "
			"characters, values 256", (int)(kl > 64 ? 64 : kl), t);
		return -1;
	}
	if (kl >= 4 && !strncasecmp(t, "aws:", 4)) {
		set_err(why, len, "tag keys may not start with 'aws:'");
		return -1;
	}
	for (i = 0; i < c->n_tags; i++)
		if (strlen(c->tags[i].key) == kl &&
		    !strncmp(c->tags[i].key, t, kl))
			break;
	if (i == c->n_tags) {
		if (c->n_tags == AGENT_MAX_TAGS) {
			set_err(why, len, "more than %d tags",
				AGENT_MAX_TAGS);
			return -1;
		}
		c->n_tags++;
	}
	snprintf(c->tags[i].key, sizeof(c->tags[i].key), "%.*s", (int)kl, t);
	snprintf(c->tags[i].value, sizeof(c->tags[i].value), "%s", eq + 1);
	return 0;
}

/* tags = team=blue,env=test: added to (or replacing values of) the
 * tags given before. */
static int set_tags(struct agent_config *c, const struct key *k,
		    const char *v, char *why, size_t len)
{
	return each_item(v, add_tag, c, why, len);
}

static const struct key keys[] = {
	{ "state-dir", set_path, MEMBER(state_dir), 0, 0 },
	{ "run-dir", set_path, MEMBER(run_dir), 0, 0 },
	{ "tracker-ctl", set_path, MEMBER(tracker_ctl), 0, 0 },
	{ "endpoint", set_url, MEMBER(endpoint), 0, 0 },
	{ "region", set_text, MEMBER(region), 0, 0 },
	{ "s3-endpoint", set_url, MEMBER(s3_endpoint), 0, 0 },
	{ "proxy", set_proxy, MEMBER(proxy), 0, 0 },
	{ "ca-bundle", set_path, MEMBER(ca_bundle), 0, 0 },
	{ "access-key-id", set_text, MEMBER(access_key_id), 0, 0 },
	{ "secret-access-key", set_text, MEMBER(secret_access_key), 0, 0 },
	{ "session-token", set_text, MEMBER(session_token), 0, 0 },
	{ "user-provided-id", set_text, MEMBER(user_provided_id), 0, 0 },
	{ "tags", set_tags, 0, 0, 0, 0 },
	{ "devices", set_devices, 0, 0, 0, 0 },
	{ "no-replication", set_bool, MEMBER(no_replication), 0, 0 },
	{ "standalone", set_bool, MEMBER(standalone), 0, 0 },
	{ "replicator", set_text, MEMBER(replicator), 0, 0 },
	{ "replicator-id", set_id, MEMBER(replicator_id), 0, 0 },
	{ "source-server-id", set_text, MEMBER(source_server_id), 0, 0 },
	{ "cert", set_path, MEMBER(cert), 0, 0 },
	{ "key", set_path, MEMBER(key), 0, 0 },
	{ "ca", set_path, MEMBER(ca), 0, 0 },
	{ "granularity", set_granularity, 0, 0, 0, 1u << 30 },
	{ "queue-depth", set_uint, MEMBER(queue_depth), 16, 4096 },
	{ "read-chunk", set_chunk, 0, 0, 4096, FERRY_WIRE_MAX_DATA },
	{ "compression", set_codec, 0, 0, 0, 0 },
	{ "bandwidth-mbps", set_mbps, 0, 0, 0, 0 },
	{ "drain-interval-ms", set_uint, MEMBER(drain_interval_ms), 1,
	  60000 },
	{ "not-converging-seconds", set_uint, MEMBER(not_converging_s), 0,
	  7 * 86400 },
	{ "freeze", set_bool, MEMBER(freeze), 0, 0 },
	{ "freeze-max-bytes", set_bytes, MEMBER(freeze_max_bytes), 4096,
	  1ull << 40 },
	{ "freeze-timeout-ms", set_uint, MEMBER(freeze_timeout_ms), 100,
	  60000 },
	{ "cp-interval-seconds", set_uint, MEMBER(cp_interval_s), 1, 86400 },
};

/* Other spellings: the installer's flags and MGN's names. */
static const struct {
	const char *alias, *name;
} aliases[] = {
	{ "aws-access-key-id", "access-key-id" },
	{ "aws-secret-access-key", "secret-access-key" },
	{ "aws-session-token", "session-token" },
	{ "codec", "compression" },
	{ "source-server-tags", "tags" },
};

/* KEY in canonical form ('-', lower case) into OUT; NULL if unknown. */
static const struct key *find_key(const char *key, char *out, size_t len)
{
	size_t i;

	snprintf(out, len, "%s", key);
	for (char *p = out; *p; p++)
		*p = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
	for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (!strcmp(out, aliases[i].alias)) {
			snprintf(out, len, "%s", aliases[i].name);
			break;
		}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(out, keys[i].name))
			return &keys[i];
	return NULL;
}

static bool secret_key(const char *canonical)
{
	return !strcmp(canonical, "secret-access-key") ||
	       !strcmp(canonical, "session-token");
}

int agent_config_set(struct agent_config *cfg, const char *key,
		     const char *value, const char *source, char *err,
		     size_t errlen)
{
	char name[64], why[AGENT_MSG_MAX];
	const struct key *k = find_key(key, name, sizeof(name));

	if (!k) {
		set_err(err, errlen, "%s: unknown key '%.64s' (docs/agent.md "
			"lists the keys)", source, key);
		return -1;
	}
	if (k->set(cfg, k, value, why, sizeof(why))) {
		/* Never echo a secret back, even a malformed one. */
		set_err(err, errlen, "%s: %s: %s", source, k->name,
			secret_key(k->name) ? "malformed value" : why);
		return -1;
	}
	return 0;
}

/* ---- the file --------------------------------------------------------- */

/*
 * Split LINE into KEY and VALUE ("key = value", blanks around either,
 * an optional pair of quotes around the value).  1 for a key, 0 for a
 * blank or comment line, -1 for a line without '='.
 */
static int split_line(char *line, char **key, char **value)
{
	char *p = line, *eq, *e;
	size_t n;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p || *p == '#' || *p == ';')
		return 0;
	eq = strchr(p, '=');
	if (!eq)
		return -1;
	for (e = eq; e > p && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	*key = p;
	p = eq + 1;
	while (isspace((unsigned char)*p))
		p++;
	n = strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		p[--n] = '\0';
	if (n >= 2 && (p[0] == '"' || p[0] == '\'') && p[n - 1] == p[0]) {
		p[n - 1] = '\0';
		p++;
	}
	*value = p;
	return 1;
}

int agent_config_load(struct agent_config *cfg, const char *path, char *err,
		      size_t errlen)
{
	char line[LINE_MAX_LEN], src[AGENT_PATH_MAX + 32];
	bool has_secret = false;
	unsigned int lineno = 0;
	struct stat st;
	int rc = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		set_err(err, errlen, "cannot read the configuration %s: %s",
			path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *key, *value, canon[64];
		int r;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			set_err(err, errlen, "%s:%u: line longer than %d "
				"characters", path, lineno, LINE_MAX_LEN - 2);
			rc = -1;
			break;
		}
		r = split_line(line, &key, &value);
		if (r == 0)
			continue;
		if (r < 0) {
			set_err(err, errlen, "%s:%u: not a 'key = value' line",
				path, lineno);
			rc = -1;
			break;
		}
		snprintf(src, sizeof(src), "%s:%u", path, lineno);
		if (agent_config_set(cfg, key, value, src, err, errlen)) {
			rc = -1;
			break;
		}
		if (find_key(key, canon, sizeof(canon)) && secret_key(canon) &&
		    value[0])
			has_secret = true;
	}
	explicit_bzero(line, sizeof(line));
	/* A secret in a file others can read is as good as published. */
	if (!rc && has_secret && fstat(fileno(f), &st) == 0 &&
	    (st.st_mode & 077)) {
		set_err(err, errlen, "%s holds the installer's secret but is "
			"readable by group or others (mode %03o): chmod 600 "
			"%s", path, (unsigned int)(st.st_mode & 0777), path);
		rc = -1;
	}
	fclose(f);
	if (!rc)
		snprintf(cfg->conf_file, sizeof(cfg->conf_file), "%s", path);
	return rc;
}

/* ---- the whole ------------------------------------------------------- */

int agent_config_check(struct agent_config *cfg, char *err, size_t errlen)
{
	const char *env;

	if (!cfg->proxy[0]) {
		env = getenv("https_proxy");
		if (!env || !*env)
			env = getenv("HTTPS_PROXY");
		if (env && *env) {
			char canon[16], why[256];
			const struct key *k = find_key("proxy", canon,
						       sizeof(canon));

			if (set_proxy(cfg, k, env, why, sizeof(why))) {
				set_err(err, errlen, "https_proxy in the "
					"environment: %s", why);
				return -1;
			}
		}
	}
	if (cfg->standalone) {
		if (!cfg->replicator[0] || !cfg->source_server_id[0] ||
		    !cfg->cert[0] || !cfg->key[0] || !cfg->ca[0]) {
			set_err(err, errlen, "standalone mode needs "
				"replicator, source-server-id, cert, key and "
				"ca");
			return -1;
		}
	} else {
		if (cfg->replicator_id[0]) {
			set_err(err, errlen, "replicator-id applies to "
				"standalone mode only: ferry-control says "
				"which replicator this server has");
			return -1;
		}
		if (!cfg->endpoint[0]) {
			set_err(err, errlen, "no endpoint: set endpoint = "
				"https://HOST[:PORT] (ferry-control) in %s, or "
				"standalone = yes", cfg->conf_file[0] ?
				cfg->conf_file : AGENT_CONF_FILE);
			return -1;
		}
		if (!cfg->region[0]) {
			set_err(err, errlen, "region is empty");
			return -1;
		}
		if (cfg->secret_access_key[0] && !cfg->access_key_id[0]) {
			set_err(err, errlen, "secret-access-key is set but "
				"access-key-id is not");
			return -1;
		}
		if (cfg->session_token[0] && !cfg->secret_access_key[0]) {
			set_err(err, errlen, "session-token is set but "
				"secret-access-key is not");
			return -1;
		}
		if (cfg->ca_bundle[0] && access(cfg->ca_bundle, R_OK)) {
			set_err(err, errlen, "ca-bundle %s: %s",
				cfg->ca_bundle, strerror(errno));
			return -1;
		}
	}
	if (cfg->state_dir[0] != '/') {
		set_err(err, errlen, "state-dir must be an absolute path");
		return -1;
	}
	if (!cfg->run_dir[0])
		snprintf(cfg->run_dir, sizeof(cfg->run_dir), "%s",
			 strcmp(cfg->state_dir, AGENT_STATE_DIR) ?
			 cfg->state_dir : AGENT_RUN_DIR);
	if (cfg->run_dir[0] != '/') {
		set_err(err, errlen, "run-dir must be an absolute path");
		return -1;
	}
	/* A partition means its whole disk; named twice, once. */
	for (unsigned int i = 0; i < cfg->n_devices; i++) {
		char whole[AGENT_NAME_MAX];

		if (hostinfo_whole_disk(cfg->devices[i], whole,
					sizeof(whole), err, errlen))
			return -1;
		snprintf(cfg->devices[i], sizeof(cfg->devices[i]), "%s",
			 whole);
		for (unsigned int j = 0; j < i; j++) {
			if (strcmp(cfg->devices[j], whole))
				continue;
			memmove(&cfg->devices[i], &cfg->devices[i + 1],
				(cfg->n_devices - i - 1) *
				sizeof(cfg->devices[0]));
			cfg->n_devices--;
			i--;
			break;
		}
	}
	return 0;
}

/* ---- removing the secret --------------------------------------------- */

int agent_config_forget_secret(const char *path, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN], copy[LINE_MAX_LEN], tmp[AGENT_PATH_MAX + 16];
	bool dropped = false;
	struct stat st;
	FILE *in, *out = NULL;
	int fd = -1, rc = -1;

	tmp[0] = '\0';
	in = fopen(path, "re");
	if (!in) {
		set_err(err, errlen, "cannot read %s: %s", path,
			strerror(errno));
		return -1;
	}
	if (fstat(fileno(in), &st)) {
		set_err(err, errlen, "cannot stat %s: %s", path,
			strerror(errno));
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.ferry-tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		  st.st_mode & 0600);
	if (fd < 0 || fchmod(fd, st.st_mode & 07777) ||
	    (fchown(fd, st.st_uid, st.st_gid) && errno != EPERM) ||
	    !(out = fdopen(fd, "w"))) {
		set_err(err, errlen, "cannot write %s: %s", tmp,
			strerror(errno));
		goto out;
	}
	fd = -1;
	while (fgets(line, sizeof(line), in)) {
		char *key, *value, canon[64];

		memcpy(copy, line, sizeof(line));
		if (split_line(copy, &key, &value) == 1 &&
		    find_key(key, canon, sizeof(canon)) && secret_key(canon)) {
			dropped = true;
			continue;
		}
		if (fputs(line, out) == EOF)
			break;
	}
	explicit_bzero(line, sizeof(line));
	explicit_bzero(copy, sizeof(copy));
	if (ferror(in) || fflush(out) || fsync(fileno(out))) {
		set_err(err, errlen, "cannot rewrite %s: %s", path,
			strerror(errno ? errno : EIO));
		goto out;
	}
	if (!dropped) {
		rc = 0;		/* nothing to forget: leave the file alone */
		goto out;
	}
	if (rename(tmp, path)) {
		set_err(err, errlen, "cannot replace %s: %s", path,
			strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	/* The rename itself must survive a crash. */
	{
		char dir[AGENT_PATH_MAX];
		char *slash;
		int dfd;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			snprintf(dir, sizeof(dir), ".");
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	rc = 0;
out:
	if (out)
		fclose(out);
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	fclose(in);
	return rc;
}
