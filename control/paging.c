// SPDX-License-Identifier: GPL-2.0
/* paging.c - opaque nextToken values for the Describe operations. */
#include "paging.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "model.h"

/* Plain text of a token: "ferry1:KIND:POSITION". */
#define TOKEN_TEXT_MAX 96

int paging_read(struct api_ctx *ctx, json_t *in, const char *kind,
		long long *limit, long long *after)
{
	unsigned char text[TOKEN_TEXT_MAX * 2];
	const char *tok = NULL;
	char want[TOKEN_TEXT_MAX];
	json_t *v;
	size_t len, wlen;
	int n, pad = 0;
	long long pos;
	char *end;

	*limit = PAGING_MAX_RESULTS;
	*after = 0;
	if (model_get_int(ctx, in, "maxResults", false, 1, PAGING_MAX_RESULTS,
			  limit))
		return -1;
	v = json_object_get(in, "nextToken");
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return api_invalid_field(ctx, "nextToken",
					 "nextToken must be a string");
	tok = json_string_value(v);
	len = json_string_length(v);
	/* The model allows an empty token: the first page. */
	if (len == 0)
		return 0;
	if (len > 2048 || len % 4 || len > (sizeof(text) - 1) / 3 * 4)
		goto bad;
	n = EVP_DecodeBlock(text, (const unsigned char *)tok, (int)len);
	if (n < 0)
		goto bad;
	/* EVP_DecodeBlock counts the padding as decoded zero bytes. */
	if (tok[len - 1] == '=')
		pad++;
	if (tok[len - 2] == '=')
		pad++;
	n -= pad;
	text[n] = '\0';
	if (memchr(text, '\0', (size_t)n))
		goto bad;
	wlen = (size_t)snprintf(want, sizeof(want), "ferry1:%s:", kind);
	if (strncmp((const char *)text, want, wlen))
		goto bad;
	if (text[wlen] < '0' || text[wlen] > '9')
		goto bad;
	pos = strtoll((const char *)text + wlen, &end, 10);
	if (*end || pos < 0)
		goto bad;
	*after = pos;
	return 0;
bad:
	return api_invalid_field(ctx, "nextToken",
				 "The nextToken is not one this listing gave");
}

int paging_set_token(struct api_ctx *ctx, json_t *out, const char *kind,
		     long long after)
{
	char text[TOKEN_TEXT_MAX];
	unsigned char tok[TOKEN_TEXT_MAX * 2];
	int n;

	n = snprintf(text, sizeof(text), "ferry1:%s:%lld", kind, after);
	if (n < 0 || (size_t)n >= sizeof(text))
		return api_error(ctx, API_INTERNAL, "page token too long");
	EVP_EncodeBlock(tok, (const unsigned char *)text, n);
	return json_object_set_new(out, "nextToken",
				   json_string((const char *)tok));
}
