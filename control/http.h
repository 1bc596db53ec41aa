/* SPDX-License-Identifier: GPL-2.0 */
/* http.h - the HTTPS server (libmicrohttpd) in front of request.c. */
#ifndef FERRY_CONTROL_HTTP_H
#define FERRY_CONTROL_HTTP_H

#include <stddef.h>

struct control;
struct http_server;

/* Listen on ADDR:PORT (PORT 0: any free port) with TLS from the PEM
 * strings CERT and KEY, THREADS worker threads.  NULL with a message in
 * ERR on failure. */
struct http_server *http_start(struct control *c, const char *addr,
			       unsigned short port, const char *cert_pem,
			       const char *key_pem, int threads, char *err,
			       size_t errlen);
unsigned short http_port(struct http_server *h);
void http_stop(struct http_server *h);

#endif
