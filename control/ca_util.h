/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ca_util.h - helpers that go with ca.h: identifying the peer of a mutual
 * TLS connection from the certificate ferry-control's CA gave it, and the
 * atomic file writer the CA and `ferry-control certs` share.
 *
 * Implemented in control/ca.c; the replicator links the same code.
 */
#ifndef FERRY_CONTROL_CA_UTIL_H
#define FERRY_CONTROL_CA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/x509.h>

/* URI SAN prefixes of the certificates ca_sign_csr() issues. */
#define CA_URN_SOURCE_SERVER "urn:ferry:source-server:"
#define CA_URN_REPLICATOR    "urn:ferry:replicator:"

/* Longest ID ca_sign_csr() accepts (an X.509 CN holds 64 characters). */
#define CA_ID_MAX 64

/*
 * The source server ID of CERT, a client certificate issued with
 * CA_CLIENT_SOURCE_SERVER: the URI SAN "urn:ferry:source-server:ID", or,
 * for a certificate without any SAN, its subject CN.  A certificate that
 * names a different ferry role (e.g. a replicator) is refused.  The
 * caller must already have verified CERT's chain to our CA.
 * Returns 0 with the NUL-terminated ID in ID[LEN], -1 if CERT carries no
 * valid source server ID or it does not fit.
 */
int ca_peer_source_server(X509 *cert, char *id, size_t len);

/* ID is acceptable as a certificate ID: 1-64 of [A-Za-z0-9._-]. */
bool ca_id_valid(const char *id);

/*
 * Write DATA to PATH through a temporary file in the same directory
 * (created O_EXCL with mode 0600, so never readable by others, then
 * chmod'ed to MODE), fsync'ed, then renamed over PATH, or, if REPLACE is
 * false, linked to PATH only if PATH does not exist yet.
 * Returns 0, 1 if !REPLACE and PATH already existed (nothing written),
 * or -1 with a message in ERR.
 */
int ca_write_file(const char *path, const void *data, size_t len,
		  mode_t mode, bool replace, char *err, size_t errlen);

#endif
