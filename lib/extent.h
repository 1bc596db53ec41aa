/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A set of byte ranges, kept sorted and coalesced.
 *
 * Ranges are half-open [start, end).  Two ranges that overlap or touch are
 * merged on insertion, so the set is always the canonical representation of
 * the bytes it covers: two sets that cover the same bytes compare equal
 * range by range.  The agent uses it for the dirty ranges it still owes the
 * replicator; the tests use it to compare what was written with what the
 * tracker reported.
 *
 * Storage is one sorted array: lookups are a binary search (O(log n)); an
 * insertion that merges or opens a gap moves the tail of the array, which is
 * a memmove and cheap for the set sizes a drain produces.
 *
 * Functions that can fail return 0 or a negative errno (-ENOMEM, or
 * -EOVERFLOW when offset + length does not fit in 64 bits) and leave the set
 * unchanged on failure.
 */
#ifndef FERRY_EXTENT_H
#define FERRY_EXTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct extent_range {
	uint64_t start;
	uint64_t end;		/* exclusive */
};

struct extent_set {
	struct extent_range *v;
	size_t n;
	size_t cap;
};

#define EXTENT_SET_INIT { NULL, 0, 0 }

void extent_set_init(struct extent_set *s);
void extent_set_free(struct extent_set *s);
void extent_set_clear(struct extent_set *s);

/* Add [off, off + len); len 0 is a no-op. */
int extent_set_add(struct extent_set *s, uint64_t off, uint64_t len);

/* Remove [off, off + len) from the set (it may split a range in two). */
int extent_set_remove(struct extent_set *s, uint64_t off, uint64_t len);

/* dst |= src.  dst and src may not be the same set. */
int extent_set_union(struct extent_set *dst, const struct extent_set *src);

/* dst = a \ b.  dst is overwritten and must be neither a nor b. */
int extent_set_subtract(struct extent_set *dst, const struct extent_set *a,
			const struct extent_set *b);

/* dst = a & b.  dst is overwritten and must be neither a nor b. */
int extent_set_intersect(struct extent_set *dst, const struct extent_set *a,
			 const struct extent_set *b);

/* Is every byte of [off, off + len) in the set?  len 0 is always true. */
bool extent_set_contains(const struct extent_set *s, uint64_t off,
			 uint64_t len);

/* Does any byte of [off, off + len) lie in the set? */
bool extent_set_overlaps(const struct extent_set *s, uint64_t off,
			 uint64_t len);

bool extent_set_equal(const struct extent_set *a, const struct extent_set *b);

/* Number of disjoint ranges, and the bytes they cover. */
size_t extent_set_count(const struct extent_set *s);
uint64_t extent_set_bytes(const struct extent_set *s);

/*
 * Call fn for each range in ascending order; a non-zero return stops the
 * walk and is returned.  fn must not modify the set.
 */
typedef int (*extent_fn)(void *arg, uint64_t off, uint64_t len);
int extent_set_foreach(const struct extent_set *s, extent_fn fn, void *arg);

/*
 * Round a range out to multiples of gran (a power of two or any non-zero
 * value) and clip it to limit (0 means no limit).  Returns false if the
 * range is empty or starts at or past limit.
 */
bool extent_round_out(uint64_t off, uint64_t len, uint64_t gran,
		      uint64_t limit, uint64_t *r_off, uint64_t *r_len);

#endif /* FERRY_EXTENT_H */
