// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of lib/extent.c: hand-written cases for each operation, then
 * a randomized comparison against a bitmap model.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "check.h"
#include "extent.h"

/* The set holds exactly these [start, end) pairs, in order. */
static bool set_is(const struct extent_set *s, const uint64_t *pairs,
		   size_t npairs)
{
	if (s->n != npairs)
		return false;
	for (size_t i = 0; i < npairs; i++)
		if (s->v[i].start != pairs[2 * i] ||
		    s->v[i].end != pairs[2 * i + 1])
			return false;
	return true;
}

#define SET_IS(s, ...)							\
	do {								\
		static const uint64_t p_[] = { __VA_ARGS__ };		\
		CHECK(set_is((s), p_, sizeof(p_) / sizeof(p_[0]) / 2));	\
	} while (0)

static void test_add_merges(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	CHECK(extent_set_add(&s, 100, 0) == 0);
	CHECK_U64(extent_set_count(&s), 0);
	CHECK(extent_set_add(&s, 100, 10) == 0);
	CHECK(extent_set_add(&s, 200, 10) == 0);
	CHECK(extent_set_add(&s, 0, 10) == 0);
	SET_IS(&s, 0, 10, 100, 110, 200, 210);
	/* Touching merges. */
	CHECK(extent_set_add(&s, 110, 5) == 0);
	SET_IS(&s, 0, 10, 100, 115, 200, 210);
	CHECK(extent_set_add(&s, 95, 5) == 0);
	SET_IS(&s, 0, 10, 95, 115, 200, 210);
	/* Spanning several ranges merges them all. */
	CHECK(extent_set_add(&s, 5, 200) == 0);
	SET_IS(&s, 0, 210);
	/* Inside: no change. */
	CHECK(extent_set_add(&s, 50, 10) == 0);
	SET_IS(&s, 0, 210);
	CHECK_U64(extent_set_bytes(&s), 210);
	/* Overflow is refused and changes nothing. */
	CHECK(extent_set_add(&s, UINT64_MAX - 5, 10) == -EOVERFLOW);
	SET_IS(&s, 0, 210);
	CHECK(extent_set_add(&s, UINT64_MAX - 10, 10) == 0);
	SET_IS(&s, 0, 210, UINT64_MAX - 10, UINT64_MAX);
	extent_set_clear(&s);
	CHECK_U64(extent_set_count(&s), 0);
	extent_set_free(&s);
}

static void test_add_many(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	/* Every other unit, backwards, then fill the gaps forwards. */
	for (uint64_t i = 1000; i-- > 0;)
		CHECK(extent_set_add(&s, i * 2, 1) == 0);
	CHECK_U64(extent_set_count(&s), 1000);
	CHECK_U64(extent_set_bytes(&s), 1000);
	for (uint64_t i = 0; i < 999; i++)
		extent_set_add(&s, i * 2 + 1, 1);
	SET_IS(&s, 0, 1999);
	extent_set_free(&s);
}

static void test_remove(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	extent_set_add(&s, 0, 100);
	extent_set_add(&s, 200, 100);
	/* A hole in the middle splits. */
	CHECK(extent_set_remove(&s, 40, 10) == 0);
	SET_IS(&s, 0, 40, 50, 100, 200, 300);
	/* Across a gap, trimming both sides. */
	CHECK(extent_set_remove(&s, 90, 120) == 0);
	SET_IS(&s, 0, 40, 50, 90, 210, 300);
	/* Exactly one range. */
	CHECK(extent_set_remove(&s, 50, 40) == 0);
	SET_IS(&s, 0, 40, 210, 300);
	/* Nothing there. */
	CHECK(extent_set_remove(&s, 100, 50) == 0);
	SET_IS(&s, 0, 40, 210, 300);
	CHECK(extent_set_remove(&s, 0, 1000) == 0);
	CHECK_U64(extent_set_count(&s), 0);
	CHECK(extent_set_remove(&s, UINT64_MAX, 2) == -EOVERFLOW);
	extent_set_free(&s);
}

static void test_contains_overlaps(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	extent_set_add(&s, 10, 10);
	extent_set_add(&s, 30, 10);
	CHECK(extent_set_contains(&s, 10, 10));
	CHECK(extent_set_contains(&s, 12, 3));
	CHECK(extent_set_contains(&s, 5, 0));
	CHECK(!extent_set_contains(&s, 9, 2));
	CHECK(!extent_set_contains(&s, 19, 2));
	CHECK(!extent_set_contains(&s, 15, 20));	/* spans the gap */
	CHECK(!extent_set_contains(&s, 40, 1));
	CHECK(!extent_set_contains(&s, UINT64_MAX, 2));
	CHECK(extent_set_overlaps(&s, 19, 5));
	CHECK(extent_set_overlaps(&s, 0, 11));
	CHECK(!extent_set_overlaps(&s, 20, 10));
	CHECK(!extent_set_overlaps(&s, 0, 10));
	CHECK(!extent_set_overlaps(&s, 40, UINT64_MAX));
	CHECK(extent_set_overlaps(&s, 35, UINT64_MAX));
	CHECK(!extent_set_overlaps(&s, 10, 0));
	extent_set_free(&s);
}

static void test_set_ops(void)
{
	struct extent_set a = EXTENT_SET_INIT, b = EXTENT_SET_INIT;
	struct extent_set r = EXTENT_SET_INIT;

	extent_set_add(&a, 0, 10);
	extent_set_add(&a, 20, 10);
	extent_set_add(&a, 40, 10);
	extent_set_add(&b, 5, 20);
	extent_set_add(&b, 45, 100);

	CHECK(extent_set_subtract(&r, &a, &b) == 0);
	SET_IS(&r, 0, 5, 25, 30, 40, 45);
	CHECK(extent_set_subtract(&r, &b, &a) == 0);
	SET_IS(&r, 10, 20, 50, 145);
	CHECK(extent_set_intersect(&r, &a, &b) == 0);
	SET_IS(&r, 5, 10, 20, 25, 45, 50);
	CHECK(extent_set_union(&a, &b) == 0);
	SET_IS(&a, 0, 30, 40, 145);

	/* With an empty operand. */
	extent_set_clear(&b);
	CHECK(extent_set_subtract(&r, &a, &b) == 0);
	CHECK(extent_set_equal(&r, &a));
	CHECK(extent_set_subtract(&r, &b, &a) == 0);
	CHECK_U64(extent_set_count(&r), 0);
	CHECK(extent_set_intersect(&r, &a, &b) == 0);
	CHECK_U64(extent_set_count(&r), 0);
	CHECK(extent_set_union(&b, &a) == 0);
	CHECK(extent_set_equal(&b, &a));

	/* One b range covering several a ranges. */
	extent_set_clear(&a);
	extent_set_clear(&b);
	extent_set_add(&a, 0, 10);
	extent_set_add(&a, 20, 10);
	extent_set_add(&a, 40, 10);
	extent_set_add(&b, 5, 40);
	CHECK(extent_set_subtract(&r, &a, &b) == 0);
	SET_IS(&r, 0, 5, 45, 50);

	extent_set_free(&a);
	extent_set_free(&b);
	extent_set_free(&r);
}

static int count_cb(void *arg, uint64_t off, uint64_t len)
{
	uint64_t *n = arg;

	(void)off;
	(void)len;
	return ++*n == 2 ? 7 : 0;
}

static void test_foreach(void)
{
	struct extent_set s = EXTENT_SET_INIT;
	uint64_t n = 0;

	extent_set_add(&s, 0, 1);
	extent_set_add(&s, 5, 1);
	extent_set_add(&s, 9, 1);
	CHECK(extent_set_foreach(&s, count_cb, &n) == 7);
	CHECK_U64(n, 2);
	extent_set_free(&s);
}

static void test_round_out(void)
{
	uint64_t o, l;

	CHECK(extent_round_out(100, 10, 4096, 0, &o, &l));
	CHECK_U64(o, 0);
	CHECK_U64(l, 4096);
	CHECK(extent_round_out(4095, 2, 4096, 0, &o, &l));
	CHECK_U64(o, 0);
	CHECK_U64(l, 8192);
	CHECK(extent_round_out(4096, 4096, 4096, 0, &o, &l));
	CHECK_U64(o, 4096);
	CHECK_U64(l, 4096);
	/* Clipped to the device end. */
	CHECK(extent_round_out(9000, 1000, 4096, 10000, &o, &l));
	CHECK_U64(o, 8192);
	CHECK_U64(l, 1808);
	CHECK(!extent_round_out(10000, 10, 4096, 10000, &o, &l));
	CHECK(!extent_round_out(10, 0, 4096, 0, &o, &l));
	/* Near the top of the range: saturates instead of wrapping. */
	CHECK(extent_round_out(UINT64_MAX - 10, 5, 4096, 0, &o, &l));
	CHECK_U64(o, (UINT64_MAX - 10) & ~4095ull);
	CHECK_U64(o + l, UINT64_MAX);
}

/* Randomized: the set must always equal a bitmap over a small universe. */
#define UNIVERSE	512

static uint64_t rnd_state = 12345;

static uint64_t rnd(uint64_t n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state % n;
}

static bool well_formed(const struct extent_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].start >= s->v[i].end)
			return false;
		if (i && s->v[i - 1].end >= s->v[i].start)
			return false;
	}
	return true;
}

static bool matches(const struct extent_set *s, const bool *bits)
{
	for (uint64_t u = 0; u < UNIVERSE; u++)
		if (extent_set_contains(s, u, 1) != bits[u] ||
		    extent_set_overlaps(s, u, 1) != bits[u])
			return false;
	return well_formed(s);
}

static void random_set(struct extent_set *s, bool *bits)
{
	extent_set_clear(s);
	memset(bits, 0, UNIVERSE);
	for (int k = (int)rnd(8); k > 0; k--) {
		uint64_t off = rnd(UNIVERSE), len = 1 + rnd(40);

		if (off + len > UNIVERSE)
			len = UNIVERSE - off;
		extent_set_add(s, off, len);
		memset(bits + off, 1, len);
	}
}

static void test_random_model(void)
{
	static bool bits[UNIVERSE], obits[UNIVERSE];
	struct extent_set s = EXTENT_SET_INIT, o = EXTENT_SET_INIT;
	struct extent_set r = EXTENT_SET_INIT;
	unsigned int bad = 0;

	for (int iter = 0; iter < 20000; iter++) {
		uint64_t off = rnd(UNIVERSE), len = rnd(60), bytes = 0;
		unsigned int op = (unsigned int)rnd(6);

		if (off + len > UNIVERSE)
			len = UNIVERSE - off;
		switch (op) {
		case 0:
		case 1:
			extent_set_add(&s, off, len);
			memset(bits + off, 1, len);
			break;
		case 2:
			extent_set_remove(&s, off, len);
			memset(bits + off, 0, len);
			break;
		case 3:
			random_set(&o, obits);
			extent_set_union(&s, &o);
			for (int u = 0; u < UNIVERSE; u++)
				bits[u] |= obits[u];
			break;
		case 4:
			random_set(&o, obits);
			extent_set_subtract(&r, &s, &o);
			extent_set_free(&s);
			s = r;
			extent_set_init(&r);
			for (int u = 0; u < UNIVERSE; u++)
				bits[u] &= !obits[u];
			break;
		case 5:
			random_set(&o, obits);
			extent_set_intersect(&r, &s, &o);
			extent_set_free(&s);
			s = r;
			extent_set_init(&r);
			for (int u = 0; u < UNIVERSE; u++)
				bits[u] &= obits[u];
			break;
		}
		for (int u = 0; u < UNIVERSE; u++)
			bytes += bits[u];
		if (!matches(&s, bits) || extent_set_bytes(&s) != bytes) {
			if (!bad++)
				fprintf(stderr,
					"model mismatch at iteration %d (op %u, %" PRIu64 "+%" PRIu64 ")\n",
					iter, op, off, len);
		}
		/* contains() of a random range agrees with the model. */
		{
			bool all = len > 0;

			for (uint64_t u = off; u < off + len; u++)
				all &= bits[u];
			if (len && extent_set_contains(&s, off, len) != all)
				bad++;
		}
		if (rnd(500) == 0) {
			extent_set_clear(&s);
			memset(bits, 0, sizeof(bits));
		}
	}
	CHECK_U64(bad, 0);
	extent_set_free(&s);
	extent_set_free(&o);
	extent_set_free(&r);
}

int main(void)
{
	RUN(test_add_merges);
	RUN(test_add_many);
	RUN(test_remove);
	RUN(test_contains_overlaps);
	RUN(test_set_ops);
	RUN(test_foreach);
	RUN(test_round_out);
	RUN(test_random_model);
	return check_exit();
}
