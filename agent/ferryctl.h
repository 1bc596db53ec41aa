/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ferryctl: what the command files share.  ferryctl.c parses the top level
 * and dispatches; each command group lives in its own file.
 */
#ifndef FERRYCTL_H
#define FERRYCTL_H

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.1.0-dev"
#endif

/* Exit codes: documented in ferryctl --help. */
#define EXIT_OK		0
#define EXIT_FAIL	1
#define EXIT_USAGE	2

/*
 * Print "ferryctl CMD: REASON (see ferryctl CMD --help)" on stderr and
 * return EXIT_USAGE, so callers can write `return usage_error(...)`.
 */
int usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Print "ferryctl: REASON" on stderr and return EXIT_FAIL. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Report what getopt_long() returned for a bad option (c is '?' or ':';
 * optstrings start with ':' and opterr is 0 so getopt stays quiet).
 */
int bad_option(const char *cmd, char **argv, int c);

/* argv[0] is the group name ("tracker"); returns the exit code. */
int cmd_tracker(int argc, char **argv);

/* `ferryctl status`: the agent's status (ferryctl_status.c). */
int cmd_status(int argc, char **argv);

#endif /* FERRYCTL_H */
