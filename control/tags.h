/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tags.h - tags of MGN resources (source servers, replication
 * configuration templates, jobs), kept by ARN in the tags table that
 * ops_tags.c owns.  Every function runs in the caller's transaction and
 * records an api_error() on failure.
 */
#ifndef FERRY_CONTROL_TAGS_H
#define FERRY_CONTROL_TAGS_H

#include <jansson.h>

#include "api.h"

/* MGN: "Each resource can have a maximum of 50 tags." */
#define TAGS_MAX 50

/* The tags of ARN as an object key -> value (new reference; empty when
 * it has none), or NULL after recording an error. */
json_t *tags_get(struct api_ctx *ctx, const char *arn);

/*
 * Add TAGS (an object key -> value) to ARN, overwriting the values of
 * keys it already has.  TAGS is checked first (ValidationException on
 * the "tags" field if malformed, or if ARN would end with more than
 * TAGS_MAX tags).  NULL TAGS does nothing.  0 or -1.
 */
int tags_set(struct api_ctx *ctx, const char *arn, json_t *tags);

/* Remove every tag of ARN (when the resource is deleted).  0 or -1. */
int tags_delete_all(struct api_ctx *ctx, const char *arn);

#endif
