// SPDX-License-Identifier: GPL-2.0
/* repl_log.c - log lines of the replication thread (repl_log.h). */
#include <stdarg.h>
#include <stdio.h>

#include "repl_log.h"

void repl_log(const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so that threads do not interleave. */
	fprintf(stderr, "ferry-agent: %s\n", line);
}
