/* SPDX-License-Identifier: GPL-2.0 */
/* log.h - ferry-control's log lines on stderr (journald adds the time
 * and the unit); never a secret in them. */
#ifndef FERRY_CONTROL_LOG_H
#define FERRY_CONTROL_LOG_H

void log_set_quiet(int quiet);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
