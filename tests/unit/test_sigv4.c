// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of control/sigv4.c and control/sigv4_replay.c.
 *
 * Positive cases come from two independent signers: botocore (the vectors
 * printed by tests/unit/sigv4_vectors.py, run with /usr/bin/python3 from
 * the repository root) and libcurl's CURLOPT_AWS_SIGV4 (a real request
 * sent to a socket of this process and parsed back).  Each is then
 * altered to check that the change is refused with AWS's message.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "check.h"
#include "../../control/sigv4.h"

#define PYTHON "/usr/bin/python3"
#define VECTORS "tests/unit/sigv4_vectors.py"
#define MAX_H 64

static const char mismatch[] =
	"The request signature we calculated does not match the signature "
	"you provided. Check your AWS Secret Access Key and signing method. "
	"Consult the service documentation for details.";

/* A request we own: every string malloc'd. */
struct req {
	char *name;
	char *method, *path, *query;
	char *hname[MAX_H], *hvalue[MAX_H];
	size_t nh;
	unsigned char *body;
	size_t body_len;
	char *akid, *secret, *region, *service;
	time_t now;
	struct sigv4_header hv[MAX_H];
	struct sigv4_request r;
};

static char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		abort();
	return p;
}

static void req_free(struct req *q)
{
	free(q->name);
	free(q->method);
	free(q->path);
	free(q->query);
	for (size_t i = 0; i < q->nh; i++) {
		free(q->hname[i]);
		free(q->hvalue[i]);
	}
	free(q->body);
	free(q->akid);
	free(q->secret);
	free(q->region);
	free(q->service);
	memset(q, 0, sizeof(*q));
}

static void req_copy(struct req *dst, const struct req *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->name = xstrdup(src->name);
	dst->method = xstrdup(src->method);
	dst->path = xstrdup(src->path);
	dst->query = src->query ? xstrdup(src->query) : NULL;
	for (size_t i = 0; i < src->nh; i++) {
		dst->hname[i] = xstrdup(src->hname[i]);
		dst->hvalue[i] = xstrdup(src->hvalue[i]);
	}
	dst->nh = src->nh;
	dst->body = malloc(src->body_len + 1);
	if (!dst->body)
		abort();
	memcpy(dst->body, src->body, src->body_len);
	dst->body_len = src->body_len;
	dst->akid = xstrdup(src->akid);
	dst->secret = xstrdup(src->secret);
	dst->region = xstrdup(src->region);
	dst->service = xstrdup(src->service);
	dst->now = src->now;
}

static void req_add_header(struct req *q, const char *name,
			   const char *value)
{
	if (q->nh == MAX_H)
		abort();
	q->hname[q->nh] = xstrdup(name);
	q->hvalue[q->nh++] = xstrdup(value);
}

/* Replace the value of the first header NAME (any case); add if absent. */
static void req_set_header(struct req *q, const char *name,
			   const char *value)
{
	for (size_t i = 0; i < q->nh; i++) {
		if (!strcasecmp(q->hname[i], name)) {
			free(q->hvalue[i]);
			q->hvalue[i] = xstrdup(value);
			return;
		}
	}
	req_add_header(q, name, value);
}

static void req_del_header(struct req *q, const char *name)
{
	for (size_t i = 0; i < q->nh; i++) {
		if (!strcasecmp(q->hname[i], name)) {
			free(q->hname[i]);
			free(q->hvalue[i]);
			memmove(&q->hname[i], &q->hname[i + 1],
				(q->nh - i - 1) * sizeof(char *));
			memmove(&q->hvalue[i], &q->hvalue[i + 1],
				(q->nh - i - 1) * sizeof(char *));
			q->nh--;
			i--;
		}
	}
}

static const char *req_header(const struct req *q, const char *name)
{
	for (size_t i = 0; i < q->nh; i++)
		if (!strcasecmp(q->hname[i], name))
			return q->hvalue[i];
	return NULL;
}

static const struct sigv4_request *req_view(struct req *q)
{
	for (size_t i = 0; i < q->nh; i++) {
		q->hv[i].name = q->hname[i];
		q->hv[i].value = q->hvalue[i];
	}
	q->r.method = q->method;
	q->r.path = q->path;
	q->r.query = q->query;
	q->r.headers = q->hv;
	q->r.n_headers = q->nh;
	q->r.body = q->body;
	q->r.body_len = q->body_len;
	return &q->r;
}

/* parse + verify as the server does; MSG gets the message. */
static enum sigv4_result check_at(struct req *q, const char *secret,
				  const char *region, const char *service,
				  time_t now, char *msg, size_t msglen)
{
	const struct sigv4_request *r = req_view(q);
	struct sigv4_auth auth;
	enum sigv4_result res;

	res = sigv4_parse(r, &auth, msg, msglen);
	if (res != SIGV4_OK)
		return res;
	if (strcmp(auth.access_key_id, q->akid)) {
		snprintf(msg, msglen, "parsed key id %s", auth.access_key_id);
		return SIGV4_INCOMPLETE;
	}
	return sigv4_verify(r, &auth, secret, region, service, now, msg,
			    msglen);
}

static enum sigv4_result check(struct req *q, char *msg, size_t msglen)
{
	return check_at(q, q->secret, q->region, q->service, q->now, msg,
			msglen);
}

#define CHECK_RES(q, want, msgpart)					\
	do {								\
		char m_[1024] = "";					\
		enum sigv4_result r_ = check((q), m_, sizeof(m_));	\
		CHECK_U64(r_, (want));					\
		CHECK_HAS(m_, (msgpart));				\
		if (r_ != (want))					\
			fprintf(stderr, "  case %s: %s\n", (q)->name, m_); \
	} while (0)

/* ---- botocore vectors ---- */

/* Latin-1 text (as the generator wrote the bytes) back to bytes. */
static unsigned char *latin1_bytes(const char *s, size_t len, size_t *out)
{
	unsigned char *b = malloc(len + 1);
	size_t o = 0;

	if (!b)
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0xc0 && i + 1 < len) {
			unsigned char c2 = (unsigned char)s[++i];

			b[o++] = (unsigned char)((c & 0x1f) << 6 | (c2 & 0x3f));
		} else {
			b[o++] = c;
		}
	}
	*out = o;
	return b;
}

static int load_vector(const char *line, struct req *q)
{
	json_error_t err;
	json_t *j = json_loads(line, JSON_ALLOW_NUL, &err), *h, *pair;
	json_t *body;
	size_t i;

	memset(q, 0, sizeof(*q));
	if (!j) {
		fprintf(stderr, "vector line %d: %s\n", err.line, err.text);
		return -1;
	}
	q->name = xstrdup(json_string_value(json_object_get(j, "name")));
	q->method = xstrdup(json_string_value(json_object_get(j, "method")));
	q->path = xstrdup(json_string_value(json_object_get(j, "path")));
	q->query = xstrdup(json_string_value(json_object_get(j, "query")));
	q->akid = xstrdup(json_string_value(json_object_get(j, "akid")));
	q->secret = xstrdup(json_string_value(json_object_get(j, "secret")));
	q->region = xstrdup(json_string_value(json_object_get(j, "region")));
	q->service = xstrdup(json_string_value(json_object_get(j,
							       "service")));
	q->now = (time_t)json_integer_value(json_object_get(j, "now"));
	body = json_object_get(j, "body");
	q->body = latin1_bytes(json_string_value(body) ?
				       json_string_value(body) : "",
			       json_string_length(body), &q->body_len);
	h = json_object_get(j, "headers");
	json_array_foreach(h, i, pair) {
		req_add_header(q, json_string_value(json_array_get(pair, 0)),
			       json_string_value(json_array_get(pair, 1)));
	}
	json_decref(j);
	return 0;
}

/* Read every vector; returns how many. */
static size_t load_vectors(struct req *v, size_t max)
{
	FILE *f = popen(PYTHON " " VECTORS, "r");
	char *line = NULL;
	size_t cap = 0, n = 0;

	if (!f) {
		perror("popen " VECTORS);
		return 0;
	}
	while (getline(&line, &cap, f) > 0 && n < max)
		if (!load_vector(line, &v[n]))
			n++;
	free(line);
	if (pclose(f) != 0)
		fprintf(stderr, PYTHON " " VECTORS " failed\n");
	return n;
}

static struct req vectors[32];
static size_t n_vectors;

static struct req *vector(const char *name)
{
	for (size_t i = 0; i < n_vectors; i++)
		if (!strcmp(vectors[i].name, name))
			return &vectors[i];
	fprintf(stderr, "no vector %s\n", name);
	abort();
}

static void test_botocore_vectors(void)
{
	static const char *const expected[] = {
		"client-describe", "client-describe-token",
		"client-list-tags-utf8", "client-untag-repeated",
		"client-tag", "raw-query-repeated-empty", "raw-spacing",
		"raw-dot-segments", "raw-utf8-path", "raw-body-binary",
		"raw-session-token", "raw-content-sha256", "raw-date-header",
	};

	n_vectors = load_vectors(vectors, 32);
	CHECK_U64(n_vectors, sizeof(expected) / sizeof(expected[0]));
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		bool found = false;

		for (size_t k = 0; k < n_vectors; k++) {
			if (strcmp(vectors[k].name, expected[i]))
				continue;
			found = true;
			CHECK_RES(&vectors[k], SIGV4_OK, "");
		}
		if (!found)
			fprintf(stderr, "vector %s missing\n", expected[i]);
		CHECK(found);
	}
	if (n_vectors < sizeof(expected) / sizeof(expected[0]))
		abort(); /* the cases below need them */
}

/* The parsed fields of a vector. */
static void test_parse_fields(void)
{
	struct req *v = vector("client-describe-token");
	struct sigv4_auth a;
	char msg[512];

	CHECK_U64(sigv4_parse(req_view(v), &a, msg, sizeof(msg)), SIGV4_OK);
	CHECK_STR(a.access_key_id, "AKIAFERRYTEST0000001");
	CHECK_STR(a.date, "20261122");
	CHECK_STR(a.region, "us-east-1");
	CHECK_STR(a.service, "mgn");
	CHECK_STR(a.signed_headers,
		  "content-type;host;x-amz-date;x-amz-security-token");
	CHECK_STR(a.amz_date, "20261122T063000Z");
	CHECK_U64(a.request_time, v->now);
	CHECK(a.security_token != NULL);
	CHECK_STR(a.security_token ? a.security_token : "",
		  "FQoGZXIvYXdzEJr//////////wEaDOFERRY+session/token==");
	CHECK_U64(strlen(a.signature), 64);

	/* From a Date header instead of X-Amz-Date. */
	v = vector("raw-date-header");
	CHECK_U64(sigv4_parse(req_view(v), &a, msg, sizeof(msg)), SIGV4_OK);
	CHECK_STR(a.amz_date, "20261122T063000Z");
	CHECK(a.security_token == NULL);
}

/* Each vector altered in one way is refused. */
static void test_vector_alterations(void)
{
	for (size_t i = 0; i < n_vectors; i++) {
		struct req q;
		const char *host;
		char m[1024];

		req_copy(&q, &vectors[i]);
		CHECK_U64(check_at(&q, "wrong-secret", q.region, q.service,
				   q.now, m, sizeof(m)), SIGV4_MISMATCH);
		CHECK_STR(m, mismatch);

		/* One more body byte, or one changed. */
		q.body = realloc(q.body, q.body_len + 1);
		if (q.body_len)
			q.body[0] ^= 1;
		else
			q.body[q.body_len++] = 'x';
		CHECK_U64(check(&q, m, sizeof(m)), SIGV4_MISMATCH);
		req_free(&q);

		req_copy(&q, &vectors[i]);
		host = req_header(&q, "host");
		CHECK(host != NULL);
		req_set_header(&q, "Host", "evil.example.test");
		CHECK_U64(check(&q, m, sizeof(m)), SIGV4_MISMATCH);
		CHECK_STR(m, mismatch);
		req_free(&q);

		req_copy(&q, &vectors[i]);
		free(q.query);
		q.query = xstrdup(*vectors[i].query ? "" : "x=1");
		CHECK_U64(check(&q, m, sizeof(m)), SIGV4_MISMATCH);
		req_free(&q);

		req_copy(&q, &vectors[i]);
		free(q.path);
		q.path = xstrdup("/DeleteSourceServer");
		CHECK_U64(check(&q, m, sizeof(m)), SIGV4_MISMATCH);
		req_free(&q);

		req_copy(&q, &vectors[i]);
		free(q.method);
		q.method = xstrdup("PUT");
		CHECK_U64(check(&q, m, sizeof(m)), SIGV4_MISMATCH);
		req_free(&q);
	}
}

/* Headers that are not signed may change; signed ones may not. */
static void test_unsigned_headers(void)
{
	struct req q;

	req_copy(&q, vector("client-describe"));
	req_set_header(&q, "User-Agent", "something else");
	req_set_header(&q, "Accept-Encoding", "gzip");
	req_add_header(&q, "X-Extra", "1");
	CHECK_RES(&q, SIGV4_OK, "");
	req_set_header(&q, "Content-Type", "text/plain");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);

	/* A second value of a signed header is joined with ',': differs. */
	req_copy(&q, vector("client-describe"));
	req_add_header(&q, "content-type", "application/json");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);

	/* Spacing of signed values does not matter (trimall). */
	req_copy(&q, vector("raw-spacing"));
	req_set_header(&q, "X-Amz-Meta-Odd", "a b c d");
	req_set_header(&q, "Content-Type", "application/json");
	CHECK_RES(&q, SIGV4_OK, "");
	req_set_header(&q, "X-Amz-Meta-Odd", "a b cd");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);

	/* Query pairs in another order: same canonical query. */
	req_copy(&q, vector("client-untag-repeated"));
	free(q.query);
	q.query = xstrdup("tagKeys=a&tagKeys=a%3Db&tagKeys=caf%C3%A9&"
			  "tagKeys=z%20key&tagKeys=a");
	CHECK_RES(&q, SIGV4_OK, "");
	/* One repeated value fewer is another query. */
	free(q.query);
	q.query = xstrdup("tagKeys=a&tagKeys=a%3Db&tagKeys=caf%C3%A9&"
			  "tagKeys=z%20key");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);
}

static void set_authz(struct req *q, const char *authz)
{
	req_set_header(q, "Authorization", authz);
}

/* The Authorization header with FROM replaced by TO. */
static void edit_authz(struct req *q, const char *from, const char *to)
{
	const char *a = req_header(q, "Authorization");
	const char *at = strstr(a, from);
	char buf[2048];

	if (!at)
		abort();
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - a), a, to,
		 at + strlen(from));
	set_authz(q, buf);
}

static void test_authorization_forms(void)
{
	struct req *v = vector("client-describe");
	const char *a = req_header(v, "Authorization");
	const char *cred = strstr(a, "Credential=");
	const char *sh = strstr(a, "SignedHeaders=");
	const char *sig = strstr(a, "Signature=");
	char buf[4096], part[3][512];
	struct req q;

	snprintf(part[0], sizeof(part[0]), "%.*s", (int)(sh - cred - 2),
		 cred);
	snprintf(part[1], sizeof(part[1]), "%.*s", (int)(sig - sh - 2), sh);
	snprintf(part[2], sizeof(part[2]), "%s", sig);

	/* Other order, no space after the commas, surrounding space. */
	req_copy(&q, v);
	snprintf(buf, sizeof(buf), "  AWS4-HMAC-SHA256 %s,%s,%s  ", part[2],
		 part[0], part[1]);
	set_authz(&q, buf);
	CHECK_RES(&q, SIGV4_OK, "");
	snprintf(buf, sizeof(buf), "AWS4-HMAC-SHA256\t%s , %s ,%s", part[1],
		 part[2], part[0]);
	set_authz(&q, buf);
	CHECK_RES(&q, SIGV4_OK, "");
	/* Upper-case hex in the signature is the same signature. */
	snprintf(buf, sizeof(buf), "AWS4-HMAC-SHA256 %s, %s, Signature=",
		 part[0], part[1]);
	for (const char *s = part[2] + 10; *s; s++) {
		size_t l = strlen(buf);

		buf[l] = (char)toupper((unsigned char)*s);
		buf[l + 1] = '\0';
	}
	set_authz(&q, buf);
	CHECK_RES(&q, SIGV4_OK, "");

	/* Parts missing: every one named, then the header echoed. */
	snprintf(buf, sizeof(buf), "AWS4-HMAC-SHA256 %s", part[0]);
	set_authz(&q, buf);
	CHECK_RES(&q, SIGV4_INCOMPLETE,
		  "Authorization header requires 'Signature' parameter. "
		  "Authorization header requires 'SignedHeaders' parameter. "
		  "Authorization=AWS4-HMAC-SHA256 Credential=");
	snprintf(buf, sizeof(buf), "AWS4-HMAC-SHA256 %s, %s", part[1],
		 part[2]);
	set_authz(&q, buf);
	CHECK_RES(&q, SIGV4_INCOMPLETE,
		  "Authorization header requires 'Credential' parameter. "
		  "Authorization=");
	set_authz(&q, "Basic QUtJQTpzZWNyZXQ=");
	CHECK_RES(&q, SIGV4_INCOMPLETE,
		  "Authorization header requires 'Credential' parameter. "
		  "Authorization header requires 'Signature' parameter. "
		  "Authorization header requires 'SignedHeaders' parameter. "
		  "Authorization=Basic QUtJQTpzZWNyZXQ=");
	set_authz(&q, "");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "requires 'Credential' parameter");
	set_authz(&q, "AWS4-HMAC-SHA256Credential=x");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "requires 'Credential' parameter");
	snprintf(buf, sizeof(buf), "AWS4-HMAC-SHA256 %s, %s, %s, Bogus",
		 part[0], part[1], part[2]);
	set_authz(&q, buf);
	CHECK_RES(&q, SIGV4_INCOMPLETE, "Invalid key=value pair");
	snprintf(buf, sizeof(buf), "AWS4-HMAC-SHA256 %s, %s, %s, %s",
		 part[0], part[1], part[2], part[2]);
	set_authz(&q, buf);
	CHECK_RES(&q, SIGV4_INCOMPLETE, "Invalid key=value pair");
	req_free(&q);

	/* No Authorization at all. */
	req_copy(&q, v);
	req_del_header(&q, "authorization");
	CHECK_RES(&q, SIGV4_MISSING, "Missing Authentication Token");
	req_free(&q);
	/* Two of them. */
	req_copy(&q, v);
	req_add_header(&q, "authorization", a);
	CHECK_RES(&q, SIGV4_INCOMPLETE, "exactly one");
	req_free(&q);

	/* Credential with the wrong number of elements. */
	req_copy(&q, v);
	edit_authz(&q, "/us-east-1/mgn/aws4_request", "/us-east-1/mgn");
	CHECK_RES(&q, SIGV4_INCOMPLETE,
		  "Credential must have exactly 5 slash-delimited elements, "
		  "e.g. keyid/date/region/service/term, got "
		  "'AKIAFERRYTEST0000001/20261122/us-east-1/mgn'");
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "/aws4_request", "/aws4_request/x");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "exactly 5 slash-delimited");
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "/aws4_request", "/aws5_request");
	CHECK_RES(&q, SIGV4_BAD_SCOPE,
		  "Credential should be scoped with a valid terminator: "
		  "'aws4_request', not 'aws5_request'.");
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "/20261122/", "/2026112x/");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "yyyyMMdd");
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "Credential=AKIAFERRYTEST0000001/", "Credential=/");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "access key ID");
	req_free(&q);

	/* SignedHeaders forms. */
	req_copy(&q, v);
	edit_authz(&q, "SignedHeaders=content-type;host;x-amz-date",
		   "SignedHeaders=content-type;;host;x-amz-date");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "'SignedHeaders'");
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "SignedHeaders=content-type;host;x-amz-date",
		   "SignedHeaders=content-type;host;x-amz-date;");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "'SignedHeaders'");
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "SignedHeaders=content-type;host;x-amz-date",
		   "SignedHeaders=");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "'SignedHeaders'");
	req_free(&q);

	/* A signature of the wrong length or with non-hex. */
	req_copy(&q, v);
	edit_authz(&q, "Signature=e5", "Signature=");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "Signature=e5", "Signature=g5");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);
	req_copy(&q, v);
	edit_authz(&q, "Signature=e5", "Signature=e5e5");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);
	/* One hex digit changed. */
	req_copy(&q, v);
	edit_authz(&q, "Signature=e5", "Signature=e4");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);
}

static void test_scope(void)
{
	struct req *v = vector("client-describe");
	struct req q;
	char m[1024];

	req_copy(&q, v);
	CHECK_U64(check_at(&q, q.secret, "eu-west-1", "mgn", q.now, m,
			   sizeof(m)), SIGV4_BAD_SCOPE);
	CHECK_STR(m, "Credential should be scoped to a valid region.");
	CHECK_U64(check_at(&q, q.secret, "us-east-1", "ec2", q.now, m,
			   sizeof(m)), SIGV4_BAD_SCOPE);
	CHECK_STR(m, "Credential should be scoped to correct service: "
		  "'ec2'.");
	edit_authz(&q, "/mgn/", "/ec2/");
	CHECK_RES(&q, SIGV4_BAD_SCOPE,
		  "Credential should be scoped to correct service: 'mgn'.");
	req_free(&q);

	req_copy(&q, v);
	edit_authz(&q, "/20261122/", "/20261121/");
	CHECK_RES(&q, SIGV4_BAD_SCOPE,
		  "Date in Credential scope does not match YYYYMMDD from "
		  "ISO-8601 version of date from HTTP: '20261121' != "
		  "'20261122', from '20261122T063000Z'.");
	req_free(&q);
}

static void test_dates(void)
{
	struct req *v = vector("client-describe");
	struct req q;
	char m[1024];

	/* 15 minutes either way is fine, one second more is not. */
	req_copy(&q, v);
	CHECK_U64(check_at(&q, q.secret, q.region, q.service, q.now + 900, m,
			   sizeof(m)), SIGV4_OK);
	CHECK_U64(check_at(&q, q.secret, q.region, q.service, q.now - 900, m,
			   sizeof(m)), SIGV4_OK);
	CHECK_U64(check_at(&q, q.secret, q.region, q.service, q.now + 1800,
			   m, sizeof(m)), SIGV4_SKEW);
	CHECK_STR(m, "Signature expired: 20261122T063000Z is now earlier "
		  "than 20261122T064500Z (20261122T070000Z - 15 min.)");
	CHECK_U64(check_at(&q, q.secret, q.region, q.service, q.now - 1800,
			   m, sizeof(m)), SIGV4_SKEW);
	CHECK_STR(m, "Signature not yet current: 20261122T063000Z is still "
		  "later than 20261122T061500Z (20261122T060000Z + 15 "
		  "min.)");
	CHECK_U64(check_at(&q, q.secret, q.region, q.service, q.now + 901, m,
			   sizeof(m)), SIGV4_SKEW);
	CHECK_U64(check_at(&q, q.secret, q.region, q.service, q.now - 901, m,
			   sizeof(m)), SIGV4_SKEW);

	/* A changed X-Amz-Date: new time in the string to sign. */
	req_set_header(&q, "X-Amz-Date", "20261122T063001Z");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	/* Malformed ones. */
	req_set_header(&q, "X-Amz-Date", "2026-11-22T06:30:00Z");
	CHECK_RES(&q, SIGV4_INCOMPLETE,
		  "Date must be in ISO-8601 'basic format'. Got "
		  "'2026-11-22T06:30:00Z'.");
	req_set_header(&q, "X-Amz-Date", "20260230T063000Z");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "ISO-8601");
	req_set_header(&q, "X-Amz-Date", "20261122T246000Z");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "ISO-8601");
	req_set_header(&q, "X-Amz-Date", "");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "ISO-8601");
	/* Surrounding space is what an HTTP server may leave. */
	req_set_header(&q, "X-Amz-Date", " 20261122T063000Z ");
	CHECK_RES(&q, SIGV4_OK, "");
	req_del_header(&q, "X-Amz-Date");
	CHECK_RES(&q, SIGV4_INCOMPLETE,
		  "Authorization header requires existence of either a "
		  "'X-Amz-Date' or a 'Date' header. Authorization=");
	req_free(&q);

	/* The Date header form, and its variants. */
	req_copy(&q, vector("raw-date-header"));
	req_set_header(&q, "Date", "Sun, 22 Nov 2026 06:30:00 GMT");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch); /* signed value changed */
	req_set_header(&q, "Date", "Sun, 22 Nov 2026 06:30 GMT");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "RFC 1123");
	req_set_header(&q, "Date", "Sun, 31 Feb 2026 06:30:00 GMT");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "RFC 1123");
	req_set_header(&q, "Date", "Sun, 22 Nov 2026 06:30:00 +0200");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "RFC 1123");
	req_free(&q);
	/* The header that gave the date must be signed. */
	req_copy(&q, vector("raw-date-header"));
	edit_authz(&q, "content-type;date;host", "content-type;host");
	CHECK_RES(&q, SIGV4_MISMATCH,
		  "'Date' must be a 'SignedHeader' in the AWS "
		  "Authorization.");
	req_free(&q);
	req_copy(&q, vector("client-describe"));
	edit_authz(&q, "content-type;host;x-amz-date", "content-type;host");
	CHECK_RES(&q, SIGV4_MISMATCH,
		  "'X-Amz-Date' must be a 'SignedHeader' in the AWS "
		  "Authorization.");
	req_free(&q);
}

static void test_required_signed(void)
{
	struct req q;

	req_copy(&q, vector("client-describe"));
	edit_authz(&q, "content-type;host;x-amz-date",
		   "content-type;x-amz-date");
	CHECK_RES(&q, SIGV4_MISMATCH,
		  "'Host' or ':authority' must be a 'SignedHeader' in the "
		  "AWS Authorization.");
	req_free(&q);

	/* A session token that was not signed. */
	req_copy(&q, vector("client-describe"));
	req_add_header(&q, "X-Amz-Security-Token", "token");
	CHECK_RES(&q, SIGV4_MISMATCH,
		  "'X-Amz-Security-Token' must be a 'SignedHeader'");
	req_free(&q);
	/* A signed one that was changed. */
	req_copy(&q, vector("raw-session-token"));
	req_set_header(&q, "X-Amz-Security-Token", "other");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_add_header(&q, "X-Amz-Security-Token", "other");
	CHECK_RES(&q, SIGV4_INCOMPLETE, "more than one");
	req_free(&q);
}

static void test_payload_hash_header(void)
{
	struct req q;

	req_copy(&q, vector("raw-content-sha256"));
	/* The header must match the body... */
	q.body[0] ^= 1;
	CHECK_RES(&q, SIGV4_MISMATCH, "x-amz-content-sha256");
	req_free(&q);
	/* ...and cannot say UNSIGNED-PAYLOAD. */
	req_copy(&q, vector("client-describe"));
	req_add_header(&q, "X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD");
	CHECK_RES(&q, SIGV4_MISMATCH, "x-amz-content-sha256");
	req_set_header(&q, "X-Amz-Content-SHA256",
		       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
	CHECK_RES(&q, SIGV4_MISMATCH, "x-amz-content-sha256");
	req_free(&q);
}

/* Bounds: many headers, long values, odd NULLs; nothing crashes. */
static void test_bounds(void)
{
	struct req q;
	char m[1024];
	char *big;

	req_copy(&q, vector("client-describe"));
	for (int i = q.nh; i < MAX_H; i++)
		req_add_header(&q, "X-Filler", "x");
	CHECK_RES(&q, SIGV4_OK, "");
	req_free(&q);

	/* An over-long Authorization is refused without a crash. */
	big = malloc(1 << 20);
	memset(big, 'A', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	memcpy(big, "AWS4-HMAC-SHA256 Credential=", 28);
	req_copy(&q, vector("client-describe"));
	set_authz(&q, big);
	CHECK_RES(&q, SIGV4_INCOMPLETE, "requires 'Signature' parameter");
	{
		static const char a1[] =
			"AWS4-HMAC-SHA256 SignedHeaders=host, Signature=";
		static const char a2[] = ", Credential=";
		size_t l1 = strlen(a1);

		memcpy(big, a1, l1);
		memset(big + l1, 'a', 64);
		memcpy(big + l1 + 64, a2, strlen(a2));
	}
	set_authz(&q, big);
	CHECK_RES(&q, SIGV4_INCOMPLETE, "Credential must have exactly 5");
	req_free(&q);
	/* A huge query and path: too big to verify, refused. */
	req_copy(&q, vector("client-describe"));
	memset(big, '&', (1 << 20) - 1);
	free(q.query);
	q.query = xstrdup(big);
	CHECK_RES(&q, SIGV4_MISMATCH, "too large");
	free(q.query);
	q.query = NULL;
	memset(big, '%', (1 << 20) - 1);
	free(q.path);
	q.path = xstrdup(big);
	CHECK_RES(&q, SIGV4_MISMATCH, "too large");
	req_free(&q);
	free(big);

	/* NULL path, query, body and header values. */
	req_copy(&q, vector("client-describe"));
	req_view(&q);
	q.r.path = NULL;
	q.r.query = NULL;
	q.r.body = NULL;
	q.r.body_len = 5;
	q.hv[0].value = NULL;	/* Content-Type */
	{
		struct sigv4_auth a;

		CHECK_U64(sigv4_parse(&q.r, &a, m, sizeof(m)), SIGV4_OK);
		CHECK_U64(sigv4_verify(&q.r, &a, q.secret, q.region,
				       q.service, q.now, m, sizeof(m)),
			  SIGV4_MISMATCH);
		/* No room for a message is fine too. */
		CHECK_U64(sigv4_verify(&q.r, &a, q.secret, q.region,
				       q.service, q.now, NULL, 0),
			  SIGV4_MISMATCH);
	}
	req_free(&q);
}

/* Random corruption of a valid request: refused or accepted, never a
 * crash (ASan/UBSan build), and never accepted when the Authorization
 * header's signature part changed. */
static void test_random_corruption(void)
{
	struct req *v = vector("client-untag-repeated");
	const char *a = req_header(v, "Authorization");
	unsigned int seed = 12345;
	char buf[1024];
	unsigned ok = 0;

	for (int i = 0; i < 3000; i++) {
		struct req q;
		size_t len = strlen(a), pos;
		char m[256];
		int res;

		req_copy(&q, v);
		snprintf(buf, sizeof(buf), "%s", a);
		for (int k = 0; k < 1 + i % 4; k++) {
			pos = (size_t)rand_r(&seed) % len;
			buf[pos] = (char)(rand_r(&seed) % 255 + 1);
		}
		set_authz(&q, buf);
		if (i % 3 == 0) {
			pos = (size_t)rand_r(&seed) % strlen(q.query);
			q.query[pos] = (char)(rand_r(&seed) % 255 + 1);
		}
		res = check(&q, m, sizeof(m));
		CHECK(res >= SIGV4_OK && res <= SIGV4_MISMATCH);
		CHECK(strlen(m) < sizeof(m));
		if (res == SIGV4_OK)
			ok++;
		req_free(&q);
	}
	/* Only changes that keep the meaning may pass, e.g. the case of a
	 * hex digit or of a parameter name: far from all of them. */
	CHECK(ok < 300);
}

/* ---- libcurl ---- */

struct curl_job {
	char url[512];
	const char *body;	/* NULL: GET */
	const char *headers[8];
	CURLcode rc;
};

static void *curl_thread(void *arg)
{
	struct curl_job *job = arg;
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;

	if (!c) {
		job->rc = CURLE_FAILED_INIT;
		return NULL;
	}
	for (int i = 0; i < 8 && job->headers[i]; i++)
		hl = curl_slist_append(hl, job->headers[i]);
	curl_easy_setopt(c, CURLOPT_URL, job->url);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:mgn");
	curl_easy_setopt(c, CURLOPT_USERPWD,
			 "AKIACURLTEST00000001:curl/Secret+Key");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (job->body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, job->body);
	job->rc = curl_easy_perform(c);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return NULL;
}

/* Accept one connection on LFD, read a whole request into BUF. */
static ssize_t capture(int lfd, char *buf, size_t cap)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0"
				    "\r\nConnection: close\r\n\r\n";
	size_t len = 0;
	int fd;

	if (poll(&pfd, 1, 10000) != 1)
		return -1;
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return -1;
	for (;;) {
		char *end;
		ssize_t n;

		pfd.fd = fd;
		if (poll(&pfd, 1, 10000) != 1)
			break;
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");
			size_t want = (size_t)(end + 4 - buf);

			if (cl && cl < end)
				want += strtoul(cl + 17, NULL, 10);
			if (len >= want)
				break;
		}
	}
	if (write(fd, reply, sizeof(reply) - 1) < 0)
		len = 0;
	close(fd);
	return (ssize_t)len;
}

/* Parse a raw HTTP/1.1 request as a server would. */
static int parse_http(char *raw, size_t len, struct req *q)
{
	char *end = strstr(raw, "\r\n\r\n"), *line, *sp, *target, *qm;

	memset(q, 0, sizeof(*q));
	if (!end)
		return -1;
	*end = '\0';
	line = raw;
	sp = strchr(line, ' ');
	if (!sp)
		return -1;
	*sp = '\0';
	q->method = xstrdup(line);
	target = sp + 1;
	sp = strchr(target, ' ');
	if (!sp)
		return -1;
	*sp = '\0';
	qm = strchr(target, '?');
	if (qm)
		*qm = '\0';
	q->path = xstrdup(target);
	q->query = qm ? xstrdup(qm + 1) : NULL;
	line = strstr(sp + 1, "\r\n");
	while (line) {
		char *name = line + 2, *colon, *next, *v;
		size_t vl;

		next = strstr(name, "\r\n");
		if (next)
			*next = '\0';
		colon = strchr(name, ':');
		if (!colon)
			return -1;
		*colon = '\0';
		/* Servers drop the space around a field value. */
		v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		vl = strlen(v);
		while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			v[--vl] = '\0';
		req_add_header(q, name, v);
		line = next;
	}
	q->body_len = len - (size_t)(end + 4 - raw);
	q->body = malloc(q->body_len + 1);
	if (!q->body)
		abort();
	memcpy(q->body, end + 4, q->body_len);
	q->akid = xstrdup("AKIACURLTEST00000001");
	q->secret = xstrdup("curl/Secret+Key");
	q->region = xstrdup("us-east-1");
	q->service = xstrdup("mgn");
	q->now = time(NULL);
	return 0;
}

/* Have libcurl sign and send JOB to us; parse it into Q. */
static int curl_request(struct curl_job *job, const char *path_query,
			struct req *q)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	static char raw[65536];
	pthread_t th;
	ssize_t n;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		perror("listen on 127.0.0.1");
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	snprintf(job->url, sizeof(job->url), "http://127.0.0.1:%u%s",
		 ntohs(sa.sin_port), path_query);
	if (pthread_create(&th, NULL, curl_thread, job)) {
		close(lfd);
		return -1;
	}
	n = capture(lfd, raw, sizeof(raw));
	pthread_join(th, NULL);
	close(lfd);
	if (n <= 0 || job->rc != CURLE_OK) {
		fprintf(stderr, "curl request %s: %s\n", path_query,
			curl_easy_strerror(job->rc));
		return -1;
	}
	if (parse_http(raw, (size_t)n, q))
		return -1;
	q->name = xstrdup(path_query);
	return 0;
}

static void test_curl(void)
{
	static const struct {
		const char *path_query, *body;
		const char *headers[4];
	} cases[] = {
		{ "/DescribeSourceServers", "{\"filters\":{}}",
		  { "Content-Type: application/json" } },
		/* libcurl 7.88 signs the path and query as they are. */
		{ "/tags/arn%3Aaws%3Amgn%3Aus-east-1%3A123456789012%3A"
		  "source-server%2Fs-1234567890abcdef0%C3%A9"
		  "?tagKeys=b&tagKeys=a&empty=&x=%2F%20",
		  NULL, { NULL } },
		/* Custom headers are signed too, spacing trimmed. */
		{ "/GetAgentCommandForMgn", "{\"sourceServerID\":\"s-1\"}",
		  { "Content-Type:   application/json  ",
		    "X-Amz-Security-Token: FQoG/token+==",
		    "X-Ferry-Odd:  a \t  b   c " } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct curl_job job = { .body = cases[i].body };
		struct req q, q2;
		struct sigv4_auth a;
		char m[1024];

		for (int k = 0; k < 4 && cases[i].headers[k]; k++)
			job.headers[k] = cases[i].headers[k];
		if (curl_request(&job, cases[i].path_query, &q)) {
			CHECK(!"libcurl request captured");
			continue;
		}
		CHECK_RES(&q, SIGV4_OK, "");
		CHECK_U64(sigv4_parse(req_view(&q), &a, m, sizeof(m)),
			  SIGV4_OK);
		if (cases[i].headers[1])
			CHECK_STR(a.security_token ? a.security_token : "",
				  "FQoG/token+==");
		CHECK_U64(check_at(&q, "wrong", q.region, q.service, q.now,
				   m, sizeof(m)), SIGV4_MISMATCH);

		req_copy(&q2, &q);
		q2.body = realloc(q2.body, q2.body_len + 1);
		q2.body[q2.body_len++] = ' ';
		CHECK_RES(&q2, SIGV4_MISMATCH, mismatch);
		req_free(&q2);

		req_copy(&q2, &q);
		free(q2.query);
		q2.query = xstrdup(q.query ? "tagKeys=a&tagKeys=b" : "a=1");
		CHECK_RES(&q2, SIGV4_MISMATCH, mismatch);
		req_free(&q2);

		req_copy(&q2, &q);
		req_set_header(&q2, "Host", "127.0.0.1:1");
		CHECK_RES(&q2, SIGV4_MISMATCH, mismatch);
		req_free(&q2);

		if (cases[i].headers[2]) {
			req_copy(&q2, &q);
			req_set_header(&q2, "X-Ferry-Odd", "a b  c");
			CHECK_RES(&q2, SIGV4_OK, "");
			req_set_header(&q2, "X-Ferry-Odd", "a b c d");
			CHECK_RES(&q2, SIGV4_MISMATCH, mismatch);
			req_free(&q2);
		}
		req_free(&q);
	}
}

/* ---- replay cache ---- */

static void make_sig(char out[65], unsigned int n)
{
	unsigned int x = n * 2654435761u + 0x9e3779b9u;

	for (int i = 0; i < 64; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		out[i] = "0123456789abcdef"[(x + (unsigned int)i) & 15];
	}
	out[64] = '\0';
}

/* A request that took effect: checked, then settled when new. */
static int check_settled(struct sigv4_replay *r, const char *sig,
			 time_t request_time, time_t now)
{
	int seen = sigv4_replay_check(r, sig, request_time, now);

	if (seen == 0)
		sigv4_replay_settle(r, sig);
	return seen;
}

static void test_replay_basic(void)
{
	struct sigv4_replay *r = sigv4_replay_new();
	char s1[65], s2[65];
	time_t t = 1795329000;

	CHECK(r != NULL);
	if (!r)
		return;
	make_sig(s1, 1);
	make_sig(s2, 2);
	CHECK_U64(check_settled(r, s1, t, t), 0);
	CHECK_U64(check_settled(r, s1, t, t), 1);
	CHECK_U64(check_settled(r, s1, t, t + 899), 1);
	CHECK_U64(check_settled(r, s2, t, t + 10), 0);
	CHECK_U64(check_settled(r, s2, t, t + 10), 1);
	/* Upper-case hex is the same signature. */
	for (int i = 0; i < 64; i++)
		s2[i] = (char)toupper((unsigned char)s2[i]);
	CHECK_U64(check_settled(r, s2, t, t + 10), 1);
	/* Exactly 15 minutes old, sigv4_verify() still accepts it: still
	 * a replay (once taken for new, any number of copies passed). */
	CHECK_U64(check_settled(r, s1, t, t + 900), 1);
	CHECK_U64(check_settled(r, s1, t, t + 900), 1);
	/* One second later it is gone (and fails the skew check); a later
	 * request may reuse its slot. */
	CHECK_U64(check_settled(r, s1, t, t + 901), 0);
	CHECK_U64(check_settled(r, s1, t + 901, t + 901), 0);
	CHECK_U64(check_settled(r, s1, t + 901, t + 1801), 1);
	/* Not a signature: refused. */
	CHECK(check_settled(r, "xyz", t, t) < 0);
	CHECK(check_settled(r, "", t, t) < 0);
	CHECK(check_settled(r, NULL, t, t) < 0);
	/* Outside the window: not recorded. */
	CHECK_U64(check_settled(r, s2, t + 5000, t), 0);
	CHECK_U64(check_settled(r, s2, t + 5000, t), 0);
	sigv4_replay_free(r);
	sigv4_replay_free(NULL);
}

static void test_replay_forget(void)
{
	struct sigv4_replay *r = sigv4_replay_new();
	char s[8][65];
	time_t t = 1795329000;

	CHECK(r != NULL);
	if (!r)
		return;
	/* Before anything was recorded: nothing to forget. */
	make_sig(s[0], 100);
	sigv4_replay_forget(r, s[0]);
	for (unsigned int i = 0; i < 8; i++) {
		make_sig(s[i], 100 + i);
		CHECK_U64(check_settled(r, s[i], t, t), 0);
	}
	/* A failed request's signature is forgotten: its retry passes
	 * once, and is then recorded again. */
	sigv4_replay_forget(r, s[3]);
	CHECK_U64(check_settled(r, s[3], t, t + 1), 0);
	CHECK_U64(check_settled(r, s[3], t, t + 1), 1);
	/* The others are still refused: forgetting one leaves the probe
	 * paths through its slot whole. */
	for (unsigned int i = 0; i < 8; i++)
		CHECK_U64(check_settled(r, s[i], t, t + 2), 1);
	/* Not hex, NULL, one never seen: ignored. */
	sigv4_replay_forget(r, "xyz");
	sigv4_replay_forget(r, NULL);
	make_sig(s[0], 999);
	sigv4_replay_forget(r, s[0]);
	sigv4_replay_forget(NULL, s[1]);
	CHECK_U64(check_settled(r, s[1], t, t + 3), 1);
	sigv4_replay_free(r);
}

static void test_replay_expiry_bounds_memory(void)
{
	struct sigv4_replay *r = sigv4_replay_new();
	time_t t = 1795329000;
	size_t entries = 0, bytes = 0, peak;
	char s[65];
	unsigned int dup = 0;

	CHECK(r != NULL);
	if (!r)
		return;
	/* 20,000 requests within one second. */
	for (unsigned int i = 0; i < 20000; i++) {
		make_sig(s, i);
		dup += check_settled(r, s, t, t) != 0;
	}
	CHECK_U64(dup, 0);
	sigv4_replay_stats(r, &entries, &bytes);
	CHECK_U64(entries, 20000);
	peak = bytes;
	CHECK(bytes < 20000 * 64);
	/* All seen. */
	dup = 0;
	for (unsigned int i = 0; i < 20000; i++) {
		make_sig(s, i);
		dup += check_settled(r, s, t, t + 1) == 1;
	}
	CHECK_U64(dup, 20000);
	/* Sixteen minutes later, 20,000 others: the old ones are dropped
	 * (memory in line with the 20,000 live entries, 16 bytes each in a
	 * table kept between 1/2 and 3/4 full). */
	dup = 0;
	for (unsigned int i = 20000; i < 40000; i++) {
		make_sig(s, i);
		dup += check_settled(r, s, t + 960, t + 960) != 0;
	}
	CHECK_U64(dup, 0);
	sigv4_replay_stats(r, &entries, &bytes);
	CHECK(entries <= 20000 + 20000 / 2);
	CHECK(bytes <= 20000 * 16 * 2 + 16 * 2048);
	/* Later, 10 requests/s for 2,000 s: about 9,000 live at the end;
	 * the table shrinks to them. */
	for (unsigned int i = 0; i < 20000; i++) {
		time_t now = t + 3000 + i / 10;

		make_sig(s, 40000 + i);
		CHECK_U64(check_settled(r, s, now, now), 0);
	}
	sigv4_replay_stats(r, &entries, &bytes);
	fprintf(stderr, "replay: peak %zu bytes; 9,000 live: %zu entries, "
		"%zu bytes\n", peak, entries, bytes);
	CHECK(entries < 9000 + 9000 / 2);
	CHECK(bytes < 9000 * 16 * 3);
	sigv4_replay_free(r);
}

struct replay_thread {
	struct sigv4_replay *r;
	unsigned int base;
	unsigned int fresh, seen;
};

static void *replay_worker(void *arg)
{
	struct replay_thread *w = arg;
	time_t t = 1795329000;
	char s[65];

	for (unsigned int i = 0; i < 20000; i++) {
		/* Half shared among all threads, half this thread's own. */
		make_sig(s, i % 2 ? i : w->base + i);
		if (check_settled(w->r, s, t, t))
			w->seen++;
		else
			w->fresh++;
	}
	return NULL;
}

static void test_replay_threads(void)
{
	struct replay_thread w[4];
	pthread_t th[4];
	unsigned int fresh = 0;
	struct sigv4_replay *r = sigv4_replay_new();

	for (int i = 0; i < 4; i++) {
		w[i] = (struct replay_thread){ .r = r,
					       .base = 1000000u * (i + 1) };
		pthread_create(&th[i], NULL, replay_worker, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		fresh += w[i].fresh;
	}
	/* Each shared signature accepted once; each own one once. */
	CHECK_U64(fresh, 10000 + 4 * 10000);
	sigv4_replay_free(r);
}


struct replay_retry {
	struct sigv4_replay *r;
	const char *sig;
	atomic_bool *resolved;	/* set just before the first attempt ends */
	int seen;
	bool after;		/* returned after the first attempt ended */
};

static void *replay_retry(void *arg)
{
	struct replay_retry *w = arg;
	time_t t = 1795329000;

	w->seen = sigv4_replay_check(w->r, w->sig, t, t + 1);
	w->after = atomic_load(w->resolved);
	return NULL;
}

/*
 * A retry of SIG, in flight, sent from another thread; RESOLVE (settle
 * or forget) ends the first attempt 200 ms later.  -> what it returned,
 * and whether only after RESOLVE.
 */
static struct replay_retry retry_meanwhile(struct sigv4_replay *r,
					   const char *sig,
					   void (*resolve)(struct sigv4_replay *,
							   const char *))
{
	struct timespec pause = { 0, 200 * 1000000L };
	atomic_bool resolved;
	struct replay_retry w = { .r = r, .sig = sig, .resolved = &resolved };
	pthread_t th;

	atomic_init(&resolved, false);
	pthread_create(&th, NULL, replay_retry, &w);
	nanosleep(&pause, NULL);
	atomic_store(&resolved, true);
	resolve(r, sig);
	pthread_join(th, NULL);
	w.resolved = NULL;
	return w;
}

/* A retry that comes while its first attempt runs waits for its outcome. */
static void test_replay_in_flight(void)
{
	struct sigv4_replay *r = sigv4_replay_new();
	struct timespec t0, t1;
	struct replay_retry w;
	time_t t = 1795329000;
	char s[3][65];

	CHECK(r != NULL);
	if (!r)
		return;
	for (unsigned int i = 0; i < 3; i++)
		make_sig(s[i], 500 + i);

	/* The first attempt takes effect: the retry is a replay. */
	CHECK_U64(sigv4_replay_check(r, s[0], t, t), 0);
	w = retry_meanwhile(r, s[0], sigv4_replay_settle);
	CHECK_U64(w.seen, 1);
	CHECK(w.after);

	/* The first attempt fails: the retry is recorded in its place, in
	 * flight until it ends in turn. */
	CHECK_U64(sigv4_replay_check(r, s[1], t, t), 0);
	w = retry_meanwhile(r, s[1], sigv4_replay_forget);
	CHECK_U64(w.seen, 0);
	CHECK(w.after);
	sigv4_replay_set_wait(r, 100);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_U64(sigv4_replay_check(r, s[1], t, t + 2), 2);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* It waited for the outcome before giving up. */
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 +
	      (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 100);
	sigv4_replay_settle(r, s[1]);
	CHECK_U64(sigv4_replay_check(r, s[1], t, t + 2), 1);

	/* Settling or forgetting other signatures leaves s[2] in flight. */
	CHECK_U64(sigv4_replay_check(r, s[2], t, t), 0);
	sigv4_replay_settle(r, s[0]);
	sigv4_replay_forget(r, s[1]);
	CHECK_U64(sigv4_replay_check(r, s[2], t, t + 3), 2);
	/* Forgotten, s[1] is new again. */
	CHECK_U64(sigv4_replay_check(r, s[1], t, t + 3), 0);
	sigv4_replay_free(r);
}

/*
 * sigv4_sign() makes botocore's signature for each vector it signed in
 * AWS's canonical form, and what it signs is accepted by sigv4_verify()
 * and refused once altered.
 */
static void test_sign(void)
{
	/* botocore's own canonical form (form 1) for all of these. */
	static const char *const same[] = {
		"client-describe", "client-describe-token",
		"client-list-tags-utf8", "client-untag-repeated",
		"client-tag", "raw-spacing", "raw-dot-segments",
		"raw-utf8-path", "raw-body-binary", "raw-session-token",
		"raw-content-sha256", "raw-date-header",
	};
	struct sigv4_auth a;
	char msg[512], sig[65];
	struct req q;

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		struct req *v = vector(same[i]);

		CHECK_U64(sigv4_parse(req_view(v), &a, msg, sizeof(msg)),
			  SIGV4_OK);
		CHECK_U64(sigv4_sign(req_view(v), &a, v->secret, sig), 0);
		CHECK_STR(sig, a.signature);
	}

	/* A request of our own: sign, then verify. */
	memset(&q, 0, sizeof(q));
	q.name = xstrdup("signed-here");
	q.method = xstrdup("DELETE");
	q.path = xstrdup("/tags/arn%3Aaws%3Amgn%3Aus-east-1%3A1%3A"
			 "source-server%2Fs-1");
	q.query = xstrdup("tagKeys=b%20c&tagKeys=a");
	q.body = (unsigned char *)xstrdup("");
	q.akid = xstrdup("AKIAFERRYSIGN0000001");
	q.secret = xstrdup("c2VjcmV0LXNpZ24tdGVzdC1rZXktMDAwMDAwMDAwMDA");
	q.region = xstrdup("eu-west-3");
	q.service = xstrdup("mgn");
	q.now = 1789978000;
	req_add_header(&q, "Host", "control.example.test:8443");
	req_add_header(&q, "X-Amz-Date", "20260921T080000Z");
	req_add_header(&q, "Content-Type", "  application/json ");
	req_add_header(&q, "Authorization", "x");
	memset(&a, 0, sizeof(a));
	snprintf(a.date, sizeof(a.date), "20260921");
	snprintf(a.region, sizeof(a.region), "%s", q.region);
	snprintf(a.service, sizeof(a.service), "mgn");
	snprintf(a.amz_date, sizeof(a.amz_date), "20260921T080000Z");
	snprintf(a.signed_headers, sizeof(a.signed_headers),
		 "content-type;host;x-amz-date");
	CHECK_U64(sigv4_sign(req_view(&q), &a, q.secret, sig), 0);
	CHECK_U64(strlen(sig), 64);
	snprintf(msg, sizeof(msg),
		 "AWS4-HMAC-SHA256 Credential=%s/20260921/eu-west-3/mgn/"
		 "aws4_request, SignedHeaders=content-type;host;x-amz-date, "
		 "Signature=%s", q.akid, sig);
	req_set_header(&q, "Authorization", msg);
	q.now = 1789978000;	/* 2026-09-21T08:06:40Z */
	CHECK_RES(&q, SIGV4_OK, "");
	free(q.secret);
	q.secret = xstrdup("another-secret");
	CHECK_RES(&q, SIGV4_MISMATCH, mismatch);
	req_free(&q);

	/* Unsignable: bad signed header names, a bad method. */
	req_copy(&q, vector("client-describe"));
	CHECK_U64(sigv4_parse(req_view(&q), &a, msg, sizeof(msg)), SIGV4_OK);
	snprintf(a.signed_headers, sizeof(a.signed_headers), "host;;x");
	CHECK_U64(sigv4_sign(req_view(&q), &a, q.secret, sig), (uint64_t)-1);
	CHECK_STR(sig, "");
	CHECK_U64(sigv4_parse(req_view(&q), &a, msg, sizeof(msg)), SIGV4_OK);
	free(q.method);
	q.method = xstrdup("PO ST");
	CHECK_U64(sigv4_sign(req_view(&q), &a, q.secret, sig), (uint64_t)-1);
	req_free(&q);
}

int main(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return 2;
	RUN(test_botocore_vectors);
	RUN(test_parse_fields);
	RUN(test_vector_alterations);
	RUN(test_unsigned_headers);
	RUN(test_authorization_forms);
	RUN(test_scope);
	RUN(test_dates);
	RUN(test_required_signed);
	RUN(test_payload_hash_header);
	RUN(test_bounds);
	RUN(test_random_corruption);
	RUN(test_curl);
	RUN(test_sign);
	RUN(test_replay_basic);
	RUN(test_replay_forget);
	RUN(test_replay_expiry_bounds_memory);
	RUN(test_replay_threads);
	RUN(test_replay_in_flight);
	for (size_t i = 0; i < n_vectors; i++)
		req_free(&vectors[i]);
	curl_global_cleanup();
	return check_exit();
}
