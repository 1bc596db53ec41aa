// SPDX-License-Identifier: GPL-2.0
/*
 * Sorted, coalescing set of byte ranges: see extent.h.
 *
 * Invariant kept by every function: v[0..n) is sorted by start, every
 * range is non-empty, and v[k].end < v[k + 1].start (strictly: touching
 * ranges are merged, so the representation is unique).
 */
#include "extent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void extent_set_init(struct extent_set *s)
{
	s->v = NULL;
	s->n = 0;
	s->cap = 0;
}

void extent_set_free(struct extent_set *s)
{
	free(s->v);
	extent_set_init(s);
}

void extent_set_clear(struct extent_set *s)
{
	s->n = 0;
}

/* Make room for at least want ranges; the set is untouched on failure. */
static int reserve(struct extent_set *s, size_t want)
{
	struct extent_range *nv;
	size_t cap;

	if (want <= s->cap)
		return 0;
	cap = s->cap ? s->cap : 16;
	while (cap < want) {
		if (cap > SIZE_MAX / 2 / sizeof(*nv))
			return -ENOMEM;
		cap *= 2;
	}
	nv = realloc(s->v, cap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	s->v = nv;
	s->cap = cap;
	return 0;
}

enum extent_key { BY_START, BY_END };
enum extent_cmp { GT, GE };

/*
 * First index at or after @from whose start (or end) is greater than @pos
 * (GT), or greater or equal (GE).  The ranges are sorted and disjoint, so
 * their starts and their ends both increase and one binary search serves.
 */
static size_t first_index(const struct extent_set *s, size_t from,
			  enum extent_key key, enum extent_cmp cmp,
			  uint64_t pos)
{
	size_t lo = from, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t k = key == BY_END ? s->v[mid].end : s->v[mid].start;

		if (k < pos || (k == pos && cmp == GT))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int extent_set_add(struct extent_set *s, uint64_t off, uint64_t len)
{
	uint64_t end;
	size_t i, j;

	if (!len)
		return 0;
	if (off > UINT64_MAX - len)
		return -EOVERFLOW;
	end = off + len;

	/* Ranges [i, j) overlap or touch [off, end) and get merged. */
	i = first_index(s, 0, BY_END, GE, off);
	j = first_index(s, i, BY_START, GT, end);

	if (i == j) {
		int err = reserve(s, s->n + 1);

		if (err)
			return err;
		memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
		s->v[i].start = off;
		s->v[i].end = end;
		s->n++;
		return 0;
	}

	if (s->v[i].start < off)
		off = s->v[i].start;
	if (s->v[j - 1].end > end)
		end = s->v[j - 1].end;
	s->v[i].start = off;
	s->v[i].end = end;
	memmove(&s->v[i + 1], &s->v[j], (s->n - j) * sizeof(*s->v));
	s->n -= j - i - 1;
	return 0;
}

int extent_set_remove(struct extent_set *s, uint64_t off, uint64_t len)
{
	struct extent_range keep[2];
	size_t i, j, nkeep = 0;
	uint64_t end;

	if (!len)
		return 0;
	if (off > UINT64_MAX - len)
		return -EOVERFLOW;
	end = off + len;

	/* Ranges [i, j) share at least one byte with [off, end). */
	i = first_index(s, 0, BY_END, GT, off);
	j = first_index(s, i, BY_START, GE, end);
	if (i == j)
		return 0;

	if (s->v[i].start < off) {
		keep[nkeep].start = s->v[i].start;
		keep[nkeep].end = off;
		nkeep++;
	}
	if (s->v[j - 1].end > end) {
		keep[nkeep].start = end;
		keep[nkeep].end = s->v[j - 1].end;
		nkeep++;
	}

	/* Only punching a hole inside one range makes the set grow. */
	if (nkeep > j - i) {
		int err = reserve(s, s->n + 1);

		if (err)
			return err;
	}
	memmove(&s->v[i + nkeep], &s->v[j], (s->n - j) * sizeof(*s->v));
	memcpy(&s->v[i], keep, nkeep * sizeof(*s->v));
	s->n = s->n - (j - i) + nkeep;
	return 0;
}

int extent_set_union(struct extent_set *dst, const struct extent_set *src)
{
	struct extent_set tmp = EXTENT_SET_INIT;
	size_t a = 0, b = 0;
	int err;

	if (!src->n)
		return 0;
	/*
	 * Merge the two sorted arrays into a new one so a large union is
	 * linear instead of n insertions, each moving the tail.
	 */
	err = reserve(&tmp, dst->n + src->n);
	if (err)
		return err;
	while (a < dst->n || b < src->n) {
		const struct extent_range *r;

		if (b == src->n ||
		    (a < dst->n && dst->v[a].start <= src->v[b].start))
			r = &dst->v[a++];
		else
			r = &src->v[b++];
		if (tmp.n && r->start <= tmp.v[tmp.n - 1].end) {
			if (r->end > tmp.v[tmp.n - 1].end)
				tmp.v[tmp.n - 1].end = r->end;
		} else {
			tmp.v[tmp.n++] = *r;
		}
	}
	free(dst->v);
	*dst = tmp;
	return 0;
}

int extent_set_subtract(struct extent_set *dst, const struct extent_set *a,
			const struct extent_set *b)
{
	struct extent_set tmp = EXTENT_SET_INIT;
	size_t i, k = 0;
	int err;

	for (i = 0; i < a->n; i++) {
		uint64_t pos = a->v[i].start, end = a->v[i].end;

		/* Skip b's ranges that end before this one starts. */
		while (k < b->n && b->v[k].end <= pos)
			k++;
		/* Cut out every b range overlapping [pos, end). */
		for (size_t m = k; m < b->n && b->v[m].start < end; m++) {
			if (b->v[m].start > pos) {
				err = extent_set_add(&tmp, pos,
						     b->v[m].start - pos);
				if (err)
					goto fail;
			}
			if (b->v[m].end > pos)
				pos = b->v[m].end;
			if (pos >= end)
				break;
		}
		if (pos < end) {
			err = extent_set_add(&tmp, pos, end - pos);
			if (err)
				goto fail;
		}
	}
	free(dst->v);
	*dst = tmp;
	return 0;
fail:
	extent_set_free(&tmp);
	return err;
}

int extent_set_intersect(struct extent_set *dst, const struct extent_set *a,
			 const struct extent_set *b)
{
	struct extent_set tmp = EXTENT_SET_INIT;
	size_t i = 0, k = 0;
	int err;

	while (i < a->n && k < b->n) {
		uint64_t lo = a->v[i].start > b->v[k].start ?
			      a->v[i].start : b->v[k].start;
		uint64_t hi = a->v[i].end < b->v[k].end ?
			      a->v[i].end : b->v[k].end;

		if (lo < hi) {
			err = extent_set_add(&tmp, lo, hi - lo);
			if (err) {
				extent_set_free(&tmp);
				return err;
			}
		}
		if (a->v[i].end < b->v[k].end)
			i++;
		else
			k++;
	}
	free(dst->v);
	*dst = tmp;
	return 0;
}

bool extent_set_contains(const struct extent_set *s, uint64_t off,
			 uint64_t len)
{
	size_t i;

	if (!len)
		return true;
	if (off > UINT64_MAX - len)
		return false;
	/* Ranges are coalesced, so one range must hold all of it. */
	i = first_index(s, 0, BY_END, GT, off);
	return i < s->n && s->v[i].start <= off && s->v[i].end >= off + len;
}

bool extent_set_overlaps(const struct extent_set *s, uint64_t off,
			 uint64_t len)
{
	uint64_t end;
	size_t i;

	if (!len)
		return false;
	end = off > UINT64_MAX - len ? UINT64_MAX : off + len;
	i = first_index(s, 0, BY_END, GT, off);
	return i < s->n && s->v[i].start < end;
}

bool extent_set_equal(const struct extent_set *a, const struct extent_set *b)
{
	if (a->n != b->n)
		return false;
	return !a->n || !memcmp(a->v, b->v, a->n * sizeof(*a->v));
}

size_t extent_set_count(const struct extent_set *s)
{
	return s->n;
}

uint64_t extent_set_bytes(const struct extent_set *s)
{
	uint64_t total = 0;

	for (size_t i = 0; i < s->n; i++)
		total += s->v[i].end - s->v[i].start;
	return total;
}

int extent_set_foreach(const struct extent_set *s, extent_fn fn, void *arg)
{
	for (size_t i = 0; i < s->n; i++) {
		int ret = fn(arg, s->v[i].start, s->v[i].end - s->v[i].start);

		if (ret)
			return ret;
	}
	return 0;
}

bool extent_round_out(uint64_t off, uint64_t len, uint64_t gran,
		      uint64_t limit, uint64_t *r_off, uint64_t *r_len)
{
	uint64_t start, end;

	if (!len || !gran || (limit && off >= limit))
		return false;
	start = off - off % gran;
	end = off > UINT64_MAX - len ? UINT64_MAX : off + len;
	if (end % gran) {
		uint64_t up = gran - end % gran;

		end = end > UINT64_MAX - up ? UINT64_MAX : end + up;
	}
	if (limit && end > limit)
		end = limit;
	if (start >= end)
		return false;
	*r_off = start;
	*r_len = end - start;
	return true;
}
