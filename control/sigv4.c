// SPDX-License-Identifier: GPL-2.0
/*
 * sigv4.c - server-side verification of AWS Signature Version 4
 * (Authorization header form), following AWS's published algorithm and
 * checked against two independent signers: botocore (the AWS CLI and
 * boto3) and libcurl's CURLOPT_AWS_SIGV4.
 *
 * Canonical request: METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n HASH.
 *
 * The signers disagree on URI and QUERY, so a signature is accepted if it
 * matches one of these forms (each still needs the secret; only distinct
 * forms are tried, and a plain "POST /Operation" has just one):
 *  1. AWS's form for services other than S3, which botocore produces:
 *     the path as received, with empty, "." and ".." segments removed,
 *     percent-encoded once more (so "%3A" is signed as "%253A"); the
 *     query split at '&' into name[=value] pairs, each percent-decoded
 *     and re-encoded with only A-Z a-z 0-9 - _ . ~ left as is (upper-case
 *     hex), sorted by name then value, a missing '=' read as "=".
 *  2. The same path with the query pairs sorted as received, without
 *     re-encoding (botocore signs a query taken from a URL that way, so
 *     this differs from 1 only for a query not encoded the AWS way).
 *  3. libcurl 7.88's form: path and query exactly as received.
 * Accepting several forms lets a request signed for one canonical path be
 * taken for another path with the same canonical string (e.g. a signature
 * made by libcurl for "/a%253A" also fits "/a%3A" under form 1).  The
 * replay cache allows each signature once, and the operations are
 * "POST /Name", so nothing useful can be had from that.
 *
 * HEADERS lists the SignedHeaders in the order the client gave, each
 * "name:value\n" with the values of all headers of that name (any case)
 * trimmed, inner runs of white space made one space, joined with ','.
 * HASH is the hex SHA-256 of the body; an X-Amz-Content-SHA256 header must
 * equal it (UNSIGNED-PAYLOAD and streaming payloads are refused: MGN's
 * bodies are small JSON) and is then used verbatim, as botocore does.
 *
 * Headers that must be signed: host; x-amz-date when the date came from
 * X-Amz-Date, date when it came from Date; x-amz-security-token when the
 * request has one.  AWS lets a few services take an unsigned token, but
 * botocore always signs it and an unsigned token could be swapped by
 * anyone on the path, so it is required here.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "sigv4.h"
#include "errmsg.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
#define SIGV4_MAX_HEADERS 256		/* headers in a request we look at */
#define SIGV4_MAX_SIGNED 64		/* names in SignedHeaders */
#define SIGV4_MAX_QPAIRS 1024
#define SIGV4_MAX_CANON (256 * 1024)	/* one part of the canonical request */
#define SIGV4_MAX_SECRET 512
#define ECHO_MAX 512		/* how much of a bad header a message repeats */

static const char mismatch_msg[] =
	"The request signature we calculated does not match the signature "
	"you provided. Check your AWS Secret Access Key and signing method. "
	"Consult the service documentation for details.";

/* ---- a bounded growable buffer ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool err;		/* out of memory or over SIGV4_MAX_CANON */
};

static void sb_add(struct sbuf *b, const void *s, size_t n)
{
	if (b->err)
		return;
	if (n > SIGV4_MAX_CANON - b->len) {
		b->err = true;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->err = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_chr(struct sbuf *b, char c)
{
	sb_add(b, &c, 1);
}

static const char *sb_get(const struct sbuf *b)
{
	return b->p ? b->p : "";
}

/* ---- character classes and encoding ---- */

/* White space as botocore's str.split() and libcurl's ISBLANK see it. */
static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
	       c == '\r' || (c >= 0x1c && c <= 0x1f);
}

/* RFC 3986 unreserved: never percent-encoded by SigV4. */
static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == '~';
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void hex_lower(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Percent-encode S[0..N) into B, keeping unreserved bytes and KEEP. */
static void sb_encode(struct sbuf *b, const char *s, size_t n, char keep)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_unreserved(c) || (keep && c == (unsigned char)keep)) {
			sb_chr(b, (char)c);
		} else {
			char e[3] = { '%', digits[c >> 4], digits[c & 15] };

			sb_add(b, e, 3);
		}
	}
}

/* Percent-decode S[0..N) into OUT (room for N); bad escapes stay. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < n &&
		    (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	return o;
}

/* ---- headers ---- */

static const char *skip_ws(const char *s)
{
	while (*s && is_ws((unsigned char)*s))
		s++;
	return s;
}

/* Number of headers named NAME; *FIRST gets the first one's value. */
static size_t header_find(const struct sigv4_request *req, const char *name,
			  size_t name_len, const char **first)
{
	size_t n = 0;

	if (first)
		*first = NULL;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct sigv4_header *h = &req->headers[i];

		if (!h->name || strlen(h->name) != name_len ||
		    strncasecmp(h->name, name, name_len))
			continue;
		if (!n && first)
			*first = h->value ? h->value : "";
		n++;
	}
	return n;
}

/* Append the trimmed value: no leading/trailing space, inner runs as one. */
static void sb_trimall(struct sbuf *b, const char *v)
{
	bool space = false, any = false;

	for (; *v; v++) {
		if (is_ws((unsigned char)*v)) {
			space = true;
			continue;
		}
		if (space && any)
			sb_chr(b, ' ');
		sb_chr(b, *v);
		space = false;
		any = true;
	}
}

/* A copy of V without surrounding white space, into OUT[OUTLEN]. */
static bool copy_trimmed(const char *v, char *out, size_t outlen)
{
	size_t n;

	v = skip_ws(v);
	n = strlen(v);
	while (n && is_ws((unsigned char)v[n - 1]))
		n--;
	if (n >= outlen)
		return false;
	memcpy(out, v, n);
	out[n] = '\0';
	return true;
}

/* Is NAME one of the ';'-separated SIGNED names (any case)? */
static bool is_signed(const char *signed_headers, const char *name)
{
	size_t len = strlen(name);
	const char *p = signed_headers;

	while (*p) {
		size_t n = strcspn(p, ";");

		if (n == len && !strncasecmp(p, name, len))
			return true;
		p += n;
		if (*p == ';')
			p++;
	}
	return false;
}

/* ---- dates ---- */

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* TM (UTC fields) as a time, or -1 if a field is out of range. */
static time_t tm_to_time(struct tm *tm)
{
	struct tm check;
	time_t t;

	if (tm->tm_year < 70 || tm->tm_year > 8000 || tm->tm_mon < 0 ||
	    tm->tm_mon > 11 || tm->tm_mday < 1 || tm->tm_mday > 31 ||
	    tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60)
		return -1;
	check = *tm;
	t = timegm(&check);
	/* timegm normalizes 31 Feb to March: refuse that. */
	if (t == (time_t)-1 || check.tm_mday != tm->tm_mday ||
	    check.tm_mon != tm->tm_mon)
		return -1;
	return t;
}

static void fmt_amz(time_t t, char out[17])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm))
		snprintf(out, 17, "%s", "00000000T000000Z");
}

/* "YYYYMMDDTHHMMSSZ" exactly. */
static time_t parse_amz_date(const char *s)
{
	struct tm tm = { 0 };

	if (strlen(s) != 16 || !all_digits(s, 8) || s[8] != 'T' ||
	    !all_digits(s + 9, 6) || s[15] != 'Z')
		return -1;
	tm.tm_year = num(s, 4) - 1900;
	tm.tm_mon = num(s + 4, 2) - 1;
	tm.tm_mday = num(s + 6, 2);
	tm.tm_hour = num(s + 9, 2);
	tm.tm_min = num(s + 11, 2);
	tm.tm_sec = num(s + 13, 2);
	return tm_to_time(&tm);
}

/*
 * RFC 1123 "Sun, 06 Nov 1994 08:49:37 GMT"; the weekday is optional and
 * the zone may be GMT, UTC, +0000 or -0000 (Python's formatdate(), which
 * botocore uses, writes -0000).
 */
static time_t parse_http_date(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm = { 0 };
	const char *p = skip_ws(s), *m;
	size_t n;

	if (isalpha((unsigned char)p[0])) {
		const char *comma = strchr(p, ',');

		if (!comma || comma - p > 9)
			return -1;
		p = skip_ws(comma + 1);
	}
	n = strspn(p, "0123456789");
	if (n < 1 || n > 2)
		return -1;
	tm.tm_mday = num(p, n);
	p += n;
	if (*p++ != ' ' || strlen(p) < 3)
		return -1;
	for (m = months; *m; m += 3)
		if (!strncasecmp(p, m, 3))
			break;
	if (!*m)
		return -1;
	tm.tm_mon = (int)(m - months) / 3;
	p += 3;
	if (*p++ != ' ' || strlen(p) < 14 || !all_digits(p, 4) ||
	    p[4] != ' ' || !all_digits(p + 5, 2) || p[7] != ':' ||
	    !all_digits(p + 8, 2) || p[10] != ':' || !all_digits(p + 11, 2))
		return -1;
	tm.tm_year = num(p, 4) - 1900;
	tm.tm_hour = num(p + 5, 2);
	tm.tm_min = num(p + 8, 2);
	tm.tm_sec = num(p + 11, 2);
	p = skip_ws(p + 13);
	if (strcmp(p, "GMT") && strcmp(p, "UTC") && strcmp(p, "+0000") &&
	    strcmp(p, "-0000"))
		return -1;
	return tm_to_time(&tm);
}

/* ---- parsing the Authorization header ---- */

/* Copy [S, S+N) into OUT[OUTLEN] if it fits. */
static bool take(const char *s, size_t n, char *out, size_t outlen)
{
	if (n >= outlen)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

static bool valid_signed_headers(const char *s)
{
	size_t names = 0;
	const char *p = s;

	if (!*s)
		return false;
	while (*p) {
		size_t n = strcspn(p, ";");

		if (!n || ++names > SIGV4_MAX_SIGNED)
			return false;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];

			/* HTTP token characters */
			if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
				return false;
		}
		p += n;
		if (*p == ';' && !*++p)
			return false;
	}
	return true;
}

enum sigv4_result sigv4_parse(const struct sigv4_request *req,
			      struct sigv4_auth *auth, char *msg,
			      size_t msglen)
{
	const char *authz, *p, *cred = NULL, *sh = NULL, *sig = NULL;
	size_t cred_n = 0, sh_n = 0, sig_n = 0, n;
	const char *amz = NULL, *date = NULL;
	char missing[512] = "";
	size_t ml = 0;
	char tmp[64];
	bool bad_pair = false;

	memset(auth, 0, sizeof(*auth));
	set_err(msg, msglen, "%s", "");
	if (req->n_headers && !req->headers) {
		set_err(msg, msglen, "Request headers missing.");
		return SIGV4_INCOMPLETE;
	}
	n = header_find(req, "authorization", 13, &authz);
	if (!n) {
		set_err(msg, msglen, "Missing Authentication Token");
		return SIGV4_MISSING;
	}
	if (req->n_headers > SIGV4_MAX_HEADERS) {
		set_err(msg, msglen,
		    "Request has %zu headers; at most %d are accepted.",
		    req->n_headers, SIGV4_MAX_HEADERS);
		return SIGV4_INCOMPLETE;
	}
	if (n > 1) {
		set_err(msg, msglen,
		    "Request has %zu Authorization headers; exactly one is "
		    "required.", n);
		return SIGV4_INCOMPLETE;
	}

	/*
	 * "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
	 * in any order; the values never hold ',' or white space, so either
	 * separates the parts (AWS requires ", " but clients vary).
	 */
	p = skip_ws(authz);
	if (!strncmp(p, ALGORITHM, strlen(ALGORITHM)) &&
	    (!p[strlen(ALGORITHM)] ||
	     is_ws((unsigned char)p[strlen(ALGORITHM)]))) {
		p += strlen(ALGORITHM);
		while (*p) {
			const char *eq;

			while (*p == ',' || is_ws((unsigned char)*p))
				p++;
			n = strcspn(p, ", \t\r\n\v\f");
			if (!n)
				break;
			eq = memchr(p, '=', n);
			if (!eq) {
				bad_pair = true;
			} else if ((size_t)(eq - p) == 10 &&
				   !strncasecmp(p, "Credential", 10)) {
				if (cred)
					bad_pair = true;
				cred = eq + 1;
				cred_n = n - 11;
			} else if ((size_t)(eq - p) == 13 &&
				   !strncasecmp(p, "SignedHeaders", 13)) {
				if (sh)
					bad_pair = true;
				sh = eq + 1;
				sh_n = n - 14;
			} else if ((size_t)(eq - p) == 9 &&
				   !strncasecmp(p, "Signature", 9)) {
				if (sig)
					bad_pair = true;
				sig = eq + 1;
				sig_n = n - 10;
			}
			p += n;
		}
	}
	if (bad_pair) {
		set_err(msg, msglen,
		    "Invalid key=value pair (missing equal-sign or repeated "
		    "key) in Authorization header: '%.*s'.", ECHO_MAX, authz);
		return SIGV4_INCOMPLETE;
	}

	/* Report everything missing at once, as AWS does. */
#define MISSING(...)							\
	do {								\
		int w_ = snprintf(missing + ml, sizeof(missing) - ml,	\
				  __VA_ARGS__);				\
		if (w_ > 0)						\
			ml = ml + (size_t)w_ < sizeof(missing) ?	\
				     ml + (size_t)w_ : sizeof(missing) - 1; \
	} while (0)
	if (!cred)
		MISSING("Authorization header requires 'Credential' "
			"parameter. ");
	if (!sig)
		MISSING("Authorization header requires 'Signature' "
			"parameter. ");
	if (!sh)
		MISSING("Authorization header requires 'SignedHeaders' "
			"parameter. ");
	if (header_find(req, "x-amz-date", 10, &amz) == 0 &&
	    header_find(req, "date", 4, &date) == 0)
		MISSING("Authorization header requires existence of either "
			"a 'X-Amz-Date' or a 'Date' header. ");
#undef MISSING
	if (ml) {
		set_err(msg, msglen, "%sAuthorization=%.*s", missing, ECHO_MAX,
		    authz);
		return SIGV4_INCOMPLETE;
	}

	/* Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request */
	{
		const char *part[5];
		size_t plen[5], k = 0;
		const char *c = cred, *end = cred + cred_n;

		while (k < 5 && c <= end) {
			const char *slash = memchr(c, '/', (size_t)(end - c));

			part[k] = c;
			plen[k] = (slash ? slash : end) - c;
			k++;
			if (!slash) {
				c = end + 1;
				break;
			}
			c = slash + 1;
		}
		if (k != 5 || c <= end) {
			set_err(msg, msglen,
			    "Credential must have exactly 5 slash-delimited "
			    "elements, e.g. keyid/date/region/service/term, "
			    "got '%.*s'", (int)(cred_n > ECHO_MAX ? ECHO_MAX :
						cred_n), cred);
			return SIGV4_INCOMPLETE;
		}
		if (!plen[0] ||
		    !take(part[0], plen[0], auth->access_key_id,
			  sizeof(auth->access_key_id))) {
			set_err(msg, msglen,
			    "Credential has an empty or over-long access key "
			    "ID (at most %zu characters).",
			    sizeof(auth->access_key_id) - 1);
			return SIGV4_INCOMPLETE;
		}
		if (plen[1] != 8 || !all_digits(part[1], 8)) {
			set_err(msg, msglen,
			    "Invalid credential date \"%.*s\". Date is not "
			    "the required format: yyyyMMdd.",
			    (int)(plen[1] > 32 ? 32 : plen[1]), part[1]);
			return SIGV4_INCOMPLETE;
		}
		take(part[1], 8, auth->date, sizeof(auth->date));
		if (!plen[2] ||
		    !take(part[2], plen[2], auth->region,
			  sizeof(auth->region))) {
			set_err(msg, msglen,
			    "Credential should be scoped to a valid region.");
			return SIGV4_BAD_SCOPE;
		}
		if (!plen[3] ||
		    !take(part[3], plen[3], auth->service,
			  sizeof(auth->service))) {
			set_err(msg, msglen,
			    "Credential should be scoped to a valid service.");
			return SIGV4_BAD_SCOPE;
		}
		if (plen[4] != strlen(TERMINATOR) ||
		    memcmp(part[4], TERMINATOR, plen[4])) {
			take(part[4], plen[4] < sizeof(tmp) ? plen[4] :
				     sizeof(tmp) - 1, tmp, sizeof(tmp));
			set_err(msg, msglen,
			    "Credential should be scoped with a valid "
			    "terminator: '" TERMINATOR "', not '%s'.", tmp);
			return SIGV4_BAD_SCOPE;
		}
	}

	if (!take(sh, sh_n, auth->signed_headers,
		  sizeof(auth->signed_headers)) ||
	    !valid_signed_headers(auth->signed_headers)) {
		set_err(msg, msglen,
		    "Authorization header has an invalid 'SignedHeaders' "
		    "parameter (';'-separated header names, at most %d, "
		    "%zu characters). Authorization=%.*s", SIGV4_MAX_SIGNED,
		    sizeof(auth->signed_headers) - 1, ECHO_MAX, authz);
		return SIGV4_INCOMPLETE;
	}

	/* Any other length or character cannot be a match. */
	if (sig_n != 64) {
		set_err(msg, msglen, "%s", mismatch_msg);
		return SIGV4_MISMATCH;
	}
	for (size_t i = 0; i < 64; i++) {
		if (hexval((unsigned char)sig[i]) < 0) {
			set_err(msg, msglen, "%s", mismatch_msg);
			return SIGV4_MISMATCH;
		}
		auth->signature[i] = (char)tolower((unsigned char)sig[i]);
	}
	auth->signature[64] = '\0';

	/* X-Amz-Date wins over Date, as with AWS. */
	if (amz) {
		if (header_find(req, "x-amz-date", 10, NULL) > 1) {
			set_err(msg, msglen,
			    "Request has more than one X-Amz-Date header.");
			return SIGV4_INCOMPLETE;
		}
		if (copy_trimmed(amz, auth->amz_date,
				 sizeof(auth->amz_date)))
			auth->request_time = parse_amz_date(auth->amz_date);
		else
			auth->request_time = -1;
		if (auth->request_time == -1) {
			set_err(msg, msglen,
			    "Date must be in ISO-8601 'basic format'. Got "
			    "'%.64s'. See http://en.wikipedia.org/wiki/"
			    "ISO_8601", skip_ws(amz));
			return SIGV4_INCOMPLETE;
		}
	} else {
		if (header_find(req, "date", 4, NULL) > 1) {
			set_err(msg, msglen,
			    "Request has more than one Date header.");
			return SIGV4_INCOMPLETE;
		}
		auth->request_time = parse_http_date(date);
		if (auth->request_time == -1) {
			set_err(msg, msglen,
			    "Date must be in RFC 1123 format (e.g. 'Sun, 06 "
			    "Nov 1994 08:49:37 GMT'). Got '%.64s'.",
			    skip_ws(date));
			return SIGV4_INCOMPLETE;
		}
		fmt_amz(auth->request_time, auth->amz_date);
	}

	n = header_find(req, "x-amz-security-token", 20,
			&auth->security_token);
	if (n > 1) {
		set_err(msg, msglen,
		    "Request has more than one X-Amz-Security-Token header.");
		return SIGV4_INCOMPLETE;
	}
	if (auth->security_token)
		auth->security_token = skip_ws(auth->security_token);
	return SIGV4_OK;
}

/* ---- OpenSSL ---- */

static EVP_MAC_CTX *hmac_template;	/* HMAC-SHA256, no key yet */
static EVP_MD *sha256_md;
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;

/*
 * Fetch the algorithms once: OpenSSL 3 looks them up by name on every
 * implicit use, which costs more than the hashing of a small request.
 */
static void crypto_init(void)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	OSSL_PARAM params[2];

	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!mac)
		return;
	hmac_template = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);	/* the context keeps its own reference */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (hmac_template && !EVP_MAC_CTX_set_params(hmac_template, params)) {
		EVP_MAC_CTX_free(hmac_template);
		hmac_template = NULL;
	}
}

static bool crypto_ready(void)
{
	pthread_once(&crypto_once, crypto_init);
	return hmac_template && sha256_md;
}

static bool hmac256(const void *key, size_t keylen, const void *data,
		    size_t len, unsigned char out[32])
{
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(hmac_template);
	size_t outlen = 0;
	bool ok;

	if (!ctx)
		return false;
	ok = EVP_MAC_init(ctx, key, keylen, NULL) &&
	     EVP_MAC_update(ctx, data, len) &&
	     EVP_MAC_final(ctx, out, &outlen, 32) && outlen == 32;
	EVP_MAC_CTX_free(ctx);
	return ok;
}

static bool sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, sha256_md, NULL) ||
	    mdlen != 32)
		return false;
	hex_lower(md, 32, out);
	return true;
}

/* ---- canonical URI and query ---- */

/* Form 1's URI: dot segments and empty segments removed, encoded again. */
static void canon_path_aws(struct sbuf *b, const char *path)
{
	const char *seg[512];
	size_t seglen[512], n = 0;
	const char *p = path;
	size_t len = strlen(path);

	if (!len) {
		sb_chr(b, '/');
		return;
	}
	while (*p) {
		size_t l = strcspn(p, "/");

		if (l == 2 && !memcmp(p, "..", 2)) {
			if (n)
				n--;
		} else if (l && !(l == 1 && *p == '.')) {
			if (n == sizeof(seg) / sizeof(seg[0])) {
				b->err = true;
				return;
			}
			seg[n] = p;
			seglen[n++] = l;
		}
		p += l;
		if (*p == '/')
			p++;
	}
	if (path[0] == '/')
		sb_chr(b, '/');
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_chr(b, '/');
		sb_encode(b, seg[i], seglen[i], 0);
	}
	if (n && path[len - 1] == '/')
		sb_chr(b, '/');
}

struct qpair {
	const char *k, *v;
};

static int qpair_cmp(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	return c ? c : strcmp(x->v, y->v);
}

/*
 * The query as name=value pairs sorted by name then value: re-encoded
 * the AWS way if NORMALIZE (dropping empty pairs), else as received
 * (keeping empty pairs as "=", as botocore does).  False if too big.
 */
static bool canon_query(struct sbuf *b, const char *q, bool normalize)
{
	size_t qlen = strlen(q), npairs = 1, i = 0;
	struct qpair *pairs;
	struct sbuf arena = { 0 };
	size_t *offs;
	const char *p = q;
	bool ok = false;

	if (!qlen)
		return true;
	for (const char *c = q; *c; c++)
		npairs += *c == '&';
	if (npairs > SIGV4_MAX_QPAIRS)
		return false;
	pairs = calloc(npairs, sizeof(*pairs));
	offs = calloc(npairs * 2, sizeof(*offs));
	if (!pairs || !offs)
		goto out;
	/* Store the pieces in one buffer; pointers after it stops moving. */
	for (;;) {
		size_t l = strcspn(p, "&");
		const char *eq = memchr(p, '=', l);
		size_t kl = eq ? (size_t)(eq - p) : l;
		const char *v = eq ? eq + 1 : p + l;
		size_t vl = eq ? l - kl - 1 : 0;

		if (normalize && l) {
			char *tmp = malloc(l + 1);

			if (!tmp)
				goto out;
			offs[2 * i] = arena.len;
			sb_encode(&arena, tmp, pct_decode(p, kl, tmp), 0);
			sb_chr(&arena, '\0');
			offs[2 * i + 1] = arena.len;
			sb_encode(&arena, tmp, pct_decode(v, vl, tmp), 0);
			sb_chr(&arena, '\0');
			free(tmp);
			i++;
		} else if (!normalize) {
			offs[2 * i] = arena.len;
			sb_add(&arena, p, kl);
			sb_chr(&arena, '\0');
			offs[2 * i + 1] = arena.len;
			sb_add(&arena, v, vl);
			sb_chr(&arena, '\0');
			i++;
		}
		p += l;
		if (!*p)
			break;
		p++;
	}
	if (arena.err)
		goto out;
	for (size_t j = 0; j < i; j++) {
		pairs[j].k = arena.p + offs[2 * j];
		pairs[j].v = arena.p + offs[2 * j + 1];
	}
	qsort(pairs, i, sizeof(*pairs), qpair_cmp);
	for (size_t j = 0; j < i; j++) {
		if (j)
			sb_chr(b, '&');
		sb_str(b, pairs[j].k);
		sb_chr(b, '=');
		sb_str(b, pairs[j].v);
	}
	ok = !b->err;
out:
	free(arena.p);
	free(pairs);
	free(offs);
	return ok;
}

/*
 * Everything after the query line: the signed headers' "name:value\n"
 * lines, a blank line, the signed names and the payload hash.
 */
static void canon_tail(struct sbuf *tail, const struct sigv4_request *req,
		       const char *signed_headers, const char *payload_hash)
{
	for (const char *p = signed_headers; *p;) {
		size_t l = strcspn(p, ";");
		bool first = true;

		sb_add(tail, p, l);
		sb_chr(tail, ':');
		for (size_t i = 0; i < req->n_headers; i++) {
			const struct sigv4_header *h = &req->headers[i];

			if (!h->name || strlen(h->name) != l ||
			    strncasecmp(h->name, p, l))
				continue;
			if (!first)
				sb_chr(tail, ',');
			sb_trimall(tail, h->value ? h->value : "");
			first = false;
		}
		sb_chr(tail, '\n');
		p += l;
		if (*p == ';')
			p++;
	}
	sb_chr(tail, '\n');
	sb_str(tail, signed_headers);
	sb_chr(tail, '\n');
	sb_str(tail, payload_hash);
}

/*
 * The body's hex SHA-256 into BODY_HASH and the trimmed value of an
 * X-Amz-Content-SHA256 header into CSHA_VAL ("" if absent or too long:
 * then it matches no hash).  Returns how many such headers the request
 * has (with one, its value is the canonical request's payload hash, as
 * botocore signs it), or -1 if hashing failed.
 */
static int payload_hash(const struct sigv4_request *req, char body_hash[65],
			char csha_val[80])
{
	const char *csha;
	size_t n;

	if (!sha256_hex(req->body && req->body_len ? req->body : "",
			req->body ? req->body_len : 0, body_hash))
		return -1;
	n = header_find(req, "x-amz-content-sha256", 20, &csha);
	if (!csha || !copy_trimmed(csha, csha_val, 80))
		csha_val[0] = '\0';
	return n > 2 ? 2 : (int)n;
}

/* ---- verification ---- */

/*
 * Only printable ASCII without spaces may go into the canonical request
 * unencoded (forms 2 and 3, the method): a CR or LF could make two
 * different requests read as one canonical string.
 */
static bool plain(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* The signature of one canonical URI/query pair; false on error. */
static bool sign_form(const struct sigv4_request *req,
		      const struct sigv4_auth *auth, const char *scope,
		      const unsigned char key[32], const char *uri,
		      const char *query, const struct sbuf *tail,
		      unsigned char sig[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[32];
	unsigned int hlen = 0;
	char sts[256], hex[65];
	const char *method = req->method;
	int n;
	bool ok;

	if (!md)
		return false;
	ok = EVP_DigestInit_ex(md, sha256_md, NULL) &&
	     EVP_DigestUpdate(md, method, strlen(method)) &&
	     EVP_DigestUpdate(md, "\n", 1) &&
	     EVP_DigestUpdate(md, uri, strlen(uri)) &&
	     EVP_DigestUpdate(md, "\n", 1) &&
	     EVP_DigestUpdate(md, query, strlen(query)) &&
	     EVP_DigestUpdate(md, "\n", 1) &&
	     EVP_DigestUpdate(md, tail->p, tail->len) &&
	     EVP_DigestFinal_ex(md, h, &hlen) && hlen == 32;
	EVP_MD_CTX_free(md);
	if (!ok)
		return false;
	hex_lower(h, 32, hex);
	n = snprintf(sts, sizeof(sts), ALGORITHM "\n%s\n%s\n%s",
		     auth->amz_date, scope, hex);
	if (n < 0 || (size_t)n >= sizeof(sts))
		return false;
	return hmac256(key, 32, sts, (size_t)n, sig);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service),
 * "aws4_request") */
static bool signing_key(const struct sigv4_auth *auth, const char *secret,
			unsigned char key[32])
{
	char k0[4 + SIGV4_MAX_SECRET];
	unsigned char a[32], b[32];
	size_t sl = strlen(secret);
	bool ok;

	if (sl > SIGV4_MAX_SECRET)
		return false;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, sl);
	ok = hmac256(k0, 4 + sl, auth->date, strlen(auth->date), a) &&
	     hmac256(a, 32, auth->region, strlen(auth->region), b) &&
	     hmac256(b, 32, auth->service, strlen(auth->service), a) &&
	     hmac256(a, 32, TERMINATOR, strlen(TERMINATOR), key);
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return ok;
}

static bool hex_to_bin(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval((unsigned char)hex[2 * i]);
		int lo = hi < 0 ? -1 : hexval((unsigned char)hex[2 * i + 1]);

		if (lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

enum sigv4_result sigv4_verify(const struct sigv4_request *req,
			       const struct sigv4_auth *auth,
			       const char *secret, const char *region,
			       const char *service, time_t now, char *msg,
			       size_t msglen)
{
	struct sbuf tail = { 0 }, uri_aws = { 0 }, q_norm = { 0 },
		    q_sorted = { 0 };
	const char *raw_path = req->path && *req->path ? req->path : "/";
	const char *raw_query = req->query ? req->query : "";
	const char *used_date = NULL;
	char body_hash[65], scope[256], csha_val[80];
	unsigned char key[32], want[32], got[32];
	const char *forms[3][2];
	size_t nforms = 0;
	enum sigv4_result res = SIGV4_MISMATCH;
	bool match = false;
	int n;

	set_err(msg, msglen, "%s", "");
	if (!secret || !region || !service || !req->method ||
	    !*req->method || !plain(req->method) ||
	    (req->n_headers && !req->headers) ||
	    req->n_headers > SIGV4_MAX_HEADERS) {
		set_err(msg, msglen, "%s", mismatch_msg);
		return SIGV4_MISMATCH;
	}

	/* The scope. */
	if (strcmp(auth->region, region)) {
		set_err(msg, msglen,
		    "Credential should be scoped to a valid region.");
		return SIGV4_BAD_SCOPE;
	}
	if (strcmp(auth->service, service)) {
		set_err(msg, msglen,
		    "Credential should be scoped to correct service: '%s'.",
		    service);
		return SIGV4_BAD_SCOPE;
	}
	if (strlen(auth->amz_date) != 16 ||
	    memcmp(auth->date, auth->amz_date, 8)) {
		set_err(msg, msglen,
		    "Date in Credential scope does not match YYYYMMDD from "
		    "ISO-8601 version of date from HTTP: '%s' != '%.8s', "
		    "from '%s'.", auth->date, auth->amz_date, auth->amz_date);
		return SIGV4_BAD_SCOPE;
	}

	/* The clock. */
	if (auth->request_time < now - SIGV4_MAX_SKEW) {
		char a[17], b[17];

		fmt_amz(now - SIGV4_MAX_SKEW, a);
		fmt_amz(now, b);
		set_err(msg, msglen,
		    "Signature expired: %s is now earlier than %s (%s - 15 "
		    "min.)", auth->amz_date, a, b);
		return SIGV4_SKEW;
	}
	if (auth->request_time > now + SIGV4_MAX_SKEW) {
		char a[17], b[17];

		fmt_amz(now + SIGV4_MAX_SKEW, a);
		fmt_amz(now, b);
		set_err(msg, msglen,
		    "Signature not yet current: %s is still later than %s "
		    "(%s + 15 min.)", auth->amz_date, a, b);
		return SIGV4_SKEW;
	}

	/* Headers that must be signed. */
	if (!is_signed(auth->signed_headers, "host")) {
		set_err(msg, msglen,
		    "'Host' or ':authority' must be a 'SignedHeader' in the "
		    "AWS Authorization.");
		return SIGV4_MISMATCH;
	}
	if (header_find(req, "x-amz-date", 10, NULL)) {
		if (!is_signed(auth->signed_headers, "x-amz-date"))
			used_date = "X-Amz-Date";
	} else if (!is_signed(auth->signed_headers, "date")) {
		used_date = "Date";
	}
	if (used_date) {
		set_err(msg, msglen,
		    "'%s' must be a 'SignedHeader' in the AWS Authorization.",
		    used_date);
		return SIGV4_MISMATCH;
	}
	if (auth->security_token &&
	    !is_signed(auth->signed_headers, "x-amz-security-token")) {
		set_err(msg, msglen,
		    "'X-Amz-Security-Token' must be a 'SignedHeader' in the "
		    "AWS Authorization.");
		return SIGV4_MISMATCH;
	}

	if (!crypto_ready()) {
		set_err(msg, msglen, "Signature check unavailable (OpenSSL).");
		return SIGV4_MISMATCH;
	}

	/* The payload. */
	n = payload_hash(req, body_hash, csha_val);
	if (n < 0) {
		set_err(msg, msglen, "Signature check failed (SHA-256).");
		return SIGV4_MISMATCH;
	}
	if (n > 1) {
		set_err(msg, msglen,
		    "Request has more than one X-Amz-Content-SHA256 header.");
		return SIGV4_MISMATCH;
	}
	if (n == 1 && strcasecmp(csha_val, body_hash)) {
		set_err(msg, msglen,
		    "The provided 'x-amz-content-sha256' header must "
		    "be the SHA-256 of the body: this service does "
		    "not accept unsigned or streaming payloads, and "
		    "the value must match what was computed.");
		return SIGV4_MISMATCH;
	}

	canon_tail(&tail, req, auth->signed_headers,
		   n ? csha_val : body_hash);
	canon_path_aws(&uri_aws, raw_path);
	if (!canon_query(&q_norm, raw_query, true) ||
	    !canon_query(&q_sorted, raw_query, false) || tail.err ||
	    uri_aws.err) {
		set_err(msg, msglen,
		    "Request too large to verify (path, query or signed "
		    "headers over %d bytes, or over %d query parameters).",
		    SIGV4_MAX_CANON, SIGV4_MAX_QPAIRS);
		goto out;
	}

	forms[nforms][0] = sb_get(&uri_aws);
	forms[nforms++][1] = sb_get(&q_norm);
	if (plain(raw_query) && strcmp(sb_get(&q_sorted), sb_get(&q_norm))) {
		forms[nforms][0] = sb_get(&uri_aws);
		forms[nforms++][1] = sb_get(&q_sorted);
	}
	if (plain(raw_path) && plain(raw_query) &&
	    (strcmp(raw_path, sb_get(&uri_aws)) ||
	     (strcmp(raw_query, sb_get(&q_norm)) &&
	      strcmp(raw_query, sb_get(&q_sorted))))) {
		forms[nforms][0] = raw_path;
		forms[nforms++][1] = raw_query;
	}

	n = snprintf(scope, sizeof(scope), "%s/%s/%s/" TERMINATOR,
		     auth->date, auth->region, auth->service);
	if (n < 0 || (size_t)n >= sizeof(scope) ||
	    !hex_to_bin(auth->signature, want, 32) ||
	    !signing_key(auth, secret, key)) {
		set_err(msg, msglen, "%s", mismatch_msg);
		goto out;
	}
	for (size_t i = 0; i < nforms; i++) {
		if (!sign_form(req, auth, scope, key, forms[i][0],
			       forms[i][1], &tail, got))
			break;
		/* Constant time: no timing hint about a partial match. */
		if (!CRYPTO_memcmp(got, want, 32)) {
			match = true;
			break;
		}
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (match)
		res = SIGV4_OK;
	else
		set_err(msg, msglen, "%s", mismatch_msg);
out:
	free(tail.p);
	free(uri_aws.p);
	free(q_norm.p);
	free(q_sorted.p);
	return res;
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_auth *auth,
	       const char *secret, char out_signature[65])
{
	struct sbuf tail = { 0 }, uri = { 0 }, query = { 0 };
	char body_hash[65], scope[256], csha_val[80];
	unsigned char key[32], sig[32];
	int n, rc = -1;

	out_signature[0] = '\0';
	if (!secret || !req->method || !*req->method || !plain(req->method) ||
	    (req->n_headers && !req->headers) ||
	    req->n_headers > SIGV4_MAX_HEADERS ||
	    !valid_signed_headers(auth->signed_headers) || !crypto_ready())
		return -1;
	n = payload_hash(req, body_hash, csha_val);
	if (n < 0 || n > 1 || (n == 1 && !*csha_val))
		return -1;
	/* Form 1, the one AWS and botocore use. */
	canon_tail(&tail, req, auth->signed_headers,
		   n ? csha_val : body_hash);
	canon_path_aws(&uri, req->path && *req->path ? req->path : "/");
	if (!canon_query(&query, req->query ? req->query : "", true) ||
	    tail.err || uri.err)
		goto out;
	n = snprintf(scope, sizeof(scope), "%s/%s/%s/" TERMINATOR,
		     auth->date, auth->region, auth->service);
	if (n < 0 || (size_t)n >= sizeof(scope) ||
	    !signing_key(auth, secret, key))
		goto out;
	if (sign_form(req, auth, scope, key, sb_get(&uri), sb_get(&query),
		      &tail, sig)) {
		hex_lower(sig, 32, out_signature);
		rc = 0;
	}
	OPENSSL_cleanse(key, sizeof(key));
out:
	free(tail.p);
	free(uri.p);
	free(query.p);
	return rc;
}
