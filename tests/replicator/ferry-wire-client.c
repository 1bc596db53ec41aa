// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-wire-client: a test client of the agent <-> replicator protocol,
 * on the same codec as the agent (lib/wire.h).  It drives
 * ferry-replicator in tests/replicator/: full syncs (pipelined, with
 * cuts and resumes), rescans by hash exchange, raw bad frames, and a
 * bare handshake.  Results are printed as one JSON object on stdout.
 *
 *   ferry-wire-client --connect HOST:PORT [--cert F --key F] --ca F
 *       --source-id ID --disk NAME=IMAGE [--disk ...] COMMAND [OPTIONS]
 *   ferry-wire-client xxh3 FILE
 *   ferry-wire-client xxh128 FILE
 *
 * Exit status: 0 done, 1 refused / error frame / connection lost,
 * 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"
#include "wire.h"

#define PROG "ferry-wire-client"
#define IO_TIMEOUT_MS 60000
#define ZERO_RUN_MAX (1ull << 30) /* longest ZERO frame we send */

struct disk {
	char *name;
	char *path;
	int fd;
	uint64_t size;
	uint64_t start;	     /* where this run began sending */
	uint64_t acked_upto; /* DATA/ZERO acknowledged below this */
	uint64_t sent_upto;
	uint64_t mark_acked; /* highest SYNC_MARK acknowledged */
	struct ferry_welcome_disk w;
	/* rescan */
	uint8_t *hashes; /* remote hashes, one per chunk */
	uint8_t *have;	 /* 1 when the remote hash arrived */
	uint64_t n_chunks;
};

/* What each client frame covered, indexed by seq. */
struct rec {
	uint8_t type;
	uint32_t disk;
	uint64_t offset, length; /* DATA / ZERO range */
	uint64_t bytes;		 /* payload bytes (window_bytes) */
};

struct err_info {
	bool set;
	uint32_t code;
	uint64_t seq;
	bool fatal;
	char where[16]; /* "frame", "tls", "connect", "io", "protocol" */
	char msg[1200];
};

struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	bool closed; /* peer closed or connection failed */
	uint64_t next_seq;
	uint64_t acked;
	uint64_t inflight_bytes;
	uint64_t max_inflight, max_inflight_bytes;
	struct ferry_welcome welcome;
	bool have_welcome;
	struct rec *recs;
	size_t n_recs;
	uint8_t *rbuf;
	size_t rlen;
	/* stats */
	uint64_t frames, data_frames, zero_frames, hash_reqs, marks;
	uint64_t bytes, data_raw_bytes, zero_bytes;
	uint64_t hash_resps;
	struct err_info err;
	/* frames received that are not ACKs (raw command) */
	char *replies;
	size_t replies_len, replies_cap;
	FILE *ack_log;
	/* --kill-pid/--kill-at: SIGKILL that process (the replicator) as
	 * soon as disk 0 is acknowledged up to kill_at, from here, so that
	 * the kill lands mid-sync however the machine schedules a watcher */
	pid_t kill_pid;
	uint64_t kill_at;
	bool raw_mode; /* list every frame that comes back */
	uint64_t n_rx; /* frames received */
};

static struct disk disks[FERRY_WIRE_MAX_DISKS];
static int n_disks;

static void die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n(run " PROG " --help for the usage)\n");
	va_end(ap);
	exit(2);
}

static void usage(void)
{
	fputs("usage: " PROG " --connect HOST:PORT [--cert F --key F] --ca F\n"
	      "         --source-id ID --disk NAME=IMAGE [--disk ...]\n"
	      "         [--timeout SEC] [--start-at UNIX_TIME]\n"
	      "         [--ready-file FILE] [--start-file FILE]\n"
	      "         COMMAND [OPTIONS]\n"
	      "       " PROG " xxh3 FILE\n"
	      "       " PROG " xxh128 FILE\n\n"
	      "commands:\n"
	      "  sync [--codec raw|zstd|lz4] [--chunk BYTES] [--resume]\n"
	      "       [--cut-after N] [--mark-every N] [--throttle-ms MS]\n"
	      "       [--ack-log FILE] [--window-check]\n"
	      "       [--kill-pid PID --kill-at BYTES] [--hold-after N]\n"
	      "      send every image (DATA, all-zero chunks as ZERO),\n"
	      "      SYNC_MARKs, a CP; wait for the ACKs; --resume starts\n"
	      "      each disk at WELCOME's sync_mark; --cut-after drops\n"
	      "      the connection after N frames; --window-check sends\n"
	      "      past the window the server granted; --kill-pid sends\n"
	      "      SIGKILL to PID once disk 0 is acknowledged up to\n"
	      "      --kill-at bytes; --hold-after prints \"held N\" once\n"
	      "      N frames are sent and acknowledged (0: at WELCOME)\n"
	      "      and waits for a line on stdin\n"
	      "  rescan [--chunk BYTES] [--codec C]\n"
	      "      HASH_REQ each disk, send only chunks that differ, CP\n"
	      "  raw --frame-file F   send F's bytes after the handshake,\n"
	      "      print the frames that come back\n"
	      "  hello-only           print WELCOME\n"
	      "  xxh3 FILE            print XXH3-64 of FILE (hex)\n"
	      "  xxh128 FILE          print XXH3-128 of FILE as HASH_RESP\n"
	      "                       carries it (hex)\n",
	      stdout);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set_err(struct conn *c, const char *where, uint32_t code,
		    const char *fmt, ...)
{
	va_list ap;

	if (c->err.set)
		return;
	c->err.set = true;
	c->err.code = code;
	snprintf(c->err.where, sizeof(c->err.where), "%s", where);
	va_start(ap, fmt);
	vsnprintf(c->err.msg, sizeof(c->err.msg), fmt, ap);
	va_end(ap);
}

/* JSON string output. */
static void json_str(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void reply_append(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = c->replies_cap - c->replies_len;

		va_start(ap, fmt);
		n = vsnprintf(c->replies ? c->replies + c->replies_len : NULL,
			      room, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < room) {
			c->replies_len += n;
			return;
		}
		c->replies_cap = c->replies_cap * 2 + n + 256;
		c->replies = realloc(c->replies, c->replies_cap);
		if (!c->replies) {
			perror(PROG ": realloc");
			exit(1);
		}
	}
}

/* ---- connection ---------------------------------------------------- */

static int tcp_connect(const char *hostport, char *host, size_t hostlen)
{
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, rc, one = 1;

	if (!colon || (size_t)(colon - hostport) >= hostlen)
		die_usage("--connect %s: want HOST:PORT", hostport);
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = 0;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc) {
		fprintf(stderr, PROG ": %s: %s\n", hostport,
			gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Wait for FD to be ready for EVENTS; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/*
 * The agent's TLS client context (lib/tls.h): our certificate, the CA to
 * verify the replicator with, HOST checked against the server
 * certificate's names.  Without --cert, a context that presents no
 * certificate at all: the refusal tests need such a client.
 */
static SSL_CTX *ctx_without_cert(struct conn *c, const char *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char e[256];

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ferry_tls_errstr(e, sizeof(e));
		set_err(c, "tls", 0, "cannot make a TLS context with CA %s: %s",
			ca, e);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static int tls_open(struct conn *c, const char *host, const char *cert,
		    const char *key, const char *ca)
{
	char e[512];
	int rc;

	if (cert) {
		c->ctx = ferry_tls_ctx(FERRY_TLS_CLIENT, cert, key, ca, e,
				       sizeof(e));
		if (!c->ctx)
			set_err(c, "tls", 0, "%s", e);
	} else {
		c->ctx = ctx_without_cert(c, ca);
	}
	if (!c->ctx)
		return -1;
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl) {
		set_err(c, "tls", 0, "SSL_new failed");
		return -1;
	}
	if (ferry_tls_set_peer_host(c->ssl, host, e, sizeof(e))) {
		set_err(c, "tls", 0, "%s", e);
		return -1;
	}
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
			     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		rc = SSL_connect(c->ssl);
		if (rc == 1)
			return 0;
		switch (SSL_get_error(c->ssl, rc)) {
		case SSL_ERROR_WANT_READ:
			rc = wait_fd(c->fd, POLLIN, IO_TIMEOUT_MS);
			break;
		case SSL_ERROR_WANT_WRITE:
			rc = wait_fd(c->fd, POLLOUT, IO_TIMEOUT_MS);
			break;
		default:
			ferry_tls_describe_error(c->ssl, rc, e, sizeof(e));
			set_err(c, "tls", 0, "TLS handshake with %s: %s", host,
				e);
			c->closed = true;
			return -1;
		}
		if (rc <= 0) {
			set_err(c, "tls", 0, "TLS handshake timed out");
			return -1;
		}
	}
}

static struct rec *rec_at(struct conn *c, uint64_t seq)
{
	if (seq >= c->n_recs) {
		size_t n = c->n_recs ? c->n_recs : 1024;

		while (n <= seq)
			n *= 2;
		c->recs = realloc(c->recs, n * sizeof(*c->recs));
		if (!c->recs) {
			perror(PROG ": realloc");
			exit(1);
		}
		memset(c->recs + c->n_recs, 0,
		       (n - c->n_recs) * sizeof(*c->recs));
		c->n_recs = n;
	}
	return &c->recs[seq];
}

static void on_ack(struct conn *c, uint64_t seq)
{
	if (seq >= c->next_seq) {
		set_err(c, "protocol", 0,
			"ACK %" PRIu64 " of a frame never sent (last %" PRIu64
			")", seq, c->next_seq - 1);
		return;
	}
	for (uint64_t s = c->acked + 1; s <= seq; s++) {
		struct rec *r = rec_at(c, s);

		c->inflight_bytes -= r->bytes;
		if ((r->type == FERRY_F_DATA || r->type == FERRY_F_ZERO) &&
		    r->disk < (uint32_t)n_disks) {
			struct disk *d = &disks[r->disk];

			/* Sync sends each disk in order: a prefix. */
			if (r->offset + r->length > d->acked_upto)
				d->acked_upto = r->offset + r->length;
		}
		if (r->type == FERRY_F_SYNC_MARK &&
		    r->disk < (uint32_t)n_disks &&
		    r->offset > disks[r->disk].mark_acked)
			disks[r->disk].mark_acked = r->offset;
	}
	if (seq > c->acked)
		c->acked = seq;
	if (c->kill_pid > 0 && n_disks && disks[0].acked_upto >= c->kill_at) {
		if (kill(c->kill_pid, SIGKILL))
			fprintf(stderr, PROG ": kill %d: %s\n", (int)c->kill_pid,
				strerror(errno));
		c->kill_pid = 0;
	}
	if (c->ack_log) {
		fprintf(c->ack_log, "ack %" PRIu64, seq);
		for (int i = 0; i < n_disks; i++)
			fprintf(c->ack_log, " %" PRIu64, disks[i].acked_upto);
		fputc('\n', c->ack_log);
		fflush(c->ack_log);
	}
}

static void on_hash_resp(struct conn *c, const struct ferry_msg *m)
{
	const struct ferry_hash_resp *h = &m->u.hash_resp;
	struct disk *d;
	uint64_t first;

	c->hash_resps++;
	if (h->disk >= (uint32_t)n_disks || !disks[h->disk].hashes) {
		set_err(c, "protocol", 0, "HASH_RESP for disk %u not asked",
			h->disk);
		return;
	}
	d = &disks[h->disk];
	first = h->offset / h->chunk;
	if (h->offset % h->chunk || first + h->count > d->n_chunks) {
		set_err(c, "protocol", 0,
			"HASH_RESP disk %u offset %" PRIu64 " count %u "
			"outside the %" PRIu64 " chunks asked",
			h->disk, h->offset, h->count, d->n_chunks);
		return;
	}
	memcpy(d->hashes + first * FERRY_WIRE_HASH_LEN, h->hashes,
	       (size_t)h->count * FERRY_WIRE_HASH_LEN);
	memset(d->have + first, 1, h->count);
}

static void handle_frame(struct conn *c, const struct ferry_msg *m)
{
	switch (m->hdr.type) {
	case FERRY_F_ACK:
		if (c->raw_mode) {
			reply_append(c, "%s{\"type\":\"ACK\",\"seq\":%" PRIu64
					"}", c->replies_len ? "," : "",
				     m->hdr.seq);
			return;
		}
		on_ack(c, m->hdr.seq);
		return;
	case FERRY_F_WELCOME:
		c->welcome = m->u.welcome;
		c->have_welcome = true;
		return;
	case FERRY_F_HASH_RESP:
		if (c->raw_mode) {
			const struct ferry_hash_resp *h = &m->u.hash_resp;

			reply_append(c, "%s{\"type\":\"HASH_RESP\",\"seq\":%"
					PRIu64 ",\"hashes\":[",
				     c->replies_len ? "," : "", m->hdr.seq);
			for (uint32_t i = 0; i < h->count; i++) {
				reply_append(c, "%s\"", i ? "," : "");
				for (int b = 0; b < FERRY_WIRE_HASH_LEN; b++)
					reply_append(c, "%02x",
						     h->hashes[i *
						     FERRY_WIRE_HASH_LEN + b]);
				reply_append(c, "\"");
			}
			reply_append(c, "]}");
			return;
		}
		on_hash_resp(c, m);
		return;
	case FERRY_F_ERROR:
		reply_append(c, "%s{\"type\":\"ERROR\",\"seq\":%" PRIu64
				",\"code\":%u,\"name\":\"%s\",\"fatal\":%s,"
				"\"message\":",
			     c->replies_len ? "," : "", m->hdr.seq,
			     m->u.error.code,
			     ferry_wire_error_name(m->u.error.code),
			     m->hdr.flags & FERRY_ERR_FATAL ? "true" :
							      "false");
		if (!c->err.set) {
			c->err.set = true;
			c->err.code = m->u.error.code;
			c->err.seq = m->hdr.seq;
			c->err.fatal = m->hdr.flags & FERRY_ERR_FATAL;
			strcpy(c->err.where, "frame");
			snprintf(c->err.msg, sizeof(c->err.msg), "%.*s",
				 (int)m->u.error.message.len,
				 m->u.error.message.s);
		}
		{
			FILE *f = fmemopen(NULL, 4096, "w+");
			char buf[4096];
			size_t n;

			json_str(f, m->u.error.message.s,
				 m->u.error.message.len);
			fflush(f);
			rewind(f);
			n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = 0;
			fclose(f);
			reply_append(c, "%s}", buf);
		}
		return;
	case FERRY_F_BYE:
		c->closed = true;
		reply_append(c, "%s{\"type\":\"BYE\",\"seq\":%" PRIu64 "}",
			     c->replies_len ? "," : "", m->hdr.seq);
		return;
	case FERRY_F_PING:
	case FERRY_F_PONG:
		/* Our runs are short: the server's keepalive needs no
		 * answer before it times the connection out. */
		return;
	default:
		set_err(c, "protocol", 0, "unexpected %s frame from server",
			ferry_wire_type_name(m->hdr.type));
		reply_append(c, "%s{\"type\":\"%s\",\"seq\":%" PRIu64 "}",
			     c->replies_len ? "," : "",
			     ferry_wire_type_name(m->hdr.type), m->hdr.seq);
	}
}

/* Decode and handle the whole frames in the receive buffer. */
static void parse_frames(struct conn *c)
{
	size_t off = 0;
	char e[256];

	while (c->rlen - off >= FERRY_WIRE_HDR_LEN) {
		struct ferry_hdr h;
		static struct ferry_msg m;

		if (ferry_wire_decode_hdr(c->rbuf + off, &h, e, sizeof(e))) {
			set_err(c, "protocol", 0, "bad frame header: %s", e);
			c->closed = true;
			break;
		}
		if (c->rlen - off < FERRY_WIRE_HDR_LEN + h.len)
			break;
		if (ferry_wire_decode(&h, c->rbuf + off + FERRY_WIRE_HDR_LEN,
				      &m, e, sizeof(e))) {
			set_err(c, "protocol", 0, "bad %s frame: %s",
				ferry_wire_type_name(h.type), e);
			c->closed = true;
			break;
		}
		m.hdr = h;
		c->n_rx++;
		handle_frame(c, &m);
		off += FERRY_WIRE_HDR_LEN + h.len;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
}

/* Read what is available (non-blocking); 0, or -1 once closed. */
static int pump_read(struct conn *c)
{
	char e[256];

	while (!c->closed) {
		size_t room = 2 * FERRY_WIRE_MAX_PAYLOAD - c->rlen;
		int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)room);

		if (n > 0) {
			c->rlen += n;
			parse_frames(c);
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			c->closed = true;
			break;
		default:
			ferry_tls_describe_error(c->ssl, n, e, sizeof(e));
			set_err(c, "io", 0, "connection lost: %s", e);
			c->closed = true;
		}
	}
	return -1;
}

/* Block until something arrives (or TIMEOUT); -1 when closed/timeout. */
static int wait_read(struct conn *c, int timeout_ms)
{
	uint64_t before = c->n_rx;

	if (pump_read(c))
		return -1;
	if (c->n_rx != before)
		return 0; /* the caller checks what came */
	if (SSL_has_pending(c->ssl))
		return pump_read(c);
	if (wait_fd(c->fd, POLLIN, timeout_ms) <= 0) {
		set_err(c, "io", 0, "no answer from the server in %d s",
			timeout_ms / 1000);
		return -1;
	}
	return pump_read(c);
}

/* Send LEN bytes, reading (and handling) frames meanwhile. */
static int send_all(struct conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	char e[256];

	while (len) {
		int n = SSL_write(c->ssl, p,
				  len > (1u << 30) ? 1 << 30 : (int)len);
		short ev;

		if (n > 0) {
			p += n;
			len -= n;
			c->bytes += n;
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
			ev = POLLIN | POLLOUT;
			break;
		case SSL_ERROR_WANT_READ:
			ev = POLLIN;
			break;
		default:
			ferry_tls_describe_error(c->ssl, n, e, sizeof(e));
			/* Read an ERROR the server may have sent first. */
			pump_read(c);
			set_err(c, "io", 0, "send failed: %s", e);
			c->closed = true;
			return -1;
		}
		{
			struct pollfd pf = { .fd = c->fd, .events = ev };

			if (poll(&pf, 1, IO_TIMEOUT_MS) <= 0) {
				set_err(c, "io", 0, "send timed out");
				return -1;
			}
			if (pf.revents & (POLLIN | POLLHUP | POLLERR))
				if (pump_read(c) && !(pf.revents & POLLOUT))
					return -1;
		}
	}
	return 0;
}

/* Send one client frame; SEQ is taken by the caller from next_seq. */
static int send_frame(struct conn *c, const void *buf, size_t len,
		      struct rec r)
{
	uint64_t seq = c->next_seq++;
	uint64_t inflight;

	r.bytes = len - FERRY_WIRE_HDR_LEN;
	*rec_at(c, seq) = r;
	c->inflight_bytes += r.bytes;
	inflight = seq - c->acked;
	if (inflight > c->max_inflight)
		c->max_inflight = inflight;
	if (c->inflight_bytes > c->max_inflight_bytes)
		c->max_inflight_bytes = c->inflight_bytes;
	c->frames++;
	return send_all(c, buf, len);
}

/* May a frame of BYTES payload bytes go now? */
static bool window_open(struct conn *c, uint64_t bytes, bool ignore)
{
	uint64_t inflight = c->next_seq - 1 - c->acked;

	if (ignore)
		return true;
	if (inflight >= c->welcome.window)
		return false;
	return inflight == 0 ||
	       c->inflight_bytes + bytes <= c->welcome.window_bytes;
}

/* Wait until a frame of BYTES may be sent; -1 on error/close. */
static int wait_window(struct conn *c, uint64_t bytes, bool ignore)
{
	if (pump_read(c))
		return -1;
	while (!window_open(c, bytes, ignore)) {
		if (c->err.set)
			return -1;
		if (wait_read(c, IO_TIMEOUT_MS))
			return -1;
	}
	return c->err.set ? -1 : 0;
}

static int wait_acked(struct conn *c, uint64_t seq)
{
	while (c->acked < seq) {
		if (c->err.set)
			return -1;
		if (wait_read(c, IO_TIMEOUT_MS))
			return -1;
	}
	return c->err.set ? -1 : 0;
}

static int handshake(struct conn *c, const char *source_id)
{
	static struct ferry_hello h;
	uint8_t buf[16384];
	size_t len;

	h.min_version = FERRY_WIRE_MIN_VERSION;
	h.max_version = FERRY_WIRE_VERSION;
	h.agent_version.s = PROG "/1";
	h.agent_version.len = strlen(h.agent_version.s);
	h.source_server_id.s = source_id;
	h.source_server_id.len = strlen(source_id);
	h.n_disks = n_disks;
	for (int i = 0; i < n_disks; i++) {
		h.disks[i].name.s = disks[i].name;
		h.disks[i].name.len = strlen(disks[i].name);
		h.disks[i].size = disks[i].size;
		h.disks[i].block_size = 4096;
	}
	len = ferry_wire_encode_hello(buf, sizeof(buf), 1, &h);
	if (!len) {
		set_err(c, "protocol", 0, "cannot encode HELLO");
		return -1;
	}
	c->next_seq = 1;
	if (send_frame(c, buf, len, (struct rec){ .type = FERRY_F_HELLO }))
		return -1;
	c->frames = 0;
	c->bytes = 0;
	while (!c->have_welcome) {
		if (c->err.set)
			return -1;
		if (wait_read(c, IO_TIMEOUT_MS)) {
			set_err(c, "io", 0,
				"connection closed before WELCOME");
			return -1;
		}
	}
	if (c->welcome.n_disks != n_disks) {
		set_err(c, "protocol", 0, "WELCOME has %u disks, HELLO %d",
			c->welcome.n_disks, n_disks);
		return -1;
	}
	/* WELCOME answers (and so acknowledges) HELLO. */
	c->acked = 1;
	c->inflight_bytes = 0;
	for (int i = 0; i < n_disks; i++)
		disks[i].w = c->welcome.disks[i];
	return 0;
}

/* ---- output -------------------------------------------------------- */

static void print_error(FILE *f, const struct err_info *e)
{
	if (!e->set) {
		fputs("null", f);
		return;
	}
	fprintf(f, "{\"where\":\"%s\",\"code\":%u,\"name\":\"%s\","
		   "\"seq\":%" PRIu64 ",\"fatal\":%s,\"message\":",
		e->where, e->code,
		e->code ? ferry_wire_error_name(e->code) : "", e->seq,
		e->fatal ? "true" : "false");
	json_str(f, e->msg, strlen(e->msg));
	fputc('}', f);
}

static void print_welcome(FILE *f, const struct conn *c)
{
	char id[33];

	if (!c->have_welcome) {
		fputs("null", f);
		return;
	}
	fprintf(f, "{\"version\":%u,\"window\":%u,\"window_bytes\":%" PRIu64
		   ",\"disks\":[",
		c->welcome.version, c->welcome.window,
		c->welcome.window_bytes);
	for (int i = 0; i < c->welcome.n_disks; i++) {
		const struct ferry_welcome_disk *w = &c->welcome.disks[i];

		hex(id, w->volume_id, 16);
		fprintf(f, "%s{\"volume_id\":\"%s\",\"size\":%" PRIu64
			   ",\"sync_mark\":%" PRIu64
			   ",\"last_cp\":%" PRIu64 "}",
			i ? "," : "", id, w->size, w->sync_mark, w->last_cp);
	}
	fputs("]}", f);
}

/* Seconds past --start-at when the handshake was done (0: in time). */
static double late_s;

static void print_result(struct conn *c, const char *cmd, double secs,
			 const char *extra)
{
	FILE *f = stdout;

	fprintf(f, "{\"command\":\"%s\",\"ok\":%s,\"error\":", cmd,
		c->err.set ? "false" : "true");
	print_error(f, &c->err);
	fputs(",\"welcome\":", f);
	print_welcome(f, c);
	fprintf(f, ",\"frames\":%" PRIu64 ",\"data_frames\":%" PRIu64
		   ",\"zero_frames\":%" PRIu64 ",\"hash_reqs\":%" PRIu64
		   ",\"sync_marks\":%" PRIu64 ",\"bytes\":%" PRIu64
		   ",\"data_raw_bytes\":%" PRIu64 ",\"zero_bytes\":%" PRIu64
		   ",\"acked_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
		   ",\"max_inflight\":%" PRIu64
		   ",\"max_inflight_bytes\":%" PRIu64 ",\"seconds\":%.3f"
		   ",\"late\":%.3f",
		c->frames, c->data_frames, c->zero_frames, c->hash_reqs,
		c->marks, c->bytes, c->data_raw_bytes, c->zero_bytes,
		c->acked, c->next_seq ? c->next_seq - 1 : 0, c->max_inflight,
		c->max_inflight_bytes, secs, late_s);
	fputs(",\"disks\":[", f);
	for (int i = 0; i < n_disks; i++) {
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		json_str(f, disks[i].name, strlen(disks[i].name));
		fprintf(f, ",\"size\":%" PRIu64 ",\"start\":%" PRIu64
			   ",\"sent_upto\":%" PRIu64 ",\"acked_upto\":%" PRIu64
			   ",\"mark_acked\":%" PRIu64 "}",
			disks[i].size, disks[i].start, disks[i].sent_upto,
			disks[i].acked_upto, disks[i].mark_acked);
	}
	fprintf(f, "],\"replies\":[%.*s]", (int)c->replies_len,
		c->replies ? c->replies : "");
	if (extra)
		fputs(extra, f);
	fputs("}\n", f);
	fflush(f);
}

/* ---- sending data -------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t z[4096];

	while (n >= sizeof(z)) {
		if (memcmp(p, z, sizeof(z)))
			return false;
		p += sizeof(z);
		n -= sizeof(z);
	}
	return !memcmp(p, z, n);
}

struct sender {
	uint8_t codec;
	bool ignore_window;
	int throttle_ms;
	uint64_t cut_after; /* 0: never */
	bool hold;	    /* --hold-after given, not yet held */
	uint64_t hold_after;
	uint8_t *raw, *frame;
	size_t frame_cap;
};

static int maybe_cut(struct conn *c, struct sender *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (!s->cut_after || c->frames < s->cut_after)
		return 0;
	/* Abrupt: no BYE, no TLS close_notify, a TCP reset. */
	pump_read(c);
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	c->closed = true;
	return 1;
}

/*
 * --hold-after N: once N frames past HELLO are sent and acknowledged (0:
 * at WELCOME), say "held N" on stdout and wait for a line or EOF on
 * stdin.  The test then acts while this connection provably holds its
 * disks and has written what it says, however the machine schedules
 * either of them; a fixed sleep could not promise that.
 */
static int maybe_hold(struct conn *c, struct sender *s)
{
	int ch;

	if (!s->hold || c->frames != s->hold_after)
		return 0;
	s->hold = false;
	if (c->frames && wait_acked(c, c->next_seq - 1))
		return -1;
	printf("held %" PRIu64 "\n", c->frames);
	fflush(stdout);
	do
		ch = getchar();
	while (ch != EOF && ch != '\n');
	return 0;
}

static void throttle(struct sender *s)
{
	if (s->throttle_ms > 0)
		usleep(s->throttle_ms * 1000);
}

static int send_zero(struct conn *c, struct sender *s, uint32_t di,
		     uint64_t off, uint64_t len)
{
	struct ferry_zero z = { .disk = di, .offset = off, .length = len };
	uint8_t buf[64];
	size_t n;

	if (wait_window(c, 16, s->ignore_window))
		return -1;
	n = ferry_wire_encode_zero(buf, sizeof(buf), c->next_seq, &z);
	if (!n) {
		set_err(c, "protocol", 0, "cannot encode ZERO");
		return -1;
	}
	c->zero_frames++;
	c->zero_bytes += len;
	if (send_frame(c, buf, n, (struct rec){ .type = FERRY_F_ZERO,
		       .disk = di, .offset = off, .length = len }))
		return -1;
	disks[di].sent_upto = off + len;
	throttle(s);
	if (maybe_hold(c, s))
		return -1;
	return maybe_cut(c, s);
}

static int send_data(struct conn *c, struct sender *s, uint32_t di,
		     uint64_t off, const uint8_t *raw, uint32_t len)
{
	struct ferry_data d = { .disk = di, .codec = s->codec,
				.raw_len = len, .offset = off };
	uint8_t *payload = s->frame + FERRY_WIRE_DATA_HDR_LEN;
	size_t plen, n;

	d.xxh3 = ferry_hash64(raw, len);
	if (s->codec == FERRY_CODEC_RAW) {
		memcpy(payload, raw, len);
		plen = len;
	} else {
		plen = ferry_codec_encode(s->codec, 1, raw, len, payload,
					  s->frame_cap -
						  FERRY_WIRE_DATA_HDR_LEN);
		if (!plen) {
			set_err(c, "protocol", 0,
				"cannot compress %u bytes with codec %u", len,
				s->codec);
			return -1;
		}
	}
	d.payload = payload;
	d.payload_len = plen;
	if (wait_window(c, 32 + plen, s->ignore_window))
		return -1;
	n = ferry_wire_encode_data_hdr(s->frame, FERRY_WIRE_DATA_HDR_LEN,
				       c->next_seq, &d);
	if (n != FERRY_WIRE_DATA_HDR_LEN) {
		set_err(c, "protocol", 0,
			"cannot encode DATA at %" PRIu64 " (%zu bytes)", off,
			plen);
		return -1;
	}
	c->data_frames++;
	c->data_raw_bytes += len;
	if (send_frame(c, s->frame, n + plen,
		       (struct rec){ .type = FERRY_F_DATA, .disk = di,
				     .offset = off, .length = len }))
		return -1;
	disks[di].sent_upto = off + len;
	throttle(s);
	if (maybe_hold(c, s))
		return -1;
	return maybe_cut(c, s);
}

static int send_mark(struct conn *c, struct sender *s, uint32_t di,
		     uint64_t off)
{
	struct ferry_sync_mark m = { .disk = di, .offset = off };
	uint8_t buf[64];
	size_t n;

	if (wait_window(c, 16, s->ignore_window))
		return -1;
	n = ferry_wire_encode_sync_mark(buf, sizeof(buf), c->next_seq, &m);
	if (!n) {
		set_err(c, "protocol", 0, "cannot encode SYNC_MARK");
		return -1;
	}
	c->marks++;
	if (send_frame(c, buf, n, (struct rec){ .type = FERRY_F_SYNC_MARK,
						 .disk = di, .offset = off }))
		return -1;
	if (maybe_hold(c, s))
		return -1;
	return maybe_cut(c, s);
}

static uint64_t max_cp(const struct conn *c)
{
	uint64_t m = 0;

	for (int i = 0; i < n_disks; i++)
		if (disks[i].w.last_cp > m)
			m = disks[i].w.last_cp;
	return m;
}

/* CP, then wait for every frame to be acknowledged, then BYE. */
static int finish(struct conn *c, struct sender *s)
{
	struct ferry_cp cp = { .cp_id = max_cp(c) + 1 };
	struct timespec ts;
	uint8_t buf[64];
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	cp.time_ms = (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (wait_window(c, 16, s->ignore_window))
		return -1;
	n = ferry_wire_encode_cp(buf, sizeof(buf), c->next_seq, &cp);
	if (!n || send_frame(c, buf, n, (struct rec){ .type = FERRY_F_CP }))
		return -1;
	if (wait_acked(c, c->next_seq - 1))
		return -1;
	n = ferry_wire_encode_bye(buf, sizeof(buf), c->next_seq);
	if (n && send_all(c, buf, n) == 0)
		c->next_seq++;
	SSL_shutdown(c->ssl);
	return 0;
}

static int read_chunk(struct conn *c, struct disk *d, uint64_t off,
		      uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(d->fd, buf + done, len - done, off + done);

		if (n <= 0) {
			set_err(c, "io", 0, "read %s at %" PRIu64 ": %s",
				d->path, off + done,
				n ? strerror(errno) : "short file");
			return -1;
		}
		done += n;
	}
	return 0;
}

static int cmd_sync(struct conn *c, struct sender *s, uint64_t chunk,
		    bool resume, uint64_t mark_every)
{
	int rc;

	for (int i = 0; i < n_disks; i++) {
		struct disk *d = &disks[i];
		uint64_t off, zstart = 0, zlen = 0, since_mark = 0;

		d->start = 0;
		if (resume) {
			if (d->w.sync_mark > d->size ||
			    d->w.sync_mark % FERRY_WIRE_SECTOR) {
				set_err(c, "protocol", 0,
					"WELCOME sync_mark %" PRIu64
					" of %s is not a sector offset "
					"inside its %" PRIu64 " bytes",
					d->w.sync_mark, d->name, d->size);
				return -1;
			}
			d->start = d->w.sync_mark;
		}
		d->acked_upto = d->sent_upto = d->start;
		for (off = d->start; off < d->size;) {
			uint32_t len = d->size - off < chunk ? d->size - off :
							       chunk;

			if (read_chunk(c, d, off, s->raw, len))
				return -1;
			if (all_zero(s->raw, len)) {
				if (!zlen)
					zstart = off;
				zlen += len;
				off += len;
				if (zlen >= ZERO_RUN_MAX) {
					rc = send_zero(c, s, i, zstart, zlen);
					if (rc)
						return rc;
					zlen = 0;
				}
				continue;
			}
			if (zlen) {
				if ((rc = send_zero(c, s, i, zstart, zlen)))
					return rc;
				zlen = 0;
			}
			if ((rc = send_data(c, s, i, off, s->raw, len)))
				return rc;
			off += len;
			if (++since_mark >= mark_every) {
				if ((rc = send_mark(c, s, i, off)))
					return rc;
				since_mark = 0;
			}
		}
		if (zlen && (rc = send_zero(c, s, i, zstart, zlen)))
			return rc;
		if ((rc = send_mark(c, s, i, d->size)))
			return rc;
	}
	return finish(c, s);
}

static int cmd_rescan(struct conn *c, struct sender *s, uint32_t chunk,
		      uint64_t *differing, uint64_t *total)
{
	uint8_t local[FERRY_WIRE_HASH_LEN];
	uint64_t per_req = (uint64_t)chunk * FERRY_WIRE_MAX_HASHES;

	for (int i = 0; i < n_disks; i++) {
		struct disk *d = &disks[i];

		d->n_chunks = (d->size + chunk - 1) / chunk;
		d->hashes = calloc(d->n_chunks + 1, FERRY_WIRE_HASH_LEN);
		d->have = calloc(d->n_chunks + 1, 1);
		if (!d->hashes || !d->have) {
			perror(PROG ": calloc");
			exit(1);
		}
	}
	/* Ask for every hash, pipelined. */
	for (int i = 0; i < n_disks; i++) {
		for (uint64_t off = 0; off < disks[i].size; off += per_req) {
			struct ferry_hash_req r = {
				.disk = i, .chunk = chunk, .offset = off,
				.length = disks[i].size - off < per_req ?
						  disks[i].size - off : per_req,
			};
			uint8_t buf[64];
			size_t n;

			if (wait_window(c, 24, s->ignore_window))
				return -1;
			n = ferry_wire_encode_hash_req(buf, sizeof(buf),
						       c->next_seq, &r);
			if (!n) {
				set_err(c, "protocol", 0,
					"cannot encode HASH_REQ");
				return -1;
			}
			c->hash_reqs++;
			if (send_frame(c, buf, n, (struct rec){
				       .type = FERRY_F_HASH_REQ, .disk = i }))
				return -1;
		}
	}
	if (wait_acked(c, c->next_seq - 1))
		return -1;
	for (int i = 0; i < n_disks; i++) {
		struct disk *d = &disks[i];

		for (uint64_t k = 0; k < d->n_chunks; k++) {
			uint64_t off = k * chunk;
			uint32_t len = d->size - off < chunk ? d->size - off :
							       chunk;

			if (!d->have[k]) {
				set_err(c, "protocol", 0,
					"no hash came back for %s chunk at %"
					PRIu64, d->name, off);
				return -1;
			}
			(*total)++;
			if (read_chunk(c, d, off, s->raw, len))
				return -1;
			ferry_hash128(s->raw, len, local);
			if (!memcmp(local, d->hashes + k * FERRY_WIRE_HASH_LEN,
				    FERRY_WIRE_HASH_LEN))
				continue;
			(*differing)++;
			if (all_zero(s->raw, len)) {
				if (send_zero(c, s, i, off, len))
					return -1;
			} else if (send_data(c, s, i, off, s->raw, len)) {
				return -1;
			}
		}
	}
	return finish(c, s);
}

static int cmd_raw(struct conn *c, const char *path, int timeout_s)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;
	double end;

	if (!f) {
		set_err(c, "io", 0, "%s: %s", path, strerror(errno));
		return -1;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = malloc(len ? len : 1);
	if (!buf || fread(buf, 1, len, f) != (size_t)len) {
		set_err(c, "io", 0, "cannot read %s", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	c->raw_mode = true;
	send_all(c, buf, len);
	free(buf);
	/* Collect what comes back: an ERROR, maybe a close. */
	end = now_s() + timeout_s;
	while (!c->closed && now_s() < end) {
		if (pump_read(c))
			break;
		/* After a fatal ERROR, the close that follows. */
		wait_fd(c->fd, POLLIN, 100);
	}
	return 0;
}

/* XXH3-64 of FILE, or (WIDE) the 128-bit one as HASH_RESP carries it. */
static int cmd_xxh3(const char *path, bool wide)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (!f) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return 1;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = malloc(len ? len : 1);
	if (!buf || fread(buf, 1, len, f) != (size_t)len) {
		fprintf(stderr, PROG ": cannot read %s\n", path);
		return 1;
	}
	fclose(f);
	if (wide) {
		uint8_t h[FERRY_WIRE_HASH_LEN];

		ferry_hash128(buf, len, h);
		for (int i = 0; i < FERRY_WIRE_HASH_LEN; i++)
			printf("%02x", h[i]);
		putchar('\n');
	} else {
		printf("%016" PRIx64 "\n", ferry_hash64(buf, len));
	}
	free(buf);
	return 0;
}

/*
 * --start-at T: after the handshake, wait until the wall clock reads T
 * (Unix seconds) so that many clients start sending together; the time
 * measured starts there.  A client that got there after T (a loaded
 * machine) starts at once and says by how much ("late" in the result).
 */
static void start_barrier(double start_at, double *t0)
{
	struct timespec ts;
	double now, wait;

	if (start_at <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = ts.tv_sec + ts.tv_nsec / 1e9;
	wait = start_at - now;
	if (wait < 0)
		late_s = -wait;
	if (wait > 0) {
		ts.tv_sec = (time_t)wait;
		ts.tv_nsec = (long)((wait - ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
	*t0 = now_s();
}

/*
 * --ready-file R, --start-file S: a start barrier that does not depend
 * on how fast many clients come up.  After the handshake the client
 * creates R, then waits until S exists (looking every 10 ms) and reads
 * from it the Unix time to start at, as --start-at T.  The test writes S
 * (renamed into place) once every client has made its R.  Gives up after
 * 600 s without S.  0 or -1.
 */
static int start_file_barrier(struct conn *c, const char *ready,
			      const char *start, double *start_at)
{
	int fd, i;

	if (ready) {
		fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			set_err(c, "start", 0, "cannot create %s: %s", ready,
				strerror(errno));
			return -1;
		}
		close(fd);
	}
	if (!start)
		return 0;
	for (i = 0; i < 60000; i++) {
		FILE *f = fopen(start, "r");

		if (f) {
			int n = fscanf(f, "%lf", start_at);

			fclose(f);
			if (n == 1)
				return 0;
			set_err(c, "start", 0, "%s holds no start time", start);
			return -1;
		}
		if (errno != ENOENT) {
			set_err(c, "start", 0, "cannot read %s: %s", start,
				strerror(errno));
			return -1;
		}
		usleep(10000);
	}
	set_err(c, "start", 0, "no %s after 600 s", start);
	return -1;
}

static int parse_disk(const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct disk *d;
	struct stat st;

	if (!eq || eq == arg || !eq[1])
		die_usage("--disk %s: want NAME=IMAGE_FILE", arg);
	if (n_disks >= FERRY_WIRE_MAX_DISKS)
		die_usage("at most %d --disk", FERRY_WIRE_MAX_DISKS);
	d = &disks[n_disks++];
	d->name = strndup(arg, eq - arg);
	d->path = strdup(eq + 1);
	d->fd = open(d->path, O_RDONLY | O_CLOEXEC);
	if (d->fd < 0 || fstat(d->fd, &st)) {
		fprintf(stderr, PROG ": disk %s: cannot open %s: %s\n",
			d->name, d->path, strerror(errno));
		exit(1);
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &d->size)) {
			fprintf(stderr, PROG ": %s: BLKGETSIZE64: %s\n",
				d->path, strerror(errno));
			exit(1);
		}
	} else {
		d->size = st.st_size;
	}
	return 0;
}

static uint64_t parse_u64(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		die_usage("%s %s: not a number", opt, s);
	return v;
}

static uint8_t parse_codec(const char *s)
{
	if (!strcmp(s, "raw"))
		return FERRY_CODEC_RAW;
	if (!strcmp(s, "zstd"))
		return FERRY_CODEC_ZSTD;
	if (!strcmp(s, "lz4"))
		return FERRY_CODEC_LZ4;
	die_usage("--codec %s: use raw, zstd or lz4", s);
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_CONNECT = 256, O_CERT, O_KEY, O_CA, O_SOURCE, O_DISK,
	       O_CODEC, O_CUT, O_RESUME, O_WCHECK, O_CHUNK, O_MARK,
	       O_THROTTLE, O_ACKLOG, O_FRAME, O_TIMEOUT, O_START, O_READY, O_STARTFILE, O_KILLPID,
	       O_KILLAT, O_HOLD, O_HELP };
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, O_CONNECT },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "ca", required_argument, NULL, O_CA },
		{ "source-id", required_argument, NULL, O_SOURCE },
		{ "disk", required_argument, NULL, O_DISK },
		{ "codec", required_argument, NULL, O_CODEC },
		{ "cut-after", required_argument, NULL, O_CUT },
		{ "resume", no_argument, NULL, O_RESUME },
		{ "window-check", no_argument, NULL, O_WCHECK },
		{ "chunk", required_argument, NULL, O_CHUNK },
		{ "mark-every", required_argument, NULL, O_MARK },
		{ "throttle-ms", required_argument, NULL, O_THROTTLE },
		{ "ack-log", required_argument, NULL, O_ACKLOG },
		{ "frame-file", required_argument, NULL, O_FRAME },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "start-at", required_argument, NULL, O_START },
		{ "ready-file", required_argument, NULL, O_READY },
		{ "start-file", required_argument, NULL, O_STARTFILE },
		{ "kill-pid", required_argument, NULL, O_KILLPID },
		{ "kill-at", required_argument, NULL, O_KILLAT },
		{ "hold-after", required_argument, NULL, O_HOLD },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 }
	};
	const char *connect_to = NULL, *cert = NULL, *key = NULL, *ca = NULL;
	const char *source = NULL, *frame_file = NULL, *ack_log = NULL;
	const char *cmd = NULL, *ready_file = NULL, *start_file = NULL;
	struct sender s = { .codec = FERRY_CODEC_RAW };
	uint64_t chunk = 0, mark_every = 16;
	bool resume = false;
	int timeout_s = 5, opt, rc = 0;
	static struct conn c = { .fd = -1 };
	char host[256], extra[256] = "";
	double t0, start_at = 0;

	/* Options may come before or after the command word. */
	while (optind < argc) {
		opt = getopt_long(argc, argv, "+", opts, NULL);
		if (opt == -1) {
			if (cmd)
				die_usage("unexpected argument %s",
					  argv[optind]);
			cmd = argv[optind++];
			if (!strcmp(cmd, "xxh3") || !strcmp(cmd, "xxh128")) {
				if (optind + 1 != argc)
					die_usage("%s takes one FILE", cmd);
				return cmd_xxh3(argv[optind], cmd[3] == '1');
			}
			continue;
		}
		switch (opt) {
		case O_CONNECT: connect_to = optarg; break;
		case O_CERT: cert = optarg; break;
		case O_KEY: key = optarg; break;
		case O_CA: ca = optarg; break;
		case O_SOURCE: source = optarg; break;
		case O_DISK: parse_disk(optarg); break;
		case O_CODEC: s.codec = parse_codec(optarg); break;
		case O_CUT: s.cut_after = parse_u64("--cut-after", optarg);
			break;
		case O_RESUME: resume = true; break;
		case O_WCHECK: s.ignore_window = true; break;
		case O_CHUNK: chunk = parse_u64("--chunk", optarg); break;
		case O_MARK: mark_every = parse_u64("--mark-every", optarg);
			break;
		case O_THROTTLE:
			s.throttle_ms = parse_u64("--throttle-ms", optarg);
			break;
		case O_ACKLOG: ack_log = optarg; break;
		case O_FRAME: frame_file = optarg; break;
		case O_TIMEOUT:
			timeout_s = parse_u64("--timeout", optarg);
			break;
		case O_START: start_at = strtod(optarg, NULL); break;
		case O_READY: ready_file = optarg; break;
		case O_STARTFILE: start_file = optarg; break;
		case O_KILLPID:
			c.kill_pid = (pid_t)parse_u64("--kill-pid", optarg);
			break;
		case O_KILLAT: c.kill_at = parse_u64("--kill-at", optarg);
			break;
		case O_HOLD:
			s.hold = true;
			s.hold_after = parse_u64("--hold-after", optarg);
			break;
		case O_HELP: usage(); return 0;
		default: die_usage("bad option");
		}
	}
	if (!cmd)
		die_usage("no command");
	if (strcmp(cmd, "sync") && strcmp(cmd, "rescan") &&
	    strcmp(cmd, "raw") && strcmp(cmd, "hello-only"))
		die_usage("unknown command %s", cmd);
	if (!connect_to || !ca || !source || !n_disks)
		die_usage("--connect, --ca, --source-id and --disk are needed");
	if (!cert != !key)
		die_usage("--cert and --key go together");
	if (!strcmp(cmd, "raw") && !frame_file)
		die_usage("raw needs --frame-file");
	if (!chunk)
		chunk = strcmp(cmd, "rescan") ? FERRY_WIRE_MAX_DATA : 65536;
	if (chunk % FERRY_WIRE_SECTOR || chunk > FERRY_WIRE_MAX_DATA)
		die_usage("--chunk %" PRIu64 ": a multiple of %u up to %u",
			  chunk, FERRY_WIRE_SECTOR, FERRY_WIRE_MAX_DATA);
	if (!mark_every)
		mark_every = 1;
	signal(SIGPIPE, SIG_IGN);

	s.raw = malloc(FERRY_WIRE_MAX_DATA);
	s.frame_cap = FERRY_WIRE_DATA_HDR_LEN +
		      ferry_codec_bound(s.codec, FERRY_WIRE_MAX_DATA) + 64;
	if (s.frame_cap < FERRY_WIRE_DATA_HDR_LEN + FERRY_WIRE_MAX_DATA)
		s.frame_cap = FERRY_WIRE_DATA_HDR_LEN + FERRY_WIRE_MAX_DATA;
	s.frame = malloc(s.frame_cap);
	c.rbuf = malloc(2 * FERRY_WIRE_MAX_PAYLOAD);
	if (!s.raw || !s.frame || !c.rbuf) {
		perror(PROG ": malloc");
		return 1;
	}
	if (ack_log) {
		c.ack_log = fopen(ack_log, "w");
		if (!c.ack_log) {
			fprintf(stderr, PROG ": %s: %s\n", ack_log,
				strerror(errno));
			return 1;
		}
	}

	t0 = now_s();
	c.fd = tcp_connect(connect_to, host, sizeof(host));
	if (c.fd < 0) {
		set_err(&c, "connect", 0, "cannot connect to %s: %s",
			connect_to, strerror(errno));
		rc = -1;
	} else if (tls_open(&c, host, cert, key, ca) ||
		   handshake(&c, source)) {
		rc = -1;
	} else if (start_file_barrier(&c, ready_file, start_file,
				      &start_at) ||
		   (start_barrier(start_at, &t0), maybe_hold(&c, &s))) {
		rc = -1;
	} else if (!strcmp(cmd, "sync")) {
		rc = cmd_sync(&c, &s, chunk, resume, mark_every);
		if (rc > 0) {
			snprintf(extra, sizeof(extra), ",\"cut\":true");
			rc = 0;
		}
	} else if (!strcmp(cmd, "rescan")) {
		uint64_t differing = 0, total = 0;

		rc = cmd_rescan(&c, &s, chunk, &differing, &total);
		snprintf(extra, sizeof(extra),
			 ",\"chunk\":%" PRIu64 ",\"chunks\":%" PRIu64
			 ",\"chunks_differing\":%" PRIu64,
			 chunk, total, differing);
	} else if (!strcmp(cmd, "raw")) {
		rc = cmd_raw(&c, frame_file, timeout_s);
		snprintf(extra, sizeof(extra), ",\"closed\":%s",
			 c.closed ? "true" : "false");
	} else {
		/* hello-only: leave cleanly. */
		uint8_t buf[64];
		size_t n = ferry_wire_encode_bye(buf, sizeof(buf),
						 c.next_seq);

		if (n)
			send_all(&c, buf, n);
		SSL_shutdown(c.ssl);
	}
	print_result(&c, cmd, now_s() - t0, extra);
	if (c.ack_log)
		fclose(c.ack_log);
	if (c.fd >= 0)
		close(c.fd);
	SSL_free(c.ssl);
	SSL_CTX_free(c.ctx);
	free(c.recs);
	free(c.replies);
	free(c.rbuf);
	free(s.raw);
	free(s.frame);
	for (int i = 0; i < n_disks; i++) {
		close(disks[i].fd);
		free(disks[i].name);
		free(disks[i].path);
		free(disks[i].hashes);
		free(disks[i].have);
	}
	/* raw reports what came back; its ERROR is the expected outcome. */
	if (!strcmp(cmd, "raw") && c.have_welcome)
		return 0;
	return rc || c.err.set ? 1 : 0;
}
