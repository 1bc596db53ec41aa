// SPDX-License-Identifier: GPL-2.0
/* http.c - libmicrohttpd glue: collect a request, answer it. */
#include "http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assets.h"
#include "config.h"
#include "request.h"

/* Bodies declared larger than this are refused before being read. */
#define HTTP_DRAIN_MAX (64u << 20)
/* All bodies held at once, by authenticated clients (unauthenticated
 * ones are dropped as they arrive): beyond, ThrottlingException. */
#define HTTP_BUFFERED_MAX (256u << 20)

/* Certificates in the chain a server may send (as GnuTLS's own PEM
 * loader allows). */
#define HTTP_CHAIN_MAX 16

/*
 * A certificate chain and its key, as GnuTLS serves them.  GnuTLS's
 * certificate callback receives no argument of ours, so the identity
 * served is process-wide.  An identity is never freed while the server
 * runs: a handshake may still hold the one the callback returned, and a
 * renewal comes once in months, so keeping the replaced ones costs a few
 * kilobytes per renewal at most.
 */
struct identity {
	gnutls_pcert_st pcert[HTTP_CHAIN_MAX];
	unsigned int n;
	gnutls_privkey_t key;
	struct identity *older;
};

static pthread_mutex_t identity_lock = PTHREAD_MUTEX_INITIALIZER;
static struct identity *identity; /* served to new handshakes */

struct http_server {
	struct MHD_Daemon *d;
	struct control *c;
	atomic_size_t buffered;	/* bytes of every pending->cap */
};

/* One request in progress (MHD's per-request pointer). */
struct pending {
	struct http_server *h;
	char *uri;	/* raw target, before MHD decodes anything */
	char *body;
	size_t len, cap;
	int too_large;
	int overloaded;
	int refused;	/* refusal in RESP, the body is dropped */
	int asset;	/* an asset download: the body is dropped */
	int started;
	struct control_response resp;
};

/* Called first for every request, with the target as sent: SigV4 signs
 * the raw encoding, which MHD would otherwise decode. */
static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct pending *p = calloc(1, sizeof(*p));

	(void)conn;
	if (p) {
		p->h = cls;
		p->uri = strdup(uri);
	}
	return p;
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct pending *p = *req_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (p) {
		atomic_fetch_sub(&p->h->buffered, p->cap);
		control_response_free(&p->resp);
		free(p->uri);
		free(p->body);
		free(p);
	}
	*req_cls = NULL;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind,
				  const char *key, const char *value)
{
	struct control_request *req = cls;

	(void)kind;
	if (req->n_headers >= REQUEST_MAX_HEADERS)
		return MHD_NO;
	req->headers[req->n_headers].name = key;
	req->headers[req->n_headers].value = value ? value : "";
	req->n_headers++;
	return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *conn,
			     struct control_response *resp)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(resp->body ? resp->body_len : 0,
					    resp->body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		control_response_free(resp);
		return MHD_NO;
	}
	resp->body = NULL; /* MHD frees it */
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "x-amzn-RequestId", resp->request_id);
	if (resp->error_type[0])
		MHD_add_response_header(r, "x-amzn-ErrorType",
					resp->error_type);
	rc = MHD_queue_response(conn, (unsigned int)resp->status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result too_large_now(struct http_server *h,
				     struct MHD_Connection *conn,
				     struct pending *p)
{
	struct control_request req = { .method = "POST", .uri = p->uri,
				       .too_large = 1, .now = time(NULL) };
	struct control_response resp;

	control_handle(h->c, &req, &resp);
	return reply(conn, &resp);
}

/* GET /assets/latest/linux/FORMAT/NAME[.sha512]: the installation
 * assets, unsigned, as from a public bucket (assets.h). */
static enum MHD_Result serve_asset(struct http_server *h,
				   struct MHD_Connection *conn,
				   const char *uri)
{
	static const char not_found[] = "no such installation asset\n";
	struct MHD_Response *r = NULL;
	enum MHD_Result ret;
	struct asset a;
	bool digest;
	char line[300];
	int fd, n;

	if (!assets_lookup(h->c->cfg->assets_dir, uri, &a, &digest)) {
		if (digest) {
			n = snprintf(line, sizeof(line), "%s  %s\n", a.sha512,
				     a.name);
			r = MHD_create_response_from_buffer(
				(size_t)n, line, MHD_RESPMEM_MUST_COPY);
		} else if ((fd = open(a.path, O_RDONLY | O_CLOEXEC)) >= 0) {
			/* MHD closes FD with the response. */
			r = MHD_create_response_from_fd((uint64_t)a.size, fd);
			if (!r)
				close(fd);
		}
	}
	if (r) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					digest ? "text/plain" :
						 "application/octet-stream");
		ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	} else {
		r = MHD_create_response_from_buffer(sizeof(not_found) - 1,
						    (void *)not_found,
						    MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					"text/plain");
		ret = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r);
	}
	MHD_destroy_response(r);
	return ret;
}

static bool is_asset(const char *method, const char *uri)
{
	return (!strcmp(method, "GET") || !strcmp(method, "HEAD")) &&
	       !strncmp(uri, "/assets/", 8);
}

/* control_admit() on the headers of P: 0, or -1 with P->resp filled. */
static int admit(struct http_server *h, struct MHD_Connection *conn,
		 const char *method, struct pending *p)
{
	struct control_request req = { .method = method, .uri = p->uri,
				       .now = time(NULL) };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, &req);
	return control_admit(h->c, &req, &p->resp);
}

/* Room for WANT bytes of body, counted against HTTP_BUFFERED_MAX; -1
 * when that or memory runs out. */
static int grow(struct pending *p, size_t want)
{
	size_t cap = p->cap ? p->cap * 2 : 4096;
	char *b;

	while (cap < want)
		cap *= 2;
	if (atomic_fetch_add(&p->h->buffered, cap - p->cap) + cap - p->cap >
	    HTTP_BUFFERED_MAX) {
		atomic_fetch_sub(&p->h->buffered, cap - p->cap);
		return -1;
	}
	b = realloc(p->body, cap);
	if (!b) {
		atomic_fetch_sub(&p->h->buffered, cap - p->cap);
		return -1;
	}
	p->body = b;
	p->cap = cap;
	return 0;
}

/* Read and forget: the answer does not depend on the body. */
static void drop_body(struct pending *p)
{
	atomic_fetch_sub(&p->h->buffered, p->cap);
	free(p->body);
	p->body = NULL;
	p->len = p->cap = 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **req_cls)
{
	struct http_server *h = cls;
	struct pending *p = *req_cls;
	struct control_request req = { 0 };
	struct control_response resp;

	(void)url;
	(void)version;
	if (!p || !p->uri)
		return MHD_NO;
	if (!p->started) {
		const char *cl = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

		p->started = 1;
		/*
		 * A body over the limit is read and dropped, then refused:
		 * answering before the client has sent it would reset the
		 * connection under the client, which then never sees the
		 * answer.  Only an absurd declared length is refused at once.
		 */
		if (cl && strtoull(cl, NULL, 10) > HTTP_DRAIN_MAX)
			return too_large_now(h, conn, p);
		/* Assets are served to anyone (the installer fetches them
		 * unsigned), so whatever body they come with is dropped:
		 * buffered, it would hold a MiB per connection of the budget
		 * signed requests share, for a stranger. */
		p->asset = is_asset(method, p->uri);
		if (!p->asset)
			p->refused = admit(h, conn, method, p) != 0;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		if (!p->too_large && p->len + n > REQUEST_MAX_BODY)
			p->too_large = 1;
		if (!p->too_large && !p->refused && !p->overloaded &&
		    !p->asset && p->len + n > p->cap && grow(p, p->len + n))
			p->overloaded = 1;
		if (p->too_large || p->refused || p->overloaded || p->asset) {
			drop_body(p);
		} else {
			memcpy(p->body + p->len, upload, n);
			p->len += n;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (p->asset)
		return serve_asset(h, conn, p->uri);
	if (p->refused && !p->too_large)
		return reply(conn, &p->resp);
	req.method = method;
	req.uri = p->uri;
	req.body = p->body;
	req.body_len = p->len;
	req.too_large = p->too_large;
	req.overloaded = p->overloaded;
	req.now = time(NULL);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, &req);
	control_handle(h->c, &req, &resp);
	return reply(conn, &resp);
}

static void identity_free(struct identity *id)
{
	for (unsigned int i = 0; i < id->n; i++)
		gnutls_pcert_deinit(&id->pcert[i]);
	if (id->key)
		gnutls_privkey_deinit(id->key);
	free(id);
}

/* Does the key of ID belong to its leaf certificate?  GnuTLS checks this
 * itself only for credentials set without a callback. */
static bool identity_pairs(struct identity *id)
{
	gnutls_datum_t a = { 0 }, b = { 0 };
	gnutls_pubkey_t pub;
	bool same = false;

	if (gnutls_pubkey_init(&pub) < 0)
		return false;
	if (gnutls_pubkey_import_privkey(pub, id->key, 0, 0) >= 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) >= 0 &&
	    gnutls_pubkey_export2(id->pcert[0].pubkey, GNUTLS_X509_FMT_DER,
				  &b) >= 0)
		same = a.size == b.size && !memcmp(a.data, b.data, a.size);
	gnutls_free(a.data);
	gnutls_free(b.data);
	gnutls_pubkey_deinit(pub);
	return same;
}

int http_set_identity(const char *cert_pem, const char *key_pem, char *err,
		      size_t errlen)
{
	gnutls_datum_t cert = { (unsigned char *)cert_pem,
				(unsigned int)strlen(cert_pem) };
	gnutls_datum_t key = { (unsigned char *)key_pem,
			       (unsigned int)strlen(key_pem) };
	struct identity *id = calloc(1, sizeof(*id));
	int rc;

	if (!id) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	id->n = HTTP_CHAIN_MAX;
	/* Sorted leaf first, as gnutls_certificate_set_x509_key_mem() does:
	 * a bundle in another order is still served as a chain. */
	rc = gnutls_pcert_list_import_x509_raw(id->pcert, &id->n, &cert,
					       GNUTLS_X509_FMT_PEM,
					       GNUTLS_X509_CRT_LIST_SORT);
	if (rc < 0) {
		id->n = 0;
		snprintf(err, errlen, "the certificate cannot be read: %s",
			 gnutls_strerror(rc));
		goto fail;
	}
	rc = gnutls_privkey_init(&id->key);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509_raw(id->key, &key,
						    GNUTLS_X509_FMT_PEM, NULL,
						    0);
	if (rc < 0) {
		snprintf(err, errlen,
			 "the private key cannot be read: %s (an unencrypted PEM key is needed)",
			 gnutls_strerror(rc));
		goto fail;
	}
	if (!identity_pairs(id)) {
		snprintf(err, errlen,
			 "the private key does not belong to the certificate");
		goto fail;
	}
	pthread_mutex_lock(&identity_lock);
	id->older = identity;
	identity = id;
	pthread_mutex_unlock(&identity_lock);
	return 0;
fail:
	identity_free(id);
	return -1;
}

/* GnuTLS asks for the certificate of each handshake here: the identity
 * set last, so that a renewed certificate reaches new connections while
 * those already open keep theirs. */
static int retrieve_identity(gnutls_session_t session,
			     const gnutls_datum_t *req_ca_dn, int n_req,
			     const gnutls_pk_algorithm_t *pk_algos,
			     int n_pk_algos, gnutls_pcert_st **pcert,
			     unsigned int *n_pcert, gnutls_privkey_t *key)
{
	(void)session;
	(void)req_ca_dn;
	(void)n_req;
	(void)pk_algos;
	(void)n_pk_algos;
	pthread_mutex_lock(&identity_lock);
	if (!identity) {
		pthread_mutex_unlock(&identity_lock);
		return -1;
	}
	*pcert = identity->pcert;
	*n_pcert = identity->n;
	*key = identity->key;
	pthread_mutex_unlock(&identity_lock);
	return 0;
}

struct http_server *http_start(struct control *c, const char *addr,
			       unsigned short port, int threads, char *err,
			       size_t errlen)
{
	struct http_server *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	unsigned int flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD |
			     MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_lock(&identity_lock);
	if (!identity) {
		pthread_mutex_unlock(&identity_lock);
		snprintf(err, errlen, "no server certificate set");
		free(h);
		return NULL;
	}
	pthread_mutex_unlock(&identity_lock);
	h->c = c;
	atomic_init(&h->buffered, 0);
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen,
			 "--listen: '%s' is not an IPv4 or IPv6 address", addr);
		free(h);
		return NULL;
	}
	h->d = MHD_start_daemon(
		flags, port, NULL, NULL, handler, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_HTTPS_CERT_CALLBACK, retrieve_identity,
		/* TLS 1.2 and 1.3 only */
		MHD_OPTION_HTTPS_PRIORITIES,
		"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
		MHD_OPTION_URI_LOG_CALLBACK, uri_log, h,
		MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
		MHD_OPTION_CONNECTION_TIMEOUT, 120u,
		MHD_OPTION_CONNECTION_LIMIT, 10000u,
		MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen,
			 "cannot listen on %s:%u (address in use or not ours)",
			 addr, port);
		free(h);
		return NULL;
	}
	return h;
}

unsigned short http_port(struct http_server *h)
{
	const union MHD_DaemonInfo *i =
		MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);

	return i ? i->port : 0;
}

void http_stop(struct http_server *h)
{
	struct identity *id;

	if (h) {
		MHD_stop_daemon(h->d);
		free(h);
	}
	/* No handshake can run now: every identity goes. */
	pthread_mutex_lock(&identity_lock);
	id = identity;
	identity = NULL;
	pthread_mutex_unlock(&identity_lock);
	while (id) {
		struct identity *older = id->older;

		identity_free(id);
		id = older;
	}
}
