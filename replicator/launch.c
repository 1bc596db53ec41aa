// SPDX-License-Identifier: GPL-2.0
/*
 * launch.c - launch tasks: export, report, list (launch.h).
 *
 * One worker thread exports one task at a time: an export reads whole
 * disks, and several at once would only compete for the same staging
 * filesystem.  The report thread (control_client.c) offers tasks and
 * collects their states; neither waits for the other beyond the lock.
 *
 * An export is written into DATA_DIR/launch/<job>/.<source>.tmp and
 * renamed to <source> once its images and manifest are durable, so a
 * directory without the ".tmp" is always complete.
 */
#include "launch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "peer_id.h"
#include "snapshot.h"

#define JOB_ID_LEN 24		/* mgnjob- and 17 letters or digits */

enum task_state { T_QUEUED, T_RUNNING, T_LAUNCHED, T_FAILED };

struct task {
	struct task *next;
	char job[JOB_ID_LEN + 1];
	char source[FERRY_ID_MAX + 1];
	enum task_state state;
	time_t start, end;
	json_t *manifest;	/* T_LAUNCHED */
	char *error;		/* T_FAILED */
};

static struct {
	const struct rep_config *cfg;
	pthread_mutex_t lock;	/* the fields below */
	pthread_cond_t cond;
	struct task *tasks;	/* in the order offered */
	bool stop;
	pthread_t thread;
	bool running;
} L = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void task_free(struct task *t)
{
	json_decref(t->manifest);
	free(t->error);
	free(t);
}

/* MGN's JobID: "mgnjob-" and 17 letters or digits (a path component). */
static bool job_id_ok(const char *s)
{
	static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	return s && strlen(s) == JOB_ID_LEN && !strncmp(s, "mgnjob-", 7) &&
	       strspn(s + 7, alnum) == JOB_ID_LEN - 7;
}

static json_t *iso(time_t t)
{
	char buf[32];
	struct tm tm;

	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	return json_string(buf);
}

static int make_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0750) && errno != EEXIST) {
		set_err(err, errlen, "cannot create %s: %s", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Remove the files of DIR (a half-made export) and DIR. */
static void remove_dir(const char *dir)
{
	char path[PATH_MAX + 300];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* M into PATH, durably. */
static int write_manifest(const char *path, json_t *m, char *err,
			  size_t errlen)
{
	FILE *f = fopen(path, "we");
	int rc;

	if (!f) {
		set_err(err, errlen, "cannot create %s: %s", path,
			strerror(errno));
		return -1;
	}
	rc = json_dumpf(m, f, JSON_INDENT(1)) || fputc('\n', f) == EOF ||
	     fflush(f) || fsync(fileno(f));
	if (fclose(f))
		rc = -1;
	if (rc) {
		set_err(err, errlen, "cannot write %s: %s", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Export T's images, or find them exported by an earlier run: its
 * manifest (new reference), or NULL with ERR.
 */
static json_t *run_task(const struct task *t, char *err, size_t errlen)
{
	const char *data_dir = L.cfg->data_dir;
	char top[PATH_MAX], job_dir[PATH_MAX + 40], dir[PATH_MAX + 120],
	     tmp[PATH_MAX + 120], path[PATH_MAX + 200];
	struct snap_export *disks = NULL;
	json_t *m = NULL, *images;
	json_error_t jerr;
	unsigned int n, i;
	uint64_t cp = 0, ms = 0;
	int fd;

	snprintf(top, sizeof(top), "%s/%s", data_dir, LAUNCH_DIR);
	snprintf(job_dir, sizeof(job_dir), "%s/%s", top, t->job);
	snprintf(dir, sizeof(dir), "%s/%s", job_dir, t->source);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", job_dir, t->source);
	snprintf(path, sizeof(path), "%s/%s", dir, LAUNCH_MANIFEST);
	if (!access(path, F_OK)) {
		m = json_load_file(path, 0, &jerr);
		if (!m)
			set_err(err, errlen, "%s:%d: %s", path, jerr.line,
				jerr.text);
		return m;
	}
	if (make_dir(top, err, errlen) || make_dir(job_dir, err, errlen))
		return NULL;
	remove_dir(tmp);
	disks = calloc(FERRY_WIRE_MAX_DISKS, sizeof(*disks));
	if (!disks) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (make_dir(tmp, err, errlen) ||
	    snap_export_newest(data_dir, t->source, tmp, L.cfg->launch_qcow2,
			       disks, &n, &cp, &ms, err, errlen))
		goto fail;
	images = json_array();
	for (i = 0; i < n; i++) {
		/* The path the image has once TMP is renamed. */
		snprintf(path, sizeof(path), "%s/%s", dir,
			 strrchr(disks[i].path, '/') + 1);
		json_array_append_new(images, json_pack("{s:s,s:s,s:s,s:I}",
			"deviceName", disks[i].name, "path", path, "format",
			L.cfg->launch_qcow2 ? "qcow2" : "raw", "bytes",
			(json_int_t)disks[i].size));
	}
	snprintf(path, sizeof(path), "%s@%" PRIu64, t->source, cp);
	m = json_pack("{s:s,s:s,s:s,s:o,s:o}", "jobID", t->job,
		      "sourceServerID", t->source, "snapshotID", path,
		      "snapshotDateTime", iso((time_t)(ms / 1000)), "images",
		      images);
	snprintf(path, sizeof(path), "%s/%s", tmp, LAUNCH_MANIFEST);
	if (!m || write_manifest(path, m, err, errlen))
		goto fail;
	if (rename(tmp, dir)) {
		set_err(err, errlen, "cannot rename %s to %s: %s", tmp, dir,
			strerror(errno));
		goto fail;
	}
	/* The rename itself durable: the directory's entry. */
	fd = open(job_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(disks);
	return m;
fail:
	json_decref(m);
	free(disks);
	remove_dir(tmp);
	return NULL;
}

static void *worker(void *arg)
{
	char err[1024];

	(void)arg;
	pthread_mutex_lock(&L.lock);
	for (;;) {
		struct task *t;
		json_t *m;

		for (t = L.tasks; t && t->state != T_QUEUED; t = t->next)
			;
		if (L.stop)
			break;
		if (!t) {
			pthread_cond_wait(&L.cond, &L.lock);
			continue;
		}
		t->state = T_RUNNING;
		t->start = time(NULL);
		/* T stays in the list: only launch_reported() removes
		 * tasks, and never a running one. */
		pthread_mutex_unlock(&L.lock);
		rlog_info("launch %s: exporting the newest snapshot of %s",
			  t->job, t->source);
		err[0] = '\0';
		m = run_task(t, err, sizeof(err));
		if (m)
			rlog_info("launch %s: %s images of %s in %s/%s/%s/%s",
				  t->job,
				  json_string_value(json_object_get(m,
						"snapshotID")) ?: "?",
				  t->source, L.cfg->data_dir, LAUNCH_DIR,
				  t->job, t->source);
		else
			rlog_error("launch %s of %s failed: %s", t->job,
				   t->source, err);
		pthread_mutex_lock(&L.lock);
		t->end = time(NULL);
		t->manifest = m;
		t->error = m ? NULL : strdup(err[0] ? err : "export failed");
		t->state = m ? T_LAUNCHED : T_FAILED;
	}
	pthread_mutex_unlock(&L.lock);
	return NULL;
}

int launch_start(const struct rep_config *cfg, char *err, size_t errlen)
{
	int rc;

	L.cfg = cfg;
	L.stop = false;
	rc = pthread_create(&L.thread, NULL, worker, NULL);
	if (rc) {
		set_err(err, errlen, "cannot start the launch thread: %s",
			strerror(rc));
		return -1;
	}
	L.running = true;
	return 0;
}

void launch_stop(void)
{
	struct task *t;

	if (!L.running)
		return;
	pthread_mutex_lock(&L.lock);
	L.stop = true;
	pthread_cond_broadcast(&L.cond);
	pthread_mutex_unlock(&L.lock);
	pthread_join(L.thread, NULL);
	L.running = false;
	while ((t = L.tasks)) {
		L.tasks = t->next;
		task_free(t);
	}
}

/* The task E names: its jobID and sourceServerID (NULL if missing). */
static void task_key(json_t *e, const char **job, const char **src)
{
	*job = json_string_value(json_object_get(e, "jobID"));
	*src = json_string_value(json_object_get(e, "sourceServerID"));
}

/* True if LIST ([{"jobID", "sourceServerID"}]) names task T. */
static bool listed(json_t *list, const struct task *t)
{
	const char *job, *src;
	json_t *e;
	size_t i;

	json_array_foreach(list, i, e) {
		task_key(e, &job, &src);
		if (job && src && !strcmp(job, t->job) &&
		    !strcmp(src, t->source))
			return true;
	}
	return false;
}

void launch_offer(json_t *launches)
{
	struct task **tail, *t;
	json_t *e;
	size_t i;

	if (!L.running || !json_is_array(launches))
		return;
	pthread_mutex_lock(&L.lock);
	/* The list is every open task of ours: one still queued and no
	 * longer in it was failed by ferry-control (we were silent too
	 * long) or went with its server to another replicator. */
	for (tail = &L.tasks; (t = *tail);) {
		if (t->state == T_QUEUED && !listed(launches, t)) {
			rlog_info("launch %s of %s: no longer asked for by ferry-control, dropped",
				  t->job, t->source);
			*tail = t->next;
			task_free(t);
			continue;
		}
		tail = &t->next;
	}
	json_array_foreach(launches, i, e) {
		const char *job, *src;

		task_key(e, &job, &src);
		if (!job_id_ok(job) || !src || !ferry_id_valid(src))
			continue;
		for (tail = &L.tasks; (t = *tail); tail = &t->next)
			if (!strcmp(t->job, job) && !strcmp(t->source, src))
				break;
		if (t)
			continue;
		t = calloc(1, sizeof(*t));
		if (!t) {
			rlog_error("out of memory for launch %s of %s", job,
				   src);
			break;
		}
		snprintf(t->job, sizeof(t->job), "%s", job);
		snprintf(t->source, sizeof(t->source), "%s", src);
		*tail = t;
		pthread_cond_signal(&L.cond);
	}
	pthread_mutex_unlock(&L.lock);
}

static const char *const state_names[] = {
	[T_QUEUED] = "PENDING", [T_RUNNING] = "IN_PROGRESS",
	[T_LAUNCHED] = "LAUNCHED", [T_FAILED] = "FAILED",
};

json_t *launch_reports(void)
{
	json_t *list = json_array(), *r;
	struct task *t;

	pthread_mutex_lock(&L.lock);
	for (t = L.tasks; t; t = t->next) {
		if (t->state == T_QUEUED)
			continue;
		r = json_pack("{s:s,s:s,s:s,s:o}", "jobID", t->job,
			      "sourceServerID", t->source, "launchStatus",
			      state_names[t->state], "startDateTime",
			      iso(t->start));
		if (t->state != T_RUNNING)
			json_object_set_new(r, "endDateTime", iso(t->end));
		if (t->manifest) {
			json_object_set(r, "snapshotDateTime",
					json_object_get(t->manifest,
							"snapshotDateTime"));
			json_object_set(r, "images",
					json_object_get(t->manifest,
							"images"));
		}
		if (t->error)
			json_object_set_new(r, "error",
					    json_string(t->error));
		json_array_append_new(list, r);
	}
	pthread_mutex_unlock(&L.lock);
	return list;
}

void launch_reported(json_t *sent)
{
	struct task **p, *t;
	json_t *e;
	size_t i;

	pthread_mutex_lock(&L.lock);
	json_array_foreach(sent, i, e) {
		const char *st = json_string_value(
			json_object_get(e, "launchStatus"));
		const char *job, *src;

		task_key(e, &job, &src);

		if (!job || !src || !st || (strcmp(st, "LAUNCHED") &&
					    strcmp(st, "FAILED")))
			continue;
		for (p = &L.tasks; (t = *p); p = &t->next) {
			if (strcmp(t->job, job) || strcmp(t->source, src))
				continue;
			*p = t->next;
			task_free(t);
			break;
		}
	}
	pthread_mutex_unlock(&L.lock);
}

/*
 * Delete DIR and the files in it (an export's directory holds no
 * other).  0 if it is gone (or never was), else -1 with ERR.
 */
static int delete_dir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX + 300];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d) {
		if (errno == ENOENT)
			return 0;
		set_err(err, errlen, "cannot open %s: %s", dir,
			strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) && errno != ENOENT) {
			set_err(err, errlen, "cannot delete %s: %s", path,
				strerror(errno));
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT) {
		set_err(err, errlen, "cannot delete %s: %s", dir,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Delete the images of JOB's launch of SRC (complete or half-made) and
 * the job's directory once empty.  0 or -1 with ERR. */
static int delete_images(const char *job, const char *src, char *err,
			 size_t errlen)
{
	char job_dir[PATH_MAX], dir[PATH_MAX + 120];
	int fd;

	snprintf(job_dir, sizeof(job_dir), "%s/%s/%s", L.cfg->data_dir,
		 LAUNCH_DIR, job);
	snprintf(dir, sizeof(dir), "%s/.%s.tmp", job_dir, src);
	if (delete_dir(dir, err, errlen))
		return -1;
	snprintf(dir, sizeof(dir), "%s/%s", job_dir, src);
	if (delete_dir(dir, err, errlen))
		return -1;
	/* Another server's images of the same job keep it (ENOTEMPTY). */
	if (rmdir(job_dir) && errno != ENOENT && errno != ENOTEMPTY) {
		set_err(err, errlen, "cannot delete %s: %s", job_dir,
			strerror(errno));
		return -1;
	}
	/* The removal durable before it is reported. */
	snprintf(job_dir, sizeof(job_dir), "%s/%s", L.cfg->data_dir,
		 LAUNCH_DIR);
	fd = open(job_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

json_t *launch_remove(json_t *list)
{
	json_t *done = json_array(), *e;
	struct task **p, *t;
	char err[1024];
	size_t i;

	if (!L.running)
		return done;
	json_array_foreach(list, i, e) {
		const char *job, *src;
		bool busy = false;

		task_key(e, &job, &src);
		/* Names from the network become paths: only well-formed
		 * IDs. */
		if (!job_id_ok(job) || !src || !ferry_id_valid(src))
			continue;
		pthread_mutex_lock(&L.lock);
		for (p = &L.tasks; (t = *p); p = &t->next) {
			if (strcmp(t->job, job) || strcmp(t->source, src))
				continue;
			/* Its export still writes: asked again next time. */
			if (t->state == T_RUNNING) {
				busy = true;
				break;
			}
			/* Nothing of it is wanted any more, nor its
			 * report. */
			*p = t->next;
			task_free(t);
			break;
		}
		pthread_mutex_unlock(&L.lock);
		if (busy)
			continue;
		if (delete_images(job, src, err, sizeof(err))) {
			rlog_error("launch %s of %s: cannot remove its images: %s",
				   job, src, err);
			continue;
		}
		rlog_info("launch %s of %s: images removed (%s/%s/%s/%s)", job,
			  src, L.cfg->data_dir, LAUNCH_DIR, job, src);
		json_array_append_new(done, json_pack("{s:s,s:s}", "jobID",
						      job, "sourceServerID",
						      src));
	}
	return done;
}

/* ---- command line ------------------------------------------------------ */

/* The images of the manifests under DATA_DIR/launch, one item each. */
static int list_images(const char *data_dir, json_t *out)
{
	char top[PATH_MAX], job_dir[PATH_MAX + 300], path[PATH_MAX + 600];
	struct dirent *j, *s;
	DIR *dj, *ds;

	snprintf(top, sizeof(top), "%s/%s", data_dir, LAUNCH_DIR);
	dj = opendir(top);
	if (!dj)
		return errno == ENOENT ? 0 : -1;
	while ((j = readdir(dj))) {
		if (!job_id_ok(j->d_name))
			continue;
		snprintf(job_dir, sizeof(job_dir), "%s/%s", top, j->d_name);
		ds = opendir(job_dir);
		while (ds && (s = readdir(ds))) {
			json_t *m, *img;
			size_t i;

			if (s->d_name[0] == '.')	/* not complete */
				continue;
			snprintf(path, sizeof(path), "%s/%s/%s", job_dir,
				 s->d_name, LAUNCH_MANIFEST);
			m = json_load_file(path, 0, NULL);
			json_array_foreach(json_object_get(m, "images"), i,
					   img) {
				struct stat st;
				const char *p = json_string_value(
					json_object_get(img, "path"));

				json_array_append_new(out, json_pack(
					"{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:I}",
					"jobID", json_object_get(m, "jobID"),
					"sourceServerID",
					json_object_get(m, "sourceServerID"),
					"snapshotID",
					json_object_get(m, "snapshotID"),
					"deviceName",
					json_object_get(img, "deviceName"),
					"path", json_object_get(img, "path"),
					"format",
					json_object_get(img, "format"),
					"bytes", json_object_get(img, "bytes"),
					"fileBytes", (json_int_t)
					(p && !stat(p, &st) ? st.st_size :
							      -1)));
			}
			json_decref(m);
		}
		if (ds)
			closedir(ds);
	}
	closedir(dj);
	return 0;
}

int launch_cli(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 }
	};
	const char *data_dir = NULL;
	json_t *items, *doc;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'd')
			goto usage;
		data_dir = optarg;
	}
	if (!data_dir || optind != argc - 1 || strcmp(argv[optind], "list"))
		goto usage;
	items = json_array();
	if (list_images(data_dir, items)) {
		fprintf(stderr, "ferry-replicator: cannot read %s/%s: %s\n",
			data_dir, LAUNCH_DIR, strerror(errno));
		json_decref(items);
		return 1;
	}
	doc = json_pack("{s:o}", "launches", items);
	json_dumpf(doc, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(doc);
	return 0;
usage:
	fprintf(stderr, "usage: ferry-replicator launch list --data-dir DIR\n");
	return 2;
}
