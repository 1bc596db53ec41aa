/* SPDX-License-Identifier: GPL-2.0 */
/*
 * control_api.h - one ferry-control operation over HTTPS: `POST /<Op>`
 * with a JSON body, signed with AWS Signature Version 4 by libcurl
 * (CURLOPT_AWS_SIGV4, service "mgn"), the session token of temporary
 * credentials in X-Amz-Security-Token (signed too).  Through the proxy
 * and with the CA bundle of the configuration.  Each request carries a
 * random X-Ferry-Request-Id (signed), so that no two requests share a
 * signature, which ferry-control would refuse as a replay.  docs/api.md
 * has the operations.
 *
 * One struct ctl_api is used by one thread at a time; it keeps its
 * connection open between calls.  The secret is handed to libcurl for
 * signing and appears in no message.
 */
#ifndef FERRY_AGENT_CONTROL_API_H
#define FERRY_AGENT_CONTROL_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"

/* What went wrong with a call, for the caller to act on. */
struct ctl_api_error {
	long status;		/* HTTP status, 0: no answer */
	char type[128];		/* x-amzn-ErrorType: "AccessDeniedException" */
	char message[512];	/* the answer's "message" */
};

struct ctl_api {
	void *curl;		/* CURL * */
	char endpoint[AGENT_URL_MAX];
	char sigv4[96];		/* aws:amz:REGION:mgn */
	char proxy[AGENT_URL_MAX];
	char ca_bundle[AGENT_PATH_MAX];
	char access_key_id[129];
	char secret[129];
	char token[2048];
	long timeout_s;		/* whole call; connecting: at most 10 s */
	/* Stops a call early when it returns true (e.g. on SIGTERM). */
	bool (*abort)(void *arg);
	void *abort_arg;
};

/* Set up A for CFG's endpoint, region, proxy and CA bundle.  0 or -1. */
int ctl_api_init(struct ctl_api *a, const struct agent_config *cfg,
		 char *err, size_t errlen);

/* The key to sign with (TOKEN "" for long-term keys). */
void ctl_api_set_key(struct ctl_api *a, const char *access_key_id,
		     const char *secret, const char *token);

/*
 * POST BODY (NULL: {}) to operation OP.  0 with *OUT the answer's JSON
 * object (the caller decrefs it), or -1 with a one-line message in ERR
 * naming the operation, the endpoint, and the HTTP status with
 * ferry-control's error type and message, or libcurl's reason (and the
 * proxy, and a hint for a certificate problem); E (may be NULL) gets the
 * parts.
 */
int ctl_api_call(struct ctl_api *a, const char *op, json_t *body,
		 json_t **out, struct ctl_api_error *e, char *err,
		 size_t errlen);

/* Close the connection, wipe the key. */
void ctl_api_free(struct ctl_api *a);

#endif
