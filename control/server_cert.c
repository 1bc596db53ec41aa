// SPDX-License-Identifier: GPL-2.0
/*
 * server_cert.c - the certificate ferry-control serves: loaded at start,
 * the CA-issued one renewed while serving, either read again on SIGHUP.
 */
#include "server_cert.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "config.h"
#include "http.h"
#include "log.h"

#define RETRY_SECS 3600	/* after a failed renewal */
#define DAY_SECS   86400 /* between warnings of a certificate ending */

struct server_cert {
	pthread_mutex_t lock;	/* the timer thread's tick, SIGHUP's reload */
	struct ca *ca;
	const struct control_config *cfg;
	char cert_path[4096], key_path[4096];
	time_t end;		/* notAfter of the certificate served */
	time_t next_check;	/* when the tick looks at it again */
};

static char *read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path,
			 strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    n < (1 << 20) && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = '\0';
	} else {
		snprintf(err, errlen, "cannot read %s", path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* notAfter of the first certificate in PEM, or -1. */
static time_t cert_end(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	struct tm tm;
	time_t t = -1;

	if (x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		t = timegm(&tm);
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return t;
}

static void fmt_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, len, "?");
}

/* Make sure of the CA-issued certificate (renewed when due), read the
 * files and serve them.  0, or -1 with the reason in ERR. */
static int load(struct server_cert *sc, char *err, size_t errlen)
{
	char *cert, *key = NULL, why[256];
	time_t end;
	int rc = -1;

	if (!sc->cfg->cert_file &&
	    ca_ensure_server_cert(sc->ca, sc->cfg->data_dir, sc->cfg->names,
				  sc->cfg->n_names, err, errlen))
		return -1;
	cert = read_file(sc->cert_path, err, errlen);
	key = cert ? read_file(sc->key_path, err, errlen) : NULL;
	if (!key)
		goto out;
	end = cert_end(cert);
	if (end == -1) {
		snprintf(err, errlen, "%s holds no PEM certificate",
			 sc->cert_path);
		goto out;
	}
	if (http_set_identity(cert, key, why, sizeof(why))) {
		snprintf(err, errlen, "%s and %s: %s", sc->cert_path,
			 sc->key_path, why);
		goto out;
	}
	sc->end = end;
	rc = 0;
out:
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	return rc;
}

/* The next look: when the certificate is due.  A CA-issued one that is
 * due at once (the CA ends within the renewal window, and caps every
 * certificate it issues at its own end, ca.c) is looked at again a day
 * later: renewing it sooner would gain nothing.  Returns whether that is
 * the case. */
static bool plan(struct server_cert *sc, time_t now)
{
	time_t due = sc->end - CA_SERVER_RENEW_SECS;

	if (sc->cfg->cert_file || due > now) {
		sc->next_check = due;
		return false;
	}
	sc->next_check = now + DAY_SECS;
	return true;
}

struct server_cert *server_cert_open(struct ca *ca,
				     const struct control_config *cfg,
				     char *err, size_t errlen)
{
	struct server_cert *sc = calloc(1, sizeof(*sc));

	if (!sc) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&sc->lock, NULL);
	sc->ca = ca;
	sc->cfg = cfg;
	if (cfg->cert_file) {
		snprintf(sc->cert_path, sizeof(sc->cert_path), "%s",
			 cfg->cert_file);
		snprintf(sc->key_path, sizeof(sc->key_path), "%s",
			 cfg->key_file);
	} else {
		snprintf(sc->cert_path, sizeof(sc->cert_path), "%s/server.pem",
			 cfg->data_dir);
		snprintf(sc->key_path, sizeof(sc->key_path),
			 "%s/server-key.pem", cfg->data_dir);
	}
	if (load(sc, err, errlen)) {
		server_cert_free(sc);
		return NULL;
	}
	plan(sc, time(NULL));
	return sc;
}

void server_cert_tick(struct server_cert *sc, time_t now)
{
	char err[768], was[32], is[32];
	const char *tense;

	pthread_mutex_lock(&sc->lock);
	if (now < sc->next_check) {
		pthread_mutex_unlock(&sc->lock);
		return;
	}
	fmt_time(sc->end, was, sizeof(was));
	tense = sc->end > now ? "ends" : "ended";
	if (sc->cfg->cert_file) {
		log_error("the certificate given with --cert (%s) %s %s: replace it and its key, then send SIGHUP (systemctl reload ferry-control)",
			  sc->cert_path, tense, was);
		sc->next_check = now + DAY_SECS;
	} else if (load(sc, err, sizeof(err))) {
		log_error("the server certificate %s %s %s and could not be renewed: %s; trying again in an hour",
			  sc->cert_path, tense, was, err);
		sc->next_check = now + RETRY_SECS;
	} else {
		fmt_time(sc->end, is, sizeof(is));
		log_info("renewed the server certificate %s, due to end %s: the new one ends %s, new connections get it",
			 sc->cert_path, was, is);
		if (plan(sc, now))
			log_error("the server certificate cannot last beyond the CA in %s/ca.pem, which ends %s as well; ferry-control cannot replace its CA, so agents and replicators will need a new ca.pem; looking again in a day",
				  sc->cfg->data_dir, is);
	}
	pthread_mutex_unlock(&sc->lock);
}

void server_cert_reload(struct server_cert *sc)
{
	char err[768], was[32], is[32];

	pthread_mutex_lock(&sc->lock);
	fmt_time(sc->end, was, sizeof(was));
	if (load(sc, err, sizeof(err))) {
		log_error("SIGHUP: cannot load the server certificate: %s; still serving the one that ends %s",
			  err, was);
	} else {
		fmt_time(sc->end, is, sizeof(is));
		log_info("SIGHUP: serving %s, which ends %s, to new connections",
			 sc->cert_path, is);
		plan(sc, time(NULL));
	}
	pthread_mutex_unlock(&sc->lock);
}

void server_cert_free(struct server_cert *sc)
{
	if (!sc)
		return;
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}
