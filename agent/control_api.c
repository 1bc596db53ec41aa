// SPDX-License-Identifier: GPL-2.0
/*
 * control_api.c - signed JSON calls to ferry-control (control_api.h).
 */
#include "control_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "api_resp.h"
#include "errmsg.h"

#define RESP_MAX (4u << 20)
#define CONNECT_TIMEOUT_S 10L

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
		       curl_off_t d)
{
	struct ctl_api *api = arg;

	(void)a, (void)b, (void)c, (void)d;
	return api->abort && api->abort(api->abort_arg);
}

int ctl_api_init(struct ctl_api *a, const struct agent_config *cfg,
		 char *err, size_t errlen)
{
	size_t n;

	memset(a, 0, sizeof(*a));
	a->curl = curl_easy_init();
	if (!a->curl) {
		set_err(err, errlen, "cannot initialise libcurl");
		return -1;
	}
	snprintf(a->endpoint, sizeof(a->endpoint), "%s", cfg->endpoint);
	n = strlen(a->endpoint);
	while (n && a->endpoint[n - 1] == '/')
		a->endpoint[--n] = '\0';
	snprintf(a->sigv4, sizeof(a->sigv4), "aws:amz:%.64s:mgn",
		 cfg->region);
	snprintf(a->proxy, sizeof(a->proxy), "%s", cfg->proxy);
	snprintf(a->ca_bundle, sizeof(a->ca_bundle), "%s", cfg->ca_bundle);
	a->timeout_s = 30;
	return 0;
}

void ctl_api_set_key(struct ctl_api *a, const char *access_key_id,
		     const char *secret, const char *token)
{
	snprintf(a->access_key_id, sizeof(a->access_key_id), "%s",
		 access_key_id);
	snprintf(a->secret, sizeof(a->secret), "%s", secret);
	snprintf(a->token, sizeof(a->token), "%s", token ? token : "");
}

void ctl_api_free(struct ctl_api *a)
{
	if (a->curl)
		curl_easy_cleanup(a->curl);
	a->curl = NULL;
	explicit_bzero(a->secret, sizeof(a->secret));
	explicit_bzero(a->token, sizeof(a->token));
}

/*
 * A random ID for each request, sent in a signed header: ferry-control
 * accepts a state-changing signature once, and two identical requests
 * signed within the same second (a retry, an unchanged heartbeat, the
 * same host registering twice) would otherwise carry the same one.
 */
static void request_id(char out[33])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		struct timespec ts;

		/* No entropy yet (very early boot): time and a counter
		 * still make it unique for this process. */
		static unsigned long n;

		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(out, 33, "%016llx%08lx%08lx",
			 (unsigned long long)ts.tv_sec,
			 (unsigned long)ts.tv_nsec, ++n);
		return;
	}
	for (int i = 0; i < 16; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[32] = '\0';
}

/*
 * The proxy as it is shown and logged: the password of its user info
 * masked ("user:***@host:port" after the scheme; a bare user becomes
 * "***@host:port").  The user info is what comes before the last '@'
 * after the scheme.
 */
static void mask_proxy(const char *proxy, char *out, size_t len)
{
	const char *sep = strstr(proxy, "://");
	const char *auth = sep ? sep + 3 : proxy;
	const char *at = strrchr(auth, '@'), *colon;

	if (!at) {
		snprintf(out, len, "%s", proxy);
		return;
	}
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon)
		snprintf(out, len, "%.*s:***@%s", (int)(colon - proxy), proxy,
			 at + 1);
	else
		snprintf(out, len, "%.*s***@%s", (int)(auth - proxy), proxy,
			 at + 1);
}

/* What the user can do about a libcurl failure. */
static const char *hint(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return " (set ca-bundle to the CA that signed ferry-control's "
		       "certificate, its DATA_DIR/ca.pem)";
	case CURLE_COULDNT_RESOLVE_PROXY:
		return " (check proxy or https_proxy)";
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return " (check endpoint, proxy, and the network path to "
		       "ferry-control on its HTTPS port)";
	default:
		return "";
	}
}

static void setup(struct ctl_api *a, CURL *c, const char *url,
		  const char *data, struct curl_slist *hdrs, struct api_resp *r,
		  char *cerr)
{
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, a->sigv4);
	curl_easy_setopt(c, CURLOPT_USERNAME, a->access_key_id);
	curl_easy_setopt(c, CURLOPT_PASSWORD, a->secret);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(data));
	/* "" disables the environment's proxy: config_check() already
	 * took https_proxy into the configuration. */
	curl_easy_setopt(c, CURLOPT_PROXY, a->proxy);
	if (a->ca_bundle[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_bundle);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, a->timeout_s);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, api_resp_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, api_resp_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ferry-agent/" AGENT_VERSION);
}

int ctl_api_call(struct ctl_api *a, const char *op, json_t *body,
		 json_t **out, struct ctl_api_error *e, char *err,
		 size_t errlen)
{
	char url[AGENT_URL_MAX + 64], cerr[CURL_ERROR_SIZE] = "";
	char token_hdr[sizeof(a->token) + 32], via[AGENT_URL_MAX + 32] = "";
	char rid[33], rid_hdr[64];
	struct ctl_api_error local;
	struct curl_slist *hdrs = NULL, *h;
	struct api_resp r = { .max = RESP_MAX };
	json_error_t jerr;
	char *data = NULL;
	json_t *doc = NULL;
	long status = 0;
	CURLcode rc;
	int ret = -1;

	*out = NULL;
	if (!e)
		e = &local;
	memset(e, 0, sizeof(*e));
	data = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
	if (!data) {
		set_err(err, errlen, "%s: out of memory", op);
		return -1;
	}
	snprintf(url, sizeof(url), "%s/%s", a->endpoint, op);
	if (a->proxy[0]) {
		char shown[sizeof(a->proxy) + 8];

		/* Never its password: the journal is readable by more than
		 * root (adm, systemd-journal). */
		mask_proxy(a->proxy, shown, sizeof(shown));
		snprintf(via, sizeof(via), " through proxy %s", shown);
	}
	request_id(rid);
	snprintf(rid_hdr, sizeof(rid_hdr), "X-Ferry-Request-Id: %s", rid);
	token_hdr[0] = '\0';
	if (a->token[0])
		snprintf(token_hdr, sizeof(token_hdr),
			 "X-Amz-Security-Token: %s", a->token);
	/* libcurl signs these too (SignedHeaders). */
	for (const char *const *l = (const char *const[]){
		     "Content-Type: application/json", rid_hdr, token_hdr,
		     NULL }; *l; l++) {
		if (!**l)
			continue;
		h = curl_slist_append(hdrs, *l);
		if (!h) {
			set_err(err, errlen, "%s: out of memory", op);
			explicit_bzero(token_hdr, sizeof(token_hdr));
			goto out;
		}
		hdrs = h;
	}
	explicit_bzero(token_hdr, sizeof(token_hdr));
	setup(a, a->curl, url, data, hdrs, &r, cerr);
	rc = curl_easy_perform(a->curl);
	if (rc != CURLE_OK) {
		if (rc == CURLE_ABORTED_BY_CALLBACK)
			set_err(err, errlen, "%s at %s: interrupted (the agent "
				"is stopping)", op, a->endpoint);
		else
			set_err(err, errlen, "%s at %s%s: %s%s", op,
				a->endpoint, via,
				cerr[0] ? cerr : curl_easy_strerror(rc),
				hint(rc));
		snprintf(e->message, sizeof(e->message), "%s",
			 cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	e->status = status;
	snprintf(e->type, sizeof(e->type), "%s", r.type);
	doc = r.buf ? json_loads(r.buf, 0, &jerr) : NULL;
	if (status != 200) {
		const char *msg = json_string_value(json_object_get(doc,
								  "message"));

		if (!msg)
			msg = json_string_value(json_object_get(doc,
								"Message"));
		snprintf(e->message, sizeof(e->message), "%s",
			 msg ? msg : "");
		set_err(err, errlen, "%s at %s: HTTP %ld%s%s: %s", op,
			a->endpoint, status, r.type[0] ? " " : "", r.type,
			msg ? msg : "(no message)");
		goto out;
	}
	if (!json_is_object(doc)) {
		set_err(err, errlen, "%s at %s: the answer is not a JSON "
			"object", op, a->endpoint);
		goto out;
	}
	*out = doc;
	doc = NULL;
	ret = 0;
out:
	/* The handle keeps a pointer to the list: detach it first. */
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	json_decref(doc);
	free(data);
	free(r.buf);
	return ret;
}
