/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cert.h - the agent's data-plane identity in the state directory: an EC
 * P-256 key made here (agent-key.pem, 0600, never sent anywhere), the
 * certificate request made from it (agent.csr), and what
 * IssueClientCertificateForMgn returned for it: the client certificate
 * (agent.pem) and ferry-control's CA (ca.pem), which the replication
 * thread uses for TLS to the replicator.
 */
#ifndef FERRY_AGENT_CERT_H
#define FERRY_AGENT_CERT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Whether DIR holds a usable certificate: agent.pem for agent-key.pem,
 * signed by ca.pem, valid for MIN_LEFT seconds more.  0 (with
 * *NOT_AFTER its end, UNIX seconds), or -1 with the reason in WHY.
 */
int cert_check(const char *dir, int64_t min_left, int64_t *not_after,
	       char *why, size_t whylen);

/*
 * A PEM certificate request (subject CN, malloc'd) for DIR's key, making
 * the key first if there is none; also stored as DIR/agent.csr.  NULL
 * with ERR.
 */
char *cert_make_csr(const char *dir, const char *cn, char *err,
		    size_t errlen);

/*
 * Check that CERT_PEM is for DIR's key and signed by CA_PEM, then store
 * both (ca.pem first).  0 with *NOT_AFTER, or -1 with ERR (nothing
 * stored).
 */
int cert_store(const char *dir, const char *cert_pem, const char *ca_pem,
	       int64_t *not_after, char *err, size_t errlen);

#endif
