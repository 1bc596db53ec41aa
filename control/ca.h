/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ca.h - ferry-control's certificate authority (OpenSSL).
 *
 * At first start the CA key and certificate are made in DATA_DIR
 * (ca-key.pem 0600, ca.pem), and a server certificate for ferry-control
 * itself (server.pem, server-key.pem 0600) whose SANs are localhost,
 * 127.0.0.1, ::1, the host's names and addresses and any extra names
 * given.  The same CA signs the data-plane certificates: agents' client
 * certificates (the source server ID in the subject CN and a URI SAN
 * "urn:ferry:source-server:ID") and replicators' server certificates.
 */
#ifndef FERRY_CONTROL_CA_H
#define FERRY_CONTROL_CA_H

#include <stddef.h>

struct ca;

/* Load the CA from DIR, creating it (and the directory's files) if
 * absent.  NULL on error with a message in ERR. */
struct ca *ca_open(const char *dir, char *err, size_t errlen);
void ca_free(struct ca *ca);

/* The CA certificate, PEM (owned by CA). */
const char *ca_cert_pem(const struct ca *ca);

/* The server certificate is re-issued this long before it ends. */
#define CA_SERVER_RENEW_SECS (30L * 86400)

/*
 * Make sure DIR/server.pem and DIR/server-key.pem exist and cover
 * NAMES (DNS names or IP addresses) besides the defaults; re-issue the
 * certificate when a name is missing or it ends within
 * CA_SERVER_RENEW_SECS.  Safe while CA signs CSRs in other threads.
 */
int ca_ensure_server_cert(struct ca *ca, const char *dir,
			  const char *const *names, int n_names, char *err,
			  size_t errlen);

/* Kinds of certificate ca_sign_csr() issues. */
enum ca_kind {
	CA_CLIENT_SOURCE_SERVER, /* agent data plane: CN=ID, URI SAN */
	CA_SERVER_REPLICATOR,	 /* replicator: CN=ID, SANs = NAMES */
};

/*
 * Sign CSR_PEM (its public key only: subject and extensions come from
 * us) for ID, valid DAYS days.  Returns a malloc'd PEM certificate or
 * NULL with a message in ERR (bad CSR, bad signature on it, ...).
 */
char *ca_sign_csr(struct ca *ca, const char *csr_pem, enum ca_kind kind,
		  const char *id, const char *const *names, int n_names,
		  int days, char *err, size_t errlen);

#endif
