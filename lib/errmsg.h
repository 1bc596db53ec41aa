/* SPDX-License-Identifier: GPL-2.0 */
/* errmsg.h - the "what failed" out-parameter of functions that return -1
 * with a message in ERR[ERRLEN]. */
#ifndef FERRY_LIB_ERRMSG_H
#define FERRY_LIB_ERRMSG_H

#include <stddef.h>

/* printf into ERR[ERRLEN]; does nothing if ERR is NULL or ERRLEN 0. */
void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
