// SPDX-License-Identifier: GPL-2.0
/*
 * config.c - ferry-replicator's configuration (config.h).
 */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void rep_config_init(struct rep_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = strdup(REP_DEFAULT_LISTEN);
	c->data_dir = strdup(REP_DEFAULT_DATA_DIR);
	c->idle_timeout = REP_DEFAULT_IDLE;
	c->max_conns = REP_DEFAULT_MAX_CONNS;
	c->region = strdup(REP_DEFAULT_REGION);
	c->report_interval = REP_DEFAULT_REPORT_INTERVAL;
	c->cert_renew_days = REP_DEFAULT_CERT_RENEW_DAYS;
	c->max_source_servers = REP_DEFAULT_MAX_SOURCES;
	snap_policy_parse(&c->pit, SNAP_DEFAULT_POLICY, NULL, 0);
}

void rep_config_free(struct rep_config *c)
{
	free(c->listen);
	free(c->data_dir);
	free(c->cert);
	free(c->key);
	free(c->ca);
	free(c->id);
	free(c->allow);
	free(c->control_url);
	free(c->control_ca);
	free(c->region);
	free(c->advertise);
	free(c->access_key_id);
	free(c->secret_access_key);
	free(c->credentials_file);
	memset(c, 0, sizeof(*c));
}

static int set_str(char **dst, const char *key, const char *value, char *err,
		   size_t errlen)
{
	char *s;

	if (!*value) {
		set_err(err, errlen, "%s needs a value", key);
		return -1;
	}
	s = strdup(value);
	if (!s) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	free(*dst);
	*dst = s;
	return 0;
}

static int parse_uint(const char *key, const char *value, unsigned int min,
		      unsigned int max, unsigned int *out, char *err,
		      size_t errlen)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(value, &end, 10);
	if (!isdigit((unsigned char)*value) || *end || errno || v < min ||
	    v > max) {
		set_err(err, errlen, "%s = \"%s\" is not a number in %u-%u",
			key, value, min, max);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

/* Bytes, with an optional binary suffix K, M, G, T (KiB ...). */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mul = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		mul = 1ull << 10;
		break;
	case 'M':
		mul = 1ull << 20;
		break;
	case 'G':
		mul = 1ull << 30;
		break;
	case 'T':
		mul = 1ull << 40;
		break;
	default:
		return -1;
	}
	if (*end && end[1] && strcasecmp(end + 1, "iB"))
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* "SOURCE DISK SIZE" or "SOURCE *". */
static int add_allow(struct rep_config *c, const char *value, char *err,
		     size_t errlen)
{
	char src[128], disk[FERRY_WIRE_MAX_NAME + 2], size[64], extra[2];
	struct rep_allow a, *n;
	int k;

	memset(&a, 0, sizeof(a));
	k = sscanf(value, "%127s %129s %63s %1s", src, disk, size, extra);
	if (k < 2 || k > 3 || (k == 2 && strcmp(disk, "*")) ||
	    (k == 3 && !strcmp(disk, "*"))) {
		set_err(err, errlen, "allow = \"%s\": want \"SOURCE_ID "
			"DISK_NAME SIZE_BYTES\" or \"SOURCE_ID *\"", value);
		return -1;
	}
	if (!ferry_id_valid(src)) {
		set_err(err, errlen, "allow: source server ID \"%s\" is not "
			"1-%d of letters, digits, '.', '_', '-'", src,
			FERRY_ID_MAX);
		return -1;
	}
	memcpy(a.source, src, strlen(src) + 1);	/* valid: fits */
	if (k == 3) {
		if (strlen(disk) > FERRY_WIRE_MAX_NAME) {
			set_err(err, errlen, "allow: disk name %.40s... is "
				"longer than %d bytes", disk,
				FERRY_WIRE_MAX_NAME);
			return -1;
		}
		if (parse_size(size, &a.size) || a.size == 0 ||
		    a.size % FERRY_WIRE_SECTOR || a.size > INT64_MAX) {
			set_err(err, errlen, "allow: size \"%s\" of %s is not "
				"a positive multiple of %d bytes", size, disk,
				FERRY_WIRE_SECTOR);
			return -1;
		}
		memcpy(a.disk, disk, strlen(disk) + 1);
	}
	for (size_t i = 0; i < c->n_allow; i++) {
		if (!strcmp(c->allow[i].source, a.source) &&
		    !strcmp(c->allow[i].disk, a.disk)) {
			set_err(err, errlen, "allow: %s %s is assigned twice",
				a.source, k == 3 ? a.disk : "*");
			return -1;
		}
	}
	n = realloc(c->allow, (c->n_allow + 1) * sizeof(*n));
	if (!n) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	c->allow = n;
	c->allow[c->n_allow++] = a;
	return 0;
}

/* The ferry-control settings (docs/replicator.md); 1 if KEY is not one. */
static int set_control(struct rep_config *c, const char *key,
		       const char *value, char *err, size_t errlen)
{
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
		{ "control-url", offsetof(struct rep_config, control_url) },
		{ "control-ca", offsetof(struct rep_config, control_ca) },
		{ "region", offsetof(struct rep_config, region) },
		{ "advertise", offsetof(struct rep_config, advertise) },
		{ "access-key-id", offsetof(struct rep_config, access_key_id) },
		{ "secret-access-key",
		  offsetof(struct rep_config, secret_access_key) },
		{ "credentials-file",
		  offsetof(struct rep_config, credentials_file) },
	};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (!strcmp(key, strs[i].key))
			return set_str((char **)((char *)c + strs[i].off),
				       key, value, err, errlen);
	if (!strcmp(key, "report-interval"))
		return parse_uint(key, value, 1, 3600, &c->report_interval,
				  err, errlen);
	if (!strcmp(key, "cert-renew-days"))
		return parse_uint(key, value, 1, 3650, &c->cert_renew_days,
				  err, errlen);
	if (!strcmp(key, "max-source-servers"))
		return parse_uint(key, value, 1, 10000,
				  &c->max_source_servers, err, errlen);
	return 1;
}

int rep_config_set(struct rep_config *c, const char *key, const char *value,
		   char *err, size_t errlen)
{
	char k[64];
	int rc;

	/* control_url and control-url alike: the spelling and the
	 * options'. */
	snprintf(k, sizeof(k), "%s", key);
	for (char *p = k; *p; p++)
		if (*p == '_')
			*p = '-';
	rc = set_control(c, k, value, err, errlen);
	if (rc <= 0)
		return rc;
	key = k;
	if (!strcmp(key, "listen"))
		return set_str(&c->listen, key, value, err, errlen);
	if (!strcmp(key, "data-dir"))
		return set_str(&c->data_dir, key, value, err, errlen);
	if (!strcmp(key, "cert"))
		return set_str(&c->cert, key, value, err, errlen);
	if (!strcmp(key, "key"))
		return set_str(&c->key, key, value, err, errlen);
	if (!strcmp(key, "ca"))
		return set_str(&c->ca, key, value, err, errlen);
	if (!strcmp(key, "id")) {
		if (!ferry_id_valid(value)) {
			set_err(err, errlen, "id \"%s\" is not 1-%d of "
				"letters, digits, '.', '_', '-'", value,
				FERRY_ID_MAX);
			return -1;
		}
		return set_str(&c->id, key, value, err, errlen);
	}
	if (!strcmp(key, "idle-timeout"))
		return parse_uint(key, value, 1, 86400, &c->idle_timeout, err,
				  errlen);
	if (!strcmp(key, "max-connections"))
		return parse_uint(key, value, 1, 4096, &c->max_conns, err,
				  errlen);
	if (!strcmp(key, "allow"))
		return add_allow(c, value, err, errlen);
	if (!strcmp(key, "pit-policy"))
		return snap_policy_parse(&c->pit, value, err, errlen);
	if (!strcmp(key, "launch-format")) {
		if (strcmp(value, "raw") && strcmp(value, "qcow2")) {
			set_err(err, errlen, "launch-format \"%s\" is not raw "
				"or qcow2", value);
			return -1;
		}
		c->launch_qcow2 = !strcmp(value, "qcow2");
		return 0;
	}
	set_err(err, errlen, "unknown setting \"%s\"", key);
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int rep_config_load(struct rep_config *c, const char *path, char *err,
		    size_t errlen)
{
	char line[1024], why[512];
	unsigned int lineno = 0;
	bool has_secret = false;
	struct stat st;
	FILE *f = fopen(path, "re");

	if (!f) {
		set_err(err, errlen, "cannot open configuration %s: %s", path,
			strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s, *eq, *hash;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			set_err(err, errlen, "%s:%u: line longer than %zu "
				"bytes", path, lineno, sizeof(line) - 2);
			goto fail;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		s = trim(line);
		if (!*s)
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			set_err(err, errlen, "%s:%u: want \"key = value\"",
				path, lineno);
			goto fail;
		}
		*eq = '\0';
		s = trim(s);
		if (rep_config_set(c, s, trim(eq + 1), why, sizeof(why))) {
			set_err(err, errlen, "%s:%u: %s", path, lineno, why);
			goto fail;
		}
		/* Spelt with '_' or '-' anywhere, as rep_config_set takes
		 * it. */
		for (char *p = s; *p; p++)
			if (*p == '_')
				*p = '-';
		if (!strcmp(s, "secret-access-key") && *trim(eq + 1))
			has_secret = true;
	}
	explicit_bzero(line, sizeof(line));
	if (ferror(f)) {
		set_err(err, errlen, "cannot read configuration %s", path);
		goto fail;
	}
	/* A secret in a file others can read is as good as published. */
	if (has_secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		set_err(err, errlen, "%s holds secret-access-key but is "
			"readable by group or others (mode %03o): chmod 600 %s",
			path, (unsigned int)(st.st_mode & 0777), path);
		goto fail;
	}
	fclose(f);
	return 0;
fail:
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return -1;
}

int rep_config_check(const struct rep_config *c, char *err, size_t errlen)
{
	char host[256], port[32];

	if (c->control_url) {
		/* Registration can fetch the certificate (a CSR signed by
		 * ferry-control's CA), and agents' certificates come from
		 * that CA. */
		if (!c->id || strlen(c->id) > 31) {
			set_err(err, errlen, "control-url needs id, the "
				"replicator's name at ferry-control (1-31 "
				"characters)");
			return -1;
		}
		if (!c->control_ca) {
			set_err(err, errlen, "control-url needs control-ca, "
				"ferry-control's CA certificate (its "
				"DATA_DIR/ca.pem)");
			return -1;
		}
		if (!c->credentials_file &&
		    (!c->access_key_id || !c->secret_access_key)) {
			set_err(err, errlen, "control-url needs a replicator "
				"key: access-key-id and secret-access-key, "
				"or credentials-file");
			return -1;
		}
		if (!c->cert != !c->key) {
			set_err(err, errlen, "cert and key go together (or "
				"neither: ferry-control issues them)");
			return -1;
		}
		if (rep_split_hostport(c->listen, host, sizeof(host), port,
				       sizeof(port), err, errlen))
			return -1;
		if (!c->advertise && (!strcmp(host, "0.0.0.0") ||
				      !strcmp(host, "::"))) {
			set_err(err, errlen, "listen = %s is no address agents "
				"can connect to: set advertise = ADDRESS (the "
				"address registered with ferry-control)",
				c->listen);
			return -1;
		}
		return 0;
	}
	if (!c->cert || !c->key || !c->ca) {
		set_err(err, errlen, "the server certificate, its key and the "
			"CA certificate are required (--cert, --key, --ca, or "
			"cert/key/ca in the configuration file)");
		return -1;
	}
	return rep_split_hostport(c->listen, host, sizeof(host), port,
				  sizeof(port), err, errlen);
}

/* T as "2026-12-07 13:20:00 UTC", or "?" if it cannot be read. */
static void cert_time(const ASN1_TIME *t, char *out, size_t len)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm) ||
	    !strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, len, "?");
}

int rep_cert_agents_take(X509 *cert, const char *what, char *err,
			 size_t errlen)
{
	char when[64];

	if (!ferry_cert_is_replicator(cert)) {
		set_err(err, errlen, "%s lacks ferry's replicator key purpose "
			"(made before it existed, or not by ferry-control "
			"certs issue --kind replicator): agents refuse it",
			what);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		cert_time(X509_get0_notBefore(cert), when, sizeof(when));
		set_err(err, errlen, "%s is not valid before %s (is this "
			"machine's clock right?): agents refuse it", what,
			when);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		cert_time(X509_get0_notAfter(cert), when, sizeof(when));
		set_err(err, errlen, "%s expired on %s: agents refuse it",
			what, when);
		return -1;
	}
	return 0;
}

enum rep_cert_id rep_cert_id(X509 *cert, const char *what, const char *id,
			     char *got, char *err, size_t errlen)
{
	if (!cert || ferry_peer_replicator(cert, got, FERRY_ID_MAX + 1)) {
		got[0] = '\0';
		set_err(err, errlen, "%s names no replicator ID (no URI SAN "
			FERRY_URN_REPLICATOR "ID), so it cannot be %s", what,
			id);
		return REP_CERT_ID_NONE;
	}
	if (strcmp(got, id)) {
		set_err(err, errlen, "%s names replicator %s (URI SAN "
			FERRY_URN_REPLICATOR "%s), not %s", what, got, got,
			id);
		return REP_CERT_ID_OTHER;
	}
	return REP_CERT_ID_OK;
}

int rep_config_check_cert(const struct rep_config *c, X509 *cert, char *err,
			  size_t errlen)
{
	char what[4200], why[4800], got[FERRY_ID_MAX + 1];
	enum rep_cert_id r;

	snprintf(what, sizeof(what), "certificate %s", c->cert);
	if (rep_cert_agents_take(cert, what, why, sizeof(why))) {
		set_err(err, errlen, "%s; use one from ferry-control certs "
			"issue --kind replicator --id %s", why,
			c->id ? c->id : "ID");
		return -1;
	}
	if (!c->id)
		return 0;
	r = rep_cert_id(cert, what, c->id, got, why, sizeof(why));
	if (r == REP_CERT_ID_OK)
		return 0;
	/* With ferry-control, agents are told to expect id (the name this
	 * replicator registers); standalone, those with replicator-id
	 * expect it, which can only be meant to be this id. */
	if (c->control_url) {
		set_err(err, errlen, "%s, this replicator's id: agents that "
			"ferry-control assigns to %s would refuse it; use a "
			"certificate issued for %s (ferry-control certs issue "
			"--kind replicator --id %s), or leave out cert and key "
			"and ferry-control issues one", why, c->id, c->id,
			c->id);
		return -1;
	}
	if (r == REP_CERT_ID_NONE) {
		/* Agents without replicator-id take any replicator's
		 * certificate of their CA: no reason to stop serving them. */
		set_err(err, errlen, "warning: %s, this replicator's id: "
			"agents that check it (replicator-id in their "
			"configuration, or assigned to %s by ferry-control) "
			"will refuse it; a certificate issued for %s "
			"(ferry-control certs issue --kind replicator --id %s) "
			"suits them all", why, c->id, c->id, c->id);
		return 1;
	}
	set_err(err, errlen, "%s, this replicator's id: agents expecting %s "
		"(their replicator-id, or ferry-control's assignment) would "
		"refuse it; use a certificate issued for %s (ferry-control "
		"certs issue --kind replicator --id %s), or set id = %s if "
		"that is this replicator's name", why, c->id, c->id, c->id,
		got);
	return -1;
}

const struct rep_allow *rep_config_find(const struct rep_config *c,
					const char *source, const char *disk,
					int *known_source)
{
	const struct rep_allow *any = NULL;

	*known_source = 0;
	for (size_t i = 0; i < c->n_allow; i++) {
		const struct rep_allow *a = &c->allow[i];

		if (strcmp(a->source, source))
			continue;
		*known_source = 1;
		if (!a->disk[0])
			any = a;
		else if (!strcmp(a->disk, disk))
			return a;
	}
	return any;
}

int rep_split_hostport(const char *s, char *host, size_t hostlen,
		       char *port, size_t portlen, char *err, size_t errlen)
{
	const char *colon, *h = s;
	size_t hl;
	unsigned int p;
	char *end;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			goto bad;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			goto bad;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		goto bad;
	errno = 0;
	p = (unsigned int)strtoul(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end || errno || p > 65535 ||
	    strlen(colon + 1) >= portlen)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%u", p);
	return 0;
bad:
	set_err(err, errlen, "listen address \"%s\" is not ADDR:PORT "
		"(e.g. 0.0.0.0:1500, [::]:1500)", s);
	return -1;
}
