/* SPDX-License-Identifier: GPL-2.0 */
/*
 * server_cert.h - the certificate ferry-control serves over HTTPS: the
 * administrator's (--cert/--key), or the one its CA issues in the data
 * directory.  The issued one is renewed while serving, 30 days before it
 * ends; either is read again on SIGHUP.  New connections get the new
 * certificate, open ones keep theirs (http_set_identity()).
 */
#ifndef FERRY_CONTROL_SERVER_CERT_H
#define FERRY_CONTROL_SERVER_CERT_H

#include <stddef.h>
#include <time.h>

struct ca;
struct control_config;
struct server_cert;

/* Load the certificate CFG names (the CA issues or renews its own
 * first) and make it the one served.  NULL with the reason in ERR. */
struct server_cert *server_cert_open(struct ca *ca,
				     const struct control_config *cfg,
				     char *err, size_t errlen);

/* Each second, from the timer thread: renew the issued certificate once
 * it is due (a failure is logged and tried again an hour later); warn
 * once a day when the administrator's ends within 30 days. */
void server_cert_tick(struct server_cert *sc, time_t now);

/* SIGHUP: read the certificate and key again and serve them; on failure
 * the one served is kept, and the reason logged. */
void server_cert_reload(struct server_cert *sc);

void server_cert_free(struct server_cert *sc);

#endif
