/* SPDX-License-Identifier: GPL-2.0 */
/*
 * api_resp.h - the body and the error type of a response of ferry-control's
 * API, gathered by libcurl's write and header callbacks (the agent's and
 * the replicator's clients).
 */
#ifndef FERRY_LIB_API_RESP_H
#define FERRY_LIB_API_RESP_H

#include <stddef.h>

struct api_resp {
	char *buf;		/* NUL-terminated; free() it */
	size_t len;
	size_t max;		/* a longer body fails the transfer */
	char type[128];		/* x-amzn-ErrorType, without AWS's ":..." */
};

/* CURLOPT_WRITEFUNCTION, with CURLOPT_WRITEDATA a struct api_resp. */
size_t api_resp_body(char *p, size_t size, size_t n, void *arg);

/* CURLOPT_HEADERFUNCTION, with CURLOPT_HEADERDATA a struct api_resp. */
size_t api_resp_header(char *p, size_t size, size_t n, void *arg);

#endif
