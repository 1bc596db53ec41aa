// SPDX-License-Identifier: GPL-2.0
/* request.c - authenticate, route and answer one API request. */
#include "request.h"

#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "api.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "store.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode [S, S+N) into a new string; NULL if malformed or if it
 * would hold a NUL. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* "a=1&b=&a=2" -> {"a":["1","2"],"b":[""]}; NULL if malformed. */
static json_t *parse_query(const char *q)
{
	json_t *obj = json_object();

	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		char *k = pct_decode(q, klen);
		char *v = eq ? pct_decode(eq + 1, len - klen - 1) : strdup("");
		json_t *arr;

		if (!k || !v || json_object_size(obj) > 64) {
			free(k);
			free(v);
			json_decref(obj);
			return NULL;
		}
		if (*k) {
			arr = json_object_get(obj, k);
			if (!arr) {
				arr = json_array();
				json_object_set_new(obj, k, arr);
			}
			if (json_array_size(arr) < 256)
				json_array_append_new(arr, json_string(v));
		}
		free(k);
		free(v);
		q = amp ? amp + 1 : NULL;
	}
	return obj;
}

static void new_request_id(char out[40])
{
	unsigned char r[16];

	while (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		;
	snprintf(out, 40,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], (r[6] & 15) | 0x40, r[7],
		 (r[8] & 0x3f) | 0x80, r[9], r[10], r[11], r[12], r[13], r[14],
		 r[15]);
}

static void set_body(struct control_response *resp, json_t *j)
{
	resp->body = json_dumps(j, JSON_COMPACT);
	resp->body_len = resp->body ? strlen(resp->body) : 0;
}

static void answer_error(struct api_ctx *ctx, struct control_response *resp)
{
	json_t *body = ctx->err_fields ? ctx->err_fields : json_object();

	ctx->err_fields = NULL;
	resp->status = api_err_status(ctx->err);
	snprintf(resp->error_type, sizeof(resp->error_type), "%s",
		 api_err_type(ctx->err));
	json_object_set_new(body, "message", json_string(ctx->message));
	set_body(resp, body);
	json_decref(body);
	if (resp->status >= 500)
		log_error("%s: %s", resp->error_type, ctx->message);
}

static bool op_is_read(const struct api_op *op)
{
	return !strncmp(op->name, "Describe", 8) ||
	       !strncmp(op->name, "List", 4) ||
	       (!strncmp(op->name, "Get", 3) &&
		strcmp(op->name, "GetAgentCommandForMgn"));
}

/* Check the key, its session token and the signature; fill WHO. */
/* The Authorization header's form, into AUTH; -1 with the error in CTX. */
static int parse_auth(struct api_ctx *ctx, const struct sigv4_request *sreq,
		      struct sigv4_auth *auth)
{
	char msg[512];
	enum sigv4_result r = sigv4_parse(sreq, auth, msg, sizeof(msg));

	if (r == SIGV4_OK)
		return 0;
	return api_error(ctx, r == SIGV4_MISSING ? API_MISSING_AUTH :
			 r == SIGV4_INCOMPLETE ? API_INCOMPLETE_SIGNATURE :
						 API_INVALID_SIGNATURE,
			 "%s", msg);
}

/* AUTH names an active key, with its session token if it has one:
 * into K, else -1 with the error in CTX.  Needs no body. */
static int known_key(struct control *c, struct api_ctx *ctx,
		     const struct sigv4_auth *auth, struct key_record *k)
{
	int rc;

	store_lock(c->st);
	rc = keys_lookup(c->st, auth->access_key_id, k);
	store_unlock(c->st);
	if (rc < 0)
		return api_error(ctx, API_INTERNAL, "key store error");
	if (rc > 0 || !k->active)
		return api_error(ctx, API_UNRECOGNIZED_CLIENT,
				 "The security token included in the request is invalid.");
	if (k->session_token[0]) {
		const char *tok = auth->security_token;

		if (!tok || strlen(tok) != strlen(k->session_token) ||
		    CRYPTO_memcmp(tok, k->session_token, strlen(tok)))
			return api_error(ctx, API_UNRECOGNIZED_CLIENT,
					 "The security token included in the request is invalid.");
	} else if (auth->security_token) {
		return api_error(ctx, API_UNRECOGNIZED_CLIENT,
				 "The security token included in the request is invalid.");
	}
	return 0;
}

static int authenticate(struct control *c, struct api_ctx *ctx,
			const struct control_request *req,
			const struct sigv4_request *sreq,
			const struct sigv4_auth *auth,
			struct api_principal *who)
{
	struct key_record k;
	char msg[512];
	enum sigv4_result r;

	if (known_key(c, ctx, auth, &k))
		return -1;
	r = sigv4_verify(sreq, auth, k.secret, c->cfg->region, "mgn",
			 req->now, msg, sizeof(msg));
	memset(k.secret, 0, sizeof(k.secret));
	if (r != SIGV4_OK) {
		log_info("signature refused for key %s: %s",
			 auth->access_key_id, msg);
		return api_error(ctx, r == SIGV4_INCOMPLETE ?
				 API_INCOMPLETE_SIGNATURE :
				 API_INVALID_SIGNATURE, "%s", msg);
	}
	/* Only after the signature is known good, so that a stranger
	 * cannot learn whether a token has expired. */
	if (k.expires && k.expires <= req->now)
		return api_error(ctx, API_EXPIRED_TOKEN,
				 "The security token included in the request is expired");
	memset(who, 0, sizeof(*who));
	snprintf(who->access_key_id, sizeof(who->access_key_id), "%s",
		 k.access_key_id);
	snprintf(who->name, sizeof(who->name), "%s", k.name);
	who->role = k.role;
	snprintf(who->source_server_id, sizeof(who->source_server_id), "%s",
		 k.source_server_id);
	snprintf(who->replicator_id, sizeof(who->replicator_id), "%s",
		 k.replicator_id);
	return 0;
}

struct op_job {
	struct api_ctx *ctx;
	const struct api_op *op;
	json_t *in, *out;
	bool ran_ok;
};

/* The operation, run by store_run() inside the (group) transaction. */
static bool run_op(void *arg)
{
	struct op_job *j = arg;

	j->ran_ok = j->op->fn(j->ctx, j->in, &j->out) == 0 &&
		    j->ctx->err == API_OK;
	return j->ran_ok;
}

void control_handle(struct control *c, const struct control_request *req,
		    struct control_response *resp)
{
	struct api_ctx ctx = { .st = c->st, .cfg = c->cfg, .ca = c->ca,
			       .now = req->now };
	struct sigv4_request sreq = { 0 };
	struct sigv4_auth auth;
	struct api_principal who;
	const struct api_op *op = NULL;
	const char *qmark, *param = NULL;
	char *path = NULL;
	json_t *in = NULL, *out = NULL;
	json_error_t jerr;
	struct op_job job = { 0 };
	bool recorded = false;	/* the signature, by the replay cache */
	int ok = 0;

	memset(resp, 0, sizeof(*resp));
	new_request_id(resp->request_id);
	ctx.host = "";
	for (size_t i = 0; i < req->n_headers; i++)
		if (!strcasecmp(req->headers[i].name, "host"))
			ctx.host = req->headers[i].value;
	if (req->too_large) {
		api_error(&ctx, API_TOO_LARGE,
			  "Request body is larger than the limit of %u bytes",
			  REQUEST_MAX_BODY);
		goto answer;
	}
	if (req->overloaded) {
		api_error(&ctx, API_THROTTLING,
			  "Too many request bodies are being received at once; retry later");
		goto answer;
	}
	qmark = strchr(req->uri, '?');
	path = qmark ? strndup(req->uri, (size_t)(qmark - req->uri)) :
		       strdup(req->uri);
	if (!path) {
		api_error(&ctx, API_INTERNAL, "out of memory");
		goto answer;
	}
	sreq.method = req->method;
	sreq.path = path;
	sreq.query = qmark ? qmark + 1 : NULL;
	sreq.headers = req->headers;
	sreq.n_headers = req->n_headers;
	sreq.body = req->body;
	sreq.body_len = req->body_len;

	if (parse_auth(&ctx, &sreq, &auth))
		goto answer;
	/* Everything up to the operation itself runs outside the store's
	 * lock, so that two threads verify and parse in parallel. */
	if (authenticate(c, &ctx, req, &sreq, &auth, &who))
		goto answer;
	ctx.who = &who;

	op = api_find_op(req->method, path, &param);
	if (!op) {
		api_error(&ctx, API_UNKNOWN_OPERATION,
			  "No operation %s %s: see docs/api.md for the operations ferry-control implements",
			  req->method, path);
		goto answer;
	}
	/*
	 * Replays: a request that changes state is accepted once.  Reads
	 * (Describe*, Get*, List*) are exempt: replaying one reveals
	 * nothing its first answer did not, and SigV4's one-second clock
	 * gives two identical reads in the same second the same signature,
	 * which scripts and retries do send.
	 */
	if (!op_is_read(op)) {
		int seen = sigv4_replay_check(c->replay, auth.signature,
					      auth.request_time, req->now);

		if (seen < 0) {
			api_error(&ctx, API_INTERNAL,
				  "Cannot record the request's signature for replay protection (out of memory); retry later");
			goto answer;
		}
		if (seen == 2) {
			api_error(&ctx, API_INVALID_SIGNATURE,
				  "Signature is in use: the first request with it is still running after 10 s (replay refused); if this is a retry, check whether that request took effect before sending it again");
			goto answer;
		}
		if (seen) {
			api_error(&ctx, API_INVALID_SIGNATURE,
				  "Signature has already been used: a request that changes state is accepted once (replay refused); if this is a retry, the first attempt was accepted");
			goto answer;
		}
		recorded = true;
	}
	if (!(op->roles & who.role)) {
		api_error(&ctx, API_ACCESS_DENIED,
			  "User: %s (role %s) is not authorized to perform: mgn:%s",
			  who.name, keys_role_name(who.role), op->name);
		goto answer;
	}
	if (param) {
		char *dec = pct_decode(param, strlen(param));

		if (!dec) {
			api_error(&ctx, API_VALIDATION,
				  "The resource ARN in the path is not validly percent-encoded");
			goto answer;
		}
		ctx.path_param = dec;
	}
	ctx.query = parse_query(sreq.query);
	if (!ctx.query) {
		api_error(&ctx, API_VALIDATION, "The query string is malformed");
		goto answer;
	}
	if (req->body_len == 0) {
		in = json_object();
	} else {
		in = json_loadb(req->body, req->body_len,
				JSON_REJECT_DUPLICATES, &jerr);
		if (!in || !json_is_object(in)) {
			api_error(&ctx, API_VALIDATION,
				  "Cannot parse the request body as a JSON object: %s",
				  in ? "not an object" : jerr.text);
			api_error_field(&ctx, "reason",
					json_string("cannotParse"));
			goto answer;
		}
	}
	job.ctx = &ctx;
	job.op = op;
	job.in = in;
	if ((op->durable ? store_run_durable : store_run)(c->st, run_op,
							  &job) == 0) {
		ok = 1;
		out = job.out;
	} else {
		json_decref(job.out);
		if (ctx.err == API_OK)
			api_error(&ctx, API_INTERNAL,
				  job.ran_ok ? "cannot commit %s" :
					       "%s failed", op->name);
	}
answer:
	/* A request refused after its signature was recorded changed
	 * nothing (the store rolls a failed operation back): SDKs retry
	 * errors with the same signature within the same second (botocore
	 * does not sign its retry headers), and the retry must not meet
	 * "already used". */
	if (recorded && !ok)
		sigv4_replay_forget(c->replay, auth.signature);
	else if (recorded)
		sigv4_replay_settle(c->replay, auth.signature);
	if (ok) {
		resp->status = ctx.status ? ctx.status : op->status;
		if (resp->status != 204 && out)
			set_body(resp, out);
		if (resp->status != 204 && !resp->body) {
			resp->body = strdup("{}");
			resp->body_len = resp->body ? 2 : 0;
		}
	} else {
		answer_error(&ctx, resp);
	}
	json_decref(out);
	json_decref(in);
	json_decref(ctx.query);
	json_decref(ctx.err_fields);
	free((char *)ctx.path_param);
	free(path);
}

int control_admit(struct control *c, const struct control_request *req,
		  struct control_response *resp)
{
	struct api_ctx ctx = { .st = c->st, .cfg = c->cfg, .ca = c->ca,
			       .now = req->now, .host = "" };
	struct sigv4_request sreq = { 0 };
	const char *qmark = strchr(req->uri, '?');
	struct sigv4_auth auth;
	struct key_record k;
	char *path;
	int rc;

	memset(resp, 0, sizeof(*resp));
	for (size_t i = 0; i < req->n_headers; i++)
		if (!strcasecmp(req->headers[i].name, "host"))
			ctx.host = req->headers[i].value;
	path = qmark ? strndup(req->uri, (size_t)(qmark - req->uri)) :
		       strdup(req->uri);
	if (!path)
		return 0;	/* control_handle() says so */
	sreq.method = req->method;
	sreq.path = path;
	sreq.query = qmark ? qmark + 1 : NULL;
	sreq.headers = req->headers;
	sreq.n_headers = req->n_headers;
	rc = parse_auth(&ctx, &sreq, &auth) ||
	     known_key(c, &ctx, &auth, &k) ? -1 : 0;
	OPENSSL_cleanse(&k, sizeof(k));
	if (rc) {
		new_request_id(resp->request_id);
		answer_error(&ctx, resp);
	}
	json_decref(ctx.query);
	json_decref(ctx.err_fields);
	free(path);
	return rc;
}

void control_response_free(struct control_response *resp)
{
	free(resp->body);
	resp->body = NULL;
}

void control_periodic(struct control *c, time_t now)
{
	size_t m;

	for (m = 0; m < api_n_modules; m++) {
		const struct api_module *mod = api_modules[m];
		struct api_ctx ctx = { .st = c->st, .cfg = c->cfg, .ca = c->ca,
				       .now = now };

		if (!mod || !mod->periodic)
			continue;
		if (store_begin(c->st))
			return;
		mod->periodic(&ctx);
		store_end(c->st, ctx.err == API_OK);
		json_decref(ctx.err_fields);
	}
}
