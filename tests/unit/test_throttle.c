// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of agent/throttle.c, the token bucket of the data stream:
 * unlimited passes everything, the bucket starts full, waits are exact,
 * a frame larger than the bucket goes once it is full, and under random
 * demand the bytes granted never exceed burst + rate * elapsed while a
 * saturated sender gets nearly the whole rate.
 */
#include <stdlib.h>

#include "check.h"
#include "throttle.h"

#define NS 1000000000ull
#define MiB (1ull << 20)

static void test_unlimited(void)
{
	struct throttle t;

	throttle_init(&t);
	for (int i = 0; i < 1000; i++)
		CHECK_U64(throttle_take(&t, 4 * MiB, (uint64_t)i), 0);
	CHECK_U64(t.waits, 0);
	/* Back to unlimited after a limit. */
	throttle_set_rate(&t, MiB, MiB, 0);
	throttle_set_rate(&t, 0, MiB, 1);
	CHECK_U64(throttle_take(&t, 64 * MiB, 2), 0);
}

static void test_burst_then_wait(void)
{
	struct throttle t;
	uint64_t w;

	throttle_init(&t);
	/* 8 MiB/s: the bucket is a quarter second, 2 MiB, and full. */
	throttle_set_rate(&t, 8 * MiB, 64 * 1024, 1000);
	CHECK_U64(t.burst, 2 * MiB);
	CHECK_U64(throttle_take(&t, MiB, 1000), 0);
	CHECK_U64(throttle_take(&t, MiB, 1000), 0);
	/* Empty: 1 MiB more needs 1/8 s. */
	w = throttle_take(&t, MiB, 1000);
	CHECK_U64(w, NS / 8);
	CHECK_U64(t.waits, 1);
	CHECK(throttle_take(&t, MiB, 1000 + w - 1) > 0);
	CHECK_U64(throttle_take(&t, MiB, 1000 + w), 0);
	CHECK_U64(t.granted, 3 * MiB);
	/* Setting the same rate again changes nothing. */
	throttle_set_rate(&t, 8 * MiB, 64 * 1024, 5 * NS);
	CHECK_U64(t.granted, 3 * MiB);
}

static void test_large_frame(void)
{
	struct throttle t;

	throttle_init(&t);
	/* 1 MiB/s asked with frames of up to 1 MiB: the bucket holds one. */
	throttle_set_rate(&t, MiB, MiB, 0);
	CHECK_U64(t.burst, MiB);
	CHECK_U64(throttle_take(&t, MiB, 0), 0);
	/* Empty: the next full frame waits a whole second, not forever. */
	CHECK_U64(throttle_take(&t, MiB, 0), NS);
	CHECK_U64(throttle_take(&t, MiB, NS), 0);
	/* A frame above the bucket goes when it is full, and leaves debt
	 * that the rate pays back before the next one. */
	throttle_set_rate(&t, 4 * MiB, 64 * 1024, 10 * NS);
	CHECK_U64(t.burst, MiB);
	CHECK_U64(throttle_take(&t, 3 * MiB, 10 * NS), 0);
	CHECK(throttle_take(&t, 1, 10 * NS) > 0);
	CHECK_U64(throttle_take(&t, 1, 10 * NS + NS / 2 + NS / 4 / MiB + 1),
		  0);
}

/* Random frames, random gaps: the bound holds at every grant, and a
 * sender that always has data gets the rate. */
static void test_random_bound(void)
{
	struct throttle t;
	uint64_t now = 123456789, rate = 50 * MiB, burst;
	unsigned int seed = 42;

	throttle_init(&t);
	throttle_set_rate(&t, rate, MiB, now);
	burst = t.burst;
	for (int i = 0; i < 200000; i++) {
		uint64_t bytes = 1 + (uint64_t)rand_r(&seed) % MiB;
		uint64_t w = throttle_take(&t, bytes, now);

		if (w) {
			now += w;
			CHECK_U64(throttle_take(&t, bytes, now), 0);
		}
		/* granted <= burst + rate * elapsed (throttle.h). */
		if ((unsigned __int128)t.granted * NS >
		    (unsigned __int128)burst * NS +
		    (unsigned __int128)rate * (now - t.since_ns)) {
			CHECK(!"more granted than burst + rate * time");
			break;
		}
		if (rand_r(&seed) % 8 == 0)
			now += (uint64_t)rand_r(&seed) % (NS / 100);
	}
	CHECK(t.waits > 0);
	/* Saturated most of the time: at least 90 % of the rate. */
	CHECK((double)t.granted / ((double)(now - t.since_ns) / NS) >
	      0.9 * (double)rate);
}

int main(void)
{
	RUN(test_unlimited);
	RUN(test_burst_then_wait);
	RUN(test_large_frame);
	RUN(test_random_bound);
	return check_exit();
}
