// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of control/ca.c and control/certs_cli.c: the CA's files and
 * their modes, the server certificate and its re-issue, CSR signing and
 * refusals, peer identification, GnuTLS (libmicrohttpd's TLS) loading
 * our PEM files, and mutual TLS 1.3 between issued certificates.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "../../control/ca.h"
#include "../../control/ca_util.h"
#include "../../control/certs_cli.h"

static char tmp[64];

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(path);
}

static const char *at(const char *name)
{
	static char buf[16][256];
	static int next;
	char *p = buf[next++ % 16];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmp, name);
	return p;
}

static int file_mode(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (int)(st.st_mode & 07777);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

static X509 *cert_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *cert = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	return cert;
}

static X509 *cert_from_file(const char *path)
{
	char *pem = slurp(path);
	X509 *cert = pem ? cert_from_pem(pem) : NULL;

	free(pem);
	return cert;
}

static bool no_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool ok = d != NULL;

	while (d && (e = readdir(d)))
		if (strstr(e->d_name, ".tmp."))
			ok = false;
	if (d)
		closedir(d);
	return ok;
}

/* ",DNS:a,IP:1.2.3.4,URI:u," - every SAN, for CHECK_HAS. */
static void sans(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name,
					       NULL, NULL);
	size_t used;

	snprintf(buf, len, ",");
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char addr[INET6_ADDRSTRLEN] = "?";
		const ASN1_STRING *v;
		int type;

		v = GENERAL_NAME_get0_value(g, &type);
		used = strlen(buf);
		if (type == GEN_IPADD) {
			inet_ntop(ASN1_STRING_length(v) == 4 ? AF_INET
							     : AF_INET6,
				  ASN1_STRING_get0_data(v), addr, sizeof(addr));
			snprintf(buf + used, len - used, "IP:%s,", addr);
		} else {
			snprintf(buf + used, len - used, "%s:%.*s,",
				 type == GEN_DNS ? "DNS" :
				 type == GEN_URI ? "URI" : "OTHER",
				 ASN1_STRING_length(v),
				 (const char *)ASN1_STRING_get0_data(v));
		}
	}
	GENERAL_NAMES_free(gens);
}

static void subject_field(X509 *cert, int nid, char *buf, int len)
{
	buf[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), nid, buf, len);
}

static bool serial_equal(X509 *a, X509 *b)
{
	return !ASN1_INTEGER_cmp(X509_get0_serialNumber(a),
				 X509_get0_serialNumber(b));
}

/* Validity in whole days, and notBefore's age in seconds. */
static void validity(X509 *cert, int *days, int *age)
{
	ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
	int d, s;

	ASN1_TIME_diff(days, &s, X509_get0_notBefore(cert),
		       X509_get0_notAfter(cert));
	ASN1_TIME_diff(&d, &s, X509_get0_notBefore(cert), now);
	*age = d * 86400 + s;
	ASN1_TIME_free(now);
}

/* X509_verify_cert of CERT against the CA in CA_PEM for PURPOSE, and
 * HOST / IP if not NULL.  Returns the X509_V_ result. */
static int verify(const char *ca_pem, X509 *cert, int purpose,
		  const char *host, const char *ip)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *ca_cert = cert_from_pem(ca_pem);
	X509_VERIFY_PARAM *param;
	int rc;

	X509_STORE_add_cert(store, ca_cert);
	X509_STORE_CTX_init(ctx, store, cert, NULL);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	param = X509_STORE_CTX_get0_param(ctx);
	if (host)
		X509_VERIFY_PARAM_set1_host(param, host, 0);
	if (ip)
		X509_VERIFY_PARAM_set1_ip_asc(param, ip);
	rc = X509_verify_cert(ctx) == 1 ? X509_V_OK
					: X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(ca_cert);
	return rc;
}

static EVP_PKEY *gen_key(const char *type, const char *arg)
{
	if (!strcmp(type, "EC"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", arg);
	if (!strcmp(type, "RSA"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(arg));
	return EVP_PKEY_Q_keygen(NULL, NULL, type);
}

/*
 * A PEM CSR for KEY with subject CN=evil, O=admin and a requested
 * CA:TRUE extension, none of which the CA must honour.  TAMPER flips a
 * bit of the signature.
 */
static char *make_csr(EVP_PKEY *key, bool tamper)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_NAME *name = X509_REQ_get_subject_name(req);
	const EVP_MD *md = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ||
					   EVP_PKEY_get_base_id(key) ==
						   EVP_PKEY_ED448
				   ? NULL
				   : EVP_sha256();
	unsigned char *der = NULL;
	char *pem = NULL, *data;
	BIO *b;
	int n;

	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
				   (const unsigned char *)"admin", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"evil", -1, -1, 0);
	sk_X509_EXTENSION_push(exts,
			       X509V3_EXT_conf_nid(NULL, NULL,
						   NID_basic_constraints,
						   "critical,CA:TRUE"));
	X509_REQ_add_extensions(req, exts);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_set_pubkey(req, key);
	if (!X509_REQ_sign(req, key, md))
		goto out;
	n = i2d_X509_REQ(req, &der);
	if (n <= 0)
		goto out;
	if (tamper) {
		/* The DER ends with the signature's last byte. */
		const unsigned char *p = der;

		der[n - 1] ^= 0x01;
		X509_REQ_free(req);
		req = d2i_X509_REQ(NULL, &p, n);
	}
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509_REQ(b, req);
	n = (int)BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)n);
	BIO_free(b);
out:
	OPENSSL_free(der);
	X509_REQ_free(req);
	return pem;
}

static bool ext_critical(X509 *cert, int nid)
{
	int pos = X509_get_ext_by_NID(cert, nid, -1);

	return pos >= 0 &&
	       X509_EXTENSION_get_critical(X509_get_ext(cert, pos)) == 1;
}

/* ---- tests ------------------------------------------------------------ */

static void test_create_reopen(void)
{
	char err[512] = "", cn[128], dir[256], *pem1;
	struct ca *ca;
	X509 *cert;
	int days, age;

	/* at() reuses its buffers. */
	snprintf(dir, sizeof(dir), "%s", at("data"));
	ca = ca_open(dir, err, sizeof(err));
	CHECK(ca != NULL);
	if (!ca) {
		fprintf(stderr, "ca_open: %s\n", err);
		return;
	}
	CHECK_U64(file_mode(dir), 0700);
	CHECK_U64(file_mode(at("data/ca-key.pem")), 0600);
	CHECK_U64(file_mode(at("data/ca.pem")), 0644);
	CHECK(no_temp_files(dir));
	pem1 = strdup(ca_cert_pem(ca));
	CHECK_HAS(pem1, "-----BEGIN CERTIFICATE-----");

	cert = cert_from_pem(pem1);
	CHECK(cert != NULL);
	subject_field(cert, NID_commonName, cn, sizeof(cn));
	CHECK(!strncmp(cn, "ferry-control CA ", 17) && strlen(cn) > 17);
	CHECK(X509_check_ca(cert) >= 1);
	CHECK(ext_critical(cert, NID_basic_constraints));
	CHECK(ext_critical(cert, NID_key_usage));
	CHECK_U64(X509_get_key_usage(cert), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	CHECK_U64(X509_get_pathlen(cert), 0);
	CHECK(X509_get0_subject_key_id(cert) != NULL);
	CHECK(EVP_PKEY_get_base_id(X509_get0_pubkey(cert)) == EVP_PKEY_EC);
	/* A random 128-bit serial: far above any counter. */
	CHECK(ASN1_STRING_length(X509_get0_serialNumber(cert)) >= 12);
	validity(cert, &days, &age);
	CHECK(days >= 3650 && days <= 3653);
	CHECK(age >= 0 && age < 3600);
	CHECK_U64(verify(pem1, cert, X509_PURPOSE_ANY, NULL, NULL),
		  X509_V_OK);
	X509_free(cert);
	ca_free(ca);

	/* A second start loads the same CA. */
	ca = ca_open(dir, err, sizeof(err));
	CHECK(ca != NULL);
	if (ca)
		CHECK_STR(ca_cert_pem(ca), pem1);
	ca_free(ca);

	/* A key readable by others is refused, not used. */
	chmod(at("data/ca-key.pem"), 0644);
	ca = ca_open(dir, err, sizeof(err));
	CHECK(ca == NULL);
	CHECK_HAS(err, "accessible by others");
	ca_free(ca);
	chmod(at("data/ca-key.pem"), 0600);

	/* A certificate that does not match the key is refused. */
	ca = ca_open(at("other"), err, sizeof(err));
	CHECK(ca != NULL);
	ca_free(ca);
	CHECK(rename(at("other/ca.pem"), at("data/ca.pem")) == 0);
	ca = ca_open(dir, err, sizeof(err));
	CHECK(ca == NULL);
	CHECK_HAS(err, "does not match");
	ca_free(ca);

	/* Put the right certificate back. */
	{
		int fd = open(at("data/ca.pem"), O_WRONLY | O_TRUNC);

		CHECK(fd >= 0 && write(fd, pem1, strlen(pem1)) ==
					 (ssize_t)strlen(pem1));
		close(fd);
	}
	ca = ca_open(dir, err, sizeof(err));
	CHECK(ca != NULL);
	if (!ca)
		fprintf(stderr, "reopen: %s\n", err);
	ca_free(ca);
	free(pem1);
}

/* GnuTLS, libmicrohttpd's TLS library, accepts the pair. */
static bool gnutls_loads(const char *cert, const char *key)
{
	gnutls_certificate_credentials_t cred;
	int rc;

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return false;
	rc = gnutls_certificate_set_x509_key_file(cred, cert, key,
						  GNUTLS_X509_FMT_PEM);
	if (rc < 0)
		fprintf(stderr, "gnutls: %s: %s\n", cert, gnutls_strerror(rc));
	gnutls_certificate_free_credentials(cred);
	return rc >= 0;
}

/* The DNS and IP SANs of CERT, as strings. */
static int name_sans(X509 *cert, char names[][64], int max)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name,
					       NULL, NULL);
	int n = 0;

	for (int i = 0; i < sk_GENERAL_NAME_num(gens) && n < max; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *v;
		int type;

		v = GENERAL_NAME_get0_value(g, &type);
		if (type == GEN_IPADD)
			inet_ntop(ASN1_STRING_length(v) == 4 ? AF_INET
							     : AF_INET6,
				  ASN1_STRING_get0_data(v), names[n++], 64);
		else if (type == GEN_DNS)
			snprintf(names[n++], 64, "%.*s", ASN1_STRING_length(v),
				 (const char *)ASN1_STRING_get0_data(v));
	}
	GENERAL_NAMES_free(gens);
	return n;
}

/* Replace server.pem with a certificate for server-key.pem that has all
 * the names of the current one and expires in DAYS days. */
static bool short_server_cert(struct ca *ca, int days)
{
	char names[64][64], err[512], *csr, *pem;
	const char *ptrs[64];
	FILE *f = fopen(at("data/server-key.pem"), "r");
	EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	X509 *cert = cert_from_file(at("data/server.pem"));
	int n = cert ? name_sans(cert, names, 64) : 0;
	bool ok = false;

	if (f)
		fclose(f);
	for (int i = 0; i < n; i++)
		ptrs[i] = names[i];
	csr = key ? make_csr(key, false) : NULL;
	pem = csr ? ca_sign_csr(ca, csr, CA_SERVER_REPLICATOR, "short", ptrs,
				n, days, err, sizeof(err))
		  : NULL;
	if (pem)
		ok = ca_write_file(at("data/server.pem"), pem, strlen(pem),
				   0644, true, err, sizeof(err)) == 0;
	free(pem);
	free(csr);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ok;
}

static void test_server_cert(void)
{
	static const char *const names[] = { "ferry.example.com",
					     "10.9.8.7", "2001:db8::5" };
	static const char *const more[] = { "ferry.example.com", "10.9.8.7",
					    "2001:db8::5", "new.example" };
	static const char *const bad[] = { "not_a name" };
	char err[512] = "", buf[4096], host[256], *key1, *key2;
	struct ca *ca = ca_open(at("data"), err, sizeof(err));
	X509 *c1, *c2;
	int days, age;

	CHECK(ca != NULL);
	if (!ca)
		return;
	CHECK(ca_ensure_server_cert(ca, at("data"), names, 3, err,
				    sizeof(err)) == 0);
	CHECK_U64(file_mode(at("data/server-key.pem")), 0600);
	CHECK(no_temp_files(at("data")));
	c1 = cert_from_file(at("data/server.pem"));
	CHECK(c1 != NULL);
	if (!c1)
		goto out;
	sans(c1, buf, sizeof(buf));
	CHECK_HAS(buf, ",DNS:localhost,");
	CHECK_HAS(buf, ",IP:127.0.0.1,");
	CHECK_HAS(buf, ",IP:::1,");
	CHECK_HAS(buf, ",DNS:ferry.example.com,");
	CHECK_HAS(buf, ",IP:10.9.8.7,");
	CHECK_HAS(buf, ",IP:2001:db8::5,");
	gethostname(host, sizeof(host));
	{
		char want[300];

		for (char *c = host; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		snprintf(want, sizeof(want), ",DNS:%s,", host);
		/* Only a host name that is a valid DNS name is included. */
		if (strspn(host, "abcdefghijklmnopqrstuvwxyz0123456789-.") ==
		    strlen(host))
			CHECK_HAS(buf, want);
	}
	CHECK(X509_get_extended_key_usage(c1) == XKU_SSL_SERVER);
	CHECK(X509_get_key_usage(c1) == KU_DIGITAL_SIGNATURE);
	CHECK(X509_check_ca(c1) == 0);
	validity(c1, &days, &age);
	CHECK_U64(days, 825);
	CHECK_U64(verify(ca_cert_pem(ca), c1, X509_PURPOSE_SSL_SERVER,
			 "localhost", "127.0.0.1"), X509_V_OK);
	CHECK_U64(verify(ca_cert_pem(ca), c1, X509_PURPOSE_SSL_SERVER,
			 "ferry.example.com", "2001:db8::5"), X509_V_OK);
	CHECK(verify(ca_cert_pem(ca), c1, X509_PURPOSE_SSL_SERVER,
		     "other.example.com", NULL) ==
	      X509_V_ERR_HOSTNAME_MISMATCH);
	/* Not a client certificate. */
	CHECK(verify(ca_cert_pem(ca), c1, X509_PURPOSE_SSL_CLIENT, NULL,
		     NULL) != X509_V_OK);
	CHECK(gnutls_loads(at("data/server.pem"), at("data/server-key.pem")));

	/* Nothing changed: nothing re-issued. */
	key1 = slurp(at("data/server-key.pem"));
	CHECK(ca_ensure_server_cert(ca, at("data"), names, 3, err,
				    sizeof(err)) == 0);
	c2 = cert_from_file(at("data/server.pem"));
	CHECK(c2 && serial_equal(c1, c2));
	X509_free(c2);
	/* Fewer names asked for: still nothing to do. */
	CHECK(ca_ensure_server_cert(ca, at("data"), NULL, 0, err,
				    sizeof(err)) == 0);
	c2 = cert_from_file(at("data/server.pem"));
	CHECK(c2 && serial_equal(c1, c2));
	X509_free(c2);

	/* A new name: re-issued with it, same key. */
	CHECK(ca_ensure_server_cert(ca, at("data"), more, 4, err,
				    sizeof(err)) == 0);
	c2 = cert_from_file(at("data/server.pem"));
	CHECK(c2 && !serial_equal(c1, c2));
	if (c2) {
		sans(c2, buf, sizeof(buf));
		CHECK_HAS(buf, ",DNS:new.example,");
		CHECK_HAS(buf, ",DNS:ferry.example.com,");
		CHECK_U64(verify(ca_cert_pem(ca), c2, X509_PURPOSE_SSL_SERVER,
				 "new.example", NULL), X509_V_OK);
	}
	X509_free(c2);
	key2 = slurp(at("data/server-key.pem"));
	CHECK(key1 && key2 && !strcmp(key1, key2));
	free(key1);
	free(key2);

	/* All names, 60 days left: kept; 10 days left: re-issued. */
	CHECK(short_server_cert(ca, 60));
	X509_free(c1);
	c1 = cert_from_file(at("data/server.pem"));
	CHECK(ca_ensure_server_cert(ca, at("data"), more, 4, err,
				    sizeof(err)) == 0);
	c2 = cert_from_file(at("data/server.pem"));
	CHECK(c1 && c2 && serial_equal(c1, c2));
	X509_free(c2);
	CHECK(short_server_cert(ca, 10));
	X509_free(c1);
	c1 = cert_from_file(at("data/server.pem"));
	CHECK(ca_ensure_server_cert(ca, at("data"), more, 4, err,
				    sizeof(err)) == 0);
	c2 = cert_from_file(at("data/server.pem"));
	CHECK(c1 && c2 && !serial_equal(c1, c2));
	if (c2) {
		validity(c2, &days, &age);
		CHECK_U64(days, 825);
	}
	X509_free(c2);

	/* A lost key: a new key and certificate. */
	CHECK(unlink(at("data/server-key.pem")) == 0);
	CHECK(ca_ensure_server_cert(ca, at("data"), more, 4, err,
				    sizeof(err)) == 0);
	CHECK_U64(file_mode(at("data/server-key.pem")), 0600);
	CHECK(gnutls_loads(at("data/server.pem"), at("data/server-key.pem")));

	/* A name that is neither DNS nor IP. */
	CHECK(ca_ensure_server_cert(ca, at("data"), bad, 1, err,
				    sizeof(err)) == -1);
	CHECK_HAS(err, "not_a name");
out:
	X509_free(c1);
	ca_free(ca);
}

static char *sign(struct ca *ca, const char *type, const char *arg,
		  enum ca_kind kind, const char *id, const char *const *names,
		  int n, char *err, size_t errlen)
{
	EVP_PKEY *key = gen_key(type, arg);
	char *csr = key ? make_csr(key, false) : NULL, *pem;

	if (!csr) {
		snprintf(err, errlen, "test: cannot make a %s CSR", type);
		EVP_PKEY_free(key);
		return NULL;
	}
	pem = ca_sign_csr(ca, csr, kind, id, names, n, 30, err, errlen);
	free(csr);
	EVP_PKEY_free(key);
	return pem;
}

static void test_sign_kinds(void)
{
	static const struct {
		const char *type, *arg;
	} keys[] = {
		{ "EC", "P-256" }, { "EC", "P-384" },
		{ "ED25519", NULL }, { "RSA", "2048" },
	};
	static const char *const names[] = { "rep1.example", "192.0.2.10" };
	char err[512] = "", buf[2048], field[128], id[FERRY_ID_MAX + 1];
	struct ca *ca = ca_open(at("data"), err, sizeof(err));
	X509 *ca_cert;

	CHECK(ca != NULL);
	if (!ca)
		return;
	ca_cert = cert_from_pem(ca_cert_pem(ca));
	/* No extended key usage at all: not a replicator either. */
	CHECK(ca_cert && X509_get_ext_by_NID(ca_cert, NID_ext_key_usage,
					      -1) < 0);
	CHECK(ca_cert && !ferry_cert_is_replicator(ca_cert));
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		char *pem;
		X509 *c;
		int days, age;

		/* An agent's client certificate. */
		pem = sign(ca, keys[k].type, keys[k].arg,
			   CA_CLIENT_SOURCE_SERVER, "s-1234567890abcdef0",
			   NULL, 0, err, sizeof(err));
		CHECK(pem != NULL);
		if (!pem) {
			fprintf(stderr, "%s: %s\n", keys[k].type, err);
			continue;
		}
		c = cert_from_pem(pem);
		free(pem);
		CHECK(c != NULL);
		if (!c)
			continue;
		subject_field(c, NID_commonName, field, sizeof(field));
		CHECK_STR(field, "s-1234567890abcdef0");
		subject_field(c, NID_organizationName, field, sizeof(field));
		CHECK_STR(field, "ferry");
		sans(c, buf, sizeof(buf));
		CHECK_STR(buf, ",URI:urn:ferry:source-server:s-1234567890abcdef0,");
		CHECK(X509_get_extended_key_usage(c) == XKU_SSL_CLIENT);
		CHECK(X509_get_key_usage(c) & KU_DIGITAL_SIGNATURE);
		CHECK(X509_check_ca(c) == 0);
		CHECK(ext_critical(c, NID_basic_constraints));
		CHECK(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c),
					    X509_get0_subject_key_id(ca_cert))
		      == 0);
		CHECK(!X509_NAME_cmp(X509_get_issuer_name(c),
				     X509_get_subject_name(ca_cert)));
		validity(c, &days, &age);
		CHECK_U64(days, 30);
		CHECK(age >= 295 && age < 400);
		CHECK_U64(verify(ca_cert_pem(ca), c, X509_PURPOSE_SSL_CLIENT,
				 NULL, NULL), X509_V_OK);
		CHECK(verify(ca_cert_pem(ca), c, X509_PURPOSE_SSL_SERVER,
			     NULL, NULL) != X509_V_OK);
		CHECK(ferry_peer_source_server(c, id, sizeof(id)) == 0);
		CHECK_STR(id, "s-1234567890abcdef0");
		/* Too small a buffer. */
		CHECK(ferry_peer_source_server(c, id, 19) == -1);
		/* A source server is not a replicator. */
		CHECK(ferry_peer_replicator(c, id, sizeof(id)) == -1);
		X509_free(c);

		/* A replicator's certificate. */
		pem = sign(ca, keys[k].type, keys[k].arg, CA_SERVER_REPLICATOR,
			   "rep-1", names, 2, err, sizeof(err));
		CHECK(pem != NULL);
		if (!pem) {
			fprintf(stderr, "%s: %s\n", keys[k].type, err);
			continue;
		}
		c = cert_from_pem(pem);
		free(pem);
		CHECK(c != NULL);
		if (!c)
			continue;
		subject_field(c, NID_commonName, field, sizeof(field));
		CHECK_STR(field, "rep-1");
		sans(c, buf, sizeof(buf));
		CHECK_STR(buf, ",DNS:rep1.example,IP:192.0.2.10,URI:urn:ferry:replicator:rep-1,");
		/* ferry's own key purpose, not serverAuth: it cannot pass
		 * for ferry-control's HTTPS certificate (peer_id.h). */
		CHECK(X509_get_extended_key_usage(c) == 0);
		CHECK(ferry_cert_is_replicator(c));
		CHECK(X509_check_ca(c) == 0);
		CHECK_U64(verify(ca_cert_pem(ca), c, X509_PURPOSE_ANY,
				 "rep1.example", "192.0.2.10"), X509_V_OK);
		CHECK_U64(verify(ca_cert_pem(ca), c, X509_PURPOSE_SSL_SERVER,
				 "rep1.example", "192.0.2.10"),
			  X509_V_ERR_INVALID_PURPOSE);
		CHECK_U64(verify(ca_cert_pem(ca), c, X509_PURPOSE_SSL_CLIENT,
				 NULL, NULL), X509_V_ERR_INVALID_PURPOSE);
		/* A replicator is not a source server. */
		CHECK(ferry_peer_source_server(c, id, sizeof(id)) == -1);
		/* Its ID, as the agent compares it with its assignment. */
		CHECK(ferry_peer_replicator(c, id, sizeof(id)) == 0);
		CHECK_STR(id, "rep-1");
		CHECK(ferry_peer_replicator(c, id, 5) == -1);
		X509_free(c);
	}
	X509_free(ca_cert);
	ca_free(ca);
}

static void test_sign_refusals(void)
{
	static const char *const bad_name[] = { "-bad-.example" };
	static const char *const one_name[] = { "x.example" };
	char err[512] = "", *pem, *csr;
	struct ca *ca = ca_open(at("data"), err, sizeof(err));
	EVP_PKEY *key;

	CHECK(ca != NULL);
	if (!ca)
		return;
	key = gen_key("EC", "P-256");
	csr = make_csr(key, true);
	CHECK(csr != NULL);
	pem = ca_sign_csr(ca, csr, CA_CLIENT_SOURCE_SERVER, "s-1", NULL, 0,
			  30, err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_STR(err, "CSR signature does not verify");
	free(pem);
	free(csr);

	/* The same key with an intact CSR is fine; bad arguments are not. */
	csr = make_csr(key, false);
	pem = ca_sign_csr(ca, csr, CA_CLIENT_SOURCE_SERVER, "s-1", NULL, 0,
			  30, err, sizeof(err));
	CHECK(pem != NULL);
	free(pem);
	pem = ca_sign_csr(ca, csr, CA_CLIENT_SOURCE_SERVER, "s 1", NULL, 0,
			  30, err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "ID \"s 1\"");
	pem = ca_sign_csr(ca, csr, CA_CLIENT_SOURCE_SERVER, "", NULL, 0, 30,
			  err, sizeof(err));
	CHECK(pem == NULL);
	pem = ca_sign_csr(ca, csr, CA_CLIENT_SOURCE_SERVER, "s-1", NULL, 0, 0,
			  err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "validity");
	pem = ca_sign_csr(ca, csr, CA_CLIENT_SOURCE_SERVER, "s-1", one_name,
			  1, 30, err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "replicator");
	pem = ca_sign_csr(ca, csr, CA_SERVER_REPLICATOR, "r-1", bad_name, 1,
			  30, err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "-bad-.example");
	free(csr);
	EVP_PKEY_free(key);

	pem = ca_sign_csr(ca, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
			  "-----END CERTIFICATE REQUEST-----\n",
			  CA_CLIENT_SOURCE_SERVER, "s-1", NULL, 0, 30, err,
			  sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "CSR is not a PEM certificate request");
	pem = ca_sign_csr(ca, "hello", CA_CLIENT_SOURCE_SERVER, "s-1", NULL,
			  0, 30, err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "CSR is not a PEM certificate request");

	pem = sign(ca, "RSA", "1024", CA_CLIENT_SOURCE_SERVER, "s-1", NULL, 0,
		   err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "CSR key type RSA-1024 not allowed");
	pem = sign(ca, "EC", "P-521", CA_CLIENT_SOURCE_SERVER, "s-1", NULL, 0,
		   err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "CSR key type EC secp521r1 not allowed");
	pem = sign(ca, "ED448", NULL, CA_CLIENT_SOURCE_SERVER, "s-1", NULL, 0,
		   err, sizeof(err));
	CHECK(pem == NULL);
	CHECK_HAS(err, "CSR key type ED448 not allowed");
	ca_free(ca);
}

/* A self-signed certificate with subject CN=CN and the given URI SANs. */
static X509 *plain_cert(const char *cn, const char *const *uris, int n)
{
	EVP_PKEY *key = gen_key("EC", "P-256");
	X509 *c = X509_new();
	X509_NAME *name = X509_get_subject_name(c);

	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, name);
	X509_gmtime_adj(X509_getm_notBefore(c), 0);
	X509_gmtime_adj(X509_getm_notAfter(c), 3600);
	X509_set_pubkey(c, key);
	if (n) {
		GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

		for (int i = 0; i < n; i++) {
			GENERAL_NAME *g = GENERAL_NAME_new();
			ASN1_IA5STRING *v = ASN1_IA5STRING_new();

			ASN1_STRING_set(v, uris[i], -1);
			GENERAL_NAME_set0_value(g, GEN_URI, v);
			sk_GENERAL_NAME_push(gens, g);
		}
		X509_add1_ext_i2d(c, NID_subject_alt_name, gens, 0, 0);
		GENERAL_NAMES_free(gens);
	}
	X509_sign(c, key, EVP_sha256());
	EVP_PKEY_free(key);
	return c;
}

static void test_peer_id(void)
{
	static const char *const two[] = { "urn:ferry:source-server:s-1",
					   "urn:ferry:source-server:s-2" };
	static const char *const other[] = { "https://example.com/",
					     "urn:ferry:source-server:s-3" };
	static const char *const bad[] = { "urn:ferry:source-server:a/b" };
	static const char *const none[] = { "https://example.com/" };
	char id[FERRY_ID_MAX + 1];
	X509 *c;

	/* No SAN: the CN. */
	c = plain_cert("s-0abc", NULL, 0);
	CHECK(ferry_peer_source_server(c, id, sizeof(id)) == 0);
	CHECK_STR(id, "s-0abc");
	X509_free(c);
	c = plain_cert("has space", NULL, 0);
	CHECK(ferry_peer_source_server(c, id, sizeof(id)) == -1);
	X509_free(c);
	/* The URI SAN wins over the CN. */
	c = plain_cert("s-0abc", other, 2);
	CHECK(ferry_peer_source_server(c, id, sizeof(id)) == 0);
	CHECK_STR(id, "s-3");
	X509_free(c);
	/* Two IDs, a malformed one, or SANs without one: no ID. */
	c = plain_cert("s-0abc", two, 2);
	CHECK(ferry_peer_source_server(c, id, sizeof(id)) == -1);
	X509_free(c);
	c = plain_cert("s-0abc", bad, 1);
	CHECK(ferry_peer_source_server(c, id, sizeof(id)) == -1);
	X509_free(c);
	c = plain_cert("s-0abc", none, 1);
	CHECK(ferry_peer_source_server(c, id, sizeof(id)) == -1);
	X509_free(c);
	CHECK(ferry_peer_source_server(NULL, id, sizeof(id)) == -1);
}

static void test_peer_replicator(void)
{
	static const char *const one[] = { "https://example.com/",
					   "urn:ferry:replicator:stage-b" };
	static const char *const two[] = { "urn:ferry:replicator:stage-a",
					   "urn:ferry:replicator:stage-b" };
	static const char *const bad[] = { "urn:ferry:replicator:../a" };
	static const char *const empty[] = { "urn:ferry:replicator:" };
	static const char *const ss[] = { "urn:ferry:source-server:s-1" };
	char id[FERRY_ID_MAX + 1];
	X509 *c;

	/* The URI SAN, whatever the CN says. */
	c = plain_cert("stage-a", one, 2);
	CHECK(ferry_peer_replicator(c, id, sizeof(id)) == 0);
	CHECK_STR(id, "stage-b");
	CHECK(ferry_peer_replicator(c, id, 7) == -1);
	CHECK(ferry_peer_replicator(c, id, 8) == 0);
	X509_free(c);
	/* No SAN: the CN does not stand in for the ID. */
	c = plain_cert("stage-a", NULL, 0);
	CHECK(ferry_peer_replicator(c, id, sizeof(id)) == -1);
	X509_free(c);
	/* Two IDs, a malformed or empty one, a source server's: none. */
	c = plain_cert("stage-a", two, 2);
	CHECK(ferry_peer_replicator(c, id, sizeof(id)) == -1);
	X509_free(c);
	c = plain_cert("stage-a", bad, 1);
	CHECK(ferry_peer_replicator(c, id, sizeof(id)) == -1);
	X509_free(c);
	c = plain_cert("stage-a", empty, 1);
	CHECK(ferry_peer_replicator(c, id, sizeof(id)) == -1);
	X509_free(c);
	c = plain_cert("stage-a", ss, 1);
	CHECK(ferry_peer_replicator(c, id, sizeof(id)) == -1);
	X509_free(c);
	CHECK(ferry_peer_replicator(NULL, id, sizeof(id)) == -1);
}

/* Run certs_cli with ARGS (NULL-terminated), stdout into OUT if given. */
static int cli(char *out, size_t outlen, ...)
{
	char *argv[32];
	int argc = 0, rc, saved = -1, fd = -1;
	va_list ap;

	va_start(ap, outlen);
	argv[argc++] = "certs";
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	if (out) {
		fflush(stdout);
		saved = dup(1);
		fd = open(at("cli.out"), O_CREAT | O_TRUNC | O_RDWR, 0600);
		dup2(fd, 1);
	}
	rc = certs_cli(argc, argv);
	if (out) {
		char *s;

		fflush(stdout);
		dup2(saved, 1);
		close(saved);
		close(fd);
		s = slurp(at("cli.out"));
		snprintf(out, outlen, "%s", s ? s : "");
		free(s);
	}
	return rc;
}

static void test_cli(void)
{
	char data[256], out[256], other[256], csrf[256], buf[4096];
	char id[FERRY_ID_MAX + 1], err[512], field[64], *s, *csr;
	struct ca *ca;
	EVP_PKEY *key;
	X509 *c;
	FILE *f;

	snprintf(data, sizeof(data), "%s", at("data"));
	snprintf(out, sizeof(out), "%s", at("out"));
	snprintf(other, sizeof(other), "%s", at("other-out"));
	CHECK(cli(NULL, 0, "issue", "--data-dir", data, "--kind",
		  "replicator", "--id", "rep-1", "--name", "rep1.example",
		  "--name", "127.0.0.1", "--days", "20", "--out-dir", out,
		  NULL) == 0);
	CHECK_U64(file_mode(at("out")), 0700);
	CHECK_U64(file_mode(at("out/rep-1-key.pem")), 0600);
	CHECK_U64(file_mode(at("out/rep-1.pem")), 0644);
	CHECK(no_temp_files(out));
	ca = ca_open(data, err, sizeof(err));
	s = slurp(at("out/ca.pem"));
	CHECK(ca && s && !strcmp(s, ca_cert_pem(ca)));
	free(s);
	c = cert_from_file(at("out/rep-1.pem"));
	CHECK(c != NULL);
	if (c && ca) {
		int days, age;

		sans(c, buf, sizeof(buf));
		CHECK_STR(buf, ",DNS:rep1.example,IP:127.0.0.1,URI:urn:ferry:replicator:rep-1,");
		validity(c, &days, &age);
		CHECK_U64(days, 20);
		CHECK_U64(verify(ca_cert_pem(ca), c, X509_PURPOSE_ANY,
				 "rep1.example", NULL), X509_V_OK);
		CHECK(ferry_cert_is_replicator(c));
		CHECK(ferry_peer_replicator(c, id, sizeof(id)) == 0);
		CHECK_STR(id, "rep-1");
	}
	X509_free(c);
	CHECK(gnutls_loads(at("out/rep-1.pem"), at("out/rep-1-key.pem")));

	CHECK(cli(NULL, 0, "issue", "--data-dir", data, "--kind", "client",
		  "--id", "s-00000000000000001", "--out-dir", out, NULL) == 0);
	c = cert_from_file(at("out/s-00000000000000001.pem"));
	CHECK(c && ferry_peer_source_server(c, id, sizeof(id)) == 0);
	CHECK_STR(id, "s-00000000000000001");
	CHECK(c && !ferry_cert_is_replicator(c));	/* clientAuth only */
	X509_free(c);

	/* A client certificate from another CA, for the TLS test. */
	CHECK(cli(NULL, 0, "issue", "--data-dir", at("other"), "--kind",
		  "client", "--id", "s-00000000000000002", "--out-dir", other,
		  NULL) == 0);

	/* sign-csr prints the certificate. */
	key = gen_key("EC", "P-384");
	csr = make_csr(key, false);
	snprintf(csrf, sizeof(csrf), "%s", at("req.csr"));
	f = fopen(csrf, "w");
	fputs(csr, f);
	fclose(f);
	CHECK(cli(buf, sizeof(buf), "sign-csr", "--data-dir", data, "--kind",
		  "client", "--id", "s-9", "--csr", csrf, NULL) == 0);
	c = cert_from_pem(buf);
	CHECK(c != NULL);
	if (c) {
		subject_field(c, NID_commonName, field, sizeof(field));
		CHECK_STR(field, "s-9");
		CHECK(X509_check_private_key(c, key) == 1);
	}
	X509_free(c);
	free(csr);
	EVP_PKEY_free(key);

	/* Errors: usage (2) and failures (1), nothing on stdout. */
	CHECK(cli(buf, sizeof(buf), "issue", "--data-dir", data, "--kind",
		  "bogus", "--id", "x", "--out-dir", out, NULL) == 2);
	CHECK_STR(buf, "");
	CHECK(cli(NULL, 0, "issue", "--data-dir", data, "--kind", "client",
		  "--out-dir", out, NULL) == 2);
	CHECK(cli(NULL, 0, "issue", "--data-dir", data, "--kind", "client",
		  "--id", "s-1", "--name", "a.example", "--out-dir", out,
		  NULL) == 2);
	CHECK(cli(NULL, 0, "issue", "--data-dir", data, "--kind", "client",
		  "--id", "s-1", "--days", "0", "--out-dir", out, NULL) == 2);
	CHECK(cli(NULL, 0, "issue", "--data-dir", data, "--kind", "client",
		  "--id", "s-1", "--bogus", NULL) == 2);
	CHECK(cli(NULL, 0, "issue", "--data-dir", data, "--kind", "client",
		  "--id", "s-1", "--out-dir", NULL) == 2);
	CHECK(cli(NULL, 0, "frobnicate", NULL) == 2);
	CHECK(cli(NULL, 0, NULL) == 2);
	CHECK(cli(buf, sizeof(buf), "--help", NULL) == 0);
	CHECK_HAS(buf, "usage: ferry-control certs issue");
	CHECK(cli(buf, sizeof(buf), "issue", "--help", NULL) == 0);
	CHECK_HAS(buf, "sign-csr");
	CHECK(cli(buf, sizeof(buf), "issue", "--data-dir", data, "--kind",
		  "replicator", "--id", "r", "--name", "bad name",
		  "--out-dir", out, NULL) == 1);
	CHECK_STR(buf, "");
	CHECK(cli(buf, sizeof(buf), "sign-csr", "--data-dir", data, "--kind",
		  "client", "--id", "s-9", "--csr", at("nonexistent"),
		  NULL) == 1);
	CHECK(cli(buf, sizeof(buf), "sign-csr", "--data-dir", data, "--kind",
		  "client", "--id", "s-9", "--csr", at("data/ca.pem"),
		  NULL) == 1);
	CHECK_STR(buf, "");
	ca_free(ca);
}

/* ---- mutual TLS 1.3 over a socketpair ---------------------------------- */

static SSL_CTX *tls_ctx(bool server, const char *cert, const char *key,
			const char *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method()
					  : TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	if ((cert && (SSL_CTX_use_certificate_file(ctx, cert,
						   SSL_FILETYPE_PEM) != 1 ||
		      SSL_CTX_use_PrivateKey_file(ctx, key,
						  SSL_FILETYPE_PEM) != 1 ||
		      SSL_CTX_check_private_key(ctx) != 1)) ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			   (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   NULL);
	/* The replicator's certificate has ferry's key purpose, not
	 * serverAuth: lib/tls.c's client checks that one itself. */
	if (!server)
		SSL_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
	return ctx;
}

/* Step one side: 1 done, 0 wants more, -1 failed. */
static int step(SSL *ssl, int rc)
{
	int e;

	if (rc == 1)
		return 1;
	e = SSL_get_error(ssl, rc);
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/*
 * Handshake between a replicator (server: rep-1) and CLIENT_CERT, then a
 * ping-pong.  Returns true if it all worked, with the server's view of
 * the client's source server ID in ID.
 */
static bool tls_session(const char *client_cert, const char *client_key,
			char *id, size_t idlen, long *verify_result)
{
	SSL_CTX *sctx = tls_ctx(true, at("out/rep-1.pem"),
				at("out/rep-1-key.pem"), at("out/ca.pem"));
	SSL_CTX *cctx = tls_ctx(false, client_cert, client_key,
				at("out/ca.pem"));
	SSL *srv = NULL, *cli_ssl = NULL;
	int sv[2] = { -1, -1 }, s = 0, c = 0;
	char buf[8] = "";
	bool ok = false;

	*verify_result = -1;
	id[0] = '\0';
	if (!sctx || !cctx ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		goto out;
	srv = SSL_new(sctx);
	cli_ssl = SSL_new(cctx);
	SSL_set_fd(srv, sv[0]);
	SSL_set_fd(cli_ssl, sv[1]);
	/* The client checks the replicator's name too. */
	SSL_set1_host(cli_ssl, "rep1.example");
	for (int i = 0; i < 1000 && (s == 0 || c == 0); i++) {
		if (c == 0)
			c = step(cli_ssl, SSL_connect(cli_ssl));
		if (s == 0)
			s = step(srv, SSL_accept(srv));
	}
	*verify_result = SSL_get_verify_result(srv);
	if (s == 1 && c == 1) {
		X509 *peer = SSL_get0_peer_certificate(srv);

		if (peer && ferry_peer_source_server(peer, id, idlen) == 0)
			ok = SSL_version(srv) == TLS1_3_VERSION;
	}
	if (!ok)
		goto out;
	/* Data flows both ways. */
	ok = false;
	c = SSL_write(cli_ssl, "ping", 4) == 4;
	s = 0;
	for (int i = 0; i < 1000 && c == 1 && s == 0; i++) {
		int n = SSL_read(srv, buf, sizeof(buf) - 1);

		s = n > 0 ? 1 : step(srv, n);
	}
	if (s == 1 && !strcmp(buf, "ping") &&
	    SSL_write(srv, "pong", 4) == 4) {
		memset(buf, 0, sizeof(buf));
		c = 0;
		for (int i = 0; i < 1000 && c == 0; i++) {
			int n = SSL_read(cli_ssl, buf, sizeof(buf) - 1);

			c = n > 0 ? 1 : step(cli_ssl, n);
		}
		ok = c == 1 && !strcmp(buf, "pong");
	}
out:
	ERR_clear_error();
	SSL_free(srv);
	SSL_free(cli_ssl);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return ok;
}

static void test_tls(void)
{
	char id[FERRY_ID_MAX + 1];
	long vr;

	/* Files from test_cli. */
	CHECK(tls_session(at("out/s-00000000000000001.pem"),
			  at("out/s-00000000000000001-key.pem"), id,
			  sizeof(id), &vr));
	CHECK_STR(id, "s-00000000000000001");
	CHECK_U64(vr, X509_V_OK);
	/* A client certificate from another CA is refused. */
	CHECK(!tls_session(at("other-out/s-00000000000000002.pem"),
			   at("other-out/s-00000000000000002-key.pem"), id,
			   sizeof(id), &vr));
	CHECK(vr != X509_V_OK);
	/* So is a client without a certificate. */
	CHECK(!tls_session(NULL, NULL, id, sizeof(id), &vr));
	/* A replicator's certificate used as a client is not a source
	 * server: it has no clientAuth either now. */
	CHECK(!tls_session(at("out/rep-1.pem"), at("out/rep-1-key.pem"), id,
			   sizeof(id), &vr));
	CHECK_U64(vr, X509_V_ERR_INVALID_PURPOSE);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/ferry-test-ca.XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_create_reopen);
	RUN(test_server_cert);
	RUN(test_sign_kinds);
	RUN(test_sign_refusals);
	RUN(test_peer_id);
	RUN(test_peer_replicator);
	RUN(test_cli);
	RUN(test_tls);
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_exit();
}
