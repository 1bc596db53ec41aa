/* SPDX-License-Identifier: GPL-2.0 */
/*
 * request.h - one API request from bytes to answer, without sockets:
 * authentication (Signature V4, session tokens, replay), routing, the
 * role check, JSON parsing and the operation in one transaction.  The
 * HTTP server (http.c) and the fuzz target both drive it.
 */
#ifndef FERRY_CONTROL_REQUEST_H
#define FERRY_CONTROL_REQUEST_H

#include <stddef.h>
#include <time.h>

#include "sigv4.h"

#define REQUEST_MAX_BODY (1u << 20) /* larger bodies are refused */
#define REQUEST_MAX_HEADERS 64

struct control_config;
struct store;
struct ca;

struct control {
	const struct control_config *cfg;
	struct store *st;
	struct ca *ca;
	struct sigv4_replay *replay;
};

struct control_request {
	const char *method;
	const char *uri; /* raw request target: path and ?query */
	struct sigv4_header headers[REQUEST_MAX_HEADERS];
	size_t n_headers;
	const char *body;
	size_t body_len;
	int too_large;	 /* the body went over REQUEST_MAX_BODY */
	int overloaded;	 /* too many bodies buffered at once: not kept */
	time_t now;
};

struct control_response {
	int status;
	char *body;	    /* malloc'd JSON, or NULL (204) */
	size_t body_len;
	char error_type[64]; /* x-amzn-ErrorType, "" on success */
	char request_id[40]; /* x-amzn-RequestId */
};

/* Answer REQ into RESP (always filled; free with control_response_free). */
void control_handle(struct control *c, const struct control_request *req,
		    struct control_response *resp);
/*
 * Before a body is read: whether REQ's headers authenticate far enough
 * to be worth keeping it (the Authorization header's form, an active key,
 * its session token).  0: read the body; -1: RESP holds the refusal,
 * which the body cannot change, and the body is read and dropped (so
 * that a stranger cannot make ferry-control hold a MiB per connection).
 * control_handle() looks the key up again once the body is in: it may
 * have been deleted or deactivated meanwhile, and its secret is not kept
 * in memory across the upload.
 */
int control_admit(struct control *c, const struct control_request *req,
		  struct control_response *resp);
void control_response_free(struct control_response *resp);

/* Run every module's periodic hook once, each in a transaction. */
void control_periodic(struct control *c, time_t now);

#endif
