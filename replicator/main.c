// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-replicator - the staging-area replication server.
 *
 *   ferry-replicator [serve] [--config FILE] [--listen ADDR:PORT]
 *                    [--data-dir DIR] [--cert FILE] [--key FILE]
 *                    [--ca FILE] [--id NAME] [--allow "SRC DISK SIZE"]
 *                    [--idle-timeout SECONDS] [--max-connections N]
 *                    [--control-url URL --control-ca FILE
 *                     --credentials-file FILE ...]
 *
 * docs/replicator.md describes the configuration and the behaviour.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "control_client.h"
#include "launch.h"
#include "log.h"
#include "snapshot.h"
#include "tls.h"

/* How long SIGTERM waits for connections to flush and say BYE. */
#define STOP_GRACE_S 10

static void usage(FILE *f)
{
	fprintf(f,
"usage: ferry-replicator [serve] [--config FILE] [options]\n"
"\n"
"  --config FILE         key = value settings (names as these options,\n"
"                        plus allow lines); options given after it win\n"
"  --listen ADDR:PORT    where agents connect (default " REP_DEFAULT_LISTEN
")\n"
"                        port 0 picks a free port\n"
"  --data-dir DIR        staging volumes (default " REP_DEFAULT_DATA_DIR ")\n"
"  --cert FILE           this server's certificate (PEM)\n"
"  --key FILE            its private key (PEM)\n"
"  --ca FILE             the CA that agents' certificates must chain to\n"
"  --id NAME             this replicator's ID (for logs)\n"
"  --allow 'SRC DISK SIZE' | 'SRC *'\n"
"                        let source server SRC write DISK (SIZE bytes), or\n"
"                        any of its disks; repeatable\n"
"  --idle-timeout SECS   close a connection silent this long (default %d)\n"
"  --max-connections N   connections served at once (default %d)\n"
"\n"
"ferry-control (assignments from it, in addition to allow lines):\n"
"  --control-url URL     https://HOST:PORT of ferry-control\n"
"  --control-ca FILE     its CA (DATA_DIR/ca.pem); also --ca by default\n"
"  --credentials-file F  the replicator key (access_key_id,\n"
"                        secret_access_key; mode 0600)\n"
"  --region NAME         ferry-control's region (default "
REP_DEFAULT_REGION ")\n"
"  --advertise ADDR[:PORT]  the address agents are told (default: listen)\n"
"  --report-interval S   poll and report every S seconds (default %d);\n"
"                        an agent not assigned at its HELLO makes the\n"
"                        replicator poll at once (at most once a second)\n"
"  --max-source-servers N  registered capacity (default %d)\n"
"  without --cert/--key, ferry-control issues the server certificate\n"
"  --cert-renew-days N   and it is renewed while serving once it ends\n"
"                        within N days (default %d)\n"
"\n"
"point-in-time snapshots (docs/replicator.md):\n"
"  pit_policy = INTERVAL:RETENTION, ...  in the --config file (default\n"
"                        " SNAP_DEFAULT_POLICY ");\n"
"                        a server assigned by ferry-control follows the\n"
"                        pitPolicy an administrator set there, if any\n"
"  ferry-replicator snapshot list|delete|export --data-dir DIR ...\n"
"\n"
"launches (StartTest, StartCutover at ferry-control; docs/replicator.md):\n"
"  --launch-format raw|qcow2  images in DATA_DIR/launch/ (default raw)\n"
"  ferry-replicator launch list --data-dir DIR\n",
		REP_DEFAULT_IDLE, REP_DEFAULT_MAX_CONNS,
		REP_DEFAULT_REPORT_INTERVAL, REP_DEFAULT_MAX_SOURCES,
		REP_DEFAULT_CERT_RENEW_DAYS);
}

static int parse_args(int argc, char **argv, struct rep_config *cfg)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'o' },
		{ "data-dir", required_argument, NULL, 'o' },
		{ "cert", required_argument, NULL, 'o' },
		{ "key", required_argument, NULL, 'o' },
		{ "ca", required_argument, NULL, 'o' },
		{ "id", required_argument, NULL, 'o' },
		{ "allow", required_argument, NULL, 'o' },
		{ "idle-timeout", required_argument, NULL, 'o' },
		{ "max-connections", required_argument, NULL, 'o' },
		/* ferry-control; the secret key only in files, not argv */
		{ "control-url", required_argument, NULL, 'o' },
		{ "control-ca", required_argument, NULL, 'o' },
		{ "credentials-file", required_argument, NULL, 'o' },
		{ "region", required_argument, NULL, 'o' },
		{ "advertise", required_argument, NULL, 'o' },
		{ "report-interval", required_argument, NULL, 'o' },
		{ "max-source-servers", required_argument, NULL, 'o' },
		{ "cert-renew-days", required_argument, NULL, 'o' },
		{ "launch-format", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	int ch, idx;

	if (argc > 1 && !strcmp(argv[1], "serve")) {
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	while ((ch = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		switch (ch) {
		case 'c':
			if (rep_config_load(cfg, optarg, err, sizeof(err))) {
				fprintf(stderr, "ferry-replicator: %s\n", err);
				return -1;
			}
			break;
		case 'o':
			if (rep_config_set(cfg, opts[idx].name, optarg, err,
					   sizeof(err))) {
				fprintf(stderr, "ferry-replicator: --%s: %s\n",
					opts[idx].name, err);
				return -1;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"ferry-replicator: unexpected argument \"%s\"\n",
			argv[optind]);
		usage(stderr);
		return -1;
	}
	if (rep_config_check(cfg, err, sizeof(err))) {
		fprintf(stderr, "ferry-replicator: %s\n", err);
		return -1;
	}
	return 0;
}

static int listen_on(const char *spec, char *shown, size_t shownlen)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[32], h[NI_MAXHOST], p[NI_MAXSERV], err[512];
	int fd = -1, one = 1, rc, e = 0;

	if (rep_split_hostport(spec, host, sizeof(host), port, sizeof(port),
			       err, sizeof(err))) {
		rlog_error("%s", err);
		return -1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		rlog_error("cannot resolve listen address %s: %s", spec,
			   gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) &&
		    !listen(fd, 128))
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		rlog_error("cannot listen on %s: %s", spec, strerror(e));
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) ||
	    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		rlog_error("cannot read back the listening address: %s",
			   strerror(errno));
		close(fd);
		return -1;
	}
	snprintf(shown, shownlen, ss.ss_family == AF_INET6 ? "[%s]:%s"
							   : "%s:%s", h, p);
	return fd;
}

struct conn_start {
	struct rep_server *srv;
	int fd;
	struct sockaddr_storage addr;
};

static void *conn_thread(void *arg)
{
	struct conn_start *s = arg;

	conn_serve(s->srv, s->fd, &s->addr);
	free(s);
	return NULL;
}

static void set_timeouts(int fd, unsigned int secs)
{
	struct timeval tv = { .tv_sec = secs };
	int one = 1;

	/* A peer stalled inside a TLS record, or not reading our frames,
	 * cannot hold a thread longer than the idle timeout. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* ACKs are small and latency-bound. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

/* ferry-control renewed the server certificate (control_client.c): a TLS
 * context with it for new connections. */
static int cert_renewed(void *arg, char *err, size_t errlen)
{
	struct rep_server *srv = arg;
	SSL_CTX *ctx = ferry_tls_ctx(FERRY_TLS_SERVER, srv->cfg->cert,
				     srv->cfg->key, srv->cfg->ca, err, errlen);

	if (!ctx)
		return -1;
	rep_server_set_ctx(srv, ctx);
	return 0;
}

/*
 * SIGHUP: the certificate, key and CA bundle read again, for new
 * connections (an administrator's renewed cert and key, or a new CA
 * bundle); connections already open keep theirs.  A set the server would
 * not start with is refused, and the one served is kept.
 */
static void reload_tls(struct rep_server *srv, bool own_cert)
{
	char err[1024];
	SSL_CTX *ctx = ferry_tls_ctx(FERRY_TLS_SERVER, srv->cfg->cert,
				     srv->cfg->key, srv->cfg->ca, err,
				     sizeof(err));
	int rc = 0;

	if (ctx && own_cert)
		rc = rep_config_check_cert(srv->cfg,
					   SSL_CTX_get0_certificate(ctx), err,
					   sizeof(err));
	if (!ctx || rc < 0) {
		rlog_error("SIGHUP: %s; still serving the certificate loaded before",
			   err);
		SSL_CTX_free(ctx);
		return;
	}
	if (rc > 0)
		rlog_info("%s", err);
	rep_server_set_ctx(srv, ctx);
	rlog_info("SIGHUP: serving %s (CA bundle %s) to new connections",
		  srv->cfg->cert, srv->cfg->ca);
}

static void accept_one(struct rep_server *srv, int lfd)
{
	struct conn_start *s = calloc(1, sizeof(*s));
	socklen_t sl = sizeof(s->addr);
	pthread_attr_t attr;
	pthread_t t;
	int fd, rc;

	if (!s) {
		rlog_error("out of memory accepting a connection");
		return;
	}
	fd = accept4(lfd, (struct sockaddr *)&s->addr, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			rlog_error("accept failed: %s", strerror(errno));
		free(s);
		return;
	}
	pthread_mutex_lock(&srv->lock);
	if (srv->active >= srv->cfg->max_conns) {
		pthread_mutex_unlock(&srv->lock);
		rlog_error("refused a connection: %u connections already "
			   "(max-connections)", srv->cfg->max_conns);
		close(fd);
		free(s);
		return;
	}
	srv->active++;
	pthread_mutex_unlock(&srv->lock);

	set_timeouts(fd, srv->cfg->idle_timeout);
	s->srv = srv;
	s->fd = fd;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Buffers are on the heap; a small stack lets many threads run. */
	pthread_attr_setstacksize(&attr, 256u << 10);
	rc = pthread_create(&t, &attr, conn_thread, s);
	pthread_attr_destroy(&attr);
	if (rc) {
		rlog_error("cannot start a connection thread: %s",
			   strerror(rc));
		close(fd);
		free(s);
		pthread_mutex_lock(&srv->lock);
		srv->active--;
		pthread_mutex_unlock(&srv->lock);
	}
}

/* Reading a snapshot opens the delta of every later one, and each of 50
 * connections holds its volumes and deltas: the soft limit of open files
 * (often 1024) is raised to the hard one, as a server does. */
static void raise_nofile(void)
{
	struct rlimit r;

	if (!getrlimit(RLIMIT_NOFILE, &r) && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &r))
			rlog_error("cannot raise the open files limit to %llu:"
				   " %s", (unsigned long long)r.rlim_max,
				   strerror(errno));
	}
}

int main(int argc, char **argv)
{
	struct rep_config cfg;
	struct rep_server srv;
	struct timespec deadline;
	char err[1024], shown[300];
	sigset_t sigs;
	int lfd, sfd, stop[2];
	bool own_cert;

	raise_nofile();
	/* ferry-replicator snapshot list|delete|export (snapshot.c) */
	if (argc > 1 && !strcmp(argv[1], "snapshot"))
		return snap_cli(argc - 1, argv + 1);
	/* ferry-replicator launch list (launch.c) */
	if (argc > 1 && !strcmp(argv[1], "launch"))
		return launch_cli(argc - 1, argv + 1);
	rep_config_init(&cfg);
	if (parse_args(argc, argv, &cfg)) {
		rep_config_free(&cfg);
		return 2;
	}
	/* Staging data is the customer's disks: not for other users. */
	umask(027);
	if (mkdir(cfg.data_dir, 0750) && errno != EEXIST) {
		rlog_error("cannot create data directory %s: %s", cfg.data_dir,
			   strerror(errno));
		return 1;
	}
	if (access(cfg.data_dir, W_OK | X_OK)) {
		rlog_error("data directory %s is not writable: %s",
			   cfg.data_dir, strerror(errno));
		return 1;
	}

	memset(&srv, 0, sizeof(srv));
	srv.cfg = &cfg;
	pthread_mutex_init(&srv.lock, NULL);
	pthread_cond_init(&srv.idle, NULL);

	/* Signals arrive on a descriptor of the accept loop; connection
	 * threads inherit the mask and never see them. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0 || pipe2(stop, O_CLOEXEC)) {
		rlog_error("cannot set up signal handling: %s",
			   strerror(errno));
		return 1;
	}
	srv.stop_fd = stop[0];

	lfd = listen_on(cfg.listen, shown, sizeof(shown));
	if (lfd < 0)
		return 1;
	/* ferry-control: registration (which may issue the certificate,
	 * so before the TLS context) and the saved assignments. */
	own_cert = cfg.cert != NULL;
	if (cfg.control_url && ctl_init(&cfg, shown, err, sizeof(err))) {
		rlog_error("%s", err);
		return 1;
	}
	srv.ctx = ferry_tls_ctx(FERRY_TLS_SERVER, cfg.cert, cfg.key, cfg.ca,
				err, sizeof(err));
	if (!srv.ctx) {
		rlog_error("%s", err);
		return 1;
	}
	/* The certificate TLS will show must be one agents take, naming
	 * id, before anything is registered or served.  ctl_init() checked
	 * those ferry-control issued. */
	if (own_cert) {
		int rc = rep_config_check_cert(&cfg,
					SSL_CTX_get0_certificate(srv.ctx),
					err, sizeof(err));

		if (rc < 0) {
			rlog_error("%s", err);
			return 1;
		}
		if (rc > 0)
			rlog_info("%s", err);
	}
	if (cfg.control_url &&
	    ctl_start(stop[0], cert_renewed, &srv, err, sizeof(err))) {
		rlog_error("%s", err);
		return 1;
	}
	if (!cfg.n_allow && !cfg.control_url)
		rlog_info("warning: no allow lines: every source server will "
			  "be refused");
	fprintf(stderr, "ferry-replicator: ready on %s\n", shown);

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = lfd, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rlog_error("poll failed: %s", strerror(errno));
			break;
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				break;
			if (si.ssi_signo == SIGHUP) {
				reload_tls(&srv, own_cert);
				continue;
			}
			rlog_info("signal %u: stopping", si.ssi_signo);
			break;
		}
		if (p[0].revents)
			accept_one(&srv, lfd);
	}

	/* Stop accepting; tell every connection to flush, ACK and BYE. */
	close(lfd);
	close(stop[1]);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += STOP_GRACE_S;
	pthread_mutex_lock(&srv.lock);
	while (srv.active &&
	       pthread_cond_timedwait(&srv.idle, &srv.lock, &deadline) !=
	       ETIMEDOUT)
		;
	if (srv.active) {
		/* Their threads still use the context and configuration. */
		rlog_error("%u connections still busy after %d s; exiting "
			   "(they acknowledged only what was durable)",
			   srv.active, STOP_GRACE_S);
		pthread_mutex_unlock(&srv.lock);
		return 0;
	}
	pthread_mutex_unlock(&srv.lock);
	ctl_stop();
	SSL_CTX_free(srv.ctx);
	close(stop[0]);
	close(sfd);
	rep_config_free(&cfg);
	rlog_info("stopped");
	return 0;
}
