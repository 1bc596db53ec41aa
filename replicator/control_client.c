// SPDX-License-Identifier: GPL-2.0
/*
 * control_client.c - registration with ferry-control, assignments and
 * reports (control_client.h).
 *
 * One thread talks to ferry-control, with one libcurl easy handle per
 * request (a few requests every report-interval: keep-alive would save
 * little).  Connection threads only read the assignment table, under
 * its lock; one that meets a source server or disk not in it may ask
 * that thread to fetch the assignments now (ctl_assignment_refresh()):
 * it wakes the thread through an eventfd and waits on a condition
 * variable, never calling ferry-control itself.  The secret key is
 * handed to libcurl for signing and never written anywhere else.
 */
#include "control_client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "api_resp.h"
#include "launch.h"
#include "log.h"
#include "peer_id.h"
#include "pit_policy.h"

#define RESP_MAX (8u << 20)
#define BACKOFF_MAX_S 60
/* A connection waits this long for a refresh of the assignments ... */
#define REFRESH_WAIT_S 5
/* ... and refreshes start at least this far apart, whoever asks: a
 * client that ferry-control does not know cannot make us hammer it. */
#define REFRESH_GAP_MS 1000
/* After a failed renewal of the server certificate, the next try. */
#define RENEW_RETRY_S 3600

struct ctl_disk {
	char name[FERRY_WIRE_MAX_NAME + 1];
	uint64_t size;			/* 0: unknown, any size */
};

struct ctl_source {
	char id[FERRY_ID_MAX + 1];
	size_t n_disks;
	struct ctl_disk *disks;
	json_t *pit_rules;		/* its pitPolicy, as given */
	bool has_pit;			/* pit is the server's own policy */
	struct snap_policy pit;
};

/* What the connections tell the reports about one source server. */
struct ctl_note {
	struct ctl_note *next;
	char source[FERRY_ID_MAX + 1];
	int64_t snap_ms;		/* newest snapshot, 0: none */
	char *staging_error;		/* stagingError.message, NULL: none */
};

static struct {
	const struct rep_config *cfg;
	char *key_id, *secret;
	char host[256];
	unsigned int port;
	int stop_fd;
	int wake_fd;		/* eventfd: a connection wants a refresh */
	pthread_t thread;
	bool running;
	bool registered;
	time_t last_post;	/* second of the last state-changing call */
	bool save_failed;	/* the assignments file is not up to date */
	struct timespec last_fetch;	/* start of the last fetch */
	/* The server certificate, when ferry-control issued it: renewed
	 * by the report thread, handed to the server by renewed(). */
	bool issued;
	time_t cert_end;		/* its notAfter */
	time_t renew_after;		/* no try before (after a failure) */
	ctl_cert_renewed_fn renewed;
	void *renewed_arg;

	pthread_mutex_t lock;	/* the fields below */
	struct ctl_source *src;
	size_t n_src;
	json_t *saved;		/* the sourceServers array last stored */
	struct ctl_note *notes;
	unsigned int n_staging_errors;	/* notes with staging_error set;
					 * also read without the lock */
	/* Fetches of the assignments, started and finished: a refresh
	 * asked for when fetch_started was N is done when fetch_done
	 * reaches N + 1 (refresh_for), whoever started that fetch. */
	unsigned long fetch_started, fetch_done, refresh_for;
	char refresh_source[FERRY_ID_MAX + 1];	/* who asked, for the log */
	bool thread_gone;
	pthread_cond_t fetched;	/* broadcast when fetch_done grows */
} ctl = { .stop_fd = -1, .wake_fd = -1,
	  .lock = PTHREAD_MUTEX_INITIALIZER };

static bool stopping(void)
{
	struct pollfd p = { .fd = ctl.stop_fd, .events = POLLIN };

	return ctl.stop_fd >= 0 && poll(&p, 1, 0) > 0;
}

/* DATA_DIR/NAME into OUT. */
static void data_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", ctl.cfg->data_dir, name);
}

/* ---- credentials ------------------------------------------------------ */

/*
 * "key = value" lines: access_key_id and secret_access_key (also
 * spelt with '-' or an aws_ prefix, as in ~/.aws/credentials, whose
 * "[profile]" lines are skipped).  The file must be private: 0600.
 */
static int load_credentials(const char *path, char *err, size_t errlen)
{
	char line[1024];
	struct stat st;
	FILE *f = fopen(path, "re");

	if (!f) {
		set_err(err, errlen, "cannot open credentials-file %s: %s",
			path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		set_err(err, errlen, "credentials-file %s is accessible to "
			"group or others (mode %03o): chmod 600 it", path,
			(unsigned int)(st.st_mode & 0777));
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *v, *e;

		while (*k == ' ' || *k == '\t')
			k++;
		if (*k == '#' || *k == '[' || *k == '\n' || !*k)
			continue;
		v = strchr(k, '=');
		if (!v)
			continue;
		for (e = v; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		v[strcspn(v, " \t\r\n")] = '\0';
		for (char *p = k; *p; p++)
			if (*p == '-')
				*p = '_';
		if (!strncasecmp(k, "aws_", 4))
			k += 4;
		if (!strcasecmp(k, "access_key_id")) {
			free(ctl.key_id);
			ctl.key_id = strdup(v);
		} else if (!strcasecmp(k, "secret_access_key")) {
			free(ctl.secret);
			ctl.secret = strdup(v);
		}
	}
	fclose(f);
	if (!ctl.key_id || !ctl.secret || !*ctl.key_id || !*ctl.secret) {
		set_err(err, errlen, "credentials-file %s lacks access_key_id "
			"or secret_access_key", path);
		return -1;
	}
	return 0;
}

/* ---- HTTPS ------------------------------------------------------------ */

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
		       curl_off_t d)
{
	(void)arg, (void)a, (void)b, (void)c, (void)d;
	return stopping();	/* non-zero aborts the transfer */
}

/*
 * POST BODY to ferry-control's operation OP, signed with the replicator
 * key; *OUT gets the answer's JSON object.  0, or -1 with ERR saying
 * what failed (HTTP status, error type and message).  CHANGES: the
 * operation changes state, so an identical request may not be signed in
 * the same second twice (ferry-control refuses replays).
 */
static int call(const char *op, json_t *body, bool changes, json_t **out,
		char *err, size_t errlen)
{
	char url[1024], sigv4[128], cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct api_resp r = { .max = RESP_MAX };
	json_error_t jerr;
	char *data = NULL;
	long status = 0;
	CURLcode rc;
	CURL *e;
	int ret = -1;

	*out = NULL;
	if (changes) {
		while (time(NULL) <= ctl.last_post && !stopping())
			usleep(50 * 1000);
		ctl.last_post = time(NULL);
	}
	data = json_dumps(body, JSON_COMPACT);
	e = curl_easy_init();
	if (!data || !e) {
		set_err(err, errlen, "%s: out of memory", op);
		goto out;
	}
	snprintf(url, sizeof(url), "%s%s%s", ctl.cfg->control_url,
		 ctl.cfg->control_url[strlen(ctl.cfg->control_url) - 1] == '/'
		 ? "" : "/", op);
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:mgn", ctl.cfg->region);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, ctl.cfg->control_ca);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(e, CURLOPT_USERNAME, ctl.key_id);
	curl_easy_setopt(e, CURLOPT_PASSWORD, ctl.secret);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, api_resp_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, api_resp_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	rc = curl_easy_perform(e);
	if (rc != CURLE_OK) {
		set_err(err, errlen, "%s to %s: %s", op, ctl.cfg->control_url,
			cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	*out = r.buf ? json_loads(r.buf, 0, &jerr) : NULL;
	if (status != 200) {
		const char *msg = json_string_value(
			json_object_get(*out, "message"));

		set_err(err, errlen, "%s: HTTP %ld %s: %s", op, status,
			r.type[0] ? r.type : "", msg ? msg : "(no message)");
		json_decref(*out);
		*out = NULL;
		goto out;
	}
	if (!json_is_object(*out)) {
		set_err(err, errlen, "%s: the answer is not a JSON object",
			op);
		json_decref(*out);
		*out = NULL;
		goto out;
	}
	ret = 0;
out:
	curl_slist_free_all(hdrs);
	if (e)
		curl_easy_cleanup(e);
	free(data);
	free(r.buf);
	return ret;
}

/* ---- files ------------------------------------------------------------ */

/* Replace PATH with LEN bytes of DATA durably, mode MODE. */
static int write_file(const char *path, const void *data, size_t len,
		      mode_t mode, char *err, size_t errlen)
{
	char tmp[4200];
	ssize_t n;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	if (fchmod(fd, mode))
		goto fail_fd;
	n = write(fd, data, len);
	if (n < 0 || (size_t)n != len) {
		if (n >= 0)
			errno = ENOSPC;
		goto fail_fd;
	}
	if (fsync(fd))
		goto fail_fd;
	close(fd);
	if (rename(tmp, path))
		goto fail;
	return 0;
fail_fd:
	close(fd);
fail:
	set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
	unlink(tmp);
	return -1;
}

/* ---- the assignment table -------------------------------------------- */

static void free_sources(struct ctl_source *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].disks);
		json_decref(s[i].pit_rules);
	}
	free(s);
}

/* Disk NAME's size in the entry's "disks" (sourceProperties), 0 if not
 * given. */
static uint64_t disk_size(json_t *e, const char *name)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(e, "disks"), i, d) {
		json_int_t b = json_integer_value(json_object_get(d, "bytes"));

		if (!strcmp(json_string_value(json_object_get(d, "deviceName"))
			    ?: "", name))
			return b > 0 ? (uint64_t)b : 0;
	}
	return 0;
}

static int add_disk(struct ctl_source *s, const char *name, uint64_t size)
{
	struct ctl_disk *n;

	if (!name || !*name || strlen(name) > FERRY_WIRE_MAX_NAME)
		return 0;
	n = realloc(s->disks, (s->n_disks + 1) * sizeof(*n));
	if (!n)
		return -1;
	s->disks = n;
	snprintf(n[s->n_disks].name, sizeof(n->name), "%s", name);
	n[s->n_disks++].size = size;
	return 0;
}

/*
 * S's snapshot policy from its entry's pitPolicy RULES: none (null: no
 * administrator set one; absent: an older ferry-control) leaves S to the
 * replicator's pit_policy, and so does an invalid one, said in the log
 * when it is new (not at every poll): a server must not go without
 * snapshots for want of a valid policy.  Only this thread changes the
 * table: it reads the current one without the lock.
 */
static void set_pit(struct ctl_source *s, json_t *rules)
{
	const struct ctl_source *old = NULL;
	char why[256], own[256];

	s->has_pit = false;
	if (!rules || json_is_null(rules))
		return;
	s->pit_rules = json_incref(rules);
	if (pit_policy_from_mgn(&s->pit, rules, why, sizeof(why)) == 0) {
		s->has_pit = true;
		return;
	}
	for (size_t i = 0; i < ctl.n_src && !old; i++)
		if (!strcmp(ctl.src[i].id, s->id))
			old = &ctl.src[i];
	if (old && json_equal(old->pit_rules, rules))
		return;
	pit_policy_format(&ctl.cfg->pit, own, sizeof(own));
	rlog_error("source server %s: ferry-control's %s; its snapshots "
		   "follow this replicator's pit_policy (%s) until the "
		   "server's policy is fixed at ferry-control", s->id, why,
		   own);
}

/*
 * Replace the table with LIST (GetReplicatorAssignmentsForMgn's
 * sourceServers): a server may write the disks of its replication
 * configuration ("replicatedDisks"), or all its disks when that is
 * absent, up to their sizes.  Takes a reference to LIST.  SAVE: also
 * store LIST in the data directory if it changed.
 */
static int set_assignments(json_t *list, bool save, char *err, size_t errlen)
{
	struct ctl_source *src = NULL, *old;
	size_t n = 0, i, k, n_old;
	json_t *e, *names, *d;
	bool changed;

	if (!json_is_array(list)) {
		set_err(err, errlen, "sourceServers is not a list");
		return -1;
	}
	src = calloc(json_array_size(list) + 1, sizeof(*src));
	if (!src)
		goto oom;
	json_array_foreach(list, i, e) {
		const char *id = json_string_value(
			json_object_get(e, "sourceServerID"));
		struct ctl_source *s = &src[n];

		if (!id || !ferry_id_valid(id))
			continue;
		snprintf(s->id, sizeof(s->id), "%s", id);
		names = json_object_get(e, "replicatedDisks");
		if (json_is_array(names)) {
			json_array_foreach(names, k, d) {
				const char *nm = json_string_value(d);

				if (nm && add_disk(s, nm, disk_size(e, nm)))
					goto oom;
			}
		} else {
			json_array_foreach(json_object_get(e, "disks"), k, d) {
				const char *nm = json_string_value(
					json_object_get(d, "deviceName"));

				if (nm && add_disk(s, nm, disk_size(e, nm)))
					goto oom;
			}
		}
		set_pit(s, json_object_get(e, "pitPolicy"));
		n++;
	}
	pthread_mutex_lock(&ctl.lock);
	changed = !ctl.saved || !json_equal(ctl.saved, list);
	old = ctl.src;
	n_old = ctl.n_src;
	ctl.src = src;
	ctl.n_src = n;
	json_decref(ctl.saved);
	ctl.saved = json_incref(list);
	pthread_mutex_unlock(&ctl.lock);
	free_sources(old, n_old);
	if ((changed || ctl.save_failed) && save) {
		char path[4096], *text, why[512];
		json_t *doc = json_pack("{s:s,s:O}", "replicatorID",
					ctl.cfg->id, "sourceServers", list);
		int rc;

		text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
		json_decref(doc);
		if (!text)
			goto oom_saved;
		data_path(path, sizeof(path), CTL_ASSIGNMENTS_FILE);
		rc = write_file(path, text, strlen(text), 0640, why,
				sizeof(why));
		free(text);
		/* Not fatal: the table in memory is current, and reports
		 * matter most when the disk is full.  Retried each poll. */
		if (rc) {
			if (!ctl.save_failed)
				rlog_error("%s; a restart without ferry-control "
					   "would serve older assignments", why);
			ctl.save_failed = true;
			return 0;
		}
		ctl.save_failed = false;
		rlog_info("ferry-control assigns %zu source servers to this "
			  "replicator; saved in %s", n, path);
	}
	return 0;
oom:
	if (src)
		free_sources(src, n + 1);
oom_saved:
	set_err(err, errlen, "out of memory for the assignments");
	return -1;
}

int ctl_assignment_find(const char *source, const char *disk, uint64_t *size,
			int *known_source)
{
	int found = 0;

	*known_source = 0;
	*size = 0;
	pthread_mutex_lock(&ctl.lock);
	for (size_t i = 0; i < ctl.n_src && !found; i++) {
		const struct ctl_source *s = &ctl.src[i];

		if (strcmp(s->id, source))
			continue;
		*known_source = 1;
		for (size_t k = 0; k < s->n_disks; k++) {
			if (!strcmp(s->disks[k].name, disk)) {
				*size = s->disks[k].size;
				found = 1;
				break;
			}
		}
	}
	pthread_mutex_unlock(&ctl.lock);
	return found;
}

bool ctl_assignment_pit(const char *source, struct snap_policy *p)
{
	bool found = false;

	pthread_mutex_lock(&ctl.lock);
	for (size_t i = 0; i < ctl.n_src; i++) {
		if (strcmp(ctl.src[i].id, source))
			continue;
		found = ctl.src[i].has_pit;
		if (found)
			*p = ctl.src[i].pit;
		break;
	}
	pthread_mutex_unlock(&ctl.lock);
	return found;
}

static int load_saved(char *err, size_t errlen)
{
	char path[4096];
	json_error_t jerr;
	json_t *doc;
	int rc;

	data_path(path, sizeof(path), CTL_ASSIGNMENTS_FILE);
	if (access(path, F_OK))
		return 0;
	doc = json_load_file(path, 0, &jerr);
	if (!doc) {
		set_err(err, errlen, "%s:%d: %s (remove it: ferry-control "
			"will send the assignments again)", path, jerr.line,
			jerr.text);
		return -1;
	}
	rc = set_assignments(json_object_get(doc, "sourceServers"), false,
			     err, errlen);
	json_decref(doc);
	if (!rc)
		rlog_info("%zu source servers assigned by ferry-control "
			  "(saved in %s)", ctl.n_src, path);
	return rc;
}

/* ---- snapshots and staging errors ------------------------------------ */

/* SOURCE's note, made if missing (NULL: out of memory).  Under the lock. */
static struct ctl_note *note_get(const char *source)
{
	struct ctl_note *s;

	for (s = ctl.notes; s; s = s->next)
		if (!strcmp(s->source, source))
			return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->source, sizeof(s->source), "%s", source);
	s->next = ctl.notes;
	ctl.notes = s;
	return s;
}

void ctl_note_snapshot(const char *source, int64_t unix_ms)
{
	struct ctl_note *s;

	if (!ctl.cfg)
		return;
	pthread_mutex_lock(&ctl.lock);
	s = note_get(source);
	if (s && unix_ms > s->snap_ms)
		s->snap_ms = unix_ms;
	pthread_mutex_unlock(&ctl.lock);
}

void ctl_staging_full(const char *source, const char *path,
		      const char *detail)
{
	const char *why = strerror(ENOSPC);
	unsigned long long avail = 0;
	char where[4400], *msg = NULL;
	struct ctl_note *s;
	struct statvfs sv;

	if (!ctl.cfg)
		return;
	/* The wire code NOSPC stands for both; the detail says which. */
	if (detail && strstr(detail, strerror(EDQUOT)))
		why = strerror(EDQUOT);
	if (statvfs(ctl.cfg->data_dir, &sv) == 0)
		avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
	if (!path) {
		snprintf(where, sizeof(where), "%s/%s", ctl.cfg->data_dir,
			 source);
		path = where;
	}
	if (asprintf(&msg, "staging volume %s: %s (%llu bytes free); free "
		     "space under --data-dir %s (%s)", path, why, avail,
		     ctl.cfg->data_dir, detail ? detail : why) < 0) {
		rlog_error("out of memory for the staging error of %s; "
			   "ferry-control will not show it", source);
		return;
	}
	pthread_mutex_lock(&ctl.lock);
	s = note_get(source);
	if (s) {
		if (!s->staging_error)
			__atomic_add_fetch(&ctl.n_staging_errors, 1,
					   __ATOMIC_RELAXED);
		free(s->staging_error);
		s->staging_error = msg;
		msg = NULL;
	}
	pthread_mutex_unlock(&ctl.lock);
	if (msg) {
		rlog_error("out of memory for the staging error of %s; "
			   "ferry-control will not show it", source);
		free(msg);
	}
}

void ctl_staging_ok(const char *source)
{
	struct ctl_note *s;
	bool cleared = false;

	/* Every group commit comes here: the common case, no error at
	 * all, costs one unlocked read.  The connection that follows a
	 * failed one takes its disks after that one released them (under
	 * claims_lock, conn.c), so it sees the count the failure raised. */
	if (!ctl.cfg || !__atomic_load_n(&ctl.n_staging_errors,
					 __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&ctl.lock);
	for (s = ctl.notes; s; s = s->next) {
		if (strcmp(s->source, source) || !s->staging_error)
			continue;
		free(s->staging_error);
		s->staging_error = NULL;
		__atomic_sub_fetch(&ctl.n_staging_errors, 1, __ATOMIC_RELAXED);
		cleared = true;
	}
	pthread_mutex_unlock(&ctl.lock);
	if (cleared)
		rlog_info("%s: writes to the staging volumes are durable "
			  "again; the staging error is cleared at "
			  "ferry-control with the next report", source);
}

/* SOURCE's newest snapshot time (0: none) and a copy of its staging
 * error (NULL: none; the caller frees it). */
static int64_t note_read(const char *source, char **staging_error)
{
	int64_t ms = 0;

	*staging_error = NULL;
	pthread_mutex_lock(&ctl.lock);
	for (struct ctl_note *s = ctl.notes; s; s = s->next) {
		if (strcmp(s->source, source))
			continue;
		ms = s->snap_ms;
		if (s->staging_error)
			*staging_error = strdup(s->staging_error);
	}
	pthread_mutex_unlock(&ctl.lock);
	return ms;
}

/* ---- reports ---------------------------------------------------------- */

static int space(uint64_t *cap, uint64_t *avail, char *err, size_t errlen)
{
	struct statvfs sv;

	if (statvfs(ctl.cfg->data_dir, &sv)) {
		set_err(err, errlen, "cannot read the free space of %s: %s",
			ctl.cfg->data_dir, strerror(errno));
		return -1;
	}
	*cap = (uint64_t)sv.f_blocks * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (*cap == 0)
		*cap = 1;
	if (*avail > *cap)
		*avail = *cap;
	return 0;
}

/*
 * The replicated bytes of SOURCE's staging volumes: each volume's
 * sync_mark (the initial copy is durable below it; the whole disk once
 * the copy is done), from the metadata files, which are only written
 * after the data they describe is durable.
 */
static json_t *replicated_disks(const char *source)
{
	char dir[4096], path[4400], line[1024], disk[FERRY_WIRE_MAX_NAME + 1];
	json_t *list = json_array();
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", ctl.cfg->data_dir, source);
	d = opendir(dir);
	if (!d)
		return list;
	while ((de = readdir(d))) {
		size_t nl = strlen(de->d_name);
		unsigned long long mark = 0;
		bool have = false;
		FILE *f;

		if (nl < 6 || strcmp(de->d_name + nl - 5, ".meta"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		disk[0] = '\0';
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = '\0';
			if (!strncmp(line, "disk = ", 7) &&
			    strlen(line + 7) < sizeof(disk))
				memcpy(disk, line + 7, strlen(line + 7) + 1);
			else if (sscanf(line, "sync_mark = %llu", &mark) == 1)
				have = true;
		}
		fclose(f);
		if (disk[0] && have)
			json_array_append_new(list, json_pack("{s:s,s:I}",
				"deviceName", disk, "replicatedStorageBytes",
				(json_int_t)mark));
	}
	closedir(d);
	return list;
}

static json_t *iso_time(int64_t ms)
{
	char buf[32];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *report_body(json_t *removed, char *err, size_t errlen)
{
	uint64_t cap, avail;
	json_t *body, *list;
	char (*ids)[FERRY_ID_MAX + 1];
	size_t n;

	if (space(&cap, &avail, err, errlen))
		return NULL;
	/* Only the servers assigned here: reporting one that has moved to
	 * another replicator would fail the whole report. */
	pthread_mutex_lock(&ctl.lock);
	n = ctl.n_src;
	ids = calloc(n + 1, sizeof(*ids));
	for (size_t i = 0; ids && i < n; i++)
		memcpy(ids[i], ctl.src[i].id, sizeof(ids[i]));
	pthread_mutex_unlock(&ctl.lock);
	if (!ids) {
		set_err(err, errlen, "out of memory for the report");
		return NULL;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_pack("{s:s,s:o}", "sourceServerID", ids[i],
				      "replicatedDisks",
				      replicated_disks(ids[i]));
		char *staging;
		int64_t ms = note_read(ids[i], &staging);

		/* CP times are the agent's clock; ferry-control refuses
		 * the whole report for a time ahead of its own. */
		if (ms > (int64_t)time(NULL) * 1000)
			ms = (int64_t)time(NULL) * 1000;
		if (ms > 0)
			json_object_set_new(e, "lastSnapshotDateTime",
					    iso_time(ms));
		/* Left out once cleared: ferry-control clears it then. */
		if (staging)
			json_object_set_new(e, "stagingError", json_pack(
				"{s:s,s:s}", "code", CTL_STAGING_DISK_FULL,
				"message", staging));
		free(staging);
		json_array_append_new(list, e);
	}
	free(ids);
	body = json_pack("{s:I,s:I,s:o}", "freeBytes", (json_int_t)avail,
			 "capacityBytes", (json_int_t)cap, "sourceServers",
			 list);
	if (!body) {
		set_err(err, errlen, "out of memory for the report");
		return NULL;
	}
	/* Left out when there is nothing to say: a ferry-control without
	 * launches refuses the member. */
	list = launch_reports();
	if (json_array_size(list))
		json_object_set_new(body, "launches", list);
	else
		json_decref(list);
	if (json_array_size(removed))
		json_object_set(body, "removedLaunches", removed);
	return body;
}

/* ---- registration ----------------------------------------------------- */

/* A new P-256 key, or the one stored at PATH. */
static EVP_PKEY *server_key(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *k = NULL;
	BIO *b;
	char *pem;
	long len;
	FILE *f = fopen(path, "re");

	if (f) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!k)
			set_err(err, errlen, "cannot read the key %s (remove "
				"it to get a new one)", path);
		return k;
	}
	k = EVP_EC_gen("P-256");
	b = BIO_new(BIO_s_mem());
	if (!k || !b ||
	    !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
		set_err(err, errlen, "cannot make a P-256 key");
		goto fail;
	}
	len = BIO_get_mem_data(b, &pem);
	if (write_file(path, pem, (size_t)len, 0600, err, errlen))
		goto fail;
	BIO_free(b);
	return k;
fail:
	BIO_free(b);
	EVP_PKEY_free(k);
	return NULL;
}

static char *make_csr(EVP_PKEY *k, char *err, size_t errlen)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *nm = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL, *out = NULL;
	long len;

	if (!req || !nm || !b ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
					(const unsigned char *)ctl.cfg->id,
					-1, -1, 0) ||
	    !X509_REQ_set_subject_name(req, nm) ||
	    !X509_REQ_set_pubkey(req, k) ||
	    !X509_REQ_sign(req, k, EVP_sha256()) ||
	    !PEM_write_bio_X509_REQ(b, req)) {
		set_err(err, errlen, "cannot make a certificate request");
		goto out;
	}
	len = BIO_get_mem_data(b, &pem);
	out = strndup(pem, (size_t)len);
out:
	BIO_free(b);
	X509_NAME_free(nm);
	X509_REQ_free(req);
	return out;
}

/* RegisterReplicatorForMgn, with CSR if not NULL; *OUT: the answer. */
static int do_register(const char *csr, json_t **out, char *err,
		       size_t errlen)
{
	uint64_t cap, avail;
	json_t *body;
	int rc;

	if (space(&cap, &avail, err, errlen))
		return -1;
	body = json_pack("{s:s,s:s,s:i,s:I,s:I,s:i}", "replicatorID",
			 ctl.cfg->id, "address", ctl.host, "port",
			 (int)ctl.port, "capacityBytes", (json_int_t)cap,
			 "freeBytes", (json_int_t)avail, "maxSourceServers",
			 (int)ctl.cfg->max_source_servers);
	if (body && csr)
		json_object_set_new(body, "csr", json_string(csr));
	if (!body) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	rc = call("RegisterReplicatorForMgn", body, true, out, err, errlen);
	json_decref(body);
	if (!rc)
		ctl.registered = true;
	return rc;
}

/*
 * ferry-control's CA writes the replicatorID registered into the
 * certificate it signs, so PEM names ctl.cfg->id; but agents refuse
 * the replicator if it does not, so it is not taken on trust (a
 * ferry-control of another version, or something else at control-url).
 * 0, or -1 with why in ERR.
 */
static int issued_cert_check(const char *pem, char *err, size_t errlen)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	char got[FERRY_ID_MAX + 1], why[1024];
	int rc = -1;

	BIO_free(b);
	if (!x)
		set_err(err, errlen, "RegisterReplicatorForMgn answered with "
			"a certificate that is not PEM");
	else if (rep_cert_id(x, "the certificate ferry-control issued",
			     ctl.cfg->id, got, why, sizeof(why)) !=
		 REP_CERT_ID_OK)
		set_err(err, errlen, "%s, the replicatorID registered: agents "
			"would refuse it, so it is not stored (is %s a "
			"ferry-control of this version?)", why,
			ctl.cfg->control_url);
	else
		rc = 0;
	X509_free(x);
	ERR_clear_error();
	return rc;
}

/* The notAfter of the PEM certificate at PATH; 0 if it cannot be read. */
static time_t cert_end_of(const char *path)
{
	FILE *f = fopen(path, "re");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	struct tm tm;
	time_t end = 0;

	if (f)
		fclose(f);
	if (x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		end = timegm(&tm);
	X509_free(x);
	ERR_clear_error();
	return end;
}

static void utc(time_t t, char *out, size_t len)
{
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm) ||
	    !strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, len, "?");
}

/* Register with a CSR and store the certificate. */
static int fetch_cert(const char *cert_path, const char *key_path, char *err,
		      size_t errlen)
{
	EVP_PKEY *k = server_key(key_path, err, errlen);
	const char *pem;
	json_t *resp = NULL;
	char *csr;
	int rc = -1;

	if (!k)
		return -1;
	csr = make_csr(k, err, errlen);
	EVP_PKEY_free(k);
	if (!csr)
		return -1;
	if (do_register(csr, &resp, err, errlen))
		goto out;
	pem = json_string_value(json_object_get(resp, "certificate"));
	if (!pem) {
		set_err(err, errlen, "RegisterReplicatorForMgn answered "
			"without a certificate");
		goto out;
	}
	if (issued_cert_check(pem, err, errlen))
		goto out;
	rc = write_file(cert_path, pem, strlen(pem), 0644, err, errlen);
	if (!rc)
		rlog_info("registered with ferry-control as %s (%s:%u); "
			  "server certificate stored in %s", ctl.cfg->id,
			  ctl.host, ctl.port, cert_path);
out:
	json_decref(resp);
	free(csr);
	return rc;
}

/* Where agents connect: advertise (HOST or HOST:PORT), else LISTENING. */
static int set_address(const char *listening, char *err, size_t errlen)
{
	char host[256], port[32], why[256];

	if (rep_split_hostport(listening, host, sizeof(host), port,
			       sizeof(port), err, errlen))
		return -1;
	ctl.port = (unsigned int)atoi(port);
	snprintf(ctl.host, sizeof(ctl.host), "%s", host);
	if (ctl.cfg->advertise) {
		if (rep_split_hostport(ctl.cfg->advertise, host, sizeof(host),
				       port, sizeof(port), why,
				       sizeof(why)) == 0) {
			ctl.port = (unsigned int)atoi(port);
			snprintf(ctl.host, sizeof(ctl.host), "%s", host);
		} else {
			snprintf(ctl.host, sizeof(ctl.host), "%s",
				 ctl.cfg->advertise);
		}
	}
	if (!ctl.port || !ctl.host[0]) {
		set_err(err, errlen, "advertise = %s: want ADDRESS or "
			"ADDRESS:PORT", ctl.cfg->advertise ?: listening);
		return -1;
	}
	return 0;
}

/*
 * The certificate at PATH, kept from an earlier registration, is one
 * agents take (rep_cert_agents_take(): one saved before ferry's
 * replicator key purpose existed has serverAuth), and it
 * names this replicator's id (not the one of a registration under
 * another id with the same data directory).  Else -1 with why in ERR.
 */
static int saved_cert_usable(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	char got[FERRY_ID_MAX + 1], why[1024];
	int rc = -1;

	if (f)
		fclose(f);
	if (!x) {
		set_err(err, errlen, "%s is not a PEM certificate", path);
	} else if (rep_cert_agents_take(x, path, err, errlen)) {
		/* why is in ERR */
	} else if (rep_cert_id(x, path, ctl.cfg->id, got, why, sizeof(why)) !=
		   REP_CERT_ID_OK) {
		set_err(err, errlen, "%s, this replicator's id (saved by a "
			"registration under another id?): agents refuse it",
			why);
	} else {
		rc = 0;
	}
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int ctl_init(struct rep_config *cfg, const char *listening, char *err,
	     size_t errlen)
{
	char cert[4096], key[4096], why[1024], why2[4200];

	ctl.cfg = cfg;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		set_err(err, errlen, "cannot initialise libcurl");
		return -1;
	}
	if (cfg->credentials_file) {
		if (load_credentials(cfg->credentials_file, err, errlen))
			return -1;
	} else {
		ctl.key_id = strdup(cfg->access_key_id);
		ctl.secret = strdup(cfg->secret_access_key);
	}
	if (set_address(listening, err, errlen) || load_saved(err, errlen))
		return -1;
	if (!cfg->ca)
		cfg->ca = strdup(cfg->control_ca);
	if (cfg->cert)
		return 0;
	data_path(cert, sizeof(cert), CTL_CERT_FILE);
	data_path(key, sizeof(key), CTL_KEY_FILE);
	if (fetch_cert(cert, key, why, sizeof(why))) {
		if (access(cert, R_OK) || access(key, R_OK)) {
			set_err(err, errlen, "no server certificate: %s "
				"(ferry-control issues it at the first "
				"registration; or give cert and key)", why);
			return -1;
		}
		if (saved_cert_usable(cert, why2, sizeof(why2))) {
			set_err(err, errlen, "cannot renew the server "
				"certificate: %s; and %s (start again once "
				"ferry-control answers)", why, why2);
			return -1;
		}
		rlog_error("cannot renew the server certificate: %s; using "
			   "%s from an earlier registration", why, cert);
	}
	ctl.issued = true;
	ctl.cert_end = cert_end_of(cert);
	cfg->cert = strdup(cert);
	cfg->key = strdup(key);
	if (!cfg->cert || !cfg->key || !cfg->ca) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* ---- the report thread ------------------------------------------------ */

/* Register if needed, then fetch the assignments into the table, offer
 * the launches and carry out the removals (those done into *REMOVED, for
 * the report; without REMOVED, a refresh between reports, they are not
 * reported: ferry-control asks again, and a directory already gone is
 * removed again).  Counted for ctl_assignment_refresh().  0 or -1 with
 * ERR. */
static int fetch(json_t **removed, char *err, size_t errlen)
{
	json_t *resp = NULL, *body;
	int rc = -1;

	pthread_mutex_lock(&ctl.lock);
	ctl.fetch_started++;
	pthread_mutex_unlock(&ctl.lock);
	clock_gettime(CLOCK_MONOTONIC, &ctl.last_fetch);
	if (!ctl.registered) {
		if (do_register(NULL, &resp, err, errlen))
			goto out;
		json_decref(resp);
		rlog_info("registered with ferry-control as %s (%s:%u)",
			  ctl.cfg->id, ctl.host, ctl.port);
	}
	body = json_object();
	rc = call("GetReplicatorAssignmentsForMgn", body, false, &resp, err,
		  errlen);
	json_decref(body);
	if (!rc)
		rc = set_assignments(json_object_get(resp, "sourceServers"),
				     true, err, errlen);
	if (!rc) {
		json_t *gone;

		launch_offer(json_object_get(resp, "launches"));
		gone = launch_remove(json_object_get(resp, "removeLaunches"));
		if (removed)
			*removed = gone;
		else
			json_decref(gone);
	}
	json_decref(resp);
out:
	pthread_mutex_lock(&ctl.lock);
	ctl.fetch_done = ctl.fetch_started;
	pthread_cond_broadcast(&ctl.fetched);
	pthread_mutex_unlock(&ctl.lock);
	return rc;
}

/*
 * Renew the server certificate ferry-control issued once it ends within
 * cert-renew-days.  It is issued at every start, but a replicator may
 * serve longer than the certificate lasts (365 days), and agents refuse
 * an expired one: replication would stop until a restart.  New
 * connections get the new certificate; open ones keep theirs.
 */
static void maybe_renew(void)
{
	char cert[4096], key[4096], err[1024], was[64], ends[64];
	time_t now = time(NULL);

	if (!ctl.issued || !ctl.renewed || now < ctl.renew_after ||
	    ctl.cert_end - now > (time_t)ctl.cfg->cert_renew_days * 86400)
		return;
	utc(ctl.cert_end, was, sizeof(was));
	data_path(cert, sizeof(cert), CTL_CERT_FILE);
	data_path(key, sizeof(key), CTL_KEY_FILE);
	if (fetch_cert(cert, key, err, sizeof(err)) ||
	    ctl.renewed(ctl.renewed_arg, err, sizeof(err))) {
		ctl.renew_after = now + RENEW_RETRY_S;
		rlog_error("cannot renew the server certificate, which ends "
			   "on %s: %s; serving with it, trying again in %d "
			   "minutes", was, err, RENEW_RETRY_S / 60);
		return;
	}
	ctl.cert_end = cert_end_of(cert);
	ctl.renew_after = 0;
	utc(ctl.cert_end, ends, sizeof(ends));
	rlog_info("server certificate renewed (the one in use ends on %s, "
		  "within cert-renew-days %u): new connections get the new "
		  "one, which ends on %s", was, ctl.cfg->cert_renew_days,
		  ends);
}

/* Fetch the assignments, report.  0 or -1 with ERR. */
static int cycle(char *err, size_t errlen)
{
	json_t *resp = NULL, *body, *removed = NULL;
	size_t i;
	json_t *id;

	if (fetch(&removed, err, errlen))
		return -1;
	body = report_body(removed, err, errlen);
	json_decref(removed);
	if (!body)
		return -1;
	if (call("UpdateReplicatorInfoForMgn", body, true, &resp, err,
		 errlen)) {
		json_decref(body);
		return -1;
	}
	launch_reported(json_object_get(body, "launches"));
	json_decref(body);
	json_array_foreach(json_object_get(resp, "unknownSourceServerIDs"),
			   i, id)
		rlog_info("ferry-control no longer knows source server %s "
			  "(its staging volumes can go)",
			  json_string_value(id) ?: "?");
	json_decref(resp);
	return 0;
}

/* Milliseconds from now to T plus MS (negative: past). */
static int64_t ms_until(const struct timespec *t, int64_t ms)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(t->tv_sec - now.tv_sec) * 1000 +
	       (t->tv_nsec - now.tv_nsec) / 1000000 + ms;
}

/* Sleep MS, less when woken for a refresh; true when stopping. */
static bool wait_stop(int64_t ms)
{
	struct pollfd p[2] = {
		{ .fd = ctl.stop_fd, .events = POLLIN },
		{ .fd = ctl.wake_fd, .events = POLLIN },
	};
	uint64_t n;

	if (poll(p, 2, ms > INT32_MAX ? INT32_MAX : (int)ms) <= 0)
		return false;
	if (p[0].revents)
		return true;
	if (read(ctl.wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		rlog_error("cannot read the refresh eventfd: %s",
			   strerror(errno));
	return false;
}

/*
 * A connection's refresh, due now unless the last fetch (its own or a
 * regular one) started less than REFRESH_GAP_MS ago: 0 if done or none
 * wanted, else the milliseconds to wait for it.
 */
static int64_t refresh_due(void)
{
	char who[FERRY_ID_MAX + 1], err[1024];
	int64_t gap;
	bool wanted;

	pthread_mutex_lock(&ctl.lock);
	wanted = ctl.refresh_for > ctl.fetch_started;
	memcpy(who, ctl.refresh_source, sizeof(who));
	pthread_mutex_unlock(&ctl.lock);
	if (!wanted)
		return 0;
	gap = ms_until(&ctl.last_fetch, REFRESH_GAP_MS);
	if (gap > 0)
		return gap;
	rlog_info("source server %s is not in the assignments: fetching "
		  "them from ferry-control now", who);
	if (fetch(NULL, err, sizeof(err)))
		rlog_error("cannot fetch the assignments for source server "
			   "%s: %s; it is refused until a later fetch "
			   "assigns it", who, err);
	return 0;
}

static void *report_thread(void *arg)
{
	unsigned int backoff = 1, delay = 0;
	int state = 0;		/* 1 reachable, -1 not, 0 not tried */
	struct timespec next;	/* the next regular cycle */
	char err[1024];

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		int64_t left = ms_until(&next, 0), gap;

		if (left > 0) {
			gap = refresh_due();
			if (wait_stop(gap && gap < left ? gap : left))
				break;
			continue;
		}
		if (stopping())
			break;
		if (cycle(err, sizeof(err)) == 0) {
			if (state != 1)
				rlog_info("ferry-control %s: reachable; "
					  "reporting every %u s",
					  ctl.cfg->control_url,
					  ctl.cfg->report_interval);
			state = 1;
			backoff = 1;
			maybe_renew();
			delay = ctl.cfg->report_interval;
			clock_gettime(CLOCK_MONOTONIC, &next);
			next.tv_sec += delay;
			continue;
		}
		if (stopping())
			break;
		/* Re-register first next time: ferry-control may have
		 * lost us (a restored database, a deleted replicator). */
		ctl.registered = false;
		if (state != -1) {
			size_t n;

			pthread_mutex_lock(&ctl.lock);
			n = ctl.n_src;
			pthread_mutex_unlock(&ctl.lock);
			rlog_error("ferry-control unreachable or refusing: %s; "
				   "serving the %zu last known assignments, "
				   "retrying with backoff", err, n);
		}
		state = -1;
		delay = backoff;
		backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S
						      : backoff * 2;
		clock_gettime(CLOCK_MONOTONIC, &next);
		next.tv_sec += delay;
	}
	/* Nobody fetches any more: waiting connections decide now. */
	pthread_mutex_lock(&ctl.lock);
	ctl.thread_gone = true;
	pthread_cond_broadcast(&ctl.fetched);
	pthread_mutex_unlock(&ctl.lock);
	return NULL;
}

int ctl_assignment_refresh(const char *source)
{
	static const uint64_t one = 1;
	unsigned long want;
	struct timespec dl;
	bool done, gone;
	int rc = 0;

	if (!ctl.running)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += REFRESH_WAIT_S;
	pthread_mutex_lock(&ctl.lock);
	/* The next fetch to start sees what ferry-control assigned before
	 * this call; the callers until it starts share it. */
	want = ctl.fetch_started + 1;
	if (ctl.refresh_for != want) {
		ctl.refresh_for = want;
		snprintf(ctl.refresh_source, sizeof(ctl.refresh_source), "%s",
			 source);
		if (write(ctl.wake_fd, &one, sizeof(one)) < 0)
			rlog_error("cannot wake the ferry-control thread: %s",
				   strerror(errno));
	}
	while (ctl.fetch_done < want && !ctl.thread_gone && rc == 0)
		rc = pthread_cond_timedwait(&ctl.fetched, &ctl.lock, &dl);
	done = ctl.fetch_done >= want;
	gone = ctl.thread_gone;
	pthread_mutex_unlock(&ctl.lock);
	/* Said, because the HELLO's verdict may then be DENIED for a server
	 * ferry-control did assign. */
	if (!done && !gone)
		rlog_error("source server %s: the assignments were not fetched "
			   "within %d s; deciding on the last known ones",
			   source, REFRESH_WAIT_S);
	return done ? 0 : -1;
}

int ctl_start(int stop_fd, ctl_cert_renewed_fn renewed, void *arg,
	      char *err, size_t errlen)
{
	pthread_condattr_t ca;
	int rc;

	ctl.stop_fd = stop_fd;
	ctl.renewed = renewed;
	ctl.renewed_arg = arg;
	ctl.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ctl.wake_fd < 0) {
		set_err(err, errlen, "cannot make an eventfd for the "
			"ferry-control thread: %s", strerror(errno));
		return -1;
	}
	/* Waits end by the monotonic clock: a clock step must not make a
	 * connection wait for a refresh much longer or shorter. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&ctl.fetched, &ca);
	pthread_condattr_destroy(&ca);
	if (rc) {
		set_err(err, errlen, "cannot make a condition variable: %s",
			strerror(rc));
		return -1;
	}
	if (launch_start(ctl.cfg, err, errlen))
		return -1;
	rc = pthread_create(&ctl.thread, NULL, report_thread, NULL);
	if (rc) {
		set_err(err, errlen, "cannot start the ferry-control thread: "
			"%s", strerror(rc));
		return -1;
	}
	ctl.running = true;
	return 0;
}

void ctl_stop(void)
{
	if (!ctl.running)
		return;
	pthread_join(ctl.thread, NULL);
	ctl.running = false;
	launch_stop();
	/* No connection is left to wait on them (main.c). */
	pthread_cond_destroy(&ctl.fetched);
	close(ctl.wake_fd);
	ctl.wake_fd = -1;
}
