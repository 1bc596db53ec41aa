/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The logic of ferry-verify, separate from its main() so the unit tests can
 * drive it: load a ferry-writer log and drained extent files, then compare.
 *
 * Rules:
 *  - coverage: every logged range, rounded out to the granularity (and
 *    clipped to the device size), lies in the union of the drained extents;
 *  - exactness (unless fs): no drained byte lies outside the rounded logged
 *    ranges or the ignored ranges;
 *  - well-formedness: every drained extent is non-empty, starts on a
 *    granularity boundary, has a length that is a multiple of the
 *    granularity unless it ends at the device size, and ends inside the
 *    device (when the size is known).
 */
#ifndef FERRY_VERIFY_CORE_H
#define FERRY_VERIFY_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "extent.h"

#define VERIFY_MAX_NOTES	8

struct verify_cfg {
	uint64_t gran;
	uint64_t size;		/* device size in bytes; 0 if unknown */
	uint64_t shift;		/* added to every logged offset */
	bool fs;		/* coverage only: a filesystem writes metadata
				 * nobody logged */
	struct extent_set ignore; /* drained bytes here are never extra */
};

struct verify_data {
	struct extent_set logged;	/* rounded out to the granularity */
	struct extent_set drained;	/* union of all drained extents */
	uint64_t log_ops;
	uint64_t log_bytes;		/* as logged, before rounding */
	uint64_t ext_files;
	uint64_t extents;
	uint64_t ext_bytes;		/* sum of lengths, overlaps counted */
	uint64_t bad;			/* malformed drained extents */
	unsigned int nnotes;
	char notes[VERIFY_MAX_NOTES][192]; /* the first malformed ones */
};

struct verify_result {
	struct extent_set missing;	/* logged, never drained */
	struct extent_set extra;	/* drained, never logged */
	bool pass;
};

void verify_data_init(struct verify_data *d);
void verify_data_free(struct verify_data *d);

/*
 * Parse a ferry-writer log ("OP OFFSET LENGTH ..." lines, '#' comments) or
 * a drained extent file (`ferryctl tracker drain` output: "OFFSET LENGTH"
 * lines).  name is for messages.  Returns 0, or -1 with err set to
 * "NAME:LINE: what is wrong".
 */
int verify_add_log(struct verify_data *d, const struct verify_cfg *cfg,
		   FILE *f, const char *name, char *err, size_t errlen);
int verify_add_extents(struct verify_data *d, const struct verify_cfg *cfg,
		       FILE *f, const char *name, char *err, size_t errlen);

/* Compare; r must be freed with verify_result_free(). 0 or -ENOMEM. */
int verify_check(const struct verify_data *d, const struct verify_cfg *cfg,
		 struct verify_result *r);
void verify_result_free(struct verify_result *r);

/* Human report: totals, then at most max_show ranges of each problem. */
void verify_report(FILE *out, const struct verify_data *d,
		   const struct verify_cfg *cfg,
		   const struct verify_result *r, unsigned int max_show);

/* One line: "PASS ..." or "FAIL: N missing ranges (B bytes), ...". */
void verify_verdict(char *buf, size_t len, const struct verify_data *d,
		    const struct verify_cfg *cfg,
		    const struct verify_result *r);

#endif /* FERRY_VERIFY_CORE_H */
