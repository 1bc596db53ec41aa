// SPDX-License-Identifier: GPL-2.0
/*
 * ferryctl_status.c - `ferryctl status [--json] [--state-dir DIR]`: the
 * agent's status from STATE_DIR/status.json (agent/status_file.c), as a
 * table with a progress bar per disk, or as JSON for scripts.
 *
 * The file is rewritten by ferry-agent about once a second; a file
 * whose agent is gone, or that has not changed for a while, is shown
 * with a warning ("running": false in the JSON).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent.h"
#include "ferryctl.h"
#include "state.h"

#define STALE_S 10	/* no update for this long: the agent is stuck */
#define BAR_WIDTH 30

static const char status_usage[] =
	"usage: ferryctl status [--json] [--state-dir DIR]\n"
	"\n"
	"Show what ferry-agent is doing: the source server, its replication\n"
	"state, each disk's progress, backlog, lag and ETA, the replicator,\n"
	"the last heartbeat to ferry-control and the last error.  Read from\n"
	"status.json, which the agent rewrites every second in its run-dir\n"
	"(" AGENT_RUN_DIR ").\n"
	"\n"
	"  --json           print the status as one JSON object\n"
	"  --state-dir DIR  the directory of an agent run with state-dir DIR\n"
	"                   (and no run-dir): its status.json is there\n";

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static uint64_t num(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

/* 1536 -> "1.5 KiB" */
static const char *bytes(uint64_t b, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
					     "PiB" };
	double v = (double)b;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", b);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* 3725 -> "1h02m05s" */
static const char *duration(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 60)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60),
			 (long long)(s % 60));
	else
		snprintf(buf, len, "%lldh%02lldm%02llds",
			 (long long)(s / 3600), (long long)(s / 60 % 60),
			 (long long)(s % 60));
	return buf;
}

/* "2024-05-01T06:00:00Z (5s ago)", or "never". */
static const char *ago(const char *iso, char *buf, size_t len)
{
	int64_t t = state_parse_time(iso);
	char d[32];

	if (!iso || !*iso || t < 0) {
		snprintf(buf, len, "never");
		return buf;
	}
	snprintf(buf, len, "%s (%s ago)", iso,
		 duration((int64_t)time(NULL) - t < 0 ? 0 :
			  (int64_t)time(NULL) - t, d, sizeof(d)));
	return buf;
}

/* Is the agent that wrote DOC alive and writing? */
static bool running(json_t *doc, const char *path, char *why, size_t len)
{
	json_int_t pid = json_integer_value(json_object_get(doc, "pid"));
	struct stat st;

	if (pid <= 0 || (kill((pid_t)pid, 0) && errno == ESRCH)) {
		snprintf(why, len, "ferry-agent (pid %lld) is not running; "
			 "this is its last status", (long long)pid);
		return false;
	}
	if (stat(path, &st) == 0 && time(NULL) - st.st_mtime > STALE_S) {
		snprintf(why, len, "%s has not been updated for %lld s: "
			 "ferry-agent (pid %lld) may be stuck", path,
			 (long long)(time(NULL) - st.st_mtime),
			 (long long)pid);
		return false;
	}
	why[0] = '\0';
	return true;
}

static void bar(uint64_t done, uint64_t total, char *out, size_t len)
{
	double f = total ? (double)done / (double)total : 0;
	int fill;

	if (f > 1)
		f = 1;
	fill = (int)(f * BAR_WIDTH + 0.5);
	if (len < BAR_WIDTH + 12)
		return;
	out[0] = '[';
	for (int i = 0; i < BAR_WIDTH; i++)
		out[1 + i] = i < fill ? '#' : '.';
	snprintf(out + 1 + BAR_WIDTH, len - 1 - BAR_WIDTH, "] %5.1f%%",
		 f * 100);
}

static void print_human(json_t *doc, const char *warning)
{
	json_t *rep = json_object_get(doc, "replicator");
	json_t *ctl = json_object_get(doc, "control");
	json_t *err = json_object_get(doc, "dataReplicationError");
	json_t *disks = json_object_get(doc, "disks"), *d;
	char a[64], b[64], c[64], t[128];
	json_int_t eta = json_integer_value(json_object_get(doc,
							    "etaSeconds"));
	size_t i;

	if (warning[0])
		printf("warning: %s\n", warning);
	printf("source server   %s\n", str(doc, "sourceServerID")[0] ?
	       str(doc, "sourceServerID") : "(not known yet)");
	printf("state           %s%s%s\n", str(doc, "dataReplicationState"),
	       json_is_true(json_object_get(doc, "paused")) ?
	       " (paused by ferry-control)" : "",
	       json_is_true(json_object_get(doc, "stopped")) ?
	       " (stopped by ferry-control)" : "");
	if (json_is_object(rep))
		printf("replicator      %s at %s port %lld\n",
		       str(rep, "replicatorID"), str(rep, "address"),
		       (long long)num(rep, "port"));
	else
		printf("replicator      none assigned yet\n");
	printf("lag             %.1f s\n",
	       (double)num(doc, "lagMs") / 1000.0);
	printf("ETA             %s\n", duration(eta, a, sizeof(a)));
	printf("backlog         %s\n", bytes(num(doc, "backlogBytes"), b,
					     sizeof(b)));
	printf("consistency     last point %s\n",
	       ago(str(doc, "lastConsistencyPointDateTime"), t, sizeof(t)));
	if (json_is_object(ctl)) {
		printf("ferry-control   %s\n", str(ctl, "endpoint"));
		printf("last heartbeat  %s%s%s\n",
		       ago(str(ctl, "lastHeartbeatDateTime"), t, sizeof(t)),
		       str(ctl, "serviceState")[0] ? ", shown as " : "",
		       str(ctl, "serviceState"));
		if (str(ctl, "error")[0])
			printf("control error   %s\n", str(ctl, "error"));
	} else {
		printf("ferry-control   none (standalone)\n");
	}
	if (json_is_object(err))
		printf("error           %s%s%s\n", str(err, "error"),
		       str(err, "rawError")[0] ? ": " : "",
		       str(err, "rawError"));
	printf("\n%-14s %-13s %-38s %21s %10s\n", "DISK", "STATE",
	       "PROGRESS", "REPLICATED / TOTAL", "BACKLOG");
	json_array_foreach(disks, i, d) {
		uint64_t total = num(d, "totalStorageBytes");
		uint64_t done = num(d, "replicatedStorageBytes");
		char p[BAR_WIDTH + 16] = "", both[64];

		/* A rescan's progress is what it has compared. */
		if (!strcmp(str(d, "state"), "RESCAN"))
			done = num(d, "rescannedStorageBytes");
		bar(done, total, p, sizeof(p));
		snprintf(both, sizeof(both), "%s / %s",
			 bytes(done, a, sizeof(a)), bytes(total, b,
							  sizeof(b)));
		printf("%-14s %-13s %-38s %21s %10s\n", str(d, "deviceName"),
		       str(d, "state"), p, both,
		       bytes(num(d, "backloggedStorageBytes"), c, sizeof(c)));
	}
	if (!json_array_size(disks))
		printf("(no disk set up yet)\n");
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	char path[4200], why[4400];
	bool json = false, live;
	json_error_t jerr;
	json_t *doc;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":jd:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(status_usage, stdout);
			return EXIT_OK;
		default:
			return bad_option("status", argv, c);
		}
	}
	if (optind != argc)
		return usage_error("status", "unexpected argument '%s'",
				   argv[optind]);
	if (!dir)
		dir = AGENT_RUN_DIR;
	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATUS_FILE);
	doc = json_load_file(path, 0, &jerr);
	if (!doc) {
		if (access(path, F_OK) && errno == ENOENT)
			return fail("no status in %s: ferry-agent is not "
				    "running (systemctl status ferry-agent), "
				    "or it runs with another run-dir or "
				    "state-dir (give --state-dir)", path);
		return fail("cannot read %s: %s", path, jerr.text);
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		return fail("%s is not a status object", path);
	}
	live = running(doc, path, why, sizeof(why));
	if (json) {
		json_object_set_new(doc, "running", json_boolean(live));
		if (json_dumpf(doc, stdout, JSON_INDENT(2)) || puts("") < 0) {
			json_decref(doc);
			return fail("cannot write the status: %s",
				    strerror(errno));
		}
	} else {
		print_human(doc, why);
	}
	json_decref(doc);
	return EXIT_OK;
}
