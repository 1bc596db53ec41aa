// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-agent: the source server's replication agent (docs/agent.md).
 *
 *   ferry-agent [--config FILE] [--KEY VALUE ...] [--once | --disconnect]
 *
 * Reads the configuration (FILE, default /etc/ferry/agent.conf, then the
 * flags in order, so flags after --config win), registers with
 * ferry-control and starts the control thread (unless standalone), and
 * runs the replication thread.  The main thread only waits for SIGTERM or
 * SIGINT and rewrites the status file about once a second.  --once
 * copies (or rescans) every disk, sends a consistency point and exits,
 * without the tracker: a cold copy of disks nobody writes.  --disconnect
 * (scripts/uninstall.sh, with the service stopped) disconnects the source
 * server from ferry-control and forgets the registration.
 *
 * Exit status: 0, 1 with a one-line reason on stderr, 2 for bad usage.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "control_loop.h"
#include "freeze.h"
#include "replicate.h"
#include "status_file.h"
#include "wire.h"

#define PROG "ferry-agent"

struct repl_args {
	struct agent_shared *sh;
	const struct agent_config *cfg;
	struct freezer *fz;
	bool once;
	int rc;
	char err[AGENT_MSG_MAX];
	atomic_bool done;
};

static void usage(FILE *f)
{
	fputs("usage: " PROG " [--config FILE] [--KEY VALUE ...] "
	      "[--once | --disconnect | --accept-new-host]\n"
	      "  --config FILE   configuration file (default "
	      AGENT_CONF_FILE ")\n"
	      "  --KEY VALUE     any configuration key (docs/agent.md), "
	      "e.g. --devices /dev/vda\n"
	      "  --once          copy or rescan every disk, then exit "
	      "(no tracker)\n"
	      "  --disconnect    disconnect this source server from "
	      "ferry-control and\n"
	      "                  forget its registration (the agent "
	      "stopped)\n"
	      "  --accept-new-host\n"
	      "                  this machine is the registered source "
	      "server although its\n"
	      "                  identity changed (a new system UUID): "
	      "record it (the agent\n"
	      "                  stopped)\n"
	      "  -h, --help      this text\n", f);
}

static void die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* Standalone: the data plane from the configuration file, no
 * ferry-control. */
static int standalone_runtime(struct agent_shared *sh,
			      const struct agent_config *cfg, char *err,
			      size_t errlen)
{
	struct agent_runtime *rt = &sh->rt;
	const char *hp = cfg->replicator, *colon;
	char *end;
	unsigned long port;
	size_t hl;

	if (hp[0] == '[') {
		const char *rb = strchr(hp, ']');

		if (!rb || rb[1] != ':') {
			snprintf(err, errlen, "replicator %s: want HOST:PORT "
				 "or [IPV6]:PORT", hp);
			return -1;
		}
		hl = (size_t)(rb - hp - 1);
		hp++;
		colon = rb + 1;
	} else {
		colon = strrchr(hp, ':');
		hl = colon ? (size_t)(colon - hp) : 0;
	}
	errno = 0;
	port = colon ? strtoul(colon + 1, &end, 10) : 0;
	if (!colon || !hl || hl >= sizeof(rt->replicator_host) || errno ||
	    *end || !port || port > 65535) {
		snprintf(err, errlen, "replicator %s: want HOST:PORT",
			 cfg->replicator);
		return -1;
	}
	if (!cfg->n_devices) {
		snprintf(err, errlen, "standalone mode needs the disks to "
			 "replicate (devices = /dev/vda ...)");
		return -1;
	}
	pthread_mutex_lock(&sh->lock);
	memcpy(rt->replicator_host, hp, hl);
	rt->replicator_host[hl] = 0;
	rt->replicator_port = (uint16_t)port;
	snprintf(rt->source_server_id, sizeof(rt->source_server_id), "%s",
		 cfg->source_server_id);
	/* The replicator's certificate must name replicator-id when it
	 * is set (link.c); without it, the address is all we know. */
	snprintf(rt->replicator_id, sizeof(rt->replicator_id), "%.*s",
		 (int)sizeof(rt->replicator_id) - 1, cfg->replicator_id[0] ?
		 cfg->replicator_id : cfg->replicator);
	rt->have_replicator = true;
	rt->have_cert = true;
	rt->bandwidth_bps = cfg->bandwidth_bps;
	rt->codec = cfg->codec >= 0 ? (uint8_t)cfg->codec : FERRY_CODEC_LZ4;
	rt->n_disks = cfg->n_devices;
	for (unsigned int i = 0; i < cfg->n_devices; i++)
		snprintf(rt->disks[i], sizeof(rt->disks[i]), "%s",
			 cfg->devices[i]);
	rt->version = 1;
	rt->valid = true;
	pthread_mutex_unlock(&sh->lock);
	return 0;
}

static void *repl_main(void *arg)
{
	struct repl_args *a = arg;

	a->rc = replicate_run(a->sh, a->cfg, a->fz, a->once, a->err,
			      sizeof(a->err));
	atomic_store(&a->done, true);
	/* Wake the main thread out of sigtimedwait(). */
	kill(getpid(), SIGUSR1);
	return NULL;
}

/* --KEY VALUE and --KEY=VALUE, --config, --once, -h.  0, or exits. */
static void parse_args(int argc, char **argv, struct agent_config *cfg,
		       bool *once, bool *disconnect, bool *accept_host)
{
	const char *conf = NULL;
	char err[AGENT_MSG_MAX];

	/* The file first (or where --config stands), then the flags. */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--config") ||
		    !strncmp(argv[i], "--config=", 9))
			conf = argv[i];
	if (!conf && access(AGENT_CONF_FILE, F_OK) == 0 &&
	    agent_config_load(cfg, AGENT_CONF_FILE, err, sizeof(err)))
		die(2, "%s", err);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *key, *val;
		char name[128], src[160];
		const char *eq;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(a, "--once")) {
			*once = true;
			continue;
		}
		if (!strcmp(a, "--disconnect")) {
			*disconnect = true;
			continue;
		}
		if (!strcmp(a, "--accept-new-host")) {
			*accept_host = true;
			continue;
		}
		if (strncmp(a, "--", 2) || !a[2]) {
			fprintf(stderr, PROG ": unexpected argument '%s'\n", a);
			usage(stderr);
			exit(2);
		}
		key = a + 2;
		eq = strchr(key, '=');
		if (eq) {
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				die(2, "%s needs a value", a);
			val = argv[++i];
		}
		snprintf(name, sizeof(name), "%.*s",
			 (int)(eq ? (size_t)(eq - key) : strlen(key)), key);
		if (!strcmp(name, "config")) {
			if (agent_config_load(cfg, val, err, sizeof(err)))
				die(2, "%s", err);
			continue;
		}
		snprintf(src, sizeof(src), "--%s", name);
		if (agent_config_set(cfg, name, val, src, err, sizeof(err)))
			die(2, "%s", err);
	}
}

int main(int argc, char **argv)
{
	static struct agent_config cfg;
	static struct agent_shared sh;
	static struct repl_args ra;
	static struct freezer fz = { .fd = -1 };
	struct timespec tick = { .tv_sec = 1 };
	pthread_t repl, ctl;
	bool once = false, disconnect = false, have_ctl = false;
	bool accept_host = false;
	bool reported = false;
	int rc;
	char err[AGENT_MSG_MAX];
	sigset_t set;

	agent_config_defaults(&cfg);
	parse_args(argc, argv, &cfg, &once, &disconnect, &accept_host);
	if (agent_config_check(&cfg, err, sizeof(err)))
		die(2, "%s", err);
	if (disconnect || accept_host) {
		char msg[AGENT_MSG_MAX];

		if (disconnect ? control_disconnect(&cfg, msg, sizeof(msg), err,
						    sizeof(err)) :
		    control_accept_host(&cfg, msg, sizeof(msg), err,
					sizeof(err)))
			die(1, "%s", err);
		printf("%s\n", msg);
		return 0;
	}

	/* Signals are taken by this thread only: block them before any
	 * other thread exists, so that every thread inherits the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	/* The freezer is a child process: fork it while this is the only
	 * thread.  Without it, consistency points come only from quiet
	 * rounds. */
	if (!once && cfg.freeze && freezer_spawn(&fz, err, sizeof(err)))
		fprintf(stderr, PROG ": %s; consistency points only when "
			"the disks are quiet\n", err);

	agent_shared_init(&sh);
	if (cfg.standalone) {
		/* It fails only on the file's values: a configuration
		 * error, exit 2 as for the others. */
		if (standalone_runtime(&sh, &cfg, err, sizeof(err)))
			die(2, "%s", err);
	} else {
		rc = control_init(&sh, &cfg, err, sizeof(err));
		if (rc == CONTROL_NOT_THIS_MACHINE)
			die(AGENT_EXIT_NOT_THIS_MACHINE, "%s", err);
		if (rc)
			die(1, "%s", err);
		if (control_loop_start(&sh, &cfg, &ctl, err, sizeof(err)))
			die(1, "%s", err);
		have_ctl = true;
	}

	ra.sh = &sh;
	ra.cfg = &cfg;
	ra.fz = fz.fd >= 0 ? &fz : NULL;
	ra.once = once;
	if ((errno = pthread_create(&repl, NULL, repl_main, &ra)))
		die(1, "cannot start the replication thread: %s",
		    strerror(errno));

	while (!atomic_load(&ra.done)) {
		siginfo_t si;
		int sig = sigtimedwait(&set, &si, &tick);

		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (agent_status_write(&sh, &cfg, err, sizeof(err))) {
			if (!reported)
				fprintf(stderr, PROG ": %s\n", err);
			reported = true;
		}
	}

	pthread_mutex_lock(&sh.lock);
	sh.quit = true;
	pthread_cond_broadcast(&sh.cond);
	pthread_mutex_unlock(&sh.lock);
	pthread_join(repl, NULL);
	if (have_ctl)
		pthread_join(ctl, NULL);
	agent_status_write(&sh, &cfg, err, sizeof(err));
	agent_shared_destroy(&sh);
	if (fz.fd >= 0)
		freezer_stop(&fz);
	if (ra.rc) {
		fprintf(stderr, PROG ": %s\n", ra.err);
		return 1;
	}
	return 0;
}
