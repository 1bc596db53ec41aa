// SPDX-License-Identifier: GPL-2.0
/*
 * cert.c - the data-plane key, request and certificate (cert.h), with
 * OpenSSL.
 */
#include "cert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent.h"
#include "errmsg.h"
#include "state.h"

static void path_of(const char *dir, const char *name, char *out,
		    size_t len)
{
	state_path(dir, name, out, len);
}

static EVP_PKEY *read_key(const char *dir)
{
	char path[AGENT_PATH_MAX + 64];
	EVP_PKEY *k;
	FILE *f;

	path_of(dir, AGENT_KEY_FILE, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static X509 *read_cert(const char *dir, const char *name)
{
	char path[AGENT_PATH_MAX + 64];
	X509 *x;
	FILE *f;

	path_of(dir, name, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static X509 *parse_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return x;
}

static int64_t not_after_of(const X509 *x)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* X for KEY, signed by CA's key, valid now.  NULL, or the problem. */
static const char *mismatch(X509 *x, EVP_PKEY *key, X509 *ca)
{
	EVP_PKEY *cak = ca ? X509_get0_pubkey(ca) : NULL;

	if (!X509_check_private_key(x, key))
		return "the certificate is not for agent-key.pem";
	if (!cak || X509_verify(x, cak) != 1)
		return "the certificate is not signed by ca.pem";
	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		return "the certificate is not valid yet (check the clock)";
	return NULL;
}

int cert_check(const char *dir, int64_t min_left, int64_t *not_after,
	       char *why, size_t whylen)
{
	EVP_PKEY *key = read_key(dir);
	X509 *x = read_cert(dir, AGENT_CERT_FILE);
	X509 *ca = read_cert(dir, AGENT_CA_FILE);
	const char *bad = NULL;
	int rc = -1;

	ERR_clear_error();
	if (!key)
		bad = "no readable agent-key.pem";
	else if (!x)
		bad = "no readable agent.pem";
	else if (!ca)
		bad = "no readable ca.pem";
	else
		bad = mismatch(x, key, ca);
	if (bad) {
		set_err(why, whylen, "%s", bad);
		goto out;
	}
	*not_after = not_after_of(x);
	if (*not_after - (int64_t)time(NULL) < min_left) {
		set_err(why, whylen, "the certificate expires soon");
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_free(x);
	X509_free(ca);
	return rc;
}

/* DIR's key, or a new P-256 key stored there first. */
static EVP_PKEY *the_key(const char *dir, char *err, size_t errlen)
{
	EVP_PKEY *k = read_key(dir);
	BIO *b = NULL;
	char *pem;
	long len;
	int rc;

	if (k)
		return k;
	k = EVP_EC_gen("P-256");
	b = BIO_new(BIO_s_mem());
	if (!k || !b ||
	    !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
		set_err(err, errlen, "cannot make an EC P-256 key");
		goto fail;
	}
	len = BIO_get_mem_data(b, &pem);
	rc = state_write(dir, AGENT_KEY_FILE, pem, (size_t)len, 0600, true,
			 err, errlen);
	explicit_bzero(pem, (size_t)len);
	if (rc)
		goto fail;
	BIO_free(b);
	return k;
fail:
	BIO_free(b);
	EVP_PKEY_free(k);
	return NULL;
}

char *cert_make_csr(const char *dir, const char *cn, char *err,
		    size_t errlen)
{
	EVP_PKEY *k = the_key(dir, err, errlen);
	X509_REQ *req = NULL;
	X509_NAME *nm = NULL;
	BIO *b = NULL;
	char *pem = NULL, *out = NULL;
	long len;

	if (!k)
		return NULL;
	req = X509_REQ_new();
	nm = X509_NAME_new();
	b = BIO_new(BIO_s_mem());
	if (!req || !nm || !b ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1,
					0) ||
	    !X509_REQ_set_subject_name(req, nm) ||
	    !X509_REQ_set_pubkey(req, k) ||
	    !X509_REQ_sign(req, k, EVP_sha256()) ||
	    !PEM_write_bio_X509_REQ(b, req)) {
		set_err(err, errlen, "cannot make a certificate request");
		goto out;
	}
	len = BIO_get_mem_data(b, &pem);
	out = strndup(pem, (size_t)len);
	if (!out) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	if (state_write(dir, STATE_CSR_FILE, out, strlen(out), 0600, true,
			err, errlen)) {
		free(out);
		out = NULL;
	}
out:
	BIO_free(b);
	X509_NAME_free(nm);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return out;
}

int cert_store(const char *dir, const char *cert_pem, const char *ca_pem,
	       int64_t *not_after, char *err, size_t errlen)
{
	EVP_PKEY *key = read_key(dir);
	X509 *x = parse_cert(cert_pem), *ca = parse_cert(ca_pem);
	const char *bad = NULL;
	int rc = -1;

	if (!key)
		bad = "agent-key.pem is gone";
	else if (!x || !ca)
		bad = "it is not a PEM certificate";
	else
		bad = mismatch(x, key, ca);
	if (bad) {
		set_err(err, errlen, "IssueClientCertificateForMgn answered "
			"with a certificate the agent cannot use: %s", bad);
		goto out;
	}
	/* Two renames: a crash between them can leave a pair that does
	 * not verify, which cert_check() refuses, so the next start asks
	 * again. */
	if (state_write(dir, AGENT_CA_FILE, ca_pem, strlen(ca_pem), 0644,
			true, err, errlen) ||
	    state_write(dir, AGENT_CERT_FILE, cert_pem, strlen(cert_pem),
			0644, true, err, errlen))
		goto out;
	*not_after = not_after_of(x);
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_free(x);
	X509_free(ca);
	return rc;
}
