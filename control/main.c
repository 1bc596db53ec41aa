// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-control: the control-plane endpoint ("the mgn endpoint").
 *
 *   ferry-control [serve] [options]     run the HTTPS API
 *   ferry-control keys create|list|delete ...
 *   ferry-control certs issue|sign-csr ...
 *   ferry-control version
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca.h"
#include "certs_cli.h"
#include "config.h"
#include "http.h"
#include "keys.h"
#include "log.h"
#include "request.h"
#include "server_cert.h"
#include "store.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.1.0"
#endif

static atomic_int stopping;

static int usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: ferry-control [serve] [--data-dir DIR] [--listen ADDR:PORT]\n"
		"           [--region REGION] [--cert FILE --key FILE]\n"
		"           [--hostname NAME]... [--agent-timeout SECS]\n"
		"           [--replicator-timeout SECS]\n"
		"           [--session-ttl SECS] [--threads N] [--quiet]\n"
		"           [--assets-dir DIR]\n"
		"       ferry-control keys create|list|delete --data-dir DIR ...\n"
		"       ferry-control certs issue|sign-csr --data-dir DIR ...\n"
		"       ferry-control version\n"
		"\n"
		"Defaults: --data-dir /var/lib/ferry-control, --listen 0.0.0.0:443,\n"
		"--region us-east-1, --agent-timeout 300, --session-ttl 43200,\n"
		"--replicator-timeout the agent timeout.\n"
		"Without --cert/--key a server certificate is issued by the CA in\n"
		"DATA_DIR (DATA_DIR/ca.pem is what clients pass as --ca-bundle).\n"
		"--assets-dir (default DATA_DIR/assets) holds the agent's packages\n"
		"that install.sh downloads: deb/ and rpm/ as make deb / make rpm\n"
		"leave them in build/pkg, each with its SHA512SUMS.\n");
	return rc;
}

static int parse_listen(struct control_config *cfg, char *arg)
{
	char *colon = strrchr(arg, ':');
	char *end;
	long port;

	if (!colon)
		return -1;
	*colon = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	/* [::1]:443 */
	if (arg[0] == '[' && colon[-1] == ']') {
		colon[-1] = '\0';
		arg++;
	}
	cfg->listen_addr = arg;
	cfg->port = (unsigned short)port;
	return 0;
}

/* The 12-digit account ID in ARNs, made once per installation. */
static int ensure_account(struct store *st, struct control_config *cfg)
{
	char *id;
	int rc = 0;

	if (store_begin(st))
		return -1;
	id = store_meta_get(st, "account_id");
	if (!id) {
		unsigned char r[12];
		char buf[16];
		int i;

		while (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			;
		for (i = 0; i < 12; i++)
			buf[i] = (char)('0' + r[i] % 10);
		buf[0] = (char)('1' + r[0] % 9);
		buf[12] = '\0';
		rc = store_meta_set(st, "account_id", buf);
		id = strdup(buf);
	}
	if (id)
		snprintf(cfg->account_id, sizeof(cfg->account_id), "%s", id);
	free(id);
	store_end(st, rc == 0);
	return rc;
}

struct timer {
	struct control *c;
	struct server_cert *sc;
};

static void *periodic_thread(void *arg)
{
	struct timer *t = arg;

	while (!stopping) {
		time_t now = time(NULL);

		control_periodic(t->c, now);
		server_cert_tick(t->sc, now);
		sleep(1);
	}
	return NULL;
}

static int serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "assets-dir", required_argument, NULL, 'A' },
		{ "listen", required_argument, NULL, 'l' },
		{ "region", required_argument, NULL, 'r' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "hostname", required_argument, NULL, 'n' },
		{ "agent-timeout", required_argument, NULL, 't' },
		{ "replicator-timeout", required_argument, NULL, 'R' },
		{ "session-ttl", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 'T' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static char listen_default[] = "0.0.0.0:443";
	struct control_config cfg = {
		.data_dir = "/var/lib/ferry-control",
		.region = "us-east-1",
		.agent_timeout = 300,
		.session_ttl = 12 * 3600,
		.threads = 0,
	};
	struct control c = { .cfg = &cfg };
	struct http_server *h = NULL;
	struct server_cert *sc = NULL;
	struct timer timer = { .c = &c };
	char err[1024], assets[4096];
	pthread_t tid;
	sigset_t stop_set;
	int opt, rc = 1, sig;

	parse_listen(&cfg, listen_default);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': cfg.data_dir = optarg; break;
		case 'A': cfg.assets_dir = optarg; break;
		case 'l':
			if (parse_listen(&cfg, optarg)) {
				fprintf(stderr, "ferry-control: --listen wants ADDR:PORT, e.g. 0.0.0.0:443 or [::]:443\n");
				return 2;
			}
			break;
		case 'r': cfg.region = optarg; break;
		case 'c': cfg.cert_file = optarg; break;
		case 'k': cfg.key_file = optarg; break;
		case 'n':
			if (cfg.n_names >= CONTROL_MAX_NAMES) {
				fprintf(stderr, "ferry-control: at most %d --hostname\n",
					CONTROL_MAX_NAMES);
				return 2;
			}
			cfg.names[cfg.n_names++] = optarg;
			break;
		case 't': cfg.agent_timeout = atoi(optarg); break;
		case 'R': cfg.replicator_timeout = atoi(optarg); break;
		case 's': cfg.session_ttl = atoi(optarg); break;
		case 'T': cfg.threads = atoi(optarg); break;
		case 'q': log_set_quiet(1); break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferry-control: unexpected argument '%s'\n",
			argv[optind]);
		return usage(stderr, 2);
	}
	if (!!cfg.cert_file != !!cfg.key_file) {
		fprintf(stderr, "ferry-control: --cert and --key go together\n");
		return 2;
	}
	/* Unset: the replicators are held to the agents' rule. */
	if (!cfg.replicator_timeout)
		cfg.replicator_timeout = cfg.agent_timeout;
	if (cfg.agent_timeout < 2 || cfg.replicator_timeout < 2 ||
	    cfg.session_ttl < 5) {
		fprintf(stderr, "ferry-control: --agent-timeout and --replicator-timeout must be >= 2 s and --session-ttl >= 5 s\n");
		return 2;
	}
	if (cfg.threads <= 0) {
		/* More threads than CPUs: a thread waits while its request
		 * is in a group commit, and the more requests wait together,
		 * the more one commit covers. */
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		cfg.threads = 4 * (n > 0 ? (int)n : 2);
	}
	if (!cfg.assets_dir) {
		snprintf(assets, sizeof(assets), "%s/assets", cfg.data_dir);
		cfg.assets_dir = assets;
	}
	umask(077); /* keys, the database and its WAL: owner only */
	/* Block the stop signals and SIGHUP in every thread (MHD's inherit
	 * the mask) and take them with sigwait() once serving.  Blocked this
	 * early, a reload or stop during a slow start waits for it instead
	 * of ending the process (a SIGHUP death is no failure to systemd,
	 * which would not restart the service). */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);

	c.st = store_open(cfg.data_dir, err, sizeof(err));
	if (!c.st) {
		fprintf(stderr, "ferry-control: %s\n", err);
		return 1;
	}
	if (ensure_account(c.st, &cfg)) {
		fprintf(stderr, "ferry-control: cannot record the account ID in %s\n",
			cfg.data_dir);
		goto out;
	}
	c.ca = ca_open(cfg.data_dir, err, sizeof(err));
	if (!c.ca) {
		fprintf(stderr, "ferry-control: certificate authority: %s\n", err);
		goto out;
	}
	sc = server_cert_open(c.ca, &cfg, err, sizeof(err));
	if (!sc) {
		fprintf(stderr, "ferry-control: server certificate: %s\n", err);
		goto out;
	}
	timer.sc = sc;
	c.replay = sigv4_replay_new();
	if (!c.replay) {
		fprintf(stderr, "ferry-control: out of memory\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	h = http_start(&c, cfg.listen_addr, cfg.port, cfg.threads, err,
		       sizeof(err));
	if (!h) {
		fprintf(stderr, "ferry-control: %s\n", err);
		goto out;
	}
	/* Tests and scripts wait for this line (and read the port). */
	fprintf(stderr,
		"ferry-control: ready on https://%s:%u (region %s, account %s, data %s)\n",
		cfg.listen_addr, http_port(h), cfg.region, cfg.account_id,
		cfg.data_dir);
	fflush(stderr);
	if (pthread_create(&tid, NULL, periodic_thread, &timer)) {
		fprintf(stderr, "ferry-control: cannot start the timer thread\n");
		goto out;
	}
	for (;;) {
		if (sigwait(&stop_set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		server_cert_reload(sc);
	}
	stopping = 1;
	pthread_join(tid, NULL);
	log_info("stopping");
	rc = 0;
out:
	http_stop(h);
	server_cert_free(sc);
	sigv4_replay_free(c.replay);
	ca_free(c.ca);
	store_close(c.st);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "keys"))
		return keys_cli(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "certs"))
		return certs_cli(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "version")) {
		printf("ferry-control %s\n", FERRY_VERSION);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "serve"))
		return serve(argc - 1, argv + 1);
	return serve(argc, argv);
}
