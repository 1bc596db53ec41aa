/* SPDX-License-Identifier: GPL-2.0 */
/*
 * peer_id.h - who is on the other end of a mutual TLS connection: the
 * source server ID that ferry-control's CA put in a client certificate,
 * or the replicator ID it put in a replicator's.
 *
 * Kept in lib/ for ferry-control (which issues these certificates), the
 * replicator and the agent alike.
 */
#ifndef FERRY_LIB_PEER_ID_H
#define FERRY_LIB_PEER_ID_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

/* URI SAN prefixes of the certificates ferry-control issues. */
#define FERRY_URN_SOURCE_SERVER "urn:ferry:source-server:"
#define FERRY_URN_REPLICATOR    "urn:ferry:replicator:"

/*
 * The extended key usage of a replicator's certificate, instead of
 * serverAuth: the same CA signs ferry-control's HTTPS certificate, whose
 * clients (agents, replicators, the aws CLI) want serverAuth, so a
 * replicator's certificate can never pass for ferry-control's; and
 * agents want this one, so ferry-control's cannot pass for a
 * replicator's.  An OID derived from a UUID (ITU-T X.667, arc 2.25):
 * no registry needed.
 */
#define FERRY_OID_REPLICATOR_EKU \
	"2.25.62129563338904629873796490502516882673"

/* Longest certificate ID (an X.509 CN holds 64 characters). */
#define FERRY_ID_MAX 64

/* ID is acceptable as a certificate ID: 1-64 of [A-Za-z0-9._-], not
 * starting with a dot. */
bool ferry_id_valid(const char *id);

/*
 * The source server ID of CERT: its one URI SAN
 * "urn:ferry:source-server:ID", or, for a certificate without any SAN,
 * its single subject CN.  A certificate whose SANs name no source server
 * (e.g. a replicator's), or two of them, is refused.  The caller must
 * already have verified CERT's chain.
 * Returns 0 with the NUL-terminated ID in ID[LEN], -1 if CERT carries no
 * valid source server ID or it does not fit.
 */
int ferry_peer_source_server(X509 *cert, char *id, size_t len);

/*
 * The replicator ID of CERT: its one URI SAN "urn:ferry:replicator:ID",
 * which ferry-control's CA writes from the replicatorID it registered
 * (RegisterReplicatorForMgn) or was given (certs issue --id).  Never the
 * CN.  A certificate without that SAN, or with two, is refused.  The
 * caller must already have verified CERT's chain and key purpose.
 * Returns 0 with the NUL-terminated ID in ID[LEN], -1 if CERT carries no
 * valid replicator ID or it does not fit.
 */
int ferry_peer_replicator(X509 *cert, char *id, size_t len);

/* CERT's extended key usage has FERRY_OID_REPLICATOR_EKU. */
bool ferry_cert_is_replicator(X509 *cert);

#endif
