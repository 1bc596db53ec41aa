// SPDX-License-Identifier: GPL-2.0
/*
 * load.c - ferry-control-load, the load generator of `make bench-control`.
 *
 * Registers N agents (RegisterAgentForMgn with the installer key; not
 * timed), then, for each concurrency level C and each mode, keeps C
 * requests in flight for a fixed time over C keep-alive HTTPS/1.1
 * connections (libcurl's multi interface, one connection per slot) and
 * prints one JSON line per run:
 *
 *   {"mode","concurrency","requests","errors","seconds","rps","p50_ms",
 *    "p99_ms","max_ms","client_cpu_s","server_cpu_s","machine_cpu_s",
 *    "wall_s","answers"}
 *
 * requests/rps/latencies count the expected answers (200, or 403 for the
 * baseline) within the window; the CPU figures (this process, the daemon
 * given with --server-pid, all CPUs of the machine from /proc/stat), wall_s
 * and answers cover the whole run, warm-up and drain included.
 *
 * Modes:
 *   heartbeat  UpdateAgentReplicationInfoForMgn signed by libcurl's
 *              CURLOPT_AWS_SIGV4 with the agents' temporary credentials
 *              (X-Amz-Security-Token is signed too), agents in turn;
 *              200 is success.
 *   baseline   the same request unsigned: the daemon answers 403
 *              MissingAuthenticationTokenException before any database or
 *              signature work, so this measures HTTP + TLS + our client.
 *
 * A run starts with WARMUP seconds whose answers are not counted (the TLS
 * handshakes happen then), then counts every answer that arrives within
 * the next SECONDS.  Latency is from handing the request to libcurl to
 * the complete answer.  Secrets are read from files, never from argv.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_LEVELS 16
#define RESP_KEEP 4096	/* bytes of an answer kept for error messages */
#define HEARTBEAT_OP "UpdateAgentReplicationInfoForMgn"
#define GiB (1ll << 30)

struct agent {
	char *id;		/* sourceServerID */
	char *userpwd;		/* "AKID:SECRET" */
	struct curl_slist *hdrs; /* Content-Type, X-Amz-Security-Token */
};

struct slot {
	CURL *e;
	int idx;
	double t0;
	long agent;		/* agent of the request in flight */
	char body[1024];
	char resp[RESP_KEEP + 1];
	size_t resp_len;
};

/* One phase of requests: registration or a timed run. */
struct phase {
	const char *name;
	/* Fill slot S with the next request; false when there is none. */
	bool (*next)(struct phase *p, struct slot *s);
	/* The answer to S's request arrived (status 0: transport error). */
	void (*done)(struct phase *p, struct slot *s, long status,
		     CURLcode cc);
	void *ctx;
};

static struct {
	const char *url;
	const char *ca;
	const char *region;
	long n_agents;
	int levels[MAX_LEVELS];
	int n_levels;
	double seconds;
	double warmup;
	const char *modes;
	long server_pid;
	struct agent *agents;
	char sigv4[128];
	char op_url[512];
	struct curl_slist *plain_hdrs;
} opt = {
	.region = "us-east-1",
	.n_agents = 1000,
	.seconds = 10,
	.warmup = 2,
	.modes = "baseline,heartbeat",
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						     noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("ferry-control-load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die("out of memory");
	return p;
}

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata)
{
	struct slot *s = userdata;
	size_t len = size * n, keep = RESP_KEEP - s->resp_len;

	if (keep > len)
		keep = len;
	memcpy(s->resp + s->resp_len, ptr, keep);
	s->resp_len += keep;
	s->resp[s->resp_len] = '\0';
	return len;
}

static CURL *new_easy(struct slot *s)
{
	CURL *e = curl_easy_init();

	if (!e)
		die("curl_easy_init failed");
	curl_easy_setopt(e, CURLOPT_CAINFO, opt.ca);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	curl_easy_setopt(e, CURLOPT_VERBOSE, (long)!!getenv("LOAD_VERBOSE"));
	return e;
}

/*
 * Keep CONC requests of phase P in flight until P has no more and all
 * have been answered.  Each slot keeps its easy handle, and the multi
 * handle keeps the connections between requests, so each slot reuses
 * one keep-alive connection.
 */
static void run_phase(struct phase *p, int conc)
{
	struct slot *slots = xmalloc(sizeof(*slots) * (size_t)conc);
	CURLM *m = curl_multi_init();
	int active = 0, i;

	if (!m)
		die("curl_multi_init failed");
	curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)conc);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
	for (i = 0; i < conc; i++) {
		slots[i].idx = i;
		slots[i].e = new_easy(&slots[i]);
		if (!p->next(p, &slots[i]))
			break;
		slots[i].t0 = now_s();
		curl_multi_add_handle(m, slots[i].e);
		active++;
	}
	while (active) {
		CURLMcode mc = curl_multi_perform(m, &i);
		CURLMsg *msg;
		bool added = false;
		int left;

		if (mc != CURLM_OK)
			die("%s: %s", p->name, curl_multi_strerror(mc));
		/* Answers completed by this perform are only in the message
		 * queue: read them before waiting, or the wait sleeps its
		 * full timeout with nothing left on the sockets. */
		while ((msg = curl_multi_info_read(m, &left))) {
			struct slot *s;
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&s);
			if (msg->data.result == CURLE_OK)
				curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE,
						  &status);
			curl_multi_remove_handle(m, s->e);
			active--;
			p->done(p, s, status, msg->data.result);
			s->resp_len = 0;
			s->resp[0] = '\0';
			if (p->next(p, s)) {
				s->t0 = now_s();
				curl_multi_add_handle(m, s->e);
				active++;
				added = true;
			}
		}
		/* Handles just added start in the next perform: no wait. */
		if (active && !added)
			mc = curl_multi_poll(m, NULL, 0, 100, NULL);
		if (mc != CURLM_OK)
			die("%s: %s", p->name, curl_multi_strerror(mc));
	}
	for (i = 0; i < conc; i++)
		if (slots[i].e)
			curl_easy_cleanup(slots[i].e);
	curl_multi_cleanup(m);
	free(slots);
}

/* ---- registration -------------------------------------------------- */

struct reg {
	long next, done;
	char *userpwd;		/* installer key */
	struct curl_slist *hdrs;
	char url[512];
};

static bool reg_next(struct phase *p, struct slot *s)
{
	struct reg *r = p->ctx;
	long i = r->next;

	if (i >= opt.n_agents)
		return false;
	r->next++;
	s->agent = i;
	/* A distinct machineId per agent: same shape as a real host. */
	snprintf(s->body, sizeof(s->body),
		 "{\"hostname\":\"bench-%ld\",\"fqdn\":\"bench-%ld.example.test\","
		 "\"machineId\":\"%032lx\",\"agentVersion\":\"0.1.0\","
		 "\"cpus\":[{\"cores\":2,\"modelName\":\"QEMU Virtual CPU\"}],"
		 "\"ramBytes\":%lld,"
		 "\"os\":{\"fullString\":\"Debian GNU/Linux 12 (bookworm)\"},"
		 "\"networkInterfaces\":[{\"macAddress\":\"52:54:00:%02lx:%02lx:%02lx\","
		 "\"ips\":[\"10.%ld.%ld.%ld\"],\"isPrimary\":true}],"
		 "\"disks\":[{\"deviceName\":\"/dev/vda\",\"bytes\":%lld,"
		 "\"isBootDisk\":true},"
		 "{\"deviceName\":\"/dev/vdb\",\"bytes\":%lld}]}",
		 i, i, 0xfe77a000000000ul + (unsigned long)i, 2 * GiB,
		 (i >> 16) & 255, (i >> 8) & 255, i & 255,
		 (i >> 16) & 255, (i >> 8) & 255, i & 255, 8 * GiB, GiB);
	curl_easy_setopt(s->e, CURLOPT_URL, r->url);
	curl_easy_setopt(s->e, CURLOPT_AWS_SIGV4, opt.sigv4);
	curl_easy_setopt(s->e, CURLOPT_USERPWD, r->userpwd);
	curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, s->body);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
	return true;
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static void reg_done(struct phase *p, struct slot *s, long status,
		     CURLcode cc)
{
	struct reg *r = p->ctx;
	struct agent *a = &opt.agents[s->agent];
	const char *id, *akid, *secret, *token;
	json_error_t jerr;
	json_t *j;
	char *hdr;

	if (cc != CURLE_OK)
		die("RegisterAgentForMgn #%ld: %s", s->agent,
		    curl_easy_strerror(cc));
	if (status != 200)
		die("RegisterAgentForMgn #%ld answered %ld: %s", s->agent,
		    status, s->resp);
	j = json_loads(s->resp, 0, &jerr);
	id = jstr(j, "sourceServerID", NULL);
	akid = jstr(j, "credentials", "accessKeyId");
	secret = jstr(j, "credentials", "secretAccessKey");
	token = jstr(j, "credentials", "sessionToken");
	if (!id || !akid || !secret || !token)
		die("RegisterAgentForMgn #%ld: no sourceServerID or credentials in the answer (%s)",
		    s->agent, j ? "members missing" : jerr.text);
	a->id = xstrdup(id);
	a->userpwd = xmalloc(strlen(akid) + strlen(secret) + 2);
	sprintf(a->userpwd, "%s:%s", akid, secret);
	hdr = xmalloc(strlen(token) + 32);
	sprintf(hdr, "X-Amz-Security-Token: %s", token);
	a->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	a->hdrs = curl_slist_append(a->hdrs, hdr);
	if (!a->hdrs)
		die("out of memory");
	free(hdr);
	json_decref(j);
	r->done++;
}

static char *read_key(const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	const char *id = jstr(j, "AccessKey", "AccessKeyId");
	const char *secret = jstr(j, "AccessKey", "SecretAccessKey");
	char *up;

	if (!j)
		die("%s: %s (line %d)", path, jerr.text, jerr.line);
	if (!id || !secret)
		die("%s: no AccessKey.AccessKeyId/SecretAccessKey (the output of `ferry-control keys create`)",
		    path);
	up = xmalloc(strlen(id) + strlen(secret) + 2);
	sprintf(up, "%s:%s", id, secret);
	json_decref(j);
	return up;
}

static void register_agents(const char *key_file)
{
	struct reg r = { 0 };
	struct phase p = { .name = "registration", .next = reg_next,
			   .done = reg_done, .ctx = &r };
	double t = now_s();

	r.userpwd = read_key(key_file);
	r.hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	snprintf(r.url, sizeof(r.url), "%s/RegisterAgentForMgn", opt.url);
	opt.agents = xmalloc(sizeof(*opt.agents) * (size_t)opt.n_agents);
	run_phase(&p, 16);
	if (r.done != opt.n_agents)
		die("registered %ld of %ld agents", r.done, opt.n_agents);
	fprintf(stderr, "ferry-control-load: registered %ld agents in %.1f s\n",
		r.done, now_s() - t);
	curl_slist_free_all(r.hdrs);
	free(r.userpwd);
}

/* ---- timed runs ---------------------------------------------------- */

struct timed {
	bool signed_;
	long expect;		/* the status that counts as an answer */
	double start, end;	/* the counted window */
	unsigned long seq;	/* requests sent, all agents */
	long next_agent;
	double *lat;		/* ms, counted answers */
	size_t n_lat, cap_lat;
	unsigned long errors;
	unsigned long answers;	/* all, warm-up and drain included */
	bool error_shown;
};

static bool timed_next(struct phase *p, struct slot *s)
{
	struct timed *t = p->ctx;
	unsigned long q = t->seq++;
	long a = t->next_agent;

	if (now_s() >= t->end)
		return false;
	t->next_agent = (a + 1) % opt.n_agents;
	s->agent = a;
	/*
	 * A steady replicating agent: both disks fully replicated, a small
	 * backlog that changes at every call.  The backlog follows the
	 * global sequence number so that no two bodies are equal: two
	 * identical requests of one agent within one second (X-Amz-Date's
	 * resolution) would carry the same signature and be refused as
	 * replays.
	 */
	snprintf(s->body, sizeof(s->body),
		 "{\"dataReplicationState\":\"CONTINUOUS\",\"lagSeconds\":%lu,"
		 "\"backlogBytes\":%lu,"
		 "\"replicatedDisks\":["
		 "{\"deviceName\":\"/dev/vda\",\"totalStorageBytes\":%lld,"
		 "\"replicatedStorageBytes\":%lld,\"rescannedStorageBytes\":0,"
		 "\"backloggedStorageBytes\":%lu},"
		 "{\"deviceName\":\"/dev/vdb\",\"totalStorageBytes\":%lld,"
		 "\"replicatedStorageBytes\":%lld,\"rescannedStorageBytes\":0,"
		 "\"backloggedStorageBytes\":0}]}",
		 q % 3, 4096 * (q % (1ul << 30)), 8 * GiB, 8 * GiB,
		 4096 * (q % (1ul << 30)), GiB, GiB);
	curl_easy_setopt(s->e, CURLOPT_URL, opt.op_url);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, s->body);
	curl_easy_setopt(s->e, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
	if (t->signed_) {
		curl_easy_setopt(s->e, CURLOPT_AWS_SIGV4, opt.sigv4);
		curl_easy_setopt(s->e, CURLOPT_USERPWD,
				 opt.agents[a].userpwd);
		curl_easy_setopt(s->e, CURLOPT_HTTPHEADER,
				 opt.agents[a].hdrs);
	} else {
		curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, opt.plain_hdrs);
	}
	return true;
}

static void timed_done(struct phase *p, struct slot *s, long status,
		       CURLcode cc)
{
	struct timed *t = p->ctx;
	double end = now_s();

	t->answers++;
	if (s->t0 < t->start || end > t->end)
		return;		/* warm-up, or after the window */
	if (status != t->expect) {
		t->errors++;
		if (!t->error_shown) {
			t->error_shown = true;
			fprintf(stderr,
				"ferry-control-load: %s: first error: %s%s%ld: %s\n",
				p->name, cc ? curl_easy_strerror(cc) : "",
				cc ? ", status " : "status ", status,
				s->resp);
		}
		return;
	}
	if (t->n_lat == t->cap_lat) {
		t->cap_lat = t->cap_lat ? 2 * t->cap_lat : 65536;
		t->lat = realloc(t->lat, t->cap_lat * sizeof(*t->lat));
		if (!t->lat)
			die("out of memory");
	}
	t->lat[t->n_lat++] = (end - s->t0) * 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted V[N]. */
static double pct(const double *v, size_t n, double q)
{
	size_t k;

	if (!n)
		return 0;
	k = (size_t)ceil(q * (double)n);
	return v[k ? k - 1 : 0];
}

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of the daemon (all its threads), or -1 if unknown. */
static double server_cpu(void)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	if (opt.server_pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", opt.server_pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: utime and
	 * stime are the 12th and 13th after the closing parenthesis. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
			 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy and total jiffies of all CPUs (/proc/stat), for the share of
 * the machine other processes took during a run. */
static void machine_cpu(double *busy, double *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "re");

	*busy = *total = -1;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		/* user nice system idle iowait irq softirq steal */
		*total = (double)(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] +
				  v[6] + v[7]);
		*busy = *total - (double)(v[3] + v[4]);
	}
	fclose(f);
}

static void timed_run(const char *mode, int conc)
{
	struct timed t = { 0 };
	struct phase p = { .name = mode, .next = timed_next,
			   .done = timed_done, .ctx = &t };
	double c0, s0, c1, s1, max, b0, t0, b1, t1, w0, w1, hz;

	t.signed_ = !strcmp(mode, "heartbeat");
	t.expect = t.signed_ ? 200 : 403;
	t.start = now_s() + opt.warmup;
	t.end = t.start + opt.seconds;
	machine_cpu(&b0, &t0);
	w0 = now_s();
	c0 = self_cpu();
	s0 = server_cpu();
	run_phase(&p, conc);
	c1 = self_cpu();
	s1 = server_cpu();
	w1 = now_s();
	machine_cpu(&b1, &t1);
	hz = (double)sysconf(_SC_CLK_TCK);
	qsort(t.lat, t.n_lat, sizeof(*t.lat), cmp_double);
	max = t.n_lat ? t.lat[t.n_lat - 1] : 0;
	/* CPU figures cover warm-up and drain as well as the window. */
	printf("{\"mode\":\"%s\",\"concurrency\":%d,\"requests\":%zu,"
	       "\"errors\":%lu,\"seconds\":%.3f,\"rps\":%.1f,"
	       "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"client_cpu_s\":%.3f,\"server_cpu_s\":%.3f,"
	       "\"machine_cpu_s\":%.3f,\"wall_s\":%.3f,\"answers\":%lu}\n",
	       mode, conc, t.n_lat, t.errors, opt.seconds,
	       (double)t.n_lat / opt.seconds, pct(t.lat, t.n_lat, 0.50),
	       pct(t.lat, t.n_lat, 0.99), max, c1 - c0,
	       s0 >= 0 && s1 >= 0 ? s1 - s0 : -1.0,
	       b0 >= 0 && b1 >= 0 ? (b1 - b0) / hz : -1.0, w1 - w0,
	       t.answers);
	fflush(stdout);
	free(t.lat);
}

/* ---- main ---------------------------------------------------------- */

static void usage(int rc)
{
	fprintf(rc ? stderr : stdout,
		"usage: ferry-control-load --url https://HOST:PORT --ca CA.pem\n"
		"         --installer-key FILE [--agents N] [--concurrency C[,C...]]\n"
		"         [--seconds S] [--warmup S] [--modes baseline,heartbeat]\n"
		"         [--region R] [--server-pid PID]\n"
		"FILE is the JSON `ferry-control keys create --role installer` printed.\n");
	exit(rc);
}

static void parse_levels(const char *s)
{
	char *end;

	opt.n_levels = 0;
	do {
		long v = strtol(s, &end, 10);

		if (end == s || v < 1 || v > 10000 ||
		    opt.n_levels == MAX_LEVELS || (*end && *end != ','))
			die("--concurrency: '%s' is not a list of 1-10000", s);
		opt.levels[opt.n_levels++] = (int)v;
		s = end + 1;
	} while (*end);
}

static double parse_secs(const char *name, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0 && v <= 86400))
		die("%s: '%s' is not a number of seconds", name, s);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "ca", required_argument, NULL, 'c' },
		{ "installer-key", required_argument, NULL, 'k' },
		{ "agents", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'C' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "modes", required_argument, NULL, 'm' },
		{ "region", required_argument, NULL, 'r' },
		{ "server-pid", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *key_file = NULL;
	char *modes, *save = NULL, *mode;
	int c, i;

	opt.levels[0] = 64;
	opt.n_levels = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': opt.url = optarg; break;
		case 'c': opt.ca = optarg; break;
		case 'k': key_file = optarg; break;
		case 'n':
			opt.n_agents = strtol(optarg, NULL, 10);
			if (opt.n_agents < 1 || opt.n_agents > 10000000)
				die("--agents: '%s' is not 1-10000000", optarg);
			break;
		case 'C': parse_levels(optarg); break;
		case 's': opt.seconds = parse_secs("--seconds", optarg); break;
		case 'w': opt.warmup = parse_secs("--warmup", optarg); break;
		case 'm': opt.modes = optarg; break;
		case 'r': opt.region = optarg; break;
		case 'p': opt.server_pid = strtol(optarg, NULL, 10); break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (!opt.url || !opt.ca || !key_file || optind != argc)
		usage(2);
	if (opt.seconds <= 0)
		die("--seconds must be more than 0");
	for (const char *m = opt.modes; *m; m += strcspn(m, ","),
	     m += *m == ',') {
		size_t n = strcspn(m, ",");

		if (!(n == 8 && !strncmp(m, "baseline", 8)) &&
		    !(n == 9 && !strncmp(m, "heartbeat", 9)))
			die("--modes: '%.*s' is neither baseline nor heartbeat",
			    (int)n, m);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		die("curl_global_init failed");
	snprintf(opt.sigv4, sizeof(opt.sigv4), "aws:amz:%s:mgn", opt.region);
	snprintf(opt.op_url, sizeof(opt.op_url), "%s/%s", opt.url,
		 HEARTBEAT_OP);
	opt.plain_hdrs = curl_slist_append(NULL,
					   "Content-Type: application/json");

	register_agents(key_file);
	for (i = 0; i < opt.n_levels; i++) {
		modes = xstrdup(opt.modes);
		for (mode = strtok_r(modes, ",", &save); mode;
		     mode = strtok_r(NULL, ",", &save))
			timed_run(mode, opt.levels[i]);
		free(modes);
	}

	for (long a = 0; a < opt.n_agents; a++) {
		free(opt.agents[a].id);
		free(opt.agents[a].userpwd);
		curl_slist_free_all(opt.agents[a].hdrs);
	}
	free(opt.agents);
	curl_slist_free_all(opt.plain_hdrs);
	curl_global_cleanup();
	return 0;
}
