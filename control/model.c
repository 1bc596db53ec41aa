// SPDX-License-Identifier: GPL-2.0
/* model.c - MGN identifiers, times and checked request members. */
#include "model.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "config.h"

void model_new_id(const char *prefix, char out[MODEL_ID_MAX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[17];
	size_t n = strlen(prefix), i;

	/* getrandom() only fails before the pool is ready or on EINTR;
	 * retry rather than hand out a predictable ID. */
	while (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		;
	if (n > MODEL_ID_MAX - 18)
		n = MODEL_ID_MAX - 18;
	memcpy(out, prefix, n);
	for (i = 0; i < sizeof(rnd); i++)
		out[n + i] = hex[rnd[i] & 15];
	out[n + sizeof(rnd)] = '\0';
}

bool model_id_valid(const char *prefix, const char *id)
{
	size_t n = strlen(prefix), i;

	if (!id || strncmp(id, prefix, n) != 0 || strlen(id) != n + 17)
		return false;
	for (i = n; i < n + 17; i++)
		if (!isxdigit((unsigned char)id[i]) ||
		    isupper((unsigned char)id[i]))
			return false;
	return true;
}

void model_arn(const struct api_ctx *ctx, const char *type, const char *id,
	       char out[MODEL_ARN_MAX])
{
	snprintf(out, MODEL_ARN_MAX, "arn:aws:mgn:%s:%s:%s/%s",
		 ctx->cfg->region, ctx->cfg->account_id, type, id);
}

void model_time(time_t t, char *out, size_t len)
{
	/* ISO 8601 has four-digit years: clamp, so that gmtime_r() never
	 * fails and the text always fits (an agent's etaSeconds of 2^62
	 * gave a year of nine digits and an unset struct tm). */
	const time_t max = 253402300799;	/* 9999-12-31T23:59:59Z */
	struct tm tm;

	if (t < 0)
		t = 0;
	if (t > max)
		t = max;
	if (!gmtime_r(&t, &tm) ||
	    !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "%s", "1970-01-01T00:00:00Z");
}

json_t *model_time_json(time_t t)
{
	char buf[32];

	model_time(t, buf, sizeof(buf));
	return json_string(buf);
}

time_t model_time_parse(const char *s)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s)
		return -1;
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	/* Accept fractions and a Z or +00:00 suffix, as clients send them. */
	if (*end == '.')
		while (isdigit((unsigned char)*++end))
			;
	if (*end == 'Z')
		end++;
	else if (!strcmp(end, "+00:00"))
		end += 6;
	if (*end)
		return -1;
	return timegm(&tm);
}

void model_duration(long long seconds, char *out, size_t len)
{
	long long d, h, m, s;
	int n;

	if (seconds < 0)
		seconds = 0;
	d = seconds / 86400;
	h = seconds / 3600 % 24;
	m = seconds / 60 % 60;
	s = seconds % 60;
	n = snprintf(out, len, "P");
	if (d)
		n += snprintf(out + n, len - n, "%lldD", d);
	if (h || m || s || !d) {
		n += snprintf(out + n, len - n, "T");
		if (h)
			n += snprintf(out + n, len - n, "%lldH", h);
		if (m)
			n += snprintf(out + n, len - n, "%lldM", m);
		if (s || (!h && !m))
			snprintf(out + n, len - n, "%lldS", s);
	}
}

static json_t *member(struct api_ctx *ctx, json_t *in, const char *key,
		      bool required, int *rc)
{
	json_t *v = json_is_object(in) ? json_object_get(in, key) : NULL;

	*rc = 0;
	if (v && json_is_null(v))
		v = NULL;
	if (!v && required)
		*rc = api_invalid_field(ctx, key, "%s is required", key);
	return v;
}

int model_get_string(struct api_ctx *ctx, json_t *in, const char *key,
		     bool required, size_t maxlen, const char **out)
{
	int rc;
	json_t *v = member(ctx, in, key, required, &rc);
	size_t len;

	if (!v)
		return rc;
	if (!json_is_string(v))
		return api_invalid_field(ctx, key, "%s must be a string", key);
	len = json_string_length(v);
	if (len < 1 || len > maxlen)
		return api_invalid_field(ctx, key,
					 "%s must be 1 to %zu characters long",
					 key, maxlen);
	if (memchr(json_string_value(v), '\0', len))
		return api_invalid_field(ctx, key,
					 "%s must not contain NUL characters",
					 key);
	*out = json_string_value(v);
	return 0;
}

int model_get_bool(struct api_ctx *ctx, json_t *in, const char *key,
		   bool required, bool *out)
{
	int rc;
	json_t *v = member(ctx, in, key, required, &rc);

	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return api_invalid_field(ctx, key, "%s must be a boolean", key);
	*out = json_is_true(v);
	return 0;
}

int model_get_int(struct api_ctx *ctx, json_t *in, const char *key,
		  bool required, long long min, long long max, long long *out)
{
	int rc;
	json_t *v = member(ctx, in, key, required, &rc);
	long long x;

	if (!v)
		return rc;
	if (!json_is_integer(v))
		return api_invalid_field(ctx, key, "%s must be an integer",
					 key);
	x = json_integer_value(v);
	if (x < min || x > max)
		return api_invalid_field(ctx, key,
					 "%s must be between %lld and %lld",
					 key, min, max);
	*out = x;
	return 0;
}

int model_get_object(struct api_ctx *ctx, json_t *in, const char *key,
		     bool required, json_t **out)
{
	int rc;
	json_t *v = member(ctx, in, key, required, &rc);

	*out = NULL;
	if (!v)
		return rc;
	if (!json_is_object(v))
		return api_invalid_field(ctx, key, "%s must be an object", key);
	*out = v;
	return 0;
}

int model_get_array(struct api_ctx *ctx, json_t *in, const char *key,
		    bool required, size_t maxitems, json_t **out)
{
	int rc;
	json_t *v = member(ctx, in, key, required, &rc);

	*out = NULL;
	if (!v)
		return rc;
	if (!json_is_array(v))
		return api_invalid_field(ctx, key, "%s must be a list", key);
	if (json_array_size(v) > maxitems)
		return api_invalid_field(ctx, key,
					 "%s must have at most %zu items", key,
					 maxitems);
	*out = v;
	return 0;
}

int model_get_enum(struct api_ctx *ctx, json_t *in, const char *key,
		   bool required, const char *const *allowed, const char **out)
{
	const char *s = NULL;
	size_t i;

	if (model_get_string(ctx, in, key, required, 256, &s))
		return -1;
	if (!s)
		return 0;
	for (i = 0; allowed[i]; i++) {
		if (!strcmp(s, allowed[i])) {
			*out = allowed[i];
			return 0;
		}
	}
	return api_invalid_field(ctx, key, "%s: '%s' is not a valid value",
				 key, s);
}

int model_only_keys(struct api_ctx *ctx, json_t *in, const char *const *known)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(in))
		return api_error(ctx, API_SERIALIZATION,
				 "The request body must be a JSON object");
	json_object_foreach(in, key, v) {
		for (i = 0; known[i]; i++)
			if (!strcmp(key, known[i]))
				break;
		if (!known[i])
			return api_invalid_field(ctx, key,
						 "Unknown member '%.64s'", key);
	}
	return 0;
}

int model_check_tags(struct api_ctx *ctx, json_t *tags, const char *field)
{
	const char *key;
	json_t *v;

	if (!json_is_object(tags))
		return api_invalid_field(ctx, field,
					 "%s must be a map of strings", field);
	if (json_object_size(tags) > 50)
		return api_invalid_field(ctx, field,
					 "%s: at most 50 tags are allowed",
					 field);
	json_object_foreach(tags, key, v) {
		size_t klen = strlen(key);

		if (klen < 1 || klen > 128)
			return api_invalid_field(ctx, field,
				"%s: tag keys must be 1 to 128 characters",
				field);
		if (!strncmp(key, "aws:", 4))
			return api_invalid_field(ctx, field,
				"%s: the prefix 'aws:' is reserved", field);
		if (!json_is_string(v) || json_string_length(v) > 256)
			return api_invalid_field(ctx, field,
				"%s: tag values must be strings of at most 256 characters",
				field);
	}
	return 0;
}
