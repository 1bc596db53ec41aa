// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-control-test: ferry-agent's control side (control_init and the
 * control thread, agent/control_loop.c) against a real ferry-control,
 * with this program in the replication thread's place, driven by
 * tests/agent/t_control_*.py.  It is a harness, not a mock: only the
 * replication engine is absent, so that a test can set the exact status
 * a heartbeat must carry.
 *
 *   ferry-control-test [--config FILE] [--KEY VALUE ...]
 *
 * After control_init it prints "ready SOURCE_SERVER_ID" (or exits 1 with
 * the error on stderr, as ferry-agent does), starts the control thread,
 * then on stdin takes
 *
 *   {"state": "CONTINUOUS", "lagMs": 0, "etaSeconds": -1, "error": "",
 *    "rawError": "", "disks": [{"deviceName": "/dev/vda", "state": ...,
 *    "total": N, "replicated": N, "rescanned": N, "backlog": N,
 *    "sent": N}]}   one line: the status the heartbeats report
 *   quit            stop (as SIGTERM does ferry-agent)
 *
 * and prints "cmd NAME" for each command the control thread queues
 * (taking it off the queue, as the replication thread does; stop and
 * uninstall make the status STOPPED), "runtime ..." whenever the runtime
 * configuration changes, and writes the status file every second.  It
 * ends when stdin closes, on quit, or when the control thread sets quit
 * (uninstall).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent.h"
#include "config.h"
#include "control_loop.h"
#include "status_file.h"

static struct agent_config cfg;
static struct agent_shared sh;

static const char *const cmd_names[] = {
	[AGENT_CMD_NONE] = "none", [AGENT_CMD_START] = "start",
	[AGENT_CMD_STOP] = "stop", [AGENT_CMD_PAUSE] = "pause",
	[AGENT_CMD_RESUME] = "resume", [AGENT_CMD_RETRY] = "retry",
	[AGENT_CMD_RESCAN] = "rescan", [AGENT_CMD_UNINSTALL] = "uninstall",
};

static void die(int code, const char *msg)
{
	fprintf(stderr, "ferry-control-test: %s\n", msg);
	exit(code);
}

static void args(int argc, char **argv)
{
	char err[AGENT_MSG_MAX];

	for (int i = 1; i < argc; i++) {
		const char *k = argv[i];

		if (strncmp(k, "--", 2) || i + 1 >= argc)
			die(2, "usage: ferry-control-test [--config FILE] "
			    "[--KEY VALUE ...]");
		if (!strcmp(k, "--config")) {
			if (agent_config_load(&cfg, argv[++i], err,
					      sizeof(err)))
				die(2, err);
			continue;
		}
		if (agent_config_set(&cfg, k + 2, argv[i + 1], k, err,
				     sizeof(err)))
			die(2, err);
		i++;
	}
	if (agent_config_check(&cfg, err, sizeof(err)))
		die(2, err);
}

static enum agent_repl_state state_of(const char *name)
{
	for (int s = AGENT_INITIATING; s <= AGENT_DISCONNECTED; s++)
		if (name && !strcmp(name, agent_repl_state_name(s)))
			return (enum agent_repl_state)s;
	return AGENT_INITIATING;
}

static uint64_t u64(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

/* One JSON status line into sh.st. */
static void set_status(const char *line)
{
	json_error_t jerr;
	json_t *doc = json_loads(line, 0, &jerr), *d;
	struct agent_status *st = &sh.st;
	json_t *eta;
	size_t i;

	if (!json_is_object(doc)) {
		printf("error bad status line: %s\n", jerr.text);
		json_decref(doc);
		return;
	}
	pthread_mutex_lock(&sh.lock);
	st->state = state_of(json_string_value(json_object_get(doc,
							       "state")));
	st->lag_ms = u64(doc, "lagMs");
	eta = json_object_get(doc, "etaSeconds");
	st->eta_s = eta ? (int64_t)json_integer_value(eta) : -1;
	snprintf(st->error, sizeof(st->error), "%s",
		 json_string_value(json_object_get(doc, "error")) ?: "");
	snprintf(st->raw_error, sizeof(st->raw_error), "%s",
		 json_string_value(json_object_get(doc, "rawError")) ?: "");
	st->n_disks = 0;
	json_array_foreach(json_object_get(doc, "disks"), i, d) {
		struct agent_disk_status *ds = &st->disks[st->n_disks];

		if (st->n_disks == AGENT_MAX_DISKS)
			break;
		snprintf(ds->name, sizeof(ds->name), "%s",
			 json_string_value(json_object_get(d, "deviceName"))
			 ?: "");
		ds->state = state_of(json_string_value(
			json_object_get(d, "state")));
		ds->total_bytes = u64(d, "total");
		ds->replicated_bytes = u64(d, "replicated");
		ds->rescanned_bytes = u64(d, "rescanned");
		ds->backlog_bytes = u64(d, "backlog");
		ds->sent_bytes = u64(d, "sent");
		st->n_disks++;
	}
	st->updated_ms = (uint64_t)time(NULL) * 1000;
	pthread_mutex_unlock(&sh.lock);
	json_decref(doc);
	printf("ok status\n");
}

/* What the replication thread would take: commands and the runtime. */
static bool take(uint64_t *seen_version)
{
	static struct agent_runtime rt;
	enum agent_cmd cmds[32];
	unsigned int n;
	bool quit, changed;

	pthread_mutex_lock(&sh.lock);
	n = sh.n_cmds;
	memcpy(cmds, sh.cmds, n * sizeof(cmds[0]));
	sh.n_cmds = 0;
	for (unsigned int i = 0; i < n; i++)
		if (cmds[i] == AGENT_CMD_STOP ||
		    cmds[i] == AGENT_CMD_UNINSTALL)
			sh.st.state = AGENT_STOPPED;
	if (n)
		pthread_cond_broadcast(&sh.cond);
	changed = sh.rt.valid && sh.rt.version != *seen_version;
	if (changed) {
		rt = sh.rt;
		*seen_version = rt.version;
	}
	quit = sh.quit;
	pthread_mutex_unlock(&sh.lock);
	for (unsigned int i = 0; i < n; i++)
		printf("cmd %s\n", cmd_names[cmds[i]]);
	if (changed) {
		printf("runtime version %" PRIu64 " server %s replicator %s "
		       "%s %u cert %d paused %d stopped %d bandwidth %" PRIu64
		       " codec %u disks", rt.version, rt.source_server_id,
		       rt.have_replicator ? rt.replicator_id : "-",
		       rt.have_replicator ? rt.replicator_host : "-",
		       rt.replicator_port, rt.have_cert, rt.paused,
		       rt.stopped, rt.bandwidth_bps, rt.codec);
		for (unsigned int i = 0; i < rt.n_disks; i++)
			printf(" %s", rt.disks[i]);
		printf("\n");
	}
	fflush(stdout);
	return quit;
}

int main(int argc, char **argv)
{
	char err[AGENT_MSG_MAX], line[65536];
	uint64_t version = 0;
	time_t last_write = 0;
	pthread_t ctl;
	sigset_t set;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* poll() sees what stdio has not buffered: no buffering. */
	setvbuf(stdin, NULL, _IONBF, 0);
	agent_config_defaults(&cfg);
	args(argc, argv);
	/* As ferry-agent: SIGTERM and SIGINT are taken, not default. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	agent_shared_init(&sh);
	if (control_init(&sh, &cfg, err, sizeof(err)))
		die(1, err);
	if (control_loop_start(&sh, &cfg, &ctl, err, sizeof(err)))
		die(1, err);
	printf("ready %s\n", sh.rt.source_server_id);
	for (;;) {
		struct pollfd p = { .fd = 0, .events = POLLIN };
		struct timespec zero = { 0 };
		bool stop = false;

		if (take(&version))
			break;
		if (sigtimedwait(&set, NULL, &zero) > 0)
			break;
		if (time(NULL) != last_write) {
			last_write = time(NULL);
			if (agent_status_write(&sh, &cfg, err, sizeof(err)))
				printf("error %s\n", err);
		}
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (!fgets(line, sizeof(line), stdin))
			stop = true;
		else if (!strncmp(line, "quit", 4))
			stop = true;
		else {
			set_status(line);
			/* The status file at once: the heartbeat may carry
			 * the new state before the next second's write. */
			if (agent_status_write(&sh, &cfg, err, sizeof(err)))
				printf("error %s\n", err);
		}
		if (stop)
			break;
	}
	pthread_mutex_lock(&sh.lock);
	sh.quit = true;
	pthread_cond_broadcast(&sh.cond);
	pthread_mutex_unlock(&sh.lock);
	pthread_join(ctl, NULL);
	take(&version);
	agent_status_write(&sh, &cfg, err, sizeof(err));
	printf("exit\n");
	agent_shared_destroy(&sh);
	return 0;
}
