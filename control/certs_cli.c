// SPDX-License-Identifier: GPL-2.0
/*
 * certs_cli.c - `ferry-control certs issue|sign-csr`: certificates from
 * the CA in the data directory, made locally so that a replicator can be
 * set up with no network call to ferry-control (and tests can make
 * client certificates).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca.h"
#include "ca_util.h"
#include "certs_cli.h"

#define DEFAULT_DAYS 825
#define MAX_NAMES    64
#define MAX_CSR	     (64 * 1024)

static const char usage_text[] =
"usage: ferry-control certs issue --data-dir DIR --kind KIND --id ID\n"
"                                 [--name NAME]... [--days N] --out-dir OUT\n"
"       ferry-control certs sign-csr --data-dir DIR --kind KIND --id ID\n"
"                                 [--name NAME]... [--days N] --csr FILE\n"
"\n"
"Certificates from ferry-control's CA in DIR (made there if absent).\n"
"\n"
"  issue      make a P-256 key and a certificate for it, and write\n"
"             OUT/ID.pem, OUT/ID-key.pem (mode 0600) and OUT/ca.pem\n"
"  sign-csr   sign the PEM request in FILE ('-' for standard input) and\n"
"             print the certificate; only the request's key is used\n"
"\n"
"  --kind replicator   server and client certificate for a replicator:\n"
"                      CN=ID, SANs = the --name values and\n"
"                      urn:ferry:replicator:ID\n"
"  --kind client       client certificate of source server ID (agent):\n"
"                      CN=ID, SAN urn:ferry:source-server:ID\n"
"  --name NAME         DNS name or IP address (replicator only; repeat)\n"
"  --days N            validity, 1-3650 days (default 825)\n";

struct opts {
	const char *cmd;
	const char *data_dir;
	const char *kind_name;
	enum ca_kind kind;
	const char *id;
	const char *names[MAX_NAMES];
	int n_names;
	int days;
	const char *out_dir;
	const char *csr;
};

__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("ferry-control certs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* OpenSSL's reason for its latest error. */
static const char *ossl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_get_error());

	ERR_clear_error();
	return r ? r : "unknown error";
}

/* A usage error: one line, then a hint. */
__attribute__((format(printf, 1, 2)))
static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("ferry-control certs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see ferry-control certs --help)\n", stderr);
	return 2;
}

/* Parse the options after the subcommand.  Returns 0, or an exit code. */
static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "data-dir", required_argument, NULL, 'D' },
		{ "kind", required_argument, NULL, 'k' },
		{ "id", required_argument, NULL, 'i' },
		{ "name", required_argument, NULL, 'n' },
		{ "days", required_argument, NULL, 'd' },
		{ "out-dir", required_argument, NULL, 'o' },
		{ "csr", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool issue = !strcmp(o->cmd, "issue");
	char *end;
	long v;
	int c;

	/* argv[0] is the subcommand; glibc fully re-initialises getopt
	 * when optind is 0 (main may have used it already). */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'D':
			o->data_dir = optarg;
			break;
		case 'k':
			o->kind_name = optarg;
			if (!strcmp(optarg, "replicator"))
				o->kind = CA_SERVER_REPLICATOR;
			else if (!strcmp(optarg, "client"))
				o->kind = CA_CLIENT_SOURCE_SERVER;
			else
				return bad_usage("--kind must be replicator or client, not \"%s\"",
						 optarg);
			break;
		case 'i':
			o->id = optarg;
			break;
		case 'n':
			if (o->n_names == MAX_NAMES)
				return bad_usage("more than %d --name options",
						 MAX_NAMES);
			o->names[o->n_names++] = optarg;
			break;
		case 'd':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 ||
			    v > 3650)
				return bad_usage("--days must be 1-3650, not \"%s\"",
						 optarg);
			o->days = (int)v;
			break;
		case 'o':
			if (!issue)
				return bad_usage("--out-dir applies to issue only");
			o->out_dir = optarg;
			break;
		case 'c':
			if (issue)
				return bad_usage("--csr applies to sign-csr only");
			o->csr = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case ':':
			return bad_usage("%s needs a value", argv[optind - 1]);
		default:
			return bad_usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument \"%s\"", argv[optind]);
	if (!o->data_dir)
		return bad_usage("--data-dir is required");
	if (!o->kind_name)
		return bad_usage("--kind is required");
	if (!o->id)
		return bad_usage("--id is required");
	if (!ferry_id_valid(o->id))
		return bad_usage("--id \"%s\" is not 1-%d of letters, digits, '.', '_', '-'",
				 o->id, FERRY_ID_MAX);
	if (o->n_names && o->kind != CA_SERVER_REPLICATOR)
		return bad_usage("--name applies to --kind replicator only");
	if (issue && !o->out_dir)
		return bad_usage("--out-dir is required");
	if (!issue && !o->csr)
		return bad_usage("--csr is required");
	return 0;
}

static struct ca *open_ca(const char *dir)
{
	char path[PATH_MAX], err[512];
	struct stat st;
	bool existed;
	struct ca *ca;

	snprintf(path, sizeof(path), "%s/ca-key.pem", dir);
	existed = stat(path, &st) == 0;
	ca = ca_open(dir, err, sizeof(err));
	if (!ca) {
		fail("CA in %s: %s", dir, err);
		return NULL;
	}
	if (!existed)
		fprintf(stderr, "ferry-control certs: made a new CA in %s\n",
			dir);
	return ca;
}

/* A P-256 key and a PEM request signed with it (CN=ID, for the record:
 * the CA sets the subject itself). */
static char *make_csr(EVP_PKEY *key, const char *id)
{
	X509_REQ *req = X509_REQ_new();
	char *data, *pem = NULL;
	BIO *b = NULL;
	long n;

	if (!req || !X509_REQ_set_pubkey(req, key) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
					MBSTRING_UTF8,
					(const unsigned char *)id, -1, -1,
					0) ||
	    !X509_REQ_sign(req, key, EVP_sha256()))
		goto out;
	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_X509_REQ(b, req))
		goto out;
	n = BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)n);
out:
	BIO_free(b);
	X509_REQ_free(req);
	return pem;
}

static int write_out(const char *dir, const char *name, const void *data,
		     size_t len, mode_t mode)
{
	char path[PATH_MAX], err[512];

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return fail("%s/%s: path too long", dir, name);
	if (ca_write_file(path, data, len, mode, true, err, sizeof(err)))
		return fail("%s", err);
	return 0;
}

static int cmd_issue(struct ca *ca, const struct opts *o)
{
	char err[512], key_name[NAME_MAX], cert_name[NAME_MAX];
	char *csr = NULL, *cert = NULL, *key_pem = NULL, *data;
	EVP_PKEY *key;
	BIO *b = NULL;
	long n = 0;
	int rc = 1;

	snprintf(key_name, sizeof(key_name), "%s-key.pem", o->id);
	snprintf(cert_name, sizeof(cert_name), "%s.pem", o->id);
	key = EVP_EC_gen("P-256");
	if (!key) {
		fail("generate a P-256 key: %s",
		     ossl_reason());
		return 1;
	}
	csr = make_csr(key, o->id);
	if (!csr) {
		fail("make a request: %s",
		     ossl_reason());
		goto out;
	}
	cert = ca_sign_csr(ca, csr, o->kind, o->id, o->names, o->n_names,
			   o->days, err, sizeof(err));
	if (!cert) {
		fail("%s", err);
		goto out;
	}
	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL,
					    NULL)) {
		fail("encode the key: %s",
		     ossl_reason());
		goto out;
	}
	n = BIO_get_mem_data(b, &data);
	key_pem = data;
	if (mkdir(o->out_dir, 0700) && errno != EEXIST) {
		fail("create directory %s: %s", o->out_dir, strerror(errno));
		goto out;
	}
	if (write_out(o->out_dir, key_name, key_pem, (size_t)n, 0600) ||
	    write_out(o->out_dir, cert_name, cert, strlen(cert), 0644) ||
	    write_out(o->out_dir, "ca.pem", ca_cert_pem(ca),
		      strlen(ca_cert_pem(ca)), 0644))
		goto out;
	printf("wrote %s/%s, %s/%s and %s/ca.pem\n", o->out_dir, cert_name,
	       o->out_dir, key_name, o->out_dir);
	rc = 0;
out:
	if (key_pem)
		OPENSSL_cleanse(key_pem, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(key);
	free(csr);
	free(cert);
	return rc;
}

static int cmd_sign_csr(struct ca *ca, const struct opts *o)
{
	bool is_stdin = !strcmp(o->csr, "-");
	FILE *f = is_stdin ? stdin : fopen(o->csr, "re");
	char *buf, *cert, err[512];
	size_t n;

	if (!f)
		return fail("open %s: %s", o->csr, strerror(errno));
	buf = malloc(MAX_CSR + 1);
	if (!buf) {
		if (!is_stdin)
			fclose(f);
		return fail("out of memory");
	}
	n = fread(buf, 1, MAX_CSR + 1, f);
	if (ferror(f)) {
		fail("read %s: %s", o->csr, strerror(errno));
		goto fail;
	}
	if (n > MAX_CSR) {
		fail("%s: larger than %d bytes", o->csr, MAX_CSR);
		goto fail;
	}
	buf[n] = '\0';
	if (!is_stdin)
		fclose(f);
	f = NULL;
	cert = ca_sign_csr(ca, buf, o->kind, o->id, o->names, o->n_names,
			   o->days, err, sizeof(err));
	free(buf);
	if (!cert)
		return fail("%s: %s", o->csr, err);
	fputs(cert, stdout);
	free(cert);
	if (fflush(stdout))
		return fail("write the certificate: %s", strerror(errno));
	return 0;
fail:
	if (f && !is_stdin)
		fclose(f);
	free(buf);
	return 1;
}

int certs_cli(int argc, char **argv)
{
	struct opts o = { .days = DEFAULT_DAYS };
	struct ca *ca;
	int rc;

	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	o.cmd = argv[1];
	if (!strcmp(o.cmd, "--help") || !strcmp(o.cmd, "-h") ||
	    !strcmp(o.cmd, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(o.cmd, "issue") && strcmp(o.cmd, "sign-csr"))
		return bad_usage("unknown command \"%s\"", o.cmd);
	rc = parse(argc - 1, argv + 1, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	ca = open_ca(o.data_dir);
	if (!ca)
		return 1;
	if (!strcmp(o.cmd, "issue"))
		rc = cmd_issue(ca, &o);
	else
		rc = cmd_sign_csr(ca, &o);
	ca_free(ca);
	return rc;
}
