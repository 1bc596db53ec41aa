/* SPDX-License-Identifier: GPL-2.0 */
/*
 * conn.h - one agent connection: TLS handshake, HELLO/WELCOME, then the
 * data path (apply frames in order, group commit, cumulative ACKs).  Each
 * connection runs in a thread of its own (docs/replicator.md says why).
 */
#ifndef FERRY_REPLICATOR_CONN_H
#define FERRY_REPLICATOR_CONN_H

#include <pthread.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "config.h"

/* Flow control offered in WELCOME. */
#define REP_WINDOW_FRAMES 256
#define REP_WINDOW_BYTES (64ull << 20)
/* Group commit: flush when the input is drained, or after this many
 * bytes or milliseconds of unflushed writes, or frames not acknowledged
 * (a quarter of the window, so the agent keeps sending while we flush). */
#define REP_COMMIT_BYTES (16ull << 20)
#define REP_COMMIT_FRAMES (REP_WINDOW_FRAMES / 4)
#define REP_COMMIT_MS 20

struct rep_server {
	const struct rep_config *cfg;
	SSL_CTX *ctx;		/* under lock: a renewal replaces it */
	int stop_fd;		/* readable (EOF) once shutting down */
	pthread_mutex_t lock;
	pthread_cond_t idle;	/* signalled when active drops */
	unsigned int active;	/* connection threads running */
};

/* SRV's TLS context, referenced (SSL_CTX_free it), or NULL. */
SSL_CTX *rep_server_ctx(struct rep_server *srv);

/* Serve new connections with CTX (taken) instead; open ones keep the
 * context they started with. */
void rep_server_set_ctx(struct rep_server *srv, SSL_CTX *ctx);

/* Serve the accepted socket FD from ADDR until it closes; takes FD.
 * Runs in its own thread; decrements SRV->active when done. */
void conn_serve(struct rep_server *srv, int fd,
		const struct sockaddr_storage *addr);

#endif
