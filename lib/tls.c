// SPDX-License-Identifier: GPL-2.0
/*
 * tls.c - OpenSSL contexts for the agent <-> replicator link (tls.h).
 */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "peer_id.h"
#include "errmsg.h"

void ferry_tls_errstr(char *buf, size_t len)
{
	unsigned long e;
	size_t off = 0;

	if (!buf || !len)
		return;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);
		char tmp[256];
		int n;

		if (!r) {
			ERR_error_string_n(e, tmp, sizeof(tmp));
			r = tmp;
		}
		if (off < len) {
			n = snprintf(buf + off, len - off, "%s%s",
				     off ? "; " : "", r);
			if (n > 0)
				off += (size_t)n;
		}
	}
	if (!off)
		snprintf(buf, len, "no further detail");
}

/*
 * The description of a certificate the server refused during the
 * handshake, kept on the SSL object so that the refusal can be logged
 * with the peer's identity (OpenSSL drops the certificate on failure).
 */
static int refused_idx = -1;
static pthread_once_t refused_once = PTHREAD_ONCE_INIT;

static void refused_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
			 int idx, long argl, void *argp)
{
	free(ptr);
}

static void refused_init(void)
{
	refused_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, refused_free);
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl;
	X509 *cert;
	char subj[256], id[FERRY_ID_MAX + 1], *desc;

	if (ok || refused_idx < 0)
		return ok;
	ssl = X509_STORE_CTX_get_ex_data(store,
				SSL_get_ex_data_X509_STORE_CTX_idx());
	/* The leaf is what names the peer, whatever depth failed. */
	cert = X509_STORE_CTX_get0_cert(store);
	if (!ssl || !cert || SSL_get_ex_data(ssl, refused_idx))
		return ok;
	if (!X509_NAME_oneline(X509_get_subject_name(cert), subj,
			       sizeof(subj)))
		snprintf(subj, sizeof(subj), "(unreadable)");
	if (ferry_peer_source_server(cert, id, sizeof(id)))
		snprintf(id, sizeof(id), "none");
	desc = malloc(sizeof(subj) + sizeof(id) + 64);
	if (!desc)
		return ok;
	snprintf(desc, sizeof(subj) + sizeof(id) + 64,
		 "certificate subject %s, source server ID %s", subj, id);
	SSL_set_ex_data(ssl, refused_idx, desc);
	return ok;
}

/* The server (a replicator) must show a replicator's certificate. */
static int client_verify_cb(int ok, X509_STORE_CTX *store)
{
	X509 *cert = X509_STORE_CTX_get_current_cert(store);
	char subj[256], *desc;
	SSL *ssl;

	if (!ok || X509_STORE_CTX_get_error_depth(store) != 0 || !cert ||
	    ferry_cert_is_replicator(cert))
		return ok;
	X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
	ssl = X509_STORE_CTX_get_ex_data(store,
				SSL_get_ex_data_X509_STORE_CTX_idx());
	if (!ssl || refused_idx < 0 || SSL_get_ex_data(ssl, refused_idx))
		return 0;
	if (!X509_NAME_oneline(X509_get_subject_name(cert), subj,
			       sizeof(subj)))
		snprintf(subj, sizeof(subj), "(unreadable)");
	desc = malloc(sizeof(subj) + 96);
	if (desc) {
		snprintf(desc, sizeof(subj) + 96, "certificate subject %s is "
			 "not a replicator's (ferry-control issues those)",
			 subj);
		SSL_set_ex_data(ssl, refused_idx, desc);
	}
	return 0;
}

SSL_CTX *ferry_tls_ctx(enum ferry_tls_role role, const char *cert_file,
		       const char *key_file, const char *ca_file, char *err,
		       size_t errlen)
{
	const char *side = role == FERRY_TLS_SERVER ? "server" : "client";
	char why[512];
	SSL_CTX *ctx;

	if (!cert_file || !*cert_file || !key_file || !*key_file ||
	    !ca_file || !*ca_file) {
		set_err(err, errlen,
			"TLS %s needs a certificate, its key and the CA "
			"certificate (files missing from the configuration)",
			side);
		return NULL;
	}
	pthread_once(&refused_once, refused_init);
	ERR_clear_error();
	ctx = SSL_CTX_new(role == FERRY_TLS_SERVER ? TLS_server_method()
						   : TLS_client_method());
	if (!ctx) {
		ferry_tls_errstr(why, sizeof(why));
		set_err(err, errlen, "cannot create TLS %s context: %s", side,
			why);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		ferry_tls_errstr(why, sizeof(why));
		set_err(err, errlen, "this OpenSSL cannot do TLS 1.3 only: %s",
			why);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		ferry_tls_errstr(why, sizeof(why));
		set_err(err, errlen,
			"cannot load certificate %s (PEM expected): %s",
			cert_file, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		ferry_tls_errstr(why, sizeof(why));
		set_err(err, errlen,
			"cannot load private key %s (PEM expected): %s",
			key_file, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		set_err(err, errlen,
			"private key %s does not belong to certificate %s",
			key_file, cert_file);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		ferry_tls_errstr(why, sizeof(why));
		set_err(err, errlen,
			"cannot load CA certificate %s (PEM expected): %s",
			ca_file, why);
		goto fail;
	}
	if (role == FERRY_TLS_SERVER) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);

		/* Tell clients which CA we want (helps their diagnostics). */
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		ERR_clear_error();
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
				   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
		/* No resumption: every connection proves its certificate. */
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else {
		/* The replicator's certificate has ferry's key purpose, not
		 * serverAuth (peer_id.h), which OpenSSL's own check for a
		 * TLS server would refuse: checked in client_verify_cb(). */
		SSL_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, client_verify_cb);
	}
	/* Writes may be retried with a moved buffer after a partial one. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		       SSL_MODE_AUTO_RETRY);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int ferry_tls_set_peer_host(SSL *ssl, const char *host, char *err,
			    size_t errlen)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	ASN1_OCTET_STRING *ip;
	char why[256];

	if (!host || !*host) {
		set_err(err, errlen, "no server name to verify");
		return -1;
	}
	ip = a2i_IPADDRESS(host);
	if (ip) {
		ASN1_OCTET_STRING_free(ip);
		if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1)
			return 0;
	} else {
		ERR_clear_error();
		X509_VERIFY_PARAM_set_hostflags(param,
				X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set_tlsext_host_name(ssl, host) == 1 &&
		    X509_VERIFY_PARAM_set1_host(param, host, 0) == 1)
			return 0;
	}
	ferry_tls_errstr(why, sizeof(why));
	set_err(err, errlen, "cannot set expected server name %s: %s", host,
		why);
	return -1;
}

void ferry_tls_describe_error(SSL *ssl, int ret, char *buf, size_t len)
{
	int e = SSL_get_error(ssl, ret), saved = errno;
	const char *refused = NULL;
	char why[512] = "";
	long vr = SSL_get_verify_result(ssl);
	size_t off;

	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		snprintf(why, sizeof(why), "peer closed the TLS session");
		break;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		snprintf(why, sizeof(why), "timed out");
		break;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error()) {
			ferry_tls_errstr(why, sizeof(why));
		} else if (saved == EAGAIN || saved == EWOULDBLOCK) {
			snprintf(why, sizeof(why), "timed out");
		} else if (saved && ret < 0) {
			snprintf(why, sizeof(why), "%s", strerror(saved));
		} else {
			snprintf(why, sizeof(why),
				 "connection closed by the peer");
		}
		break;
	default:
		ferry_tls_errstr(why, sizeof(why));
		break;
	}
	ERR_clear_error();
	off = (size_t)snprintf(buf, len, "%s", why);
	if (vr != X509_V_OK && off < len)
		off += (size_t)snprintf(buf + off, len - off,
					" (certificate: %s)",
					X509_verify_cert_error_string(vr));
	if (refused_idx >= 0)
		refused = SSL_get_ex_data(ssl, refused_idx);
	if (refused && off < len)
		snprintf(buf + off, len - off, " [%s]", refused);
}
