// SPDX-License-Identifier: GPL-2.0
/*
 * api_resp.c - a response of ferry-control's API (api_resp.h).
 */
#include "api_resp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t api_resp_body(char *p, size_t size, size_t n, void *arg)
{
	struct api_resp *r = arg;
	size_t len = size * n;
	char *nb;

	if (r->len + len > r->max)
		return 0;
	nb = realloc(r->buf, r->len + len + 1);
	if (!nb)
		return 0;
	memcpy(nb + r->len, p, len);
	r->buf = nb;
	r->len += len;
	r->buf[r->len] = '\0';
	return len;
}

size_t api_resp_header(char *p, size_t size, size_t n, void *arg)
{
	static const char name[] = "x-amzn-errortype:";
	struct api_resp *r = arg;
	size_t len = size * n, off, k;

	/* A new response (after a proxy's CONNECT answer): start over. */
	if (len >= 5 && !strncmp(p, "HTTP/", 5))
		r->type[0] = '\0';
	if (len <= sizeof(name) || strncasecmp(p, name, sizeof(name) - 1))
		return len;
	off = sizeof(name) - 1;
	while (off < len && (p[off] == ' ' || p[off] == '\t'))
		off++;
	/* AWS may append ":http://internal..." to the type. */
	for (k = 0; off + k < len && p[off + k] != ':' && p[off + k] != '\r' &&
	     p[off + k] != '\n'; k++)
		;
	if (k >= sizeof(r->type))
		k = sizeof(r->type) - 1;
	memcpy(r->type, p + off, k);
	r->type[k] = '\0';
	return len;
}
