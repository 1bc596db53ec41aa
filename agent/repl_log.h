/* SPDX-License-Identifier: GPL-2.0 */
/* repl_log.h - the replication thread's log lines on stderr, prefixed
 * "ferry-agent: " (journald adds the time).  Never a key in them. */
#ifndef FERRY_AGENT_REPL_LOG_H
#define FERRY_AGENT_REPL_LOG_H

void repl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
