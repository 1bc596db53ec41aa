// SPDX-License-Identifier: GPL-2.0
/*
 * control_loop.c - ferry-control as the agent sees it (control_loop.h):
 * registration, credentials, the data-plane certificate, the runtime
 * configuration, heartbeats and commands.
 *
 * Start-up (control_init, before the replication thread exists):
 *
 *   installer keys in the configuration -> RegisterAgentForMgn with the
 *     host's facts; the issued credentials go to registration.json, then
 *     the secret leaves agent.conf (agent_config_forget_secret);
 *   registered before -> the stored credentials (refreshed first if they
 *     are past two thirds of their life), and the facts sent again
 *     (UpdateAgentSourcePropertiesForMgn);
 *   the certificate: IssueClientCertificateForMgn for a CSR of a key made
 *     here, unless agent.pem is good for 30 more days;
 *   GetAgentRuntimeConfigurationForMgn into sh->rt.
 *
 * A registered agent whose ferry-control is unreachable at start-up goes
 * on with its stored certificate and last runtime configuration: the data
 * plane does not need the control plane.
 *
 * The thread then heartbeats (UpdateAgentReplicationInfoForMgn) every
 * heartbeatIntervalSeconds from sh->st, polls GetAgentCommandForMgn every
 * commandPollSeconds, queues each command for the replication thread and
 * acknowledges it once queued, fetches the runtime configuration every
 * heartbeat interval and after every command, refreshes the credentials
 * at two thirds of their life and renews the certificate 30 days before
 * it ends.  A failed call is retried after 1, 2, 4 ... 60 s; the first
 * failure of a kind is logged, and the recovery.  `uninstall`: queued,
 * acknowledged (which revokes the credentials), the registration marked
 * disconnected, and once the replication thread has stopped (at most
 * 30 s), sh->quit: the agent exits and scripts/uninstall.sh removes it.
 *
 * No secret is ever logged: messages name operations, the endpoint and
 * ferry-control's answers, never keys.
 */
#include "control_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cert.h"
#include "control_api.h"
#include "errmsg.h"
#include "hostinfo.h"
#include "state.h"
#include "wire.h"

#define DEFAULT_BEAT_S 30
#define DEFAULT_POLL_S 10
#define BACKOFF_MAX_S 60
#define CERT_MIN_LEFT_S (30 * 86400)
#define CERT_CHECK_MS (3600 * 1000ull)
#define UNINSTALL_WAIT_MS 30000
#define FINAL_BEAT_TIMEOUT_S 5
#define MAX_PENDING 64

/* One periodic call: when next, and how it failed last. */
struct task {
	uint64_t next;			/* monotonic ms; 0: now */
	unsigned int backoff_s;		/* 0: the last call succeeded */
	char logged[AGENT_MSG_MAX];	/* its error, logged once */
};

enum { T_REFRESH, T_BEAT, T_POLL, T_RUNTIME, T_CERT, N_TASKS };

struct control {
	struct agent_shared *sh;
	struct agent_config *cfg;
	struct ctl_api api;
	struct agent_state st;
	unsigned int beat_s, poll_s;
	bool cert_ok;
	struct task t[N_TASKS];
	json_t *runtime;		/* the last answer, as cached */
	/* Commands queued for the replication thread and not yet
	 * acknowledged to ferry-control (IDs). */
	long long pending[MAX_PENDING];
	unsigned int n_pending;
	long long uninstall_id;		/* queued, not yet acknowledged */
	bool uninstalled;
};

static struct control C;

static void ctl_log(const char *fmt, ...) __attribute__((format(printf, 1,
								   2)));

static void ctl_log(const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so that threads do not interleave. */
	fprintf(stderr, "ferry-agent: %s\n", line);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- outcomes of calls ------------------------------------------------ */

/* The status file's control error: the first failing task's. */
static void publish_error(void)
{
	const char *msg = "";

	for (int i = 0; i < N_TASKS && !msg[0]; i++)
		if (C.t[i].backoff_s)
			msg = C.t[i].logged;
	pthread_mutex_lock(&C.sh->lock);
	if (strcmp(C.sh->ctl.error, msg)) {
		snprintf(C.sh->ctl.error, sizeof(C.sh->ctl.error), "%s", msg);
		C.sh->ctl.error_ms = wall_ms();
	}
	pthread_mutex_unlock(&C.sh->lock);
}

/* Task T succeeded: next in INTERVAL_MS. */
static void note_ok(int t, uint64_t now, uint64_t interval_ms)
{
	struct task *k = &C.t[t];
	bool was = k->backoff_s, others = false;

	k->backoff_s = 0;
	k->logged[0] = '\0';
	k->next = now + interval_ms;
	for (int i = 0; i < N_TASKS; i++)
		others = others || C.t[i].backoff_s;
	/* One line when the last failing call recovers. */
	if (was && !others)
		ctl_log("ferry-control %s answers again", C.api.endpoint);
	publish_error();
}

/* Task T failed with MSG: logged once per new reason, retried after 1,
 * 2, 4 ... 60 s. */
static void note_fail(int t, uint64_t now, const char *msg)
{
	struct task *k = &C.t[t];

	/* A call cut short because the agent is stopping is no news. */
	if (C.api.abort && C.api.abort(C.api.abort_arg))
		return;
	if (strcmp(k->logged, msg)) {
		ctl_log("%s; retrying with backoff", msg);
		snprintf(k->logged, sizeof(k->logged), "%s", msg);
	}
	k->backoff_s = k->backoff_s ? k->backoff_s * 2 : 1;
	if (k->backoff_s > BACKOFF_MAX_S)
		k->backoff_s = BACKOFF_MAX_S;
	k->next = now + (uint64_t)k->backoff_s * 1000;
	publish_error();
}

/* ---- abort conditions ------------------------------------------------- */

/* control_init runs with SIGTERM and SIGINT blocked (main.c takes them
 * with sigtimedwait): a pending one ends a call in progress. */
static bool stop_pending(void *arg)
{
	sigset_t p;

	(void)arg;
	if (sigpending(&p))
		return false;
	return sigismember(&p, SIGTERM) == 1 || sigismember(&p, SIGINT) == 1;
}

static bool quitting(void *arg)
{
	bool q;

	(void)arg;
	pthread_mutex_lock(&C.sh->lock);
	q = C.sh->quit;
	pthread_mutex_unlock(&C.sh->lock);
	return q;
}

/* ---- credentials ------------------------------------------------------ */

static void use_creds(void)
{
	ctl_api_set_key(&C.api, C.st.creds.access_key_id,
			C.st.creds.secret_access_key,
			C.st.creds.session_token);
}

/* Credentials from an answer's "credentials" into C.st.creds. */
static int take_creds(json_t *c, const char *op, char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(c, "accessKeyId"));
	const char *sec = json_string_value(json_object_get(c,
							   "secretAccessKey"));
	const char *tok = json_string_value(json_object_get(c,
							   "sessionToken"));
	int64_t exp = state_parse_time(json_string_value(
		json_object_get(c, "expiration")));
	struct agent_creds *k = &C.st.creds;

	if (!id || !sec || !tok || exp < 0 ||
	    strlen(id) >= sizeof(k->access_key_id) ||
	    strlen(sec) >= sizeof(k->secret_access_key) ||
	    strlen(tok) >= sizeof(k->session_token) ||
	    strpbrk(tok, "\r\n")) {
		set_err(err, errlen, "%s at %s: the answer has no usable "
			"credentials", op, C.api.endpoint);
		return -1;
	}
	snprintf(k->access_key_id, sizeof(k->access_key_id), "%s", id);
	snprintf(k->secret_access_key, sizeof(k->secret_access_key), "%s",
		 sec);
	snprintf(k->session_token, sizeof(k->session_token), "%s", tok);
	k->expiration = exp;
	k->issued = (int64_t)time(NULL);
	C.st.registered = true;
	return 0;
}

/* Monotonic ms at which to refresh: two thirds into the credentials'
 * life (8 h of 12). */
static uint64_t refresh_due(void)
{
	const struct agent_creds *k = &C.st.creds;
	int64_t now = (int64_t)time(NULL), at;

	if (k->issued > 0 && k->issued < k->expiration)
		at = k->issued + (k->expiration - k->issued) * 2 / 3;
	else
		at = k->expiration - 3600;
	if (at <= now)
		return mono_ms();
	return mono_ms() + (uint64_t)(at - now) * 1000;
}

static int refresh_creds(char *err, size_t errlen)
{
	static const char op[] = "RefreshAgentCredentialsForMgn";
	struct agent_state saved = C.st;
	json_t *resp;
	int rc;

	if (ctl_api_call(&C.api, op, NULL, &resp, NULL, err, errlen))
		return -1;
	rc = take_creds(json_object_get(resp, "credentials"), op, err,
			errlen);
	json_decref(resp);
	if (!rc)
		rc = state_save(&C.st, err, errlen);
	if (rc) {
		/* Keep using what is stored. */
		C.st = saved;
	} else {
		char exp[32];

		use_creds();
		state_format_time(C.st.creds.expiration, exp, sizeof(exp));
		ctl_log("credentials refreshed; valid until %s", exp);
	}
	explicit_bzero(&saved, sizeof(saved));
	return rc;
}

/* ---- host facts ------------------------------------------------------- */

static json_t *facts_json(const struct host_info *h, bool with_id)
{
	json_t *o = json_object(), *cpus = json_array(), *nics = json_array();
	json_t *disks = json_array();

	if (!o || !cpus || !nics || !disks) {
		json_decref(o);
		json_decref(cpus);
		json_decref(nics);
		json_decref(disks);
		return NULL;
	}
	json_object_set_new(o, "hostname", json_string(h->hostname));
	if (h->fqdn[0])
		json_object_set_new(o, "fqdn", json_string(h->fqdn));
	if (with_id)
		json_object_set_new(o, "machineId",
				    json_string(h->machine_id));
	json_object_set_new(o, "agentVersion", json_string(AGENT_VERSION));
	for (unsigned int i = 0; i < h->n_cpus; i++) {
		json_t *c = json_pack("{s:I}", "cores",
				      (json_int_t)(h->cpus[i].cores ?
						   h->cpus[i].cores : 1));

		if (c && h->cpus[i].model[0])
			json_object_set_new(c, "modelName",
					    json_string(h->cpus[i].model));
		json_array_append_new(cpus, c);
	}
	json_object_set_new(o, "cpus", cpus);
	if (h->ram_bytes)
		json_object_set_new(o, "ramBytes",
				    json_integer((json_int_t)h->ram_bytes));
	json_object_set_new(o, "os", json_pack("{s:s}", "fullString", h->os));
	for (unsigned int i = 0; i < h->n_nics; i++) {
		const struct host_nic *n = &h->nics[i];
		json_t *ips = json_array();

		for (unsigned int k = 0; k < n->n_ips; k++)
			json_array_append_new(ips, json_string(n->ips[k]));
		json_array_append_new(nics, json_pack("{s:s,s:o,s:b}",
			"macAddress", n->mac, "ips", ips, "isPrimary",
			n->primary));
	}
	json_object_set_new(o, "networkInterfaces", nics);
	for (unsigned int i = 0; i < h->n_disks; i++)
		json_array_append_new(disks, json_pack("{s:s,s:I,s:b}",
			"deviceName", h->disks[i].name, "bytes",
			(json_int_t)h->disks[i].bytes, "isBootDisk",
			h->disks[i].boot));
	json_object_set_new(o, "disks", disks);
	return o;
}

static void describe_disks(const struct host_info *h, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (unsigned int i = 0; i < h->n_disks && o + 1 < len; i++) {
		int n = snprintf(out + o, len - o, "%s%s (%" PRIu64 " bytes%s)",
				 i ? ", " : "", h->disks[i].name,
				 h->disks[i].bytes,
				 h->disks[i].boot ? ", boot" : "");

		if (n < 0)
			break;
		o += (size_t)n;
	}
	if (!h->n_disks)
		snprintf(out, len, "no disks");
}

static int register_agent(char *err, size_t errlen)
{
	static const char op[] = "RegisterAgentForMgn";
	static struct host_info h;
	struct agent_config *cfg = C.cfg;
	char disks[1024];
	json_t *body, *resp = NULL;
	const char *id, *arn;
	int rc = -1;

	if (hostinfo_collect(&h, cfg->devices, cfg->n_devices, err, errlen))
		return -1;
	body = facts_json(&h, true);
	if (!body) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	if (cfg->n_tags) {
		json_t *tags = json_object();

		for (unsigned int i = 0; i < cfg->n_tags; i++)
			json_object_set_new(tags, cfg->tags[i].key,
					    json_string(cfg->tags[i].value));
		json_object_set_new(body, "tags", tags);
	}
	if (cfg->user_provided_id[0])
		json_object_set_new(body, "userProvidedID",
				    json_string(cfg->user_provided_id));
	ctl_api_set_key(&C.api, cfg->access_key_id, cfg->secret_access_key,
			cfg->session_token);
	if (ctl_api_call(&C.api, op, body, &resp, NULL, err, errlen))
		goto out;
	id = json_string_value(json_object_get(resp, "sourceServerID"));
	arn = json_string_value(json_object_get(resp, "arn"));
	if (!id || strlen(id) >= sizeof(C.st.source_server_id)) {
		set_err(err, errlen, "%s at %s: the answer has no "
			"sourceServerID", op, C.api.endpoint);
		goto out;
	}
	if (take_creds(json_object_get(resp, "credentials"), op, err, errlen))
		goto out;
	snprintf(C.st.source_server_id, sizeof(C.st.source_server_id), "%s",
		 id);
	snprintf(C.st.arn, sizeof(C.st.arn), "%s", arn ? arn : "");
	snprintf(C.st.endpoint, sizeof(C.st.endpoint), "%s",
		 C.api.endpoint);
	C.st.registered_at = (int64_t)time(NULL);
	snprintf(C.st.machine_id, sizeof(C.st.machine_id), "%s",
		 h.machine_id);
	C.st.disconnected_at = 0;
	C.st.started = false;
	if (state_save(&C.st, err, errlen))
		goto out;
	describe_disks(&h, disks, sizeof(disks));
	ctl_log("registered with ferry-control %s as source server %s; "
		"disks: %s", C.api.endpoint, id, disks);
	rc = 0;
out:
	json_decref(body);
	json_decref(resp);
	return rc;
}

/*
 * A registered agent replicates only on the machine that registered.  A
 * test or cutover instance launched from the replicated disks boots with
 * the source's state directory, credentials and service: if it
 * replicated, it would write its own disks over its source server's
 * staging volumes.  Its system UUID differs, and so its machine ID
 * (hostinfo_machine_id()).  0 to go on (a registration that recorded
 * none records this machine's), -1 with ERR to stop (*COPY: because this
 * is another machine).
 */
static int check_machine(bool *copy, char *err, size_t errlen)
{
	char now[65], why[AGENT_MSG_MAX];

	*copy = false;
	if (hostinfo_machine_id(now, err, errlen))
		return -1;
	if (!strcmp(C.st.machine_id, now))
		return 0;
	if (C.st.machine_id[0]) {
		*copy = true;
		set_err(err, errlen, "this machine is not the one that "
			"registered as source server %s (its machine ID, from "
			"/etc/machine-id and the system UUID, changed): it "
			"looks like a test or cutover instance launched from "
			"that server's replicated disks, and a copy must not "
			"replicate over its source.  To replicate it as a new "
			"source server, run the installer with an installer "
			"key; if it is the source server itself and only its "
			"identity changed, run ferry-agent --accept-new-host "
			"once", C.st.source_server_id);
		return -1;
	}
	snprintf(C.st.machine_id, sizeof(C.st.machine_id), "%s", now);
	if (state_save(&C.st, why, sizeof(why))) {
		set_err(err, errlen, "cannot record this machine's identity "
			"for source server %s: %s", C.st.source_server_id, why);
		return -1;
	}
	return 0;
}

/* The facts again at every start (disks added, RAM changed). */
static int update_facts(char *err, size_t errlen)
{
	static struct host_info h;
	json_t *body, *resp = NULL;
	int rc;

	if (hostinfo_collect(&h, C.cfg->devices, C.cfg->n_devices, err,
			     errlen))
		return -1;
	body = facts_json(&h, false);
	if (!body) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	rc = ctl_api_call(&C.api, "UpdateAgentSourcePropertiesForMgn", body,
			  &resp, NULL, err, errlen);
	json_decref(body);
	json_decref(resp);
	return rc;
}

/* ---- the certificate -------------------------------------------------- */

static void set_have_cert(bool ok)
{
	C.cert_ok = ok;
	pthread_mutex_lock(&C.sh->lock);
	if (C.sh->rt.valid && C.sh->rt.have_cert != ok) {
		C.sh->rt.have_cert = ok;
		C.sh->rt.version++;
		pthread_cond_broadcast(&C.sh->cond);
	}
	pthread_mutex_unlock(&C.sh->lock);
}

/* Renew the certificate if it is missing, wrong, or ends within 30
 * days.  0 when a usable one is in place. */
static int ensure_cert(char *err, size_t errlen)
{
	static const char op[] = "IssueClientCertificateForMgn";
	char why[256], exp[32];
	int64_t not_after;
	json_t *resp = NULL, *body;
	const char *cert, *ca;
	char *csr;
	int rc;

	if (cert_check(C.st.dir, CERT_MIN_LEFT_S, &not_after, why,
		       sizeof(why)) == 0) {
		set_have_cert(true);
		return 0;
	}
	csr = cert_make_csr(C.st.dir, C.st.source_server_id, err, errlen);
	if (!csr)
		goto fail;
	body = json_pack("{s:s}", "csr", csr);
	free(csr);
	if (!body) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	rc = ctl_api_call(&C.api, op, body, &resp, NULL, err, errlen);
	json_decref(body);
	if (rc)
		goto fail;
	cert = json_string_value(json_object_get(resp, "certificate"));
	ca = json_string_value(json_object_get(resp, "caCertificate"));
	if (!cert || !ca) {
		set_err(err, errlen, "%s at %s: the answer has no "
			"certificate", op, C.api.endpoint);
		goto fail;
	}
	if (cert_store(C.st.dir, cert, ca, &not_after, err, errlen))
		goto fail;
	json_decref(resp);
	state_format_time(not_after, exp, sizeof(exp));
	ctl_log("data-plane certificate issued for %s (%s), valid until %s",
		C.st.source_server_id, AGENT_CERT_FILE, exp);
	set_have_cert(true);
	return 0;
fail:
	json_decref(resp);
	/* A certificate that still works keeps the data plane going. */
	set_have_cert(cert_check(C.st.dir, 0, &not_after, why,
				 sizeof(why)) == 0);
	return -1;
}

/* ---- runtime configuration ------------------------------------------- */

static bool runtime_equal(const struct agent_runtime *a,
			  const struct agent_runtime *b)
{
	if (a->have_cert != b->have_cert ||
	    a->have_replicator != b->have_replicator ||
	    a->replicator_port != b->replicator_port ||
	    a->bandwidth_bps != b->bandwidth_bps || a->codec != b->codec ||
	    a->paused != b->paused || a->stopped != b->stopped ||
	    a->n_disks != b->n_disks ||
	    strcmp(a->source_server_id, b->source_server_id) ||
	    strcmp(a->replicator_id, b->replicator_id) ||
	    strcmp(a->replicator_host, b->replicator_host))
		return false;
	for (unsigned int i = 0; i < a->n_disks; i++)
		if (strcmp(a->disks[i], b->disks[i]))
			return false;
	return true;
}

static int text_field(json_t *o, const char *key, char *out, size_t len)
{
	const char *v = json_string_value(json_object_get(o, key));

	if (!v || strlen(v) >= len)
		return -1;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* DOC (GetAgentRuntimeConfigurationForMgn's answer) into RT and the
 * intervals.  0, or -1 with WHY. */
static int parse_runtime(json_t *doc, struct agent_runtime *rt,
			 unsigned int *beat, unsigned int *poll, char *why,
			 size_t whylen)
{
	json_t *rep = json_object_get(doc, "replicator"), *d;
	const char *comp = json_string_value(json_object_get(doc,
							    "compression"));
	json_int_t mbps = json_integer_value(json_object_get(doc,
						"bandwidthThrottling"));
	json_int_t b = json_integer_value(json_object_get(doc,
					  "heartbeatIntervalSeconds"));
	json_int_t p = json_integer_value(json_object_get(doc,
					  "commandPollSeconds"));
	size_t i;

	memset(rt, 0, sizeof(*rt));
	if (text_field(doc, "sourceServerID", rt->source_server_id,
		       sizeof(rt->source_server_id))) {
		set_err(why, whylen, "no sourceServerID");
		return -1;
	}
	if (json_is_object(rep)) {
		json_int_t port = json_integer_value(json_object_get(rep,
								     "port"));

		if (text_field(rep, "replicatorID", rt->replicator_id,
			       sizeof(rt->replicator_id)) ||
		    text_field(rep, "address", rt->replicator_host,
			       sizeof(rt->replicator_host)) ||
		    port < 1 || port > 65535) {
			set_err(why, whylen, "a malformed replicator");
			return -1;
		}
		rt->replicator_port = (uint16_t)port;
		rt->have_replicator = true;
	}
	rt->bandwidth_bps = mbps > 0 ? (uint64_t)mbps * 125000 : 0;
	if (comp && !strcmp(comp, "zstd"))
		rt->codec = FERRY_CODEC_ZSTD;
	else if (comp && !strcmp(comp, "none"))
		rt->codec = FERRY_CODEC_RAW;
	else
		rt->codec = FERRY_CODEC_LZ4;
	rt->paused = json_is_true(json_object_get(doc,
						  "dataReplicationPaused"));
	rt->stopped = json_is_true(json_object_get(doc,
						   "dataReplicationStopped"));
	json_array_foreach(json_object_get(doc, "replicatedDisks"), i, d) {
		const char *name = json_string_value(d);

		if (!name || strlen(name) >= sizeof(rt->disks[0]) ||
		    rt->n_disks == AGENT_MAX_DISKS) {
			set_err(why, whylen, "a malformed replicatedDisks");
			return -1;
		}
		snprintf(rt->disks[rt->n_disks++], sizeof(rt->disks[0]), "%s",
			 name);
	}
	*beat = b >= 1 && b <= 3600 ? (unsigned int)b : DEFAULT_BEAT_S;
	*poll = p >= 1 && p <= 3600 ? (unsigned int)p : DEFAULT_POLL_S;
	return 0;
}

/* Publish DOC as the runtime configuration (and cache it). */
static int apply_runtime(json_t *doc, bool cache, char *err, size_t errlen)
{
	struct agent_runtime *rt = calloc(1, sizeof(*rt));
	char why[AGENT_HOST_MAX + AGENT_NAME_MAX + 32];
	bool changed;

	if (!rt) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	if (parse_runtime(doc, rt, &C.beat_s, &C.poll_s, why, sizeof(why))) {
		set_err(err, errlen, "GetAgentRuntimeConfigurationForMgn at "
			"%s: %s", C.api.endpoint, why);
		free(rt);
		return -1;
	}
	rt->have_cert = C.cert_ok;
	pthread_mutex_lock(&C.sh->lock);
	changed = !C.sh->rt.valid || !runtime_equal(&C.sh->rt, rt);
	if (changed) {
		rt->version = C.sh->rt.version + 1;
		rt->valid = true;
		C.sh->rt = *rt;
		pthread_cond_broadcast(&C.sh->cond);
	}
	pthread_mutex_unlock(&C.sh->lock);
	if (changed && rt->have_replicator)
		snprintf(why, sizeof(why), "%s at %s port %u",
			 rt->replicator_id, rt->replicator_host,
			 rt->replicator_port);
	else if (changed)
		snprintf(why, sizeof(why), "none assigned yet");
	if (changed)
		ctl_log("runtime configuration: replicator %s, %u disks, "
			"bandwidth %" PRIu64 " bytes/s (0: unlimited), "
			"compression %s%s%s", why, rt->n_disks,
			rt->bandwidth_bps,
			rt->codec == FERRY_CODEC_ZSTD ? "zstd" :
			rt->codec == FERRY_CODEC_RAW ? "none" : "lz4",
			rt->paused ? ", paused" : "",
			rt->stopped ? ", stopped" : "");
	free(rt);
	if (cache && (!C.runtime || !json_equal(C.runtime, doc))) {
		char *text = json_dumps(doc, JSON_INDENT(2));

		json_decref(C.runtime);
		C.runtime = json_incref(doc);
		/* Not fatal: only a restart without ferry-control needs it. */
		if (!text || state_write(C.st.dir, STATE_RUNTIME_FILE, text,
					 strlen(text), 0600, true, why,
					 sizeof(why)))
			ctl_log("cannot cache the runtime configuration: %s",
				text ? why : "out of memory");
		free(text);
	}
	return 0;
}

static int fetch_runtime(char *err, size_t errlen)
{
	json_t *resp;
	int rc;

	if (ctl_api_call(&C.api, "GetAgentRuntimeConfigurationForMgn", NULL,
			 &resp, NULL, err, errlen))
		return -1;
	rc = apply_runtime(resp, true, err, errlen);
	json_decref(resp);
	return rc;
}

static int cached_runtime(char *err, size_t errlen)
{
	char path[AGENT_PATH_MAX + 64];
	json_error_t jerr;
	json_t *doc;
	int rc;

	state_path(C.st.dir, STATE_RUNTIME_FILE, path, sizeof(path));
	doc = json_load_file(path, 0, &jerr);
	if (!doc) {
		set_err(err, errlen, "no cached runtime configuration (%s: "
			"%s)", path, jerr.text);
		return -1;
	}
	rc = apply_runtime(doc, false, err, errlen);
	if (!rc)
		C.runtime = json_incref(doc);
	json_decref(doc);
	return rc;
}

/* ---- heartbeat -------------------------------------------------------- */

/* MGN's DataReplicationErrorString values an agent may send. */
static bool known_error(const char *e)
{
	static const char *const errors[] = {
		"SNAPSHOTS_FAILURE", "NOT_CONVERGING", "UNSTABLE_NETWORK",
		"FAILED_TO_CREATE_SECURITY_GROUP",
		"FAILED_TO_LAUNCH_REPLICATION_SERVER",
		"FAILED_TO_BOOT_REPLICATION_SERVER",
		"FAILED_TO_AUTHENTICATE_WITH_SERVICE",
		"FAILED_TO_DOWNLOAD_REPLICATION_SOFTWARE",
		"FAILED_TO_CREATE_STAGING_DISKS",
		"FAILED_TO_ATTACH_STAGING_DISKS",
		"FAILED_TO_PAIR_REPLICATION_SERVER_WITH_AGENT",
		"FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
		"FAILED_TO_START_DATA_TRANSFER",
		"UNSUPPORTED_VM_CONFIGURATION", "LAST_SNAPSHOT_JOB_FAILED",
	};

	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (!strcmp(e, errors[i]))
			return true;
	return false;
}

/* The heartbeat's body from a snapshot of ST. */
static json_t *beat_body(const struct agent_status *st)
{
	enum agent_repl_state s = st->state;
	json_t *body, *disks = json_array();
	uint64_t backlog = 0;

	/* DISCONNECTED is the service's word for a server it lost; an
	 * agent that lost its replicator has stalled. */
	if (s == AGENT_DISCONNECTED)
		s = AGENT_STALLED;
	for (unsigned int i = 0; i < st->n_disks; i++) {
		const struct agent_disk_status *d = &st->disks[i];
		uint64_t total = d->total_bytes;

		backlog += d->backlog_bytes;
		json_array_append_new(disks, json_pack(
			"{s:s,s:I,s:I,s:I,s:I}", "deviceName", d->name,
			"totalStorageBytes", (json_int_t)total,
			"replicatedStorageBytes", (json_int_t)(
				d->replicated_bytes < total ?
				d->replicated_bytes : total),
			"rescannedStorageBytes", (json_int_t)(
				d->rescanned_bytes < total ?
				d->rescanned_bytes : total),
			"backloggedStorageBytes",
			(json_int_t)d->backlog_bytes));
	}
	body = json_pack("{s:s,s:I}", "dataReplicationState",
			 agent_repl_state_name(s), "backlogBytes",
			 (json_int_t)backlog);
	if (!body) {
		json_decref(disks);
		return NULL;
	}
	if (st->n_disks)
		json_object_set_new(body, "replicatedDisks", disks);
	else
		json_decref(disks);
	/* Lag once the initial copy is done (what MGN shows, and what a
	 * launch requires); the ETA whenever one is known. */
	if (s == AGENT_CONTINUOUS || s == AGENT_BACKLOG ||
	    s == AGENT_RESCAN || s == AGENT_CREATING_SNAPSHOT)
		json_object_set_new(body, "lagSeconds",
				    json_integer((json_int_t)(st->lag_ms /
							      1000)));
	if (st->eta_s >= 0 && (s == AGENT_INITIAL_SYNC ||
			       s == AGENT_BACKLOG || s == AGENT_RESCAN))
		json_object_set_new(body, "etaSeconds",
				    json_integer((json_int_t)st->eta_s));
	if (st->error[0] && known_error(st->error)) {
		json_t *e = json_pack("{s:s}", "error", st->error);

		if (e && st->raw_error[0])
			json_object_set_new(e, "rawError",
					    json_string(st->raw_error));
		json_object_set_new(body, "dataReplicationError", e);
	}
	return body;
}

static int heartbeat(char *err, size_t errlen)
{
	static struct agent_status st;
	const char *shown;
	json_t *body, *resp;
	int rc;

	pthread_mutex_lock(&C.sh->lock);
	st = C.sh->st;
	pthread_mutex_unlock(&C.sh->lock);
	body = beat_body(&st);
	if (!body) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	rc = ctl_api_call(&C.api, "UpdateAgentReplicationInfoForMgn", body,
			  &resp, NULL, err, errlen);
	json_decref(body);
	if (rc)
		return -1;
	shown = json_string_value(json_object_get(resp,
						  "dataReplicationState"));
	pthread_mutex_lock(&C.sh->lock);
	C.sh->ctl.last_heartbeat_ms = wall_ms();
	snprintf(C.sh->ctl.service_state, sizeof(C.sh->ctl.service_state),
		 "%s", shown ? shown : "");
	pthread_mutex_unlock(&C.sh->lock);
	json_decref(resp);
	return 0;
}

/* ---- commands --------------------------------------------------------- */

static enum agent_cmd command_of(const char *name)
{
	static const struct {
		const char *name;
		enum agent_cmd cmd;
	} map[] = {
		{ "start", AGENT_CMD_START }, { "stop", AGENT_CMD_STOP },
		{ "pause", AGENT_CMD_PAUSE }, { "resume", AGENT_CMD_RESUME },
		{ "retry", AGENT_CMD_RETRY }, { "rescan", AGENT_CMD_RESCAN },
		{ "uninstall", AGENT_CMD_UNINSTALL },
	};

	for (size_t i = 0; name && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(name, map[i].name))
			return map[i].cmd;
	return AGENT_CMD_NONE;
}

static bool is_pending(long long id)
{
	for (unsigned int i = 0; i < C.n_pending; i++)
		if (C.pending[i] == id)
			return true;
	return false;
}

/* After `uninstall` is acknowledged: the credentials are revoked. */
static void uninstalled(void)
{
	uint64_t end = mono_ms() + UNINSTALL_WAIT_MS;
	char why[AGENT_MSG_MAX];

	C.st.disconnected_at = (int64_t)time(NULL);
	C.st.registered = false;
	state_forget(&C.st);
	if (state_save(&C.st, why, sizeof(why)))
		ctl_log("%s", why);
	ctl_log("uninstall command from ferry-control: source server %s is "
		"disconnected and its credentials revoked; stopping "
		"replication and exiting", C.st.source_server_id);
	/* Let the replication thread take the command and detach the
	 * trackers before everything stops. */
	pthread_mutex_lock(&C.sh->lock);
	while ((C.sh->n_cmds || C.sh->st.state != AGENT_STOPPED) &&
	       !C.sh->quit && mono_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&C.sh->cond, &C.sh->lock, &ts);
	}
	C.sh->quit = true;
	pthread_cond_broadcast(&C.sh->cond);
	pthread_mutex_unlock(&C.sh->lock);
	C.uninstalled = true;
}

/*
 * GetAgentCommandForMgn: queue what is new, acknowledge what is queued
 * (in the next call, which also returns anything newer), until nothing
 * new arrives.  *ANY: a command was queued.
 */
static int poll_commands(bool *any, char *err, size_t errlen)
{
	static const char op[] = "GetAgentCommandForMgn";

	for (int round = 0; round < 8; round++) {
		json_t *body = json_object(), *acks = json_array(), *resp, *c;
		unsigned int acked = C.n_pending, fresh = 0;
		struct ctl_api_error e;
		size_t i;

		for (unsigned int k = 0; k < C.n_pending; k++)
			json_array_append_new(acks, json_integer(C.pending[k]));
		json_object_set_new(body, "ackCommandIDs", acks);
		if (ctl_api_call(&C.api, op, body, &resp, &e, err, errlen)) {
			json_decref(body);
			/* The acknowledgement of uninstall went through but
			 * its answer was lost: the credentials are gone. */
			if (C.uninstall_id && !strcmp(e.type,
					"UnrecognizedClientException")) {
				uninstalled();
				return 0;
			}
			return -1;
		}
		json_decref(body);
		/* Acknowledged: ferry-control deleted them. */
		memmove(C.pending, C.pending + acked,
			(C.n_pending - acked) * sizeof(C.pending[0]));
		C.n_pending -= acked;
		if (C.uninstall_id && !is_pending(C.uninstall_id)) {
			json_decref(resp);
			uninstalled();
			return 0;
		}
		json_array_foreach(json_object_get(resp, "commands"), i, c) {
			long long id = json_integer_value(
				json_object_get(c, "commandID"));
			const char *name = json_string_value(
				json_object_get(c, "command"));
			enum agent_cmd cmd = command_of(name);

			if (id < 1 || is_pending(id) ||
			    C.n_pending == MAX_PENDING)
				continue;
			if (cmd == AGENT_CMD_NONE) {
				ctl_log("ignoring command '%.64s' (%lld) from "
					"ferry-control: unknown to this agent",
					name ? name : "?", id);
			} else if (agent_push_cmd(C.sh, cmd)) {
				/* Full: the rest comes again next poll. */
				break;
			} else {
				ctl_log("command %s (%lld) from ferry-control",
					name, id);
				*any = true;
			}
			C.pending[C.n_pending++] = id;
			fresh++;
			if (cmd == AGENT_CMD_START && !C.st.started) {
				char why[AGENT_MSG_MAX];

				C.st.started = true;
				if (state_save(&C.st, why, sizeof(why)))
					ctl_log("%s", why);
			}
			if (cmd == AGENT_CMD_UNINSTALL) {
				/* Acknowledged in the next call; then the
				 * agent ends (uninstalled()). */
				C.uninstall_id = id;
				break;
			}
		}
		json_decref(resp);
		if (!fresh)
			return 0;
	}
	return 0;
}

/* ---- start-up --------------------------------------------------------- */

int control_init(struct agent_shared *sh, struct agent_config *cfg,
		 char *err, size_t errlen)
{
	char why[AGENT_MSG_MAX], when[32];
	bool fresh = false, copy;
	const char *conf = cfg->conf_file[0] ? cfg->conf_file :
			   AGENT_CONF_FILE;

	memset(&C, 0, sizeof(C));
	C.sh = sh;
	C.cfg = cfg;
	C.beat_s = DEFAULT_BEAT_S;
	C.poll_s = DEFAULT_POLL_S;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		set_err(err, errlen, "cannot initialise libcurl");
		return -1;
	}
	if (ctl_api_init(&C.api, cfg, err, errlen))
		return -1;
	C.api.abort = stop_pending;
	if (state_load(&C.st, cfg->state_dir, err, errlen))
		return -1;

	if (cfg->access_key_id[0] && cfg->secret_access_key[0]) {
		/* First start, or the installer ran again. */
		if (register_agent(err, errlen))
			return -1;
		fresh = true;
	} else if (!C.st.registered) {
		if (C.st.disconnected_at) {
			state_format_time(C.st.disconnected_at, when,
					  sizeof(when));
			set_err(err, errlen, "source server %s was "
				"disconnected from ferry-control at %s (its "
				"uninstall command): run the installer again "
				"to register", C.st.source_server_id, when);
		} else {
			set_err(err, errlen, "not registered with "
				"ferry-control %s yet: set access-key-id and "
				"secret-access-key (an installer key) in %s",
				C.api.endpoint, conf);
		}
		return -1;
	} else if (strcmp(C.st.endpoint, C.api.endpoint)) {
		set_err(err, errlen, "registered with %s, but endpoint is %s: "
			"give an installer key of the new endpoint "
			"(access-key-id, secret-access-key) to register there",
			C.st.endpoint, C.api.endpoint);
		return -1;
	} else if (check_machine(&copy, err, errlen)) {
		return copy ? CONTROL_NOT_THIS_MACHINE : -1;
	}
	/* Registered: the installer's secret goes (invariant 5).  Also
	 * after a start whose rewrite failed. */
	if (cfg->conf_file[0] &&
	    agent_config_forget_secret(cfg->conf_file, why, sizeof(why))) {
		set_err(err, errlen, "registered as %s, but cannot remove the "
			"installer's secret from %s: %s; remove its "
			"secret-access-key line by hand",
			C.st.source_server_id, cfg->conf_file, why);
		return -1;
	}
	explicit_bzero(cfg->secret_access_key, sizeof(cfg->secret_access_key));
	explicit_bzero(cfg->session_token, sizeof(cfg->session_token));
	use_creds();

	if (!fresh) {
		int64_t left = C.st.creds.expiration - (int64_t)time(NULL);

		if (mono_ms() >= refresh_due() &&
		    refresh_creds(why, sizeof(why))) {
			if (left <= 0) {
				state_format_time(C.st.creds.expiration, when,
						  sizeof(when));
				set_err(err, errlen, "the credentials of %s "
					"expired at %s and cannot be "
					"refreshed (%s): give an installer key "
					"(access-key-id, secret-access-key) to "
					"register again", C.st.source_server_id,
					when, why);
				return -1;
			}
			ctl_log("%s; using the stored credentials", why);
		}
		if (update_facts(why, sizeof(why)))
			ctl_log("cannot update the host's facts: %s", why);
	}
	C.t[T_REFRESH].next = refresh_due();

	if (ensure_cert(why, sizeof(why))) {
		if (!C.cert_ok) {
			set_err(err, errlen, "no data-plane certificate: %s",
				why);
			return -1;
		}
		ctl_log("cannot renew the data-plane certificate: %s; using "
			"the current one", why);
	}
	if (fetch_runtime(why, sizeof(why))) {
		char cached[AGENT_MSG_MAX];

		if (fresh || cached_runtime(cached, sizeof(cached))) {
			set_err(err, errlen, "%s", why);
			return -1;
		}
		ctl_log("%s; replicating with the last runtime configuration "
			"until ferry-control answers", why);
		C.t[T_RUNTIME].backoff_s = 1;
		snprintf(C.t[T_RUNTIME].logged, sizeof(C.t[T_RUNTIME].logged),
			 "%s", why);
		publish_error();
	}
	if (cfg->no_replication && !C.st.started) {
		ctl_log("no-replication: registered; replication waits for a "
			"start command from ferry-control");
		agent_push_cmd(sh, AGENT_CMD_STOP);
	}
	C.t[T_CERT].next = mono_ms() + CERT_CHECK_MS;
	if (!C.t[T_RUNTIME].backoff_s)
		C.t[T_RUNTIME].next = mono_ms() + (uint64_t)C.beat_s * 1000;
	return 0;
}

/* ---- the thread ------------------------------------------------------- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void cycle(uint64_t now)
{
	char err[AGENT_MSG_MAX];
	bool any = false;

	if (now >= C.t[T_REFRESH].next) {
		if (refresh_creds(err, sizeof(err)))
			note_fail(T_REFRESH, now, err);
		else
			note_ok(T_REFRESH, now, 0);
		if (!C.t[T_REFRESH].backoff_s)
			C.t[T_REFRESH].next = refresh_due();
	}
	if (now >= C.t[T_BEAT].next) {
		if (heartbeat(err, sizeof(err)))
			note_fail(T_BEAT, now, err);
		else
			note_ok(T_BEAT, now, (uint64_t)C.beat_s * 1000);
	}
	if (now >= C.t[T_POLL].next) {
		if (poll_commands(&any, err, sizeof(err)))
			note_fail(T_POLL, now, err);
		else
			note_ok(T_POLL, now, (uint64_t)C.poll_s * 1000);
		if (C.uninstalled)
			return;
		/* pause/resume/stop/start change the runtime configuration
		 * too: fetch it at once. */
		if (any)
			C.t[T_RUNTIME].next = now;
	}
	if (now >= C.t[T_RUNTIME].next) {
		if (fetch_runtime(err, sizeof(err)))
			note_fail(T_RUNTIME, now, err);
		else
			note_ok(T_RUNTIME, now, (uint64_t)C.beat_s * 1000);
	}
	if (now >= C.t[T_CERT].next) {
		/* Not fatal while the current certificate is valid; the
		 * error shows in the status until a renewal succeeds. */
		if (ensure_cert(err, sizeof(err)))
			note_fail(T_CERT, now, err);
		else
			note_ok(T_CERT, now, CERT_CHECK_MS);
	}
}

static void *control_main(void *arg)
{
	char err[AGENT_MSG_MAX];

	(void)arg;
	C.api.abort = quitting;
	for (;;) {
		uint64_t now = mono_ms(), next;
		struct timespec ts;
		bool quit;

		cycle(now);
		if (C.uninstalled)
			break;
		next = C.t[0].next;
		for (int i = 1; i < N_TASKS; i++)
			next = min_u64(next, C.t[i].next);
		pthread_mutex_lock(&C.sh->lock);
		while (!C.sh->quit && mono_ms() < next) {
			uint64_t at = next;

			ts.tv_sec = (time_t)(at / 1000);
			ts.tv_nsec = (long)(at % 1000) * 1000000;
			if (pthread_cond_timedwait(&C.sh->cond, &C.sh->lock,
						   &ts) == ETIMEDOUT)
				break;
		}
		quit = C.sh->quit;
		pthread_mutex_unlock(&C.sh->lock);
		if (quit)
			break;
	}
	/* Tell ferry-control where things stand before exiting. */
	if (!C.uninstalled) {
		C.api.abort = NULL;
		C.api.timeout_s = FINAL_BEAT_TIMEOUT_S;
		if (heartbeat(err, sizeof(err)))
			ctl_log("last heartbeat: %s", err);
	}
	ctl_api_free(&C.api);
	state_forget(&C.st);
	json_decref(C.runtime);
	C.runtime = NULL;
	return NULL;
}

int control_disconnect(struct agent_config *cfg, char *msg, size_t msglen,
		       char *err, size_t errlen)
{
	struct ctl_api_error e;
	json_t *body, *resp = NULL;
	char why[AGENT_MSG_MAX];
	int rc = -1;

	memset(&C, 0, sizeof(C));
	C.cfg = cfg;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		set_err(err, errlen, "cannot initialise libcurl");
		return -1;
	}
	if (ctl_api_init(&C.api, cfg, err, errlen))
		return -1;
	C.api.abort = stop_pending;
	if (state_load(&C.st, cfg->state_dir, err, errlen))
		goto out;
	if (!C.st.registered) {
		snprintf(msg, msglen, "not registered with ferry-control: "
			 "nothing to disconnect");
		rc = 0;
		goto out;
	}
	if (strcmp(C.st.endpoint, C.api.endpoint)) {
		/* Registered elsewhere: say so, and call where it is. */
		snprintf(C.api.endpoint, sizeof(C.api.endpoint), "%s",
			 C.st.endpoint);
	}
	use_creds();
	if (C.st.creds.expiration - (int64_t)time(NULL) < 300 &&
	    refresh_creds(why, sizeof(why)))
		ctl_log("%s; trying the stored credentials", why);
	body = json_pack("{s:s}", "sourceServerID", C.st.source_server_id);
	if (!body) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	rc = ctl_api_call(&C.api, "DisconnectFromService", body, &resp, &e,
			  why, sizeof(why));
	json_decref(body);
	json_decref(resp);
	if (rc && (!strcmp(e.type, "UnrecognizedClientException") ||
		   (!strcmp(e.type, "ConflictException") &&
		    strstr(e.message, "DISCONNECTED")))) {
		/* Disconnected already (by an administrator, or a run of
		 * this that was cut short): only the local state is left. */
		snprintf(msg, msglen, "source server %s was already "
			 "disconnected from %s (%s)", C.st.source_server_id,
			 C.api.endpoint, e.message);
		rc = 0;
	} else if (rc) {
		set_err(err, errlen, "cannot disconnect source server %s: %s",
			C.st.source_server_id, why);
		goto out;
	} else {
		snprintf(msg, msglen, "source server %s disconnected from %s; "
			 "its credentials are revoked", C.st.source_server_id,
			 C.api.endpoint);
	}
	C.st.disconnected_at = (int64_t)time(NULL);
	C.st.registered = false;
	state_forget(&C.st);
	if (state_save(&C.st, err, errlen))
		rc = -1;
out:
	ctl_api_free(&C.api);
	explicit_bzero(&C.st, sizeof(C.st));
	curl_global_cleanup();
	return rc;
}

int control_loop_start(struct agent_shared *sh, struct agent_config *cfg,
		       pthread_t *thread, char *err, size_t errlen)
{
	int rc;

	(void)sh;
	(void)cfg;
	rc = pthread_create(thread, NULL, control_main, NULL);
	if (rc) {
		set_err(err, errlen, "cannot start the control thread: %s",
			strerror(rc));
		return -1;
	}
	return 0;
}

int control_accept_host(struct agent_config *cfg, char *msg, size_t msglen,
			char *err, size_t errlen)
{
	char now[65], was[65];
	int rc = -1;

	memset(&C, 0, sizeof(C));
	C.cfg = cfg;
	if (state_load(&C.st, cfg->state_dir, err, errlen))
		return -1;
	if (!C.st.registered) {
		set_err(err, errlen, "not registered with ferry-control (no "
			"registration in %s): nothing to accept; run the "
			"installer with an installer key", cfg->state_dir);
		goto out;
	}
	if (hostinfo_machine_id(now, err, errlen))
		goto out;
	if (!strcmp(C.st.machine_id, now)) {
		snprintf(msg, msglen, "this machine is source server %s "
			 "already: nothing changed", C.st.source_server_id);
		rc = 0;
		goto out;
	}
	snprintf(was, sizeof(was), "%s", C.st.machine_id);
	snprintf(C.st.machine_id, sizeof(C.st.machine_id), "%s", now);
	if (state_save(&C.st, err, errlen))
		goto out;
	snprintf(msg, msglen, "this machine is source server %s from now on "
		 "(machine ID %.12s..., was %.12s...); start ferry-agent",
		 C.st.source_server_id, now, was[0] ? was : "unrecorded");
	rc = 0;
out:
	state_forget(&C.st);
	return rc;
}
