// SPDX-License-Identifier: GPL-2.0
/*
 * throttle.c - the token bucket of the data stream (throttle.h).
 *
 * Tokens are counted in nano-bytes so that refilling for any number of
 * nanoseconds adds an exact integer (rate * ns): no rounding drift, and
 * the bound of throttle.h holds exactly.
 */
#include <string.h>

#include "throttle.h"

#define NS 1000000000ull

void throttle_init(struct throttle *t)
{
	memset(t, 0, sizeof(*t));
}

void throttle_set_rate(struct throttle *t, uint64_t rate, uint64_t burst_min,
		       uint64_t now_ns)
{
	uint64_t burst;

	if (rate == t->rate && (rate == 0 || t->burst >= burst_min))
		return;
	burst = rate / 4;
	if (burst < burst_min)
		burst = burst_min;
	/* Keep nano-bytes within int64: 8 GiB of bucket at most. */
	if (burst > (1ull << 33))
		burst = 1ull << 33;
	t->rate = rate;
	t->burst = rate ? burst : 0;
	t->tokens = rate ? (int64_t)(burst * NS) : 0;
	t->last_ns = now_ns;
	t->since_ns = now_ns;
	t->granted = 0;
	t->last_grant_ns = now_ns;
	t->waits = 0;
}

static void refill(struct throttle *t, uint64_t now_ns)
{
	int64_t full = (int64_t)(t->burst * NS);
	unsigned __int128 add;

	if (now_ns <= t->last_ns)
		return;
	add = (unsigned __int128)t->rate * (now_ns - t->last_ns);
	t->last_ns = now_ns;
	if (add >= (unsigned __int128)(full - t->tokens))
		t->tokens = full;
	else
		t->tokens += (int64_t)add;
}

uint64_t throttle_take(struct throttle *t, uint64_t bytes, uint64_t now_ns)
{
	int64_t need;
	uint64_t wait;

	if (!t->rate)
		return 0;
	refill(t, now_ns);
	/* A frame larger than the bucket goes when the bucket is full. */
	need = (int64_t)((bytes < t->burst ? bytes : t->burst) * NS);
	if (t->tokens >= need) {
		t->tokens -= (int64_t)(bytes * NS);
		t->granted += bytes;
		t->last_grant_ns = now_ns;
		return 0;
	}
	t->waits++;
	wait = (uint64_t)(need - t->tokens + (int64_t)t->rate - 1) / t->rate;
	return wait ? wait : 1;
}
