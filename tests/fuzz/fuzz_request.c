// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_request.c - libFuzzer target for ferry-control's request path:
 * control_handle() (control/request.c) from the Authorization header to
 * the operation's handler, without sockets.
 *
 * Raw bytes alone would never pass the signature check, so the target
 * signs most inputs itself (sigv4_sign) with a key made at start-up, and
 * the fuzzer then reaches routing, the query, the JSON and the handlers.
 *
 * Input:
 *   byte 0  mode:
 *           bits 0-2  who signs: enum who below
 *           bit 3     raw: send the input's headers as they are, the
 *                     Authorization header included (the SigV4 parser
 *                     and checks are fuzzed)
 *           bit 4     add and sign X-Amz-Content-SHA256
 *           bit 5     run the periodic hooks (control_periodic) first
 *           bit 6     the clock is a day past the session TTL (expired
 *                     agent credentials, agents not seen)
 *           bit 7     a Date header instead of X-Amz-Date
 *   byte 1  X-Amz-Date offset from the clock: (int8_t) * 8 seconds,
 *           so +-17 minutes and both sides of the 15-minute skew limit
 *   then    "METHOD URI\n" then "Name: value\n" lines, an empty line,
 *           and the body (the rest, any bytes), as in HTTP/1.1.
 * In the URI, header values and body, "@K" becomes the key ID, "@T" its
 * session token, "@D" the X-Amz-Date the target uses, "@A" and "@B" the
 * IDs of the two source servers registered at start-up and "@P" that of
 * a replication configuration template (the IDs are random, so the
 * corpus cannot spell them).
 * A header in the input wins over the one the target would add (Host,
 * X-Amz-Date, Date); Authorization and X-Amz-Security-Token are replaced
 * when the target signs.
 *
 * State: one data directory under /dev/shm (or /tmp) per process, made
 * in LLVMFuzzerInitialize and removed at exit (after a crash, by the next
 * run); handlers write to it, so the state grows over a run.  A fresh replay cache per input keeps one
 * input's answer independent of whether it ran before.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "../../control/api.h"
#include "../../control/ca.h"
#include "../../control/config.h"
#include "../../control/keys.h"
#include "../../control/log.h"
#include "../../control/request.h"
#include "../../control/sigv4.h"
#include "../../control/store.h"

#define REGION "us-east-1"
#define HOST "control.fuzz.test:8443"
/* The clock of the whole run: 2026-11-22T06:30:00Z. */
#define NOW ((time_t)1795329000)

enum who {
	WHO_ADMIN,
	WHO_INSTALLER,
	WHO_AGENT_A,
	WHO_AGENT_B,
	WHO_REPLICATOR,
	WHO_WRONG_SECRET,	/* the admin's key ID, another secret */
	WHO_AGENT_NO_TOKEN,	/* agent A's key without its session token */
	WHO_UNKNOWN,		/* a key ID the store does not know */
};

struct cred {
	char akid[130];
	char secret[130];
	char token[200];	/* "" for long-term keys */
};

static struct control_config cfg = {
	.region = REGION,
	.agent_timeout = 300,
	.replicator_timeout = 300,
	.session_ttl = 12 * 3600,
	.threads = 1,
	.account_id = "123456789012",
};
static struct control ctl = { .cfg = &cfg };
static char data_dir[64];
static struct cred creds[8];
static char server_a[32], server_b[32];	/* source server IDs */
static char template_id[32];	/* a replication configuration template */
static bool verbose;	/* FUZZ_VERBOSE=1: print each answer */

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_request: %s: %s\n", what, detail);
	exit(1);
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!lstat(path, &st) && S_ISDIR(st.st_mode))
			remove_tree(path);
		else
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/*
 * A crash or a sanitizer report ends the process without atexit(): drop
 * the directories of fuzzers that are no longer running.
 */
static void remove_stale(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;
	char path[512];
	int pid;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (sscanf(e->d_name, "ferry-fuzz.%d.", &pid) != 1 ||
		    pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
		remove_tree(path);
	}
	closedir(d);
}

static void cleanup(void)
{
	sigv4_replay_free(ctl.replay);
	ctl.replay = NULL;
	ca_free(ctl.ca);
	ctl.ca = NULL;
	store_close(ctl.st);
	ctl.st = NULL;
	if (data_dir[0])
		remove_tree(data_dir);
}

/* ---- building one request ---- */

struct hdr {
	char *name, *value;
};

struct fuzz_req {
	char *method, *uri;
	struct hdr h[REQUEST_MAX_HEADERS];
	size_t nh;
	char *body;		/* exactly body_len bytes, no terminator */
	size_t body_len;
};

static char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		abort();
	return p;
}

static void fr_free(struct fuzz_req *r)
{
	free(r->method);
	free(r->uri);
	for (size_t i = 0; i < r->nh; i++) {
		free(r->h[i].name);
		free(r->h[i].value);
	}
	free(r->body);
}

static struct hdr *fr_find(struct fuzz_req *r, const char *name)
{
	for (size_t i = 0; i < r->nh; i++)
		if (!strcasecmp(r->h[i].name, name))
			return &r->h[i];
	return NULL;
}

static void fr_add(struct fuzz_req *r, const char *name, const char *value)
{
	if (r->nh == REQUEST_MAX_HEADERS)
		return;
	r->h[r->nh].name = xstrndup(name, strlen(name));
	r->h[r->nh++].value = xstrndup(value, strlen(value));
}

static void fr_del(struct fuzz_req *r, const char *name)
{
	size_t o = 0;

	for (size_t i = 0; i < r->nh; i++) {
		if (!strcasecmp(r->h[i].name, name)) {
			free(r->h[i].name);
			free(r->h[i].value);
		} else {
			r->h[o++] = r->h[i];
		}
	}
	r->nh = o;
}

/* Split "METHOD URI\nName: value\n...\n\nBODY" (NULs end a string). */
static void fr_parse(struct fuzz_req *r, const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *nl = memchr(p, '\n', size), *sp;
	size_t l = nl ? (size_t)(nl - p) : size;

	memset(r, 0, sizeof(*r));
	sp = memchr(p, ' ', l);
	r->method = xstrndup(p, sp ? (size_t)(sp - p) : l);
	r->uri = sp ? xstrndup(sp + 1, l - (size_t)(sp + 1 - p)) :
		      xstrndup("/", 1);
	p = nl ? nl + 1 : end;
	while (p < end) {
		const char *colon, *v;

		nl = memchr(p, '\n', (size_t)(end - p));
		l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (l && p[l - 1] == '\r')
			l--;
		if (!l) {
			p = nl ? nl + 1 : end;
			break;
		}
		colon = memchr(p, ':', l);
		if (colon && r->nh < REQUEST_MAX_HEADERS) {
			v = colon + 1;
			r->h[r->nh].name = xstrndup(p, (size_t)(colon - p));
			r->h[r->nh++].value =
				xstrndup(v, l - (size_t)(v - p));
		}
		p = nl ? nl + 1 : end;
	}
	r->body_len = (size_t)(end - p);
	if (r->body_len) {
		/* No terminator: an over-read is an ASan report. */
		r->body = malloc(r->body_len);
		if (!r->body)
			abort();
		memcpy(r->body, p, r->body_len);
	}
}

/*
 * [S, S+N) with the placeholders replaced: "@K" the key ID, "@T" its
 * session token, "@D" the request's X-Amz-Date, "@A" and "@B" the IDs
 * of the two source servers made at start-up, "@P" the template's.
 * Returns a malloc'd copy of *N bytes (plus a terminator).
 */
static char *substitute(const char *s, size_t *n, const struct cred *c,
			const char *amz_date)
{
	size_t cap = *n + 1, len = 0;
	char *out = malloc(cap);

	if (!out)
		abort();
	for (size_t i = 0; i < *n; i++) {
		const char *rep = NULL;
		size_t rl = 1;

		if (s[i] == '@' && i + 1 < *n) {
			switch (s[i + 1]) {
			case 'K': rep = c->akid; break;
			case 'T': rep = c->token; break;
			case 'D': rep = amz_date; break;
			case 'A': rep = server_a; break;
			case 'B': rep = server_b; break;
			case 'P': rep = template_id; break;
			}
		}
		if (rep)
			rl = strlen(rep);
		if (len + rl + 1 > cap) {
			cap = 2 * (len + rl + 1);
			out = realloc(out, cap);
			if (!out)
				abort();
		}
		if (rep) {
			memcpy(out + len, rep, rl);
			i++;
		} else {
			out[len] = s[i];
		}
		len += rl;
	}
	out[len] = '\0';
	*n = len;
	return out;
}

static void substitute_str(char **s, const struct cred *c,
			   const char *amz_date)
{
	size_t n = strlen(*s);
	char *v = substitute(*s, &n, c, amz_date);

	free(*s);
	*s = v;
}

static bool token_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) &&
		    !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "a;b;c": the lower-cased names of R's headers, sorted, once each. */
static void signed_names(const struct fuzz_req *r, char *out, size_t outlen)
{
	char *names[REQUEST_MAX_HEADERS];
	size_t n = 0, len = 0;

	for (size_t i = 0; i < r->nh; i++) {
		char *lc;

		if (!token_name(r->h[i].name) ||
		    !strcasecmp(r->h[i].name, "authorization"))
			continue;
		lc = xstrndup(r->h[i].name, strlen(r->h[i].name));
		for (char *c = lc; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		names[n++] = lc;
	}
	qsort(names, n, sizeof(names[0]), cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);

		if ((!i || strcmp(names[i], names[i - 1])) &&
		    len + l + 2 < outlen) {
			if (len)
				out[len++] = ';';
			memcpy(out + len, names[i], l + 1);
			len += l;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

/* Sign R as C for the X-Amz-Date (or Date) it carries; add the header. */
static void sign(struct fuzz_req *r, const struct cred *c, bool with_token,
		 const char *amz_date)
{
	struct sigv4_header sh[REQUEST_MAX_HEADERS];
	struct sigv4_request sreq;
	struct sigv4_auth auth = { 0 };
	struct hdr *dh = fr_find(r, "x-amz-date");
	const char *qm = strchr(r->uri, '?');
	char *path = qm ? xstrndup(r->uri, (size_t)(qm - r->uri)) :
			  xstrndup(r->uri, strlen(r->uri));
	char authz[2048], sig[65];
	const char *d = amz_date;

	fr_del(r, "authorization");
	fr_del(r, "x-amz-security-token");
	if (with_token && c->token[0])
		fr_add(r, "X-Amz-Security-Token", c->token);
	/* The scope's date from the header as sent, as a client would. */
	if (dh) {
		d = dh->value;
		while (*d == ' ' || *d == '\t')
			d++;
	}
	snprintf(auth.amz_date, sizeof(auth.amz_date), "%.16s", d);
	snprintf(auth.date, sizeof(auth.date), "%.8s", d);
	snprintf(auth.region, sizeof(auth.region), REGION);
	snprintf(auth.service, sizeof(auth.service), "mgn");
	signed_names(r, auth.signed_headers, sizeof(auth.signed_headers));
	for (size_t i = 0; i < r->nh; i++) {
		sh[i].name = r->h[i].name;
		sh[i].value = r->h[i].value;
	}
	sreq = (struct sigv4_request){
		.method = r->method, .path = path, .query = qm ? qm + 1 : NULL,
		.headers = sh, .n_headers = r->nh, .body = r->body,
		.body_len = r->body_len,
	};
	if (sigv4_sign(&sreq, &auth, c->secret, sig))
		memset(sig, '0', 64), sig[64] = '\0';
	free(path);
	snprintf(authz, sizeof(authz),
		 "AWS4-HMAC-SHA256 Credential=%s/%s/" REGION
		 "/mgn/aws4_request, SignedHeaders=%s, Signature=%s",
		 c->akid, auth.date, auth.signed_headers, sig);
	fr_add(r, "Authorization", authz);
}

/* Answer R; the response is freed.  Returns the HTTP status. */
static int run(struct fuzz_req *r, time_t now, json_t **out)
{
	struct control_request req = { .method = r->method, .uri = r->uri,
				       .body = r->body,
				       .body_len = r->body_len, .now = now };
	struct control_response resp;
	int status;

	for (size_t i = 0; i < r->nh; i++) {
		req.headers[i].name = r->h[i].name;
		req.headers[i].value = r->h[i].value;
	}
	req.n_headers = r->nh;
	control_handle(&ctl, &req, &resp);
	/* What the HTTP layer would send: a JSON body unless 204. */
	if (resp.status < 200 || resp.status > 599 ||
	    (resp.status != 204 && !resp.body) ||
	    (resp.status >= 300 && !resp.error_type[0]))
		abort();
	if (resp.body) {
		json_error_t err;
		json_t *j = json_loadb(resp.body, resp.body_len, 0, &err);

		if (!j)	/* ferry must answer JSON */
			abort();
		if (out)
			*out = j;
		else
			json_decref(j);
	}
	status = resp.status;
	if (verbose)
		fprintf(stderr, "fuzz_request: %s %s -> %d %s %.300s\n",
			r->method, r->uri, status, resp.error_type,
			resp.body ? resp.body : "");
	control_response_free(&resp);
	return status;
}

/* X-Amz-Content-SHA256: the body's hash, as botocore may send it. */
static void add_content_sha256(struct fuzz_req *r)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int len = 0;
	char hex[65];

	if (!EVP_Digest(r->body ? r->body : "", r->body_len, md, &len,
			EVP_sha256(), NULL) || len != 32)
		abort();
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
	fr_add(r, "X-Amz-Content-SHA256", hex);
}

static void fmt_amz(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* One signed set-up call; dies unless it answers WANT. */
static json_t *setup_call(const char *op, const char *body,
			  const struct cred *c, int want)
{
	struct fuzz_req r = { 0 };
	char uri[128], amz[17];
	json_t *out = NULL;
	int st;

	/* Different calls, so different signatures: the replay cache
	 * takes them all. */
	fmt_amz(NOW - 60, amz);
	snprintf(uri, sizeof(uri), "/%s", op);
	r.method = xstrndup("POST", 4);
	r.uri = xstrndup(uri, strlen(uri));
	r.body_len = strlen(body);
	r.body = xstrndup(body, r.body_len);
	fr_add(&r, "Host", HOST);
	fr_add(&r, "Content-Type", "application/json");
	fr_add(&r, "X-Amz-Date", amz);
	sign(&r, c, true, amz);
	st = run(&r, NOW, &out);
	fr_free(&r);
	if (st != want) {
		char *s = out ? json_dumps(out, 0) : NULL;

		die(op, s ? s : "no body");
	}
	return out;
}

static void copy_member(json_t *obj, const char *key, char *out,
			size_t outlen)
{
	const char *v = json_string_value(json_object_get(obj, key));

	snprintf(out, outlen, "%s", v ? v : "");
}

static void register_agent(const char *host, const char *machine,
			   struct cred *c, char id[32])
{
	char body[1024];
	json_t *out, *cr;

	snprintf(body, sizeof(body),
		 "{\"hostname\":\"%s\",\"fqdn\":\"%s.example.test\","
		 "\"machineId\":\"%s\",\"agentVersion\":\"0.1.0\","
		 "\"cpus\":[{\"cores\":2,\"modelName\":\"QEMU\"}],"
		 "\"ramBytes\":2147483648,"
		 "\"os\":{\"fullString\":\"Debian GNU/Linux 12\"},"
		 "\"networkInterfaces\":[{\"macAddress\":\"52:54:00:12:34:56\","
		 "\"ips\":[\"10.0.2.15\"],\"isPrimary\":true}],"
		 "\"disks\":[{\"deviceName\":\"/dev/vda\","
		 "\"bytes\":8589934592},"
		 "{\"deviceName\":\"/dev/vdb\",\"bytes\":1073741824}],"
		 "\"tags\":{\"env\":\"fuzz\"}}", host, host, machine);
	out = setup_call("RegisterAgentForMgn", body, &creds[WHO_INSTALLER],
			 200);
	cr = json_object_get(out, "credentials");
	copy_member(cr, "accessKeyId", c->akid, sizeof(c->akid));
	copy_member(cr, "secretAccessKey", c->secret, sizeof(c->secret));
	copy_member(cr, "sessionToken", c->token, sizeof(c->token));
	copy_member(out, "sourceServerID", id, 32);
	if (!c->akid[0] || !c->secret[0] || !c->token[0] || !id[0])
		die("RegisterAgentForMgn", "no credentials in the answer");
	json_decref(out);
}

static void long_term_key(const char *name, unsigned role, struct cred *c)
{
	struct key_record k;
	int rc;

	if (store_begin(ctl.st))
		die("store_begin", data_dir);
	rc = keys_create(ctl.st, name, role, NOW - 3600, &k);
	store_end(ctl.st, rc == 0);
	if (rc)
		die("keys_create", name);
	snprintf(c->akid, sizeof(c->akid), "%s", k.access_key_id);
	snprintf(c->secret, sizeof(c->secret), "%s", k.secret);
}

static const char *const machine_ids[2] = {
	"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210",
};

/*
 * Inputs delete and disconnect the two source servers, which revokes
 * their agents' keys; register again (same machine, so the same server
 * while it exists) so that later inputs still reach the agent handlers.
 */
static void keep_agents(void)
{
	static const char *const hosts[2] = { "web1", "db1" };
	char *ids[2] = { server_a, server_b };

	for (int i = 0; i < 2; i++) {
		struct cred *c = &creds[WHO_AGENT_A + i];
		struct key_record k;
		int rc;

		if (store_begin(ctl.st))
			die("store_begin", data_dir);
		rc = keys_lookup(ctl.st, c->akid, &k);
		store_end(ctl.st, false);
		if (rc == 0 && k.active)
			continue;
		register_agent(hosts[i], machine_ids[i], c, ids[i]);
		if (i == 0)
			creds[WHO_AGENT_NO_TOKEN] = *c;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base;
	char err[512];
	json_t *out;

	(void)argc;
	(void)argv;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	log_set_quiet(!verbose);
	umask(077);
	/* tmpfs: the store fsyncs at every commit. */
	base = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	remove_stale(base);
	snprintf(data_dir, sizeof(data_dir), "%s/ferry-fuzz.%d.XXXXXX", base,
		 (int)getpid());
	if (!mkdtemp(data_dir))
		die("mkdtemp", data_dir);
	cfg.data_dir = data_dir;
	atexit(cleanup);
	ctl.st = store_open(data_dir, err, sizeof(err));
	if (!ctl.st)
		die("store_open", err);
	ctl.ca = ca_open(data_dir, err, sizeof(err));
	if (!ctl.ca)
		die("ca_open", err);
	ctl.replay = sigv4_replay_new();
	if (!ctl.replay)
		die("sigv4_replay_new", "out of memory");

	long_term_key("fuzz-admin", ROLE_ADMIN, &creds[WHO_ADMIN]);
	long_term_key("fuzz-installer", ROLE_INSTALLER,
		      &creds[WHO_INSTALLER]);
	long_term_key("fuzz-replicator", ROLE_REPLICATOR,
		      &creds[WHO_REPLICATOR]);
	creds[WHO_WRONG_SECRET] = creds[WHO_ADMIN];
	snprintf(creds[WHO_WRONG_SECRET].secret,
		 sizeof(creds[WHO_WRONG_SECRET].secret), "not-the-secret");
	snprintf(creds[WHO_UNKNOWN].akid, sizeof(creds[WHO_UNKNOWN].akid),
		 "AKIAFERRYUNKNOWN0001");
	snprintf(creds[WHO_UNKNOWN].secret, sizeof(creds[WHO_UNKNOWN].secret),
		 "unknown-secret");

	/* Data for the handlers, made through the request path itself. */
	json_decref(setup_call("InitializeService", "{}", &creds[WHO_ADMIN],
			       204));
	keep_agents();
	json_decref(setup_call("RegisterReplicatorForMgn",
			       "{\"replicatorID\":\"r1\","
			       "\"address\":\"127.0.0.1\","
			       "\"port\":1500,\"capacityBytes\":1099511627776,"
			       "\"freeBytes\":1099511627776}",
			       &creds[WHO_REPLICATOR], 200));
	json_decref(setup_call("UpdateAgentReplicationInfoForMgn",
			       "{\"dataReplicationState\":\"INITIAL_SYNC\","
			       "\"lagSeconds\":3723,\"etaSeconds\":600,"
			       "\"backlogBytes\":4096,\"replicatedDisks\":[{"
			       "\"deviceName\":\"/dev/vda\","
			       "\"totalStorageBytes\":8589934592,"
			       "\"replicatedStorageBytes\":3221225472,"
			       "\"rescannedStorageBytes\":0,"
			       "\"backloggedStorageBytes\":4096}]}",
			       &creds[WHO_AGENT_A], 200));
	out = setup_call("CreateReplicationConfigurationTemplate",
			       "{\"associateDefaultSecurityGroup\":true,"
			       "\"bandwidthThrottling\":0,"
			       "\"createPublicIP\":false,"
			       "\"dataPlaneRouting\":\"PRIVATE_IP\","
			       "\"defaultLargeStagingDiskType\":\"GP3\","
			       "\"ebsEncryption\":\"DEFAULT\","
			       "\"replicationServerInstanceType\":\"t3.small\","
			       "\"replicationServersSecurityGroupsIDs\":[],"
			       "\"stagingAreaSubnetId\":"
			       "\"subnet-0123456789abcdef0\","
			       "\"stagingAreaTags\":{},"
			       "\"useDedicatedReplicationServer\":false}",
			       &creds[WHO_ADMIN], 201);
	copy_member(out, "replicationConfigurationTemplateID", template_id,
		    sizeof(template_id));
	json_decref(out);
	sigv4_replay_free(ctl.replay);
	ctl.replay = NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_req r;
	unsigned mode, who;
	time_t now = NOW, t;
	char amz[17], http_date[64];
	const struct cred *c;
	bool must_fail;
	struct tm tm;

	if (size < 2)
		return 0;
	mode = data[0];
	who = mode & 7;
	c = &creds[who];
	if (mode & 0x40)
		now += cfg.session_ttl + 86400;
	t = now + (time_t)(int8_t)data[1] * 8;
	fmt_amz(t, amz);
	gmtime_r(&t, &tm);
	strftime(http_date, sizeof(http_date), "%a, %d %b %Y %H:%M:%S GMT",
		 &tm);
	fr_parse(&r, data + 2, size - 2);

	ctl.replay = sigv4_replay_new();
	if (!ctl.replay)
		abort();
	keep_agents();
	if (mode & 0x20)
		control_periodic(&ctl, now);
	substitute_str(&r.uri, c, amz);
	for (size_t i = 0; i < r.nh; i++)
		substitute_str(&r.h[i].value, c, amz);
	if (r.body) {
		char *b = substitute(r.body, &r.body_len, c, amz);

		/* Again exactly body_len bytes, for ASan. */
		free(r.body);
		r.body = malloc(r.body_len ? r.body_len : 1);
		if (!r.body)
			abort();
		memcpy(r.body, b, r.body_len);
		free(b);
	}
	/*
	 * Requests that must be refused whatever else the input holds:
	 * unsigned (raw: the fuzzer cannot forge an HMAC), signed with the
	 * wrong secret, an unknown key, an agent key without its token or
	 * expired, or dated beyond the allowed skew.
	 */
	must_fail = (mode & 0x08) || who == WHO_WRONG_SECRET ||
		    who == WHO_UNKNOWN || who == WHO_AGENT_NO_TOKEN ||
		    ((who == WHO_AGENT_A || who == WHO_AGENT_B) &&
		     (mode & 0x40));
	/* Raw mode (bit 3) sends the input's headers only. */
	if (!(mode & 0x08)) {
		bool our_date = !fr_find(&r, "x-amz-date") &&
				(!(mode & 0x80) || !fr_find(&r, "date"));

		if (!fr_find(&r, "host"))
			fr_add(&r, "Host", HOST);
		if (our_date) {
			if (mode & 0x80)
				fr_add(&r, "Date", http_date);
			else
				fr_add(&r, "X-Amz-Date", amz);
			if (t < now - SIGV4_MAX_SKEW ||
			    t > now + SIGV4_MAX_SKEW)
				must_fail = true;
		}
		if ((mode & 0x10) && !fr_find(&r, "x-amz-content-sha256"))
			add_content_sha256(&r);
		sign(&r, c, who != WHO_AGENT_NO_TOKEN, amz);
	}
	if (run(&r, now, NULL) < 400 && must_fail) {
		fprintf(stderr, "fuzz_request: accepted a request it must "
			"refuse (mode 0x%02x)\n", mode);
		abort();
	}
	sigv4_replay_free(ctl.replay);
	ctl.replay = NULL;
	fr_free(&r);
	return 0;
}
