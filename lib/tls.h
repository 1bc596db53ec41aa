/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tls.h - OpenSSL contexts for the agent <-> replicator link: TLS 1.3
 * only, mutual certificates issued by ferry-control's CA.
 *
 * The server context requires a client certificate that chains to the CA
 * (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT); the client context
 * verifies the server's chain and, with ferry_tls_set_peer_host(), its
 * name.  Errors are returned as sentences naming the file at fault and
 * OpenSSL's reason; no key material is ever put in them.
 */
#ifndef FERRY_LIB_TLS_H
#define FERRY_LIB_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

enum ferry_tls_role {
	FERRY_TLS_SERVER,	/* the replicator */
	FERRY_TLS_CLIENT,	/* the agent, the test client */
};

/*
 * A context for ROLE presenting CERT_FILE (PEM, leaf first, chain may
 * follow) with KEY_FILE (PEM private key, must match) and trusting only
 * the certificates in CA_FILE (PEM).  NULL with a message in ERR.
 */
SSL_CTX *ferry_tls_ctx(enum ferry_tls_role role, const char *cert_file,
		       const char *key_file, const char *ca_file, char *err,
		       size_t errlen);

/*
 * Client side, before SSL_connect(): the server must be HOST, a DNS name
 * (also sent as SNI) or an IP address literal, as in the server
 * certificate's subjectAltName.  0, or -1 with a message in ERR.
 */
int ferry_tls_set_peer_host(SSL *ssl, const char *host, char *err,
			    size_t errlen);

/*
 * Why the SSL_accept()/SSL_connect()/SSL_read()/SSL_write() that
 * returned RET failed, as a sentence in BUF: OpenSSL's reason, the
 * certificate verification error and the refused certificate's subject
 * if there was one, or the socket error.  Clears OpenSSL's error queue.
 */
void ferry_tls_describe_error(SSL *ssl, int ret, char *buf, size_t len);

/* OpenSSL's queued errors as "reason; reason", then the queue cleared;
 * "no further detail" if it was empty. */
void ferry_tls_errstr(char *buf, size_t len);

#endif
