/* SPDX-License-Identifier: GPL-2.0 */
/* http.h - the HTTPS server (libmicrohttpd) in front of request.c. */
#ifndef FERRY_CONTROL_HTTP_H
#define FERRY_CONTROL_HTTP_H

#include <stddef.h>

struct control;
struct http_server;

/*
 * Serve the PEM certificate (a chain, leaf first) CERT and its private
 * key KEY in the TLS handshakes that start from now on; connections
 * already open keep the certificate they got.  Process-wide, and needed
 * before http_start().  0, or -1 with the reason in ERR (unreadable, or
 * the key is not the certificate's); the identity served is then kept.
 */
int http_set_identity(const char *cert_pem, const char *key_pem, char *err,
		      size_t errlen);

/* Listen on ADDR:PORT (PORT 0: any free port) with TLS, THREADS worker
 * threads.  NULL with a message in ERR on failure. */
struct http_server *http_start(struct control *c, const char *addr,
			       unsigned short port, int threads, char *err,
			       size_t errlen);
unsigned short http_port(struct http_server *h);
/* Stop H (may be NULL) and forget every identity set. */
void http_stop(struct http_server *h);

#endif
