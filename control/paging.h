/* SPDX-License-Identifier: GPL-2.0 */
/*
 * paging.h - the nextToken of paginated Describe operations.
 *
 * A token names the position after the last item answered (a row's
 * sequence number in the operation's table), tagged with the operation so
 * a token of one listing is refused by another.  Clients must treat it as
 * opaque; it is base64 so that they do.
 */
#ifndef FERRY_CONTROL_PAGING_H
#define FERRY_CONTROL_PAGING_H

#include <jansson.h>

#include "api.h"

/* The maxResults of MGN's Describe operations: 1..1000; absent = 1000. */
#define PAGING_MAX_RESULTS 1000

/*
 * Read "maxResults" and "nextToken" from IN.  *LIMIT gets the page size;
 * *AFTER the position to continue after (0 for the first page).  An
 * unreadable token, or one made by another listing than KIND, records
 * ValidationException.  0 or -1.
 */
int paging_read(struct api_ctx *ctx, json_t *in, const char *kind,
		long long *limit, long long *after);

/* Set OUT's "nextToken" to continue after position AFTER of KIND. */
int paging_set_token(struct api_ctx *ctx, json_t *out, const char *kind,
		     long long after);

#endif
