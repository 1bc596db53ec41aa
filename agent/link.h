/* SPDX-License-Identifier: GPL-2.0 */
/*
 * link.h - the agent's connection to its replicator (docs/protocol.md):
 * TCP, TLS 1.3 with the data-plane certificate and a check of the
 * replicator's name and ID, HELLO/WELCOME, then pipelined client frames
 * within the server's window, cumulative ACKs, HASH_RESP, keepalive and
 * ERROR.
 *
 * Every client frame is recorded (struct link_rec) until an ACK covers
 * it; the engine learns through link_ops which frames became durable
 * (acked) and, when the connection ends, which never did (lost), so that
 * it can send their ranges again on the next connection.  The link never
 * blocks once open: link_pump() moves whatever the socket accepts or
 * holds, and poll() on link_fd() with link_poll_events() says when to
 * call it again.
 */
#ifndef FERRY_AGENT_LINK_H
#define FERRY_AGENT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "agent.h"
#include "wire.h"

/* Why a connection could not be opened or ended. */
enum link_fail {
	LINK_FAIL_NONE,
	LINK_FAIL_NET,		/* network, replicator restart, BUSY, IO,
				 * CORRUPT, PROTOCOL: retry with back-off */
	LINK_FAIL_NOSPC,	/* staging storage full: retry later */
	LINK_FAIL_REFUSED,	/* certificate, DENIED, UNKNOWN_DISK, RANGE,
				 * VERSION: needs a person or a new config */
};

/* One client frame, kept until acknowledged. */
struct link_rec {
	uint64_t seq;
	uint8_t type;		/* FERRY_F_* */
	uint8_t kind;		/* the engine's (copy, dirty, rescan) */
	uint32_t disk;
	uint64_t off, len;	/* DATA, ZERO: the range; SYNC_MARK: off */
	uint32_t bytes;		/* payload bytes, for window_bytes */
	uint64_t epoch_ms;	/* the engine's: when the change was found */
	uint64_t cp_id;		/* CP */
};

struct link_ops {
	void (*acked)(void *arg, const struct link_rec *r);
	void (*lost)(void *arg, const struct link_rec *r);
	/* SEQ: that of the HASH_REQ it answers. */
	void (*hash_resp)(void *arg, uint64_t seq,
			  const struct ferry_hash_resp *h);
	void *arg;
};

struct link_disk {
	const char *name;
	uint64_t size;
	uint32_t block_size;
};

struct link_params {
	const char *host;	/* the replicator's name or address */
	uint16_t port;
	/* The replicator ID its certificate must name, NULL: any of the
	 * CA's; assigned: by ferry-control, else from the configuration
	 * (what the error tells to check). */
	const char *replicator_id;
	bool replicator_assigned;
	const char *cert, *key, *ca;	/* our certificate, the CA */
	const char *source_id;
	const char *agent_version;
	unsigned int n_disks;
	const struct link_disk *disks;
	/* Polled while opening: true gives up (the agent is stopping). */
	bool (*abort)(void *arg);
	void *abort_arg;
};

struct link {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	bool up;		/* WELCOME received and not closed since */
	char peer[AGENT_HOST_MAX + 8];	/* "host:port" */
	struct ferry_welcome welcome;
	uint64_t next_seq;	/* of the next client frame */
	uint64_t acked;		/* highest seq acknowledged */
	uint64_t unacked_bytes;	/* payload bytes not acknowledged */
	struct link_rec *ring;	/* records, indexed by seq % ring_cap */
	uint32_t ring_cap;
	uint8_t *out;		/* frames not yet taken by TLS */
	size_t out_cap, out_head, out_tail;
	bool write_wants_read;	/* TLS needs input to go on writing */
	uint8_t *in;		/* bytes received, not yet a whole frame */
	size_t in_cap, in_len;
	uint64_t last_rx_ms, last_ping_ms;
	bool pong_due;
	uint64_t pong_nonce;
	enum link_fail fail;
	uint32_t fail_code;	/* the replicator's ERROR code, 0 none */
	char why[AGENT_MSG_MAX];
	struct link_ops ops;
	/* This connection's counters. */
	uint64_t frames_sent, payload_sent;
};

/* Buffers, once.  0, or -1 with a reason in ERR. */
int link_init(struct link *l, const struct link_ops *ops, char *err,
	      size_t errlen);
void link_free(struct link *l);

/*
 * Connect, handshake, HELLO, wait for WELCOME (checked against HELLO's
 * disks).  Blocking, bounded by timeouts and P->abort.  0 with l->up and
 * l->welcome set, or -1 with l->fail and l->why.
 */
int link_open(struct link *l, const struct link_params *p);

/*
 * End the connection.  GRACEFUL: send what is queued, BYE, and wait up
 * to TIMEOUT_MS for the ACKs of everything and the replicator's BYE.
 * Then every frame still unacknowledged is handed to ops.lost, in seq
 * order, and the link is down.
 */
void link_close(struct link *l, bool graceful, int timeout_ms);

/* The replicator broke the protocol in a way the link cannot see (an
 * answer that does not fit the question): take the link down as a
 * network failure, with WHY, so the engine starts over from what was
 * acknowledged. */
void link_abort(struct link *l, const char *why);

/* Could a frame of PAYLOAD bytes of the windowed kinds (DATA, ZERO,
 * HASH_REQ, SYNC_MARK, CP) go now (window and send buffer)? */
bool link_can_send(const struct link *l, uint32_t payload);

/*
 * Queue client frames (the caller checked link_can_send()).  R gives
 * kind, disk, range and epoch for the record; seq, type and bytes are
 * filled in.  DATA's PAYLOAD is already encoded with CODEC (raw: the
 * bytes themselves); XXH3 is that of the decoded bytes.  0, or -1 if the
 * frame could not be encoded (a bug: l->why says which).
 */
int link_send_data(struct link *l, const struct link_rec *r, uint8_t codec,
		   uint64_t xxh3, const void *payload, uint32_t payload_len);
int link_send_zero(struct link *l, const struct link_rec *r);
int link_send_sync_mark(struct link *l, const struct link_rec *r);
int link_send_hash_req(struct link *l, const struct link_rec *r,
		       uint32_t chunk);
int link_send_cp(struct link *l, const struct link_rec *r, uint64_t cp_id,
		 uint64_t time_ms);

/* Move data both ways as far as the socket allows, dispatch what came
 * (ops), answer PINGs.  Returns 0, or -1 once the link is down (l->fail
 * and l->why say why; call link_close() to release it). */
int link_pump(struct link *l);

/* Keepalive: PING after 15 s of silence, down after 60 s.  -1 if down. */
int link_tick(struct link *l, uint64_t now_ms);

static inline int link_fd(const struct link *l)
{
	return l->fd;
}

/* poll() events to wait for. */
short link_poll_events(const struct link *l);

/* Bytes queued in the send buffer. */
static inline size_t link_queued(const struct link *l)
{
	return l->out_tail - l->out_head;
}

/* Unacknowledged client frames. */
static inline uint64_t link_unacked(const struct link *l)
{
	return l->next_seq ? l->next_seq - 1 - l->acked : 0;
}

/* Call FN on every unacknowledged record, in seq order. */
void link_foreach_unacked(const struct link *l,
			  void (*fn)(void *arg, const struct link_rec *r),
			  void *arg);

#endif
