// SPDX-License-Identifier: GPL-2.0
/*
 * link.c - the connection to the replicator (link.h).
 *
 * Sending: frames are encoded into one send buffer and handed to TLS as
 * far as the socket takes them (non-blocking, partial writes); the
 * buffer holds two maximal frames, so a frame can be queued while the
 * previous one is still going out.  Receiving: TLS records are read into
 * a buffer that holds the largest server frame (a HASH_RESP of 64 KiB
 * of hashes) and decoded with lib/wire.c, which checks every field.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "errmsg.h"
#include "link.h"
#include "peer_id.h"
#include "repl_log.h"
#include "tls.h"

#define CONNECT_TIMEOUT_MS 10000
#define WELCOME_TIMEOUT_MS 30000
#define PING_AFTER_MS 15000	/* docs/protocol.md section 9 */
#define DEAD_AFTER_MS 60000
#define FRAME_MAX (FERRY_WIRE_HDR_LEN + FERRY_WIRE_MAX_PAYLOAD)
#define OUT_CAP (2 * FRAME_MAX + 65536)
#define IN_CAP (256 * 1024)
#define CTRL_RESERVE 4096	/* send buffer kept for PING, PONG, BYE */
#define RING_SLACK 64		/* records kept for PING, PONG, BYE */
/* TLS records (16 KiB each) are gathered into writes of this size: one
 * write() per record costs more than the encryption on a busy machine. */
#define WBUF_SIZE (256 * 1024)

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(struct link *l, enum link_fail kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record why the link failed (the first reason wins) and take it down. */
static void fail(struct link *l, enum link_fail kind, const char *fmt, ...)
{
	va_list ap;

	l->up = false;
	if (l->fail != LINK_FAIL_NONE)
		return;
	l->fail = kind;
	va_start(ap, fmt);
	vsnprintf(l->why, sizeof(l->why), fmt, ap);
	va_end(ap);
}

void link_abort(struct link *l, const char *why)
{
	fail(l, LINK_FAIL_NET, "%s", why);
}

int link_init(struct link *l, const struct link_ops *ops, char *err,
	      size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->ops = *ops;
	l->out_cap = OUT_CAP;
	l->in_cap = IN_CAP;
	l->out = malloc(l->out_cap);
	l->in = malloc(l->in_cap);
	if (!l->out || !l->in) {
		set_err(err, errlen, "link: out of memory");
		link_free(l);
		return -1;
	}
	return 0;
}

void link_free(struct link *l)
{
	link_close(l, false, 0);
	free(l->out);
	free(l->in);
	free(l->ring);
	l->out = l->in = NULL;
	l->ring = NULL;
}

/* ---- opening ------------------------------------------------------- */

static bool aborted(const struct link_params *p)
{
	return p->abort && p->abort(p->abort_arg);
}

/* poll FD for EVENTS up to TIMEOUT_MS, in slices so that P->abort is
 * seen.  1 ready, 0 timeout or abort, -1 error. */
static int wait_fd(const struct link_params *p, int fd, short events,
		   int timeout_ms)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;

	for (;;) {
		struct pollfd pf = { .fd = fd, .events = events };
		uint64_t now = mono_ms();
		int rc, slice;

		if (now >= end || aborted(p))
			return 0;
		slice = end - now > 200 ? 200 : (int)(end - now);
		rc = poll(&pf, 1, slice);
		if (rc < 0 && errno != EINTR)
			return -1;
		if (rc > 0)
			return 1;
	}
}

static int tcp_connect(struct link *l, const struct link_params *p)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char port[8];
	int rc, one = 1, last_err = 0;

	snprintf(port, sizeof(port), "%u", p->port);
	rc = getaddrinfo(p->host, port, &hints, &res);
	if (rc) {
		fail(l, LINK_FAIL_NET, "replicator %s: cannot resolve %s: %s",
		     l->peer, p->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
				SOCK_NONBLOCK, ai->ai_protocol);
		socklen_t sl = sizeof(last_err);

		if (fd < 0) {
			last_err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			l->fd = fd;
			break;
		}
		if (errno != EINPROGRESS) {
			last_err = errno;
			close(fd);
			continue;
		}
		rc = wait_fd(p, fd, POLLOUT, CONNECT_TIMEOUT_MS);
		if (rc <= 0) {
			last_err = rc ? errno : ETIMEDOUT;
			close(fd);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &last_err, &sl) ||
		    last_err) {
			close(fd);
			continue;
		}
		l->fd = fd;
		break;
	}
	freeaddrinfo(res);
	if (l->fd < 0) {
		fail(l, LINK_FAIL_NET, "cannot connect to the replicator at "
		     "%s: %s", l->peer, strerror(last_err ? last_err :
						 ECONNREFUSED));
		return -1;
	}
	setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/* Is the error at the head of OpenSSL's queue an alert the peer sent? */
static bool peer_alert(void)
{
	unsigned long e = ERR_peek_error();

	return e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET;
}

/*
 * After the handshake, put a buffer BIO between TLS and the socket for
 * writing: OpenSSL writes each 16 KiB record with its own write(), and
 * flush_out() then pushes them out WBUF_SIZE at a time (BIO_flush).
 * Reading stays on the socket BIO itself.
 */
static int coalesce_writes(struct link *l)
{
	BIO *sock = SSL_get_wbio(l->ssl);
	BIO *buf = BIO_new(BIO_f_buffer());

	if (!buf || !BIO_set_write_buffer_size(buf, WBUF_SIZE) ||
	    !BIO_up_ref(sock)) {
		BIO_free(buf);
		fail(l, LINK_FAIL_NET, "out of memory for the TLS write "
		     "buffer");
		return -1;
	}
	/* The chain holds its own reference to the socket BIO; the SSL
	 * object gives up its wbio reference to take the chain. */
	BIO_push(buf, sock);
	SSL_set0_wbio(l->ssl, buf);
	return 0;
}

/*
 * The certificate names the address we dialled, but an address can
 * outlive its replicator (retired, its address given to another) or be
 * shared (NAT): only its replicator ID says it is the one whose staging
 * area holds this server's volumes.  Checked before HELLO, so nothing
 * reaches another replicator.
 */
static int check_replicator_id(struct link *l, const struct link_params *p)
{
	X509 *cert = SSL_get0_peer_certificate(l->ssl);
	const char *who = p->replicator_assigned ?
			  "which ferry-control assigned to this server" :
			  "which replicator-id in the configuration names";
	char got[FERRY_ID_MAX + 1], fix[AGENT_MSG_MAX];

	if (!p->replicator_id)
		return 0;
	if (p->replicator_assigned)
		snprintf(fix, sizeof(fix), "check which replicator serves %s "
			 "and the address ferry-control has for %s (a "
			 "replicator registers its address when it starts)",
			 l->peer, p->replicator_id);
	else
		snprintf(fix, sizeof(fix), "check replicator and "
			 "replicator-id in the configuration");
	if (!cert || ferry_peer_replicator(cert, got, sizeof(got))) {
		fail(l, LINK_FAIL_REFUSED, "replicator %s: its certificate "
		     "names no replicator ID (URI SAN " FERRY_URN_REPLICATOR
		     "ID), so it cannot be %s, %s: refused; %s", l->peer,
		     p->replicator_id, who, fix);
		return -1;
	}
	if (strcmp(got, p->replicator_id)) {
		fail(l, LINK_FAIL_REFUSED, "replicator %s is replicator %s "
		     "by its certificate, not %s, %s: refused, so that the "
		     "disks do not go into another staging area; %s",
		     l->peer, got, p->replicator_id, who, fix);
		return -1;
	}
	return 0;
}

static int tls_connect(struct link *l, const struct link_params *p)
{
	char e[512];
	int rc;

	l->ctx = ferry_tls_ctx(FERRY_TLS_CLIENT, p->cert, p->key, p->ca, e,
			       sizeof(e));
	if (!l->ctx) {
		fail(l, LINK_FAIL_REFUSED, "data-plane TLS: %s", e);
		return -1;
	}
	l->ssl = SSL_new(l->ctx);
	if (!l->ssl) {
		ferry_tls_errstr(e, sizeof(e));
		fail(l, LINK_FAIL_NET, "SSL_new: %s", e);
		return -1;
	}
	if (ferry_tls_set_peer_host(l->ssl, p->host, e, sizeof(e))) {
		fail(l, LINK_FAIL_REFUSED, "replicator %s: %s", l->peer, e);
		return -1;
	}
	SSL_set_fd(l->ssl, l->fd);
	SSL_set_mode(l->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
			     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	for (;;) {
		short ev;

		ERR_clear_error();
		rc = SSL_connect(l->ssl);
		if (rc == 1)
			return check_replicator_id(l, p) ? -1 :
			       coalesce_writes(l);
		switch (SSL_get_error(l->ssl, rc)) {
		case SSL_ERROR_WANT_READ:
			ev = POLLIN;
			break;
		case SSL_ERROR_WANT_WRITE:
			ev = POLLOUT;
			break;
		default: {
			long vr = SSL_get_verify_result(l->ssl);
			bool alert = peer_alert();

			ferry_tls_describe_error(l->ssl, rc, e, sizeof(e));
			if (vr != X509_V_OK)
				fail(l, LINK_FAIL_REFUSED,
				     "replicator %s: its certificate is not "
				     "accepted: %s (check the CA file and "
				     "that the certificate names %s)",
				     l->peer, e, p->host);
			else if (alert)
				fail(l, LINK_FAIL_REFUSED,
				     "replicator %s refused the TLS session: "
				     "%s (is our certificate %s from its CA?)",
				     l->peer, e, p->cert);
			else
				fail(l, LINK_FAIL_NET,
				     "TLS handshake with the replicator at "
				     "%s: %s", l->peer, e);
			return -1;
		}
		}
		rc = wait_fd(p, l->fd, ev, CONNECT_TIMEOUT_MS);
		if (rc <= 0) {
			fail(l, LINK_FAIL_NET,
			     "TLS handshake with the replicator at %s: %s",
			     l->peer, rc ? strerror(errno) :
			     (aborted(p) ? "stopping" : "timed out"));
			return -1;
		}
	}
}

/* ---- the send buffer ------------------------------------------------ */

/* Room for LEN more bytes at the tail, moving what is queued to the
 * front if needed (TLS accepts a moved buffer on retry). */
static uint8_t *out_room(struct link *l, size_t len)
{
	if (l->out_head == l->out_tail)
		l->out_head = l->out_tail = 0;
	if (l->out_cap - l->out_tail < len && l->out_head) {
		memmove(l->out, l->out + l->out_head,
			l->out_tail - l->out_head);
		l->out_tail -= l->out_head;
		l->out_head = 0;
	}
	if (l->out_cap - l->out_tail < len)
		return NULL;
	return l->out + l->out_tail;
}

static bool ring_room(const struct link *l, uint32_t extra)
{
	return l->ring && l->next_seq - l->acked + extra < l->ring_cap;
}

/* Account a frame of LEN bytes just written at the tail as client frame
 * number next_seq. */
static void record(struct link *l, const struct link_rec *r, uint8_t type,
		   size_t len)
{
	uint64_t seq = l->next_seq++;
	struct link_rec *rec = &l->ring[seq % l->ring_cap];

	*rec = *r;
	rec->seq = seq;
	rec->type = type;
	rec->bytes = (uint32_t)(len - FERRY_WIRE_HDR_LEN);
	l->unacked_bytes += rec->bytes;
	l->out_tail += len;
	l->frames_sent++;
	l->payload_sent += rec->bytes;
}

bool link_can_send(const struct link *l, uint32_t payload)
{
	size_t queued = l->out_tail - l->out_head;

	if (!l->up)
		return false;
	/* After sending, seq - acked <= window (section 6). */
	if (l->next_seq - l->acked > l->welcome.window)
		return false;
	if (l->next_seq - 1 > l->acked &&
	    l->unacked_bytes + payload > l->welcome.window_bytes)
		return false;
	if (!ring_room(l, RING_SLACK / 2))
		return false;
	return l->out_cap - queued >=
	       FERRY_WIRE_HDR_LEN + (size_t)payload + CTRL_RESERVE;
}

static int put_frame(struct link *l, const struct link_rec *r, uint8_t type,
		     const uint8_t *frame, size_t len)
{
	uint8_t *p;

	if (!len) {
		fail(l, LINK_FAIL_NET, "cannot encode a %s frame (disk %u, "
		     "offset %" PRIu64 ", length %" PRIu64 ")",
		     ferry_wire_type_name(type), r->disk, r->off, r->len);
		return -1;
	}
	p = out_room(l, len);
	if (!p || !ring_room(l, 0)) {
		fail(l, LINK_FAIL_NET, "send buffer full (a bug: %s queued "
		     "without checking link_can_send)",
		     ferry_wire_type_name(type));
		return -1;
	}
	memcpy(p, frame, len);
	record(l, r, type, len);
	return 0;
}

int link_send_data(struct link *l, const struct link_rec *r, uint8_t codec,
		   uint64_t xxh3, const void *payload, uint32_t payload_len)
{
	struct ferry_data d = {
		.disk = r->disk, .codec = codec, .raw_len = (uint32_t)r->len,
		.offset = r->off, .xxh3 = xxh3, .payload = payload,
		.payload_len = payload_len,
	};
	size_t len = FERRY_WIRE_DATA_HDR_LEN + payload_len;
	uint8_t *p = out_room(l, len);
	size_t n;

	if (!p || !ring_room(l, 0)) {
		fail(l, LINK_FAIL_NET, "send buffer full (a bug: DATA queued "
		     "without checking link_can_send)");
		return -1;
	}
	n = ferry_wire_encode_data_hdr(p, FERRY_WIRE_DATA_HDR_LEN,
				       l->next_seq, &d);
	if (n != FERRY_WIRE_DATA_HDR_LEN) {
		fail(l, LINK_FAIL_NET, "cannot encode DATA for disk %u at "
		     "%" PRIu64 " (%" PRIu64 " bytes, codec %u, %u encoded)",
		     r->disk, r->off, r->len, codec, payload_len);
		return -1;
	}
	memcpy(p + n, payload, payload_len);
	record(l, r, FERRY_F_DATA, len);
	return 0;
}

int link_send_zero(struct link *l, const struct link_rec *r)
{
	struct ferry_zero z = { .disk = r->disk, .offset = r->off,
				.length = r->len };
	uint8_t buf[64];

	return put_frame(l, r, FERRY_F_ZERO, buf,
			 ferry_wire_encode_zero(buf, sizeof(buf), l->next_seq,
						&z));
}

int link_send_sync_mark(struct link *l, const struct link_rec *r)
{
	struct ferry_sync_mark m = { .disk = r->disk, .offset = r->off };
	uint8_t buf[64];

	return put_frame(l, r, FERRY_F_SYNC_MARK, buf,
			 ferry_wire_encode_sync_mark(buf, sizeof(buf),
						     l->next_seq, &m));
}

int link_send_hash_req(struct link *l, const struct link_rec *r,
		       uint32_t chunk)
{
	struct ferry_hash_req h = { .disk = r->disk, .chunk = chunk,
				    .offset = r->off, .length = r->len };
	uint8_t buf[64];

	return put_frame(l, r, FERRY_F_HASH_REQ, buf,
			 ferry_wire_encode_hash_req(buf, sizeof(buf),
						    l->next_seq, &h));
}

int link_send_cp(struct link *l, const struct link_rec *r, uint64_t cp_id,
		 uint64_t time_ms)
{
	struct ferry_cp cp = { .cp_id = cp_id, .time_ms = time_ms };
	struct link_rec rec = *r;
	uint8_t buf[64];

	rec.cp_id = cp_id;
	return put_frame(l, &rec, FERRY_F_CP, buf,
			 ferry_wire_encode_cp(buf, sizeof(buf), l->next_seq,
					      &cp));
}

/* PING, PONG, BYE: always allowed (section 6), from the reserve. */
static int send_ctrl(struct link *l, uint8_t type, uint64_t nonce)
{
	struct link_rec r = { 0 };
	uint8_t buf[64];
	size_t n;

	if (!ring_room(l, 0) || !out_room(l, 64))
		return 1;	/* later */
	if (type == FERRY_F_BYE)
		n = ferry_wire_encode_bye(buf, sizeof(buf), l->next_seq);
	else
		n = ferry_wire_encode_ping(buf, sizeof(buf), type,
					   l->next_seq, nonce);
	return put_frame(l, &r, type, buf, n);
}

/* ---- receiving ------------------------------------------------------ */

static void on_ack(struct link *l, uint64_t seq)
{
	if (seq >= l->next_seq || seq < l->acked) {
		fail(l, LINK_FAIL_NET, "replicator %s: ACK %" PRIu64 " outside "
		     "the frames in flight (%" PRIu64 " to %" PRIu64 ")",
		     l->peer, seq, l->acked, l->next_seq - 1);
		return;
	}
	while (l->acked < seq) {
		const struct link_rec *r;

		l->acked++;
		r = &l->ring[l->acked % l->ring_cap];
		l->unacked_bytes -= r->bytes;
		if (l->ops.acked)
			l->ops.acked(l->ops.arg, r);
	}
}

static void on_error(struct link *l, const struct ferry_msg *m)
{
	uint32_t code = m->u.error.code;
	bool fatal = m->hdr.flags & FERRY_ERR_FATAL;
	enum link_fail kind = LINK_FAIL_NET;

	repl_log("replicator %s: ERROR %s%s (seq %" PRIu64 "): %.*s",
		 l->peer, ferry_wire_error_name(code),
		 fatal ? ", fatal" : "", m->hdr.seq,
		 (int)m->u.error.message.len, m->u.error.message.s);
	if (!fatal)
		return;
	switch (code) {
	case FERRY_E_DENIED:
	case FERRY_E_UNKNOWN_DISK:
	case FERRY_E_RANGE:
	case FERRY_E_VERSION:
		kind = LINK_FAIL_REFUSED;
		break;
	case FERRY_E_NOSPC:
		kind = LINK_FAIL_NOSPC;
		break;
	}
	if (l->fail == LINK_FAIL_NONE)
		l->fail_code = code;
	fail(l, kind, "replicator %s: %s: %.*s", l->peer,
	     ferry_wire_error_name(code), (int)m->u.error.message.len,
	     m->u.error.message.s);
}

static bool welcome_ok(struct link *l, const struct link_params *p)
{
	const struct ferry_welcome *w = &l->welcome;

	if (w->n_disks != p->n_disks) {
		fail(l, LINK_FAIL_NET, "replicator %s: WELCOME has %u disks, "
		     "HELLO had %u", l->peer, w->n_disks, p->n_disks);
		return false;
	}
	for (unsigned int i = 0; i < p->n_disks; i++)
		if (w->disks[i].size != p->disks[i].size) {
			fail(l, LINK_FAIL_NET, "replicator %s: WELCOME gives "
			     "%s a size of %" PRIu64 ", HELLO said %" PRIu64,
			     l->peer, p->disks[i].name, w->disks[i].size,
			     p->disks[i].size);
			return false;
		}
	return true;
}

static void dispatch(struct link *l, const struct ferry_msg *m)
{
	switch (m->hdr.type) {
	case FERRY_F_WELCOME:
		if (l->up || l->next_seq != 2) {
			fail(l, LINK_FAIL_NET, "replicator %s: unexpected "
			     "WELCOME", l->peer);
			return;
		}
		l->welcome = m->u.welcome;
		l->up = true;
		l->acked = 1;	/* WELCOME answers HELLO */
		return;
	case FERRY_F_ACK:
		if (l->up)
			on_ack(l, m->hdr.seq);
		return;
	case FERRY_F_HASH_RESP:
		if (l->up && l->ops.hash_resp)
			l->ops.hash_resp(l->ops.arg, m->hdr.seq,
					 &m->u.hash_resp);
		return;
	case FERRY_F_PING:
		l->pong_due = true;
		l->pong_nonce = m->u.nonce;
		return;
	case FERRY_F_PONG:
		return;
	case FERRY_F_ERROR:
		on_error(l, m);
		return;
	case FERRY_F_BYE:
		fail(l, LINK_FAIL_NET, "replicator %s closed the connection "
		     "(BYE: it is shutting down)", l->peer);
		return;
	default:
		fail(l, LINK_FAIL_NET, "replicator %s sent a %s frame, which "
		     "only a client sends", l->peer,
		     ferry_wire_type_name(m->hdr.type));
	}
}

static void parse(struct link *l)
{
	size_t off = 0;
	char e[256];

	while (l->fail == LINK_FAIL_NONE &&
	       l->in_len - off >= FERRY_WIRE_HDR_LEN) {
		static __thread struct ferry_msg m;
		struct ferry_hdr h;

		if (ferry_wire_decode_hdr(l->in + off, &h, e, sizeof(e))) {
			fail(l, LINK_FAIL_NET, "replicator %s: bad frame: %s",
			     l->peer, e);
			break;
		}
		if (FERRY_WIRE_HDR_LEN + (size_t)h.len > l->in_cap) {
			fail(l, LINK_FAIL_NET, "replicator %s sent a %s frame "
			     "of %u bytes, more than a server frame can be",
			     l->peer, ferry_wire_type_name(h.type), h.len);
			break;
		}
		if (l->in_len - off < FERRY_WIRE_HDR_LEN + h.len)
			break;
		if (ferry_wire_decode(&h, l->in + off + FERRY_WIRE_HDR_LEN, &m,
				      e, sizeof(e))) {
			fail(l, LINK_FAIL_NET, "replicator %s: bad %s frame: "
			     "%s", l->peer, ferry_wire_type_name(h.type), e);
			break;
		}
		m.hdr = h;
		off += FERRY_WIRE_HDR_LEN + h.len;
		dispatch(l, &m);
	}
	memmove(l->in, l->in + off, l->in_len - off);
	l->in_len -= off;
}

static void io_fail(struct link *l, int rc, const char *what)
{
	bool alert = peer_alert();
	bool before_welcome = l->next_seq == 2 && !l->acked;
	char e[512];

	ferry_tls_describe_error(l->ssl, rc, e, sizeof(e));
	if (alert && before_welcome)
		fail(l, LINK_FAIL_REFUSED, "replicator %s refused the TLS "
		     "session: %s (is our certificate from its CA, and "
		     "issued for this source server?)", l->peer, e);
	else
		fail(l, LINK_FAIL_NET, "%s the replicator at %s: %s", what,
		     l->peer, e);
}

static int read_in(struct link *l);
static int flush_records(struct link *l);

/* Push what the buffer BIO holds to the socket.  0 (done, or the
 * socket is full: POLLOUT), or -1 with the link failed. */
static int flush_wbio(struct link *l)
{
	BIO *w = SSL_get_wbio(l->ssl);
	int e;

	if (!BIO_wpending(w))
		return 0;
	errno = 0;
	if (BIO_flush(w) > 0 || BIO_should_retry(w))
		return 0;
	e = errno ? errno : EPIPE;
	read_in(l);	/* an ERROR that came says more (flush_records) */
	fail(l, LINK_FAIL_NET, "sending to the replicator at %s: %s", l->peer,
	     strerror(e));
	return -1;
}

static int flush_out(struct link *l)
{
	int rc;

	l->write_wants_read = false;
	rc = flush_records(l);
	if (flush_wbio(l))
		return -1;
	return rc;
}

static int flush_records(struct link *l)
{
	while (l->out_head < l->out_tail) {
		size_t len = l->out_tail - l->out_head;
		int n;

		ERR_clear_error();
		n = SSL_write(l->ssl, l->out + l->out_head,
			      len > (1u << 30) ? 1 << 30 : (int)len);
		if (n > 0) {
			l->out_head += (size_t)n;
			continue;
		}
		switch (SSL_get_error(l->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
			return 0;
		case SSL_ERROR_WANT_READ:
			l->write_wants_read = true;
			return 0;
		default:
			/* A replicator that refuses a frame sends ERROR and
			 * closes; our next write then fails (EPIPE, RST).
			 * Its ERROR may still wait in the socket, and it
			 * says why far better than "broken pipe". */
			ERR_clear_error();
			read_in(l);
			io_fail(l, n, "sending to");
			return -1;
		}
	}
	return 0;
}

static int read_in(struct link *l)
{
	for (;;) {
		int n;

		ERR_clear_error();
		n = SSL_read(l->ssl, l->in + l->in_len,
			     (int)(l->in_cap - l->in_len));
		if (n > 0) {
			l->in_len += (size_t)n;
			l->last_rx_ms = mono_ms();
			parse(l);
			if (l->fail != LINK_FAIL_NONE)
				return -1;
			continue;
		}
		switch (SSL_get_error(l->ssl, n)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			fail(l, LINK_FAIL_NET, "the replicator at %s closed "
			     "the connection", l->peer);
			return -1;
		default:
			io_fail(l, n, "receiving from");
			return -1;
		}
	}
}

static int pump(struct link *l)
{
	if (!l->ssl || l->fail != LINK_FAIL_NONE)
		return -1;
	/* Read first: an ERROR that came says more than a failed write. */
	if (read_in(l) || flush_out(l))
		return -1;
	if (l->pong_due && l->up && send_ctrl(l, FERRY_F_PONG,
					      l->pong_nonce) == 0)
		l->pong_due = false;
	if (flush_out(l))
		return -1;
	return l->fail == LINK_FAIL_NONE ? 0 : -1;
}

int link_pump(struct link *l)
{
	if (pump(l))
		return -1;
	return l->up ? 0 : -1;
}

short link_poll_events(const struct link *l)
{
	short ev = POLLIN;

	if ((l->out_head < l->out_tail && !l->write_wants_read) ||
	    (l->ssl && BIO_wpending(SSL_get_wbio(l->ssl))))
		ev |= POLLOUT;
	return ev;
}

int link_open(struct link *l, const struct link_params *p)
{
	static __thread struct ferry_hello h;
	uint8_t buf[16384];
	uint64_t end;
	size_t n;

	link_close(l, false, 0);
	l->fail = LINK_FAIL_NONE;
	l->fail_code = 0;
	l->why[0] = 0;
	snprintf(l->peer, sizeof(l->peer), "%s:%u", p->host, p->port);
	if (tcp_connect(l, p) || tls_connect(l, p))
		return -1;

	memset(&h, 0, sizeof(h));
	h.min_version = FERRY_WIRE_MIN_VERSION;
	h.max_version = FERRY_WIRE_VERSION;
	h.agent_version.s = p->agent_version;
	h.agent_version.len = (uint16_t)strlen(p->agent_version);
	h.source_server_id.s = p->source_id;
	h.source_server_id.len = (uint16_t)strlen(p->source_id);
	h.n_disks = (uint16_t)p->n_disks;
	for (unsigned int i = 0; i < p->n_disks; i++) {
		h.disks[i].name.s = p->disks[i].name;
		h.disks[i].name.len = (uint16_t)strlen(p->disks[i].name);
		h.disks[i].size = p->disks[i].size;
		h.disks[i].block_size = p->disks[i].block_size;
	}
	n = ferry_wire_encode_hello(buf, sizeof(buf), 1, &h);
	if (!n) {
		fail(l, LINK_FAIL_REFUSED, "cannot encode HELLO: a disk name "
		     "or the source server ID (%s) breaks the protocol's "
		     "limits (1-128 bytes of printable UTF-8, at most %d "
		     "disks)", p->source_id, FERRY_WIRE_MAX_DISKS);
		return -1;
	}
	/* HELLO is answered by WELCOME, not ACK: no ring slot needed. */
	memcpy(out_room(l, n), buf, n);
	l->out_tail += n;
	l->next_seq = 2;
	l->acked = 0;
	l->last_rx_ms = mono_ms();
	end = l->last_rx_ms + WELCOME_TIMEOUT_MS;
	while (!l->up) {
		struct pollfd pf = { .fd = l->fd };
		uint64_t now = mono_ms();

		if (pump(l))
			return -1;
		if (l->up)
			break;
		if (now >= end || aborted(p)) {
			fail(l, LINK_FAIL_NET, "replicator %s: no WELCOME "
			     "within %d s of HELLO", l->peer,
			     WELCOME_TIMEOUT_MS / 1000);
			return -1;
		}
		if (SSL_pending(l->ssl))
			continue;
		pf.events = link_poll_events(l);
		poll(&pf, 1, 200);
	}
	if (!welcome_ok(l, p))
		return -1;
	l->unacked_bytes = 0;
	if (!l->ring || l->ring_cap < l->welcome.window + RING_SLACK) {
		uint32_t cap = 256;

		while (cap < l->welcome.window + RING_SLACK)
			cap *= 2;
		free(l->ring);
		l->ring = calloc(cap, sizeof(*l->ring));
		if (!l->ring) {
			fail(l, LINK_FAIL_NET, "out of memory for %u frame "
			     "records", cap);
			return -1;
		}
		l->ring_cap = cap;
	}
	l->last_ping_ms = mono_ms();
	l->frames_sent = l->payload_sent = 0;
	return 0;
}

/* MS since T, 0 if T is later than NOW (the caller's clock was read
 * before the event at T). */
static uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

int link_tick(struct link *l, uint64_t now_ms)
{
	uint64_t quiet;

	if (!l->up)
		return -1;
	quiet = since(now_ms, l->last_rx_ms);
	if (quiet >= DEAD_AFTER_MS) {
		fail(l, LINK_FAIL_NET, "nothing from the replicator at %s for "
		     "%d s", l->peer, DEAD_AFTER_MS / 1000);
		return -1;
	}
	if (quiet >= PING_AFTER_MS &&
	    since(now_ms, l->last_ping_ms) >= PING_AFTER_MS) {
		if (send_ctrl(l, FERRY_F_PING, now_ms) == 0)
			l->last_ping_ms = now_ms;
		return link_pump(l);
	}
	return 0;
}

void link_foreach_unacked(const struct link *l,
			  void (*fn)(void *arg, const struct link_rec *r),
			  void *arg)
{
	if (!l->ring)
		return;
	for (uint64_t s = l->acked + 1; s < l->next_seq; s++)
		if (s >= 2)
			fn(arg, &l->ring[s % l->ring_cap]);
}

void link_close(struct link *l, bool graceful, int timeout_ms)
{
	if (graceful && l->up && send_ctrl(l, FERRY_F_BYE, 0) == 0) {
		uint64_t bye = l->next_seq - 1;
		uint64_t end = mono_ms() + (uint64_t)timeout_ms;

		/* The replicator commits, ACKs up to our BYE, answers BYE
		 * (taken as "down" by dispatch) and closes. */
		while (l->acked < bye && mono_ms() < end) {
			struct pollfd pf = { .fd = l->fd };

			if (pump(l))
				break;
			if (SSL_pending(l->ssl))
				continue;
			pf.events = link_poll_events(l);
			poll(&pf, 1, 100);
		}
	}
	if (l->ssl) {
		if (l->fail == LINK_FAIL_NONE || graceful) {
			SSL_shutdown(l->ssl);
			/* close_notify may sit in the write buffer. */
			(void)BIO_flush(SSL_get_wbio(l->ssl));
		}
		SSL_free(l->ssl);
		l->ssl = NULL;
	}
	SSL_CTX_free(l->ctx);
	l->ctx = NULL;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (l->ring && l->ops.lost)
		for (uint64_t s = l->acked + 1; s < l->next_seq; s++)
			if (s >= 2)
				l->ops.lost(l->ops.arg,
					    &l->ring[s % l->ring_cap]);
	l->up = false;
	l->next_seq = 0;
	l->acked = 0;
	l->unacked_bytes = 0;
	l->out_head = l->out_tail = 0;
	l->in_len = 0;
	l->pong_due = false;
	l->write_wants_read = false;
}
