/* SPDX-License-Identifier: GPL-2.0 */
/* log.h - ferry-replicator's log lines on stderr (journald adds the time
 * and the unit).  Never a key or other secret in them. */
#ifndef FERRY_REPLICATOR_LOG_H
#define FERRY_REPLICATOR_LOG_H

void rlog_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rlog_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include "errmsg.h" /* set_err() */

#endif
