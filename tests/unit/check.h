/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A minimal unit test harness: CHECK macros count failures and print where
 * they happened; RUN prints one "ok"/"FAIL" line per test function;
 * check_exit() returns the exit status for main().
 */
#ifndef FERRY_CHECK_H
#define FERRY_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned int check_total, check_failed;

#define CHECK(cond)							\
	do {								\
		check_total++;						\
		if (!(cond)) {						\
			check_failed++;					\
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n",	\
				__FILE__, __LINE__, #cond);		\
		}							\
	} while (0)

#define CHECK_U64(got, want)						\
	do {								\
		uint64_t got_ = (uint64_t)(got);			\
		uint64_t want_ = (uint64_t)(want);			\
		check_total++;						\
		if (got_ != want_) {					\
			check_failed++;					\
			fprintf(stderr,					\
				"%s:%d: %s is %" PRIu64 ", want %" PRIu64 "\n", \
				__FILE__, __LINE__, #got, got_, want_);	\
		}							\
	} while (0)

#define CHECK_STR(got, want)						\
	do {								\
		const char *got_ = (got), *want_ = (want);		\
		check_total++;						\
		if (strcmp(got_, want_)) {				\
			check_failed++;					\
			fprintf(stderr, "%s:%d: %s is \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, #got, got_, want_);	\
		}							\
	} while (0)

/* The string contains the substring. */
#define CHECK_HAS(got, part)						\
	do {								\
		const char *got_ = (got), *part_ = (part);		\
		check_total++;						\
		if (!strstr(got_, part_)) {				\
			check_failed++;					\
			fprintf(stderr,					\
				"%s:%d: %s is \"%s\", lacks \"%s\"\n",	\
				__FILE__, __LINE__, #got, got_, part_);	\
		}							\
	} while (0)

#define RUN(fn)								\
	do {								\
		unsigned int before_ = check_failed;			\
		fn();							\
		printf("%s %s\n", check_failed == before_ ? "ok  " : "FAIL", \
		       #fn);						\
	} while (0)

static inline int check_exit(void)
{
	printf("%u checks, %u failed\n", check_total, check_failed);
	return check_failed ? 1 : 0;
}

#endif /* FERRY_CHECK_H */
