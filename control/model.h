/* SPDX-License-Identifier: GPL-2.0 */
/*
 * model.h - helpers shared by the operations: MGN identifiers, ARNs,
 * ISO-8601 times and durations, and checked access to request fields
 * (each failure answers ValidationException naming the field).
 */
#ifndef FERRY_CONTROL_MODEL_H
#define FERRY_CONTROL_MODEL_H

#include <stdbool.h>
#include <jansson.h>
#include <time.h>

#include "api.h"

#define MODEL_ID_MAX 64
#define MODEL_ARN_MAX 256

/* PREFIX followed by 17 random lower-case hex digits, as MGN's IDs:
 * "s-" source servers, "rct-" replication templates, "mgnjob-" jobs. */
void model_new_id(const char *prefix, char out[MODEL_ID_MAX]);

/* True if ID is PREFIX followed by 17 lower-case hex digits. */
bool model_id_valid(const char *prefix, const char *id);

/* arn:aws:mgn:REGION:ACCOUNT:TYPE/ID */
void model_arn(const struct api_ctx *ctx, const char *type, const char *id,
	       char out[MODEL_ARN_MAX]);

/* "2026-11-22T06:30:05Z" (buffer of 32 at least). */
void model_time(time_t t, char *out, size_t len);
json_t *model_time_json(time_t t);
/* Parse what model_time() writes; -1 on error. */
time_t model_time_parse(const char *s);

/* ISO-8601 duration: "PT0S", "PT5M3S", "P1DT2H" (buffer of 32). */
void model_duration(long long seconds, char *out, size_t len);

/*
 * Checked reads of request members.  Each returns 0 with the value (or
 * the default when the member is absent and not required), or -1 after
 * recording ValidationException naming the field.  Strings are checked
 * for length (1..MAXLEN), integers for range.
 */
int model_get_string(struct api_ctx *ctx, json_t *in, const char *key,
		     bool required, size_t maxlen, const char **out);
int model_get_bool(struct api_ctx *ctx, json_t *in, const char *key,
		   bool required, bool *out);
int model_get_int(struct api_ctx *ctx, json_t *in, const char *key,
		  bool required, long long min, long long max,
		  long long *out);
/* A member that must be an object / array when present (NULL if absent). */
int model_get_object(struct api_ctx *ctx, json_t *in, const char *key,
		     bool required, json_t **out);
int model_get_array(struct api_ctx *ctx, json_t *in, const char *key,
		    bool required, size_t maxitems, json_t **out);
/* A string member that must be one of the NULL-terminated ALLOWED. */
int model_get_enum(struct api_ctx *ctx, json_t *in, const char *key,
		   bool required, const char *const *allowed,
		   const char **out);
/* Refuse members not in the NULL-terminated KNOWN list (MGN's model
 * rejects unknown members with a ValidationException too). */
int model_only_keys(struct api_ctx *ctx, json_t *in,
		    const char *const *known);

/* Tags: an object of string -> string, at most 50, keys 1..128 chars,
 * values 0..256, "aws:" prefix reserved. */
int model_check_tags(struct api_ctx *ctx, json_t *tags, const char *field);

#endif
