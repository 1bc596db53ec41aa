// SPDX-License-Identifier: GPL-2.0
/*
 * state.c - the state directory (state.h).
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "errmsg.h"

void state_path(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", dir, name);
}

int state_mkdir(const char *dir, char *err, size_t errlen)
{
	char path[AGENT_PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s", dir);
	/* Parents first (0755, like any /var/lib directory). */
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST) {
			set_err(err, errlen, "cannot create %s: %s", path,
				strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST) {
		set_err(err, errlen, "cannot create the state directory %s: "
			"%s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		set_err(err, errlen, "state directory %s: %s", path,
			errno ? strerror(errno) : "not a directory");
		return -1;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(path, 0700)) {
		set_err(err, errlen, "cannot make the state directory %s "
			"private (chmod 700): %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int state_write(const char *dir, const char *name, const void *data,
		size_t len, mode_t mode, bool durable, char *err,
		size_t errlen)
{
	char path[AGENT_PATH_MAX + 64], tmp[AGENT_PATH_MAX + 80];
	const char *p = data;
	int fd;

	if (state_mkdir(dir, err, errlen))
		return -1;
	state_path(dir, name, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  mode & 0600);
	if (fd < 0)
		goto fail;
	/* The mode asked for, whatever the umask. */
	if (fchmod(fd, mode))
		goto fail_fd;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			goto fail_fd;
		}
		p += n;
		len -= (size_t)n;
	}
	if (durable && fsync(fd))
		goto fail_fd;
	if (close(fd)) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path))
		goto fail;
	if (durable)
		sync_dir(dir);
	return 0;
fail_fd:
	close(fd);
fail:
	set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
	unlink(tmp);
	return -1;
}

int64_t state_parse_time(const char *iso)
{
	struct tm tm = { 0 };
	const char *end;

	if (!iso)
		return -1;
	end = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	/* Fractions of a second, then Z (ferry-control writes UTC). */
	if (*end == '.')
		for (end++; *end >= '0' && *end <= '9'; end++)
			;
	if (strcmp(end, "Z") && strcmp(end, "+00:00") && *end)
		return -1;
	return (int64_t)timegm(&tm);
}

void state_format_time(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int get_str(json_t *o, const char *key, char *out, size_t len,
		   bool required)
{
	const char *v = json_string_value(json_object_get(o, key));

	if (!v) {
		out[0] = '\0';
		return required ? -1 : 0;
	}
	if (strlen(v) >= len)
		return -1;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

static int64_t get_time(json_t *o, const char *key)
{
	return state_parse_time(json_string_value(json_object_get(o, key)));
}

int state_load(struct agent_state *s, const char *dir, char *err,
	       size_t errlen)
{
	char path[AGENT_PATH_MAX + 64];
	json_error_t jerr;
	struct stat st;
	json_t *doc, *c;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	state_path(dir, STATE_REG_FILE, path, sizeof(path));
	if (stat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		set_err(err, errlen, "cannot read %s: %s", path,
			strerror(errno));
		return -1;
	}
	if (st.st_mode & 077) {
		set_err(err, errlen, "%s holds credentials but is readable by "
			"group or others (mode %03o): chmod 600 it", path,
			(unsigned int)(st.st_mode & 0777));
		return -1;
	}
	doc = json_load_file(path, 0, &jerr);
	if (!doc) {
		set_err(err, errlen, "%s:%d: %s (remove it and register "
			"again with the installer's keys)", path, jerr.line,
			jerr.text);
		return -1;
	}
	c = json_object_get(doc, "credentials");
	if (get_str(doc, "sourceServerID", s->source_server_id,
		    sizeof(s->source_server_id), true) ||
	    get_str(doc, "arn", s->arn, sizeof(s->arn), false) ||
	    get_str(doc, "endpoint", s->endpoint, sizeof(s->endpoint),
		    true)) {
		set_err(err, errlen, "%s: sourceServerID or endpoint missing "
			"or too long (remove it and register again)", path);
		goto out;
	}
	s->registered_at = get_time(doc, "registeredDateTime");
	if (get_str(doc, "machineId", s->machine_id, sizeof(s->machine_id),
		    false)) {
		set_err(err, errlen, "%s: machineId too long (remove it and "
			"register again)", path);
		goto out;
	}
	s->disconnected_at = get_time(doc, "disconnectedDateTime");
	if (s->disconnected_at < 0)
		s->disconnected_at = 0;
	s->started = json_is_true(json_object_get(doc, "replicationStarted"));
	if (json_is_object(c)) {
		if (get_str(c, "accessKeyId", s->creds.access_key_id,
			    sizeof(s->creds.access_key_id), true) ||
		    get_str(c, "secretAccessKey", s->creds.secret_access_key,
			    sizeof(s->creds.secret_access_key), true) ||
		    get_str(c, "sessionToken", s->creds.session_token,
			    sizeof(s->creds.session_token), false)) {
			set_err(err, errlen, "%s: malformed credentials "
				"(remove it and register again)", path);
			goto out;
		}
		s->creds.expiration = get_time(c, "expiration");
		s->creds.issued = get_time(c, "issuedDateTime");
		if (s->creds.issued < 0)
			s->creds.issued = 0;
		s->registered = true;
	}
	rc = 0;
out:
	json_decref(doc);
	if (rc)
		state_forget(s);
	return rc;
}

int state_save(const struct agent_state *s, char *err, size_t errlen)
{
	char when[32], issued[32], exp[32], reg[32];
	json_t *doc;
	char *text;
	int rc;

	state_format_time(s->registered_at, reg, sizeof(reg));
	doc = json_pack("{s:i,s:s,s:s,s:s,s:s,s:b}", "version", 1,
			"sourceServerID", s->source_server_id, "arn", s->arn,
			"endpoint", s->endpoint, "registeredDateTime", reg,
			"replicationStarted", s->started);
	if (doc && s->machine_id[0])
		json_object_set_new(doc, "machineId",
				    json_string(s->machine_id));
	if (doc && s->disconnected_at) {
		state_format_time(s->disconnected_at, when, sizeof(when));
		json_object_set_new(doc, "disconnectedDateTime",
				    json_string(when));
	}
	if (doc && s->registered) {
		state_format_time(s->creds.expiration, exp, sizeof(exp));
		state_format_time(s->creds.issued, issued, sizeof(issued));
		json_object_set_new(doc, "credentials",
			json_pack("{s:s,s:s,s:s,s:s,s:s}",
				  "accessKeyId", s->creds.access_key_id,
				  "secretAccessKey",
				  s->creds.secret_access_key,
				  "sessionToken", s->creds.session_token,
				  "expiration", exp,
				  "issuedDateTime", issued));
	}
	text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	json_decref(doc);
	if (!text) {
		set_err(err, errlen, "out of memory for %s", STATE_REG_FILE);
		return -1;
	}
	rc = state_write(s->dir, STATE_REG_FILE, text, strlen(text), 0600,
			 true, err, errlen);
	explicit_bzero(text, strlen(text));
	free(text);
	return rc;
}

void state_forget(struct agent_state *s)
{
	struct agent_creds *k = &s->creds;

	explicit_bzero(k->access_key_id, sizeof(k->access_key_id));
	explicit_bzero(k->secret_access_key, sizeof(k->secret_access_key));
	explicit_bzero(k->session_token, sizeof(k->session_token));
	k->expiration = 0;
	k->issued = 0;
}
