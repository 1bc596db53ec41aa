// SPDX-License-Identifier: GPL-2.0
/*
 * ca.c - ferry-control's certificate authority, on OpenSSL's libcrypto.
 *
 * One ECDSA P-256 key signs everything: ferry-control's own HTTPS
 * certificate, the agents' client certificates and the replicators'
 * certificates.  Subjects and extensions always come from here; from a
 * CSR only the public key is taken.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "ca_util.h"
#include "errmsg.h"

#define CA_DAYS		  3652	/* ten years */
#define SERVER_DAYS	  825	/* the longest browsers accept */
#define BACKDATE_SECS	  300	/* tolerate clocks a little behind ours */
#define MAX_DAYS	  3650
#define MAX_CSR_BYTES	  (64 * 1024)
#define MIN_RSA_BITS	  2048
#define MAX_RSA_BITS	  16384

struct ca {
	EVP_PKEY *key;
	X509 *cert;
	char *pem;
};

/* WHAT, then OpenSSL's reason for the latest error (queue cleared). */
static void ossl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		set_err(err, errlen, "%s: %s", what, buf);
	} else {
		set_err(err, errlen, "%s", what);
	}
	ERR_clear_error();
}

/* ---- files ----------------------------------------------------------- */

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int ca_write_file(const char *path, const void *data, size_t len,
		  mode_t mode, bool replace, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	const char *p = data;
	size_t left = len;
	int fd, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >=
	    (int)sizeof(tmp)) {
		set_err(err, errlen, "%s: path too long", path);
		return -1;
	}
	/* mkstemp opens O_EXCL with mode 0600: a key is never exposed. */
	fd = mkstemp(tmp);
	if (fd < 0) {
		set_err(err, errlen, "create %s: %s", tmp, strerror(errno));
		return -1;
	}
	while (left) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_err(err, errlen, "write %s: %s", tmp,
				strerror(errno));
			goto out;
		}
		p += n;
		left -= (size_t)n;
	}
	if (mode != 0600 && fchmod(fd, mode)) {
		set_err(err, errlen, "chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fsync(fd)) {
		set_err(err, errlen, "fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (replace) {
		if (rename(tmp, path)) {
			set_err(err, errlen, "rename %s to %s: %s", tmp, path,
				strerror(errno));
			goto out;
		}
	} else if (link(tmp, path)) {
		/* Another process made it first: theirs wins. */
		if (errno == EEXIST) {
			rc = 1;
		} else {
			set_err(err, errlen, "link %s to %s: %s", tmp, path,
				strerror(errno));
		}
		goto out;
	} else {
		unlink(tmp);
	}
	tmp[0] = '\0';
	if (fsync_dir_of(path)) {
		set_err(err, errlen, "fsync directory of %s: %s", path,
			strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	if (tmp[0])
		unlink(tmp);
	return rc;
}

static char *path_join(const char *dir, const char *name, char *buf,
		       size_t len)
{
	if (snprintf(buf, len, "%s/%s", dir, name) >= (int)len)
		return NULL;
	return buf;
}

/*
 * Load a PEM private key.  Returns the key, or NULL with *MISSING set if
 * the file does not exist, or NULL with a message in ERR.  A key file
 * readable by group or others is an error: the key may have leaked.
 */
static EVP_PKEY *load_key(const char *path, bool *missing, char *err,
			  size_t errlen)
{
	EVP_PKEY *key;
	struct stat st;
	FILE *f;

	*missing = false;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			*missing = true;
		set_err(err, errlen, "open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		set_err(err, errlen,
			"%s is accessible by others (mode %04o); make it 0600",
			path, (unsigned int)(st.st_mode & 07777));
		fclose(f);
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!key) {
		char what[PATH_MAX + 32];

		snprintf(what, sizeof(what), "read key %s", path);
		ossl_err(err, errlen, what);
	}
	return key;
}

static X509 *load_cert(const char *path, bool *missing, char *err,
		       size_t errlen)
{
	X509 *cert;
	FILE *f;

	*missing = false;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			*missing = true;
		set_err(err, errlen, "open %s: %s", path, strerror(errno));
		return NULL;
	}
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!cert) {
		char what[PATH_MAX + 32];

		snprintf(what, sizeof(what), "read certificate %s", path);
		ossl_err(err, errlen, what);
	}
	return cert;
}

/* PEM text of a certificate or private key, malloc'd. */
static char *to_pem(X509 *cert, EVP_PKEY *key, size_t *lenp)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;
	int ok;

	if (!b)
		return NULL;
	if (cert)
		ok = PEM_write_bio_X509(b, cert);
	else
		ok = PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL,
					      NULL);
	n = BIO_get_mem_data(b, &data);
	if (ok && n > 0) {
		out = malloc((size_t)n + 1);
		if (out) {
			memcpy(out, data, (size_t)n);
			out[n] = '\0';
			if (lenp)
				*lenp = (size_t)n;
		}
	}
	/* The key's PEM text must not linger in freed memory. */
	if (n > 0)
		OPENSSL_cleanse(data, (size_t)n);
	BIO_free(b);
	return out;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key,
		     bool replace, char *err, size_t errlen)
{
	size_t len = 0;
	char *pem = to_pem(cert, key, &len);
	int rc;

	if (!pem) {
		ossl_err(err, errlen, "encode PEM");
		return -1;
	}
	rc = ca_write_file(path, pem, len, key ? 0600 : 0644, replace, err,
			   errlen);
	OPENSSL_cleanse(pem, len);
	free(pem);
	return rc;
}

/* ---- names ----------------------------------------------------------- */

/* A host name per RFC 1123: dot-separated labels of letters, digits and
 * inner hyphens, 1-63 characters each, 253 in all. */
static bool dns_name_valid(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

/* One subjectAltName entry: GEN_DNS, GEN_IPADD or GEN_URI. */
struct san {
	int type;
	unsigned char ip[16];
	int iplen;
	char *str;
};

struct san_list {
	struct san *v;
	int n, cap;
};

static void san_list_free(struct san_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i].str);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static bool san_equal(const struct san *a, const struct san *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == GEN_IPADD)
		return a->iplen == b->iplen && !memcmp(a->ip, b->ip, a->iplen);
	if (a->type == GEN_DNS)
		return !strcasecmp(a->str, b->str);
	return !strcmp(a->str, b->str);
}

static int san_push(struct san_list *l, struct san *s, char *err,
		    size_t errlen)
{
	for (int i = 0; i < l->n; i++) {
		if (san_equal(&l->v[i], s)) {
			free(s->str);
			return 0;
		}
	}
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 16;
		struct san *v = realloc(l->v, (size_t)cap * sizeof(*v));

		if (!v) {
			free(s->str);
			set_err(err, errlen, "out of memory");
			return -1;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *s;
	return 0;
}

/*
 * Add NAME, an IP literal or a DNS name.  An invalid name is an error if
 * STRICT (the caller asked for it), else silently skipped (a host name we
 * discovered that is not usable in a certificate).
 */
static int san_add_name(struct san_list *l, const char *name, bool strict,
			char *err, size_t errlen)
{
	struct san s = { 0 };

	if (inet_pton(AF_INET, name, s.ip) == 1) {
		s.type = GEN_IPADD;
		s.iplen = 4;
	} else if (inet_pton(AF_INET6, name, s.ip) == 1) {
		s.type = GEN_IPADD;
		s.iplen = 16;
	} else if (dns_name_valid(name)) {
		s.type = GEN_DNS;
		s.str = strdup(name);
		if (!s.str) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		for (char *c = s.str; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
	} else if (strict) {
		set_err(err, errlen,
			"name \"%s\" is neither a DNS name nor an IP address",
			name);
		return -1;
	} else {
		return 0;
	}
	return san_push(l, &s, err, errlen);
}

static int san_add_uri(struct san_list *l, const char *prefix,
		       const char *id, char *err, size_t errlen)
{
	struct san s = { .type = GEN_URI };

	if (asprintf(&s.str, "%s%s", prefix, id) < 0) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	return san_push(l, &s, err, errlen);
}

/* Is S among the entries of GENS? */
static bool gens_have(const GENERAL_NAMES *gens, const struct san *s)
{
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *v;
		int type;

		v = GENERAL_NAME_get0_value(g, &type);
		if (type != s->type || !v)
			continue;
		if (type == GEN_IPADD) {
			if (ASN1_STRING_length(v) == s->iplen &&
			    !memcmp(ASN1_STRING_get0_data(v), s->ip, s->iplen))
				return true;
		} else {
			size_t n = strlen(s->str);

			if ((size_t)ASN1_STRING_length(v) == n &&
			    !strncasecmp((const char *)
					 ASN1_STRING_get0_data(v), s->str, n))
				return true;
		}
	}
	return false;
}

static int add_san_ext(X509 *cert, const struct san_list *l, char *err,
		       size_t errlen)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int rc = -1;

	if (!gens)
		goto fail;
	for (int i = 0; i < l->n; i++) {
		const struct san *s = &l->v[i];
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_STRING *v;

		if (!g)
			goto fail;
		if (s->type == GEN_IPADD) {
			v = ASN1_OCTET_STRING_new();
			if (v && !ASN1_OCTET_STRING_set(v, s->ip, s->iplen)) {
				ASN1_OCTET_STRING_free(v);
				v = NULL;
			}
		} else {
			v = ASN1_IA5STRING_new();
			if (v && !ASN1_STRING_set(v, s->str, -1)) {
				ASN1_IA5STRING_free(v);
				v = NULL;
			}
		}
		if (!v) {
			GENERAL_NAME_free(g);
			goto fail;
		}
		GENERAL_NAME_set0_value(g, s->type, v);
		if (!sk_GENERAL_NAME_push(gens, g)) {
			GENERAL_NAME_free(g);
			goto fail;
		}
	}
	if (X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0,
			      X509V3_ADD_DEFAULT) != 1)
		goto fail;
	rc = 0;
fail:
	if (rc)
		ossl_err(err, errlen, "build subjectAltName");
	GENERAL_NAMES_free(gens);
	return rc;
}

/* ---- issuing --------------------------------------------------------- */

static int random_serial(X509 *cert)
{
	unsigned char buf[16];
	BIGNUM *bn = NULL;
	int ok = 0;

	do {
		if (RAND_bytes(buf, sizeof(buf)) != 1)
			return 0;
		BN_free(bn);
		bn = BN_bin2bn(buf, sizeof(buf), NULL);
		if (!bn)
			return 0;
	} while (BN_is_zero(bn));
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
	BN_free(bn);
	return ok;
}

/*
 * A new version 3 certificate for PUB with subject CN (and O if not
 * NULL), issued by ISSUER (self-issued if NULL), valid from now less a
 * few minutes for DAYS days but never beyond the issuer's own expiry.
 */
static X509 *new_cert(EVP_PKEY *pub, const char *cn, const char *org,
		      X509 *issuer, long days, char *err, size_t errlen)
{
	X509 *cert = X509_new();
	X509_NAME *name;

	if (!cert || !X509_set_version(cert, X509_VERSION_3) ||
	    !random_serial(cert))
		goto fail;
	name = X509_get_subject_name(cert);
	if ((org && !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
						 (const unsigned char *)org,
						 -1, -1, 0)) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0))
		goto fail;
	if (!X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer)
					       : name))
		goto fail;
	if (!X509_gmtime_adj(X509_getm_notBefore(cert), -BACKDATE_SECS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL))
		goto fail;
	if (issuer &&
	    ASN1_TIME_compare(X509_get0_notAfter(cert),
			      X509_get0_notAfter(issuer)) > 0 &&
	    !X509_set1_notAfter(cert, X509_get0_notAfter(issuer)))
		goto fail;
	if (!X509_set_pubkey(cert, pub))
		goto fail;
	return cert;
fail:
	ossl_err(err, errlen, "build certificate");
	X509_free(cert);
	return NULL;
}

/* Add extensions written in OpenSSL's configuration syntax, e.g.
 * { NID_key_usage, "critical,keyCertSign" }; ISSUER is the issuing
 * certificate (CERT itself when self-signed). */
struct ext {
	int nid;
	const char *value;
};

static int add_exts(X509 *cert, X509 *issuer, const struct ext *exts,
		    size_t n, char *err, size_t errlen)
{
	X509V3_CTX ctx;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		X509_EXTENSION *e;
		int ok;

		e = X509V3_EXT_nconf_nid(NULL, &ctx, exts[i].nid,
					 exts[i].value);
		ok = e && X509_add_ext(cert, e, -1);
		X509_EXTENSION_free(e);
		if (!ok) {
			char what[128];

			snprintf(what, sizeof(what), "add extension %s=%s",
				 OBJ_nid2sn(exts[i].nid), exts[i].value);
			ossl_err(err, errlen, what);
			return -1;
		}
	}
	return 0;
}

static int sign_cert(X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
	if (!X509_sign(cert, key, EVP_sha256())) {
		ossl_err(err, errlen, "sign certificate");
		return -1;
	}
	return 0;
}

static EVP_PKEY *new_ec_key(char *err, size_t errlen)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");

	if (!key)
		ossl_err(err, errlen, "generate P-256 key");
	return key;
}

static void get_hostname(char *buf, size_t len)
{
	if (gethostname(buf, len) || !buf[0])
		snprintf(buf, len, "localhost");
	buf[len - 1] = '\0';
}

static X509 *make_ca_cert(EVP_PKEY *key, char *err, size_t errlen)
{
	static const struct ext exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE,pathlen:0" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
		{ NID_subject_key_identifier, "hash" },
	};
	char host[HOST_NAME_MAX + 1], cn[65];
	X509 *cert;

	get_hostname(host, sizeof(host));
	/* A CN holds at most 64 characters. */
	snprintf(cn, sizeof(cn), "ferry-control CA %.47s", host);
	cert = new_cert(key, cn, NULL, NULL, CA_DAYS, err, errlen);
	if (!cert)
		return NULL;
	if (add_exts(cert, cert, exts, sizeof(exts) / sizeof(exts[0]), err,
		     errlen) ||
	    sign_cert(cert, key, err, errlen)) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

/* ---- the CA ---------------------------------------------------------- */

void ca_free(struct ca *ca)
{
	if (!ca)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca->pem);
	free(ca);
}

const char *ca_cert_pem(const struct ca *ca)
{
	return ca->pem;
}

/* Load DIR/ca-key.pem, creating it if absent. */
static EVP_PKEY *open_ca_key(const char *path, char *err, size_t errlen)
{
	bool missing;
	EVP_PKEY *key = load_key(path, &missing, err, errlen);
	int rc;

	if (key || !missing)
		return key;
	key = new_ec_key(err, errlen);
	if (!key)
		return NULL;
	rc = write_pem(path, NULL, key, false, err, errlen);
	if (rc == 0)
		return key;
	EVP_PKEY_free(key);
	if (rc < 0)
		return NULL;
	/* Another ferry-control made it meanwhile: use theirs. */
	return load_key(path, &missing, err, errlen);
}

/* Load DIR/ca.pem, creating it for KEY if absent. */
static X509 *open_ca_cert(const char *path, EVP_PKEY *key, char *err,
			  size_t errlen)
{
	bool missing;
	X509 *cert = load_cert(path, &missing, err, errlen);
	int rc;

	if (cert || !missing)
		return cert;
	cert = make_ca_cert(key, err, errlen);
	if (!cert)
		return NULL;
	rc = write_pem(path, cert, NULL, false, err, errlen);
	if (rc == 0)
		return cert;
	X509_free(cert);
	if (rc < 0)
		return NULL;
	return load_cert(path, &missing, err, errlen);
}

struct ca *ca_open(const char *dir, char *err, size_t errlen)
{
	char key_path[PATH_MAX], cert_path[PATH_MAX];
	struct ca *ca;

	if (!path_join(dir, "ca-key.pem", key_path, sizeof(key_path)) ||
	    !path_join(dir, "ca.pem", cert_path, sizeof(cert_path))) {
		set_err(err, errlen, "%s: path too long", dir);
		return NULL;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		set_err(err, errlen, "create directory %s: %s", dir,
			strerror(errno));
		return NULL;
	}
	ca = calloc(1, sizeof(*ca));
	if (!ca) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	ca->key = open_ca_key(key_path, err, errlen);
	if (!ca->key)
		goto fail;
	ca->cert = open_ca_cert(cert_path, ca->key, err, errlen);
	if (!ca->cert)
		goto fail;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		set_err(err, errlen, "%s does not match the key in %s",
			cert_path, key_path);
		goto fail;
	}
	if (X509_check_ca(ca->cert) < 1) {
		set_err(err, errlen, "%s is not a CA certificate", cert_path);
		goto fail;
	}
	ca->pem = to_pem(ca->cert, NULL, NULL);
	if (!ca->pem) {
		ossl_err(err, errlen, "encode CA certificate");
		goto fail;
	}
	return ca;
fail:
	ca_free(ca);
	return NULL;
}

/* ---- ferry-control's server certificate ------------------------------ */

/* The names a server certificate for this host should carry. */
static int host_names(struct san_list *l, const char *const *names,
		      int n_names, char *err, size_t errlen)
{
	static const char *const fixed[] = { "localhost", "127.0.0.1", "::1" };
	struct addrinfo hints = { .ai_flags = AI_CANONNAME };
	char host[HOST_NAME_MAX + 1];
	struct addrinfo *ai = NULL;
	struct ifaddrs *ifs = NULL;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (san_add_name(l, fixed[i], true, err, errlen))
			return -1;
	get_hostname(host, sizeof(host));
	if (san_add_name(l, host, false, err, errlen))
		return -1;
	/* The FQDN, as the resolver knows it. */
	if (getaddrinfo(host, NULL, &hints, &ai) == 0) {
		int rc = 0;

		if (ai && ai->ai_canonname &&
		    strcasecmp(ai->ai_canonname, "localhost"))
			rc = san_add_name(l, ai->ai_canonname, false, err,
					  errlen);
		freeaddrinfo(ai);
		if (rc)
			return -1;
	}
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
			const struct sockaddr *sa = i->ifa_addr;
			struct san s = { .type = GEN_IPADD };

			if (!sa)
				continue;
			if (sa->sa_family == AF_INET) {
				const struct sockaddr_in *in = (const void *)sa;

				if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
					continue;
				memcpy(s.ip, &in->sin_addr, 4);
				s.iplen = 4;
			} else if (sa->sa_family == AF_INET6) {
				const struct sockaddr_in6 *in6 =
					(const void *)sa;

				/* Link-local addresses need a zone, which a
				 * certificate cannot name. */
				if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
				    IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr))
					continue;
				memcpy(s.ip, &in6->sin6_addr, 16);
				s.iplen = 16;
			} else {
				continue;
			}
			if (san_push(l, &s, err, errlen)) {
				freeifaddrs(ifs);
				return -1;
			}
		}
		freeifaddrs(ifs);
	}
	for (int i = 0; i < n_names; i++)
		if (san_add_name(l, names[i], true, err, errlen))
			return -1;
	return 0;
}

/* Does CERT (issued by CA, for KEY) still do: all of WANT, valid for
 * more than 30 days? */
static bool server_cert_ok(struct ca *ca, X509 *cert, EVP_PKEY *key,
			   const struct san_list *want)
{
	time_t soon = time(NULL) + CA_SERVER_RENEW_SECS;
	EVP_PKEY *ca_pub = X509_get0_pubkey(ca->cert);
	GENERAL_NAMES *gens;
	bool ok = true;

	if (X509_check_private_key(cert, key) != 1 ||
	    X509_verify(cert, ca_pub) != 1 ||
	    X509_cmp_time(X509_get0_notAfter(cert), &soon) <= 0) {
		ERR_clear_error();
		return false;
	}
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (!gens)
		return false;
	for (int i = 0; ok && i < want->n; i++)
		ok = gens_have(gens, &want->v[i]);
	GENERAL_NAMES_free(gens);
	return ok;
}

int ca_ensure_server_cert(struct ca *ca, const char *dir,
			  const char *const *names, int n_names, char *err,
			  size_t errlen)
{
	static const struct ext exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_key_usage, "critical,digitalSignature" },
		{ NID_ext_key_usage, "serverAuth" },
		{ NID_subject_key_identifier, "hash" },
		{ NID_authority_key_identifier, "keyid:always" },
	};
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	char host[HOST_NAME_MAX + 1], cn[65];
	struct san_list want = { 0 };
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	bool missing;
	int rc = -1;

	if (!path_join(dir, "server.pem", cert_path, sizeof(cert_path)) ||
	    !path_join(dir, "server-key.pem", key_path, sizeof(key_path))) {
		set_err(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (host_names(&want, names, n_names, err, errlen))
		goto out;

	/* Keep a sound key: re-issuing then replaces only the certificate,
	 * so a reader never sees a key and certificate that do not pair. */
	key = load_key(key_path, &missing, err, errlen);
	if (!key) {
		ERR_clear_error();
		key = new_ec_key(err, errlen);
		if (!key || write_pem(key_path, NULL, key, true, err, errlen))
			goto out;
	}
	cert = load_cert(cert_path, &missing, err, errlen);
	if (cert && server_cert_ok(ca, cert, key, &want)) {
		rc = 0;
		goto out;
	}
	ERR_clear_error();
	X509_free(cert);

	get_hostname(host, sizeof(host));
	snprintf(cn, sizeof(cn), "%.64s", host);
	cert = new_cert(key, cn, "ferry", ca->cert, SERVER_DAYS, err, errlen);
	if (!cert ||
	    add_exts(cert, ca->cert, exts, sizeof(exts) / sizeof(exts[0]), err,
		     errlen) ||
	    add_san_ext(cert, &want, err, errlen) ||
	    sign_cert(cert, ca->key, err, errlen) ||
	    write_pem(cert_path, cert, NULL, true, err, errlen))
		goto out;
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	san_list_free(&want);
	return rc;
}

/* ---- signing CSRs ---------------------------------------------------- */

/* Refuse keys we do not want on the data plane.  Returns 0 or -1. */
static int check_key_type(EVP_PKEY *pub, bool *is_rsa, char *err,
			  size_t errlen)
{
	int id = EVP_PKEY_get_base_id(pub);
	char group[64];
	const char *type;
	int bits;

	*is_rsa = false;
	switch (id) {
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pub);
		if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
			set_err(err, errlen,
				"CSR key type RSA-%d not allowed (RSA needs %d to %d bits)",
				bits, MIN_RSA_BITS, MAX_RSA_BITS);
			return -1;
		}
		*is_rsa = true;
		return 0;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(pub,
						    OSSL_PKEY_PARAM_GROUP_NAME,
						    group, sizeof(group),
						    NULL)) {
			ERR_clear_error();
			set_err(err, errlen,
				"CSR key type EC with explicit parameters not allowed");
			return -1;
		}
		if (strcmp(group, SN_X9_62_prime256v1) &&
		    strcmp(group, SN_secp384r1)) {
			set_err(err, errlen,
				"CSR key type EC %s not allowed (P-256 or P-384 only)",
				group);
			return -1;
		}
		return 0;
	case EVP_PKEY_ED25519:
		return 0;
	default:
		type = EVP_PKEY_get0_type_name(pub);
		if (!type)
			type = OBJ_nid2sn(id);
		set_err(err, errlen,
			"CSR key type %s not allowed (RSA >= %d bits, EC P-256, EC P-384 or Ed25519)",
			type ? type : "unknown", MIN_RSA_BITS);
		return -1;
	}
}

char *ca_sign_csr(struct ca *ca, const char *csr_pem, enum ca_kind kind,
		  const char *id, const char *const *names, int n_names,
		  int days, char *err, size_t errlen)
{
	static const struct ext common[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_subject_key_identifier, "hash" },
		{ NID_authority_key_identifier, "keyid:always" },
	};
	struct ext exts[2];
	struct san_list sans = { 0 };
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	EVP_PKEY *pub;
	char *pem = NULL;
	bool is_rsa;
	BIO *b;

	if (kind != CA_CLIENT_SOURCE_SERVER && kind != CA_SERVER_REPLICATOR) {
		set_err(err, errlen, "unknown certificate kind %d", (int)kind);
		return NULL;
	}
	if (!id || !ferry_id_valid(id)) {
		set_err(err, errlen,
			"ID \"%s\" is not 1-%d of letters, digits, '.', '_', '-'",
			id ? id : "", FERRY_ID_MAX);
		return NULL;
	}
	if (days < 1 || days > MAX_DAYS) {
		set_err(err, errlen, "validity of %d days is not in 1-%d",
			days, MAX_DAYS);
		return NULL;
	}
	if (kind == CA_CLIENT_SOURCE_SERVER && n_names > 0) {
		set_err(err, errlen,
			"names apply to replicator certificates only");
		return NULL;
	}
	if (!csr_pem || strnlen(csr_pem, MAX_CSR_BYTES + 1) > MAX_CSR_BYTES) {
		set_err(err, errlen, "CSR missing or larger than %d bytes",
			MAX_CSR_BYTES);
		return NULL;
	}

	b = BIO_new_mem_buf(csr_pem, -1);
	if (b)
		req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!req) {
		ossl_err(err, errlen, "CSR is not a PEM certificate request");
		return NULL;
	}
	pub = X509_REQ_get0_pubkey(req);
	if (!pub) {
		ossl_err(err, errlen, "CSR public key cannot be read");
		goto out;
	}
	if (check_key_type(pub, &is_rsa, err, errlen))
		goto out;
	/* Proof that the requester holds the private key. */
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		set_err(err, errlen, "CSR signature does not verify");
		goto out;
	}

	if (kind == CA_SERVER_REPLICATOR) {
		for (int i = 0; i < n_names; i++)
			if (san_add_name(&sans, names[i], true, err, errlen))
				goto out;
		if (san_add_uri(&sans, FERRY_URN_REPLICATOR, id, err, errlen))
			goto out;
		/* Not serverAuth: see FERRY_OID_REPLICATOR_EKU. */
		exts[1].value = FERRY_OID_REPLICATOR_EKU;
	} else {
		if (san_add_uri(&sans, FERRY_URN_SOURCE_SERVER, id, err, errlen))
			goto out;
		exts[1].value = "clientAuth";
	}
	exts[0].nid = NID_key_usage;
	/* keyEncipherment lets an RSA key serve TLS 1.2 RSA key exchange. */
	exts[0].value = is_rsa ? "critical,digitalSignature,keyEncipherment"
			       : "critical,digitalSignature";
	exts[1].nid = NID_ext_key_usage;

	cert = new_cert(pub, id, "ferry", ca->cert, days, err, errlen);
	if (!cert ||
	    add_exts(cert, ca->cert, common, sizeof(common) / sizeof(common[0]),
		     err, errlen) ||
	    add_exts(cert, ca->cert, exts, 2, err, errlen) ||
	    add_san_ext(cert, &sans, err, errlen) ||
	    sign_cert(cert, ca->key, err, errlen))
		goto out;
	pem = to_pem(cert, NULL, NULL);
	if (!pem)
		ossl_err(err, errlen, "encode certificate");
out:
	X509_free(cert);
	X509_REQ_free(req);
	san_list_free(&sans);
	return pem;
}
