/* SPDX-License-Identifier: GPL-2.0 */
/*
 * throttle.h - a token bucket on the bytes of the data stream (the
 * payload of the frames the agent sends), for the bandwidth limit of the
 * replication configuration.
 *
 * Time is passed in by the caller (CLOCK_MONOTONIC nanoseconds), so the
 * bucket is deterministic and its unit test needs no clock.  A frame is
 * never split: one larger than what the bucket holds goes once the bucket
 * is full and leaves it in debt, which the rate pays back.  As long as no
 * frame is larger than the bucket (the agent sizes it for the largest),
 * the bytes granted since the rate was set never exceed
 * burst + rate * (time of the last grant - time the rate was set): the
 * accounting kept here lets a test check exactly that.
 */
#ifndef FERRY_AGENT_THROTTLE_H
#define FERRY_AGENT_THROTTLE_H

#include <stdint.h>

struct throttle {
	uint64_t rate;		/* bytes per second, 0 unlimited */
	uint64_t burst;		/* bucket size, bytes */
	int64_t tokens;		/* in nano-bytes (bytes * 1e9); < 0: debt */
	uint64_t last_ns;	/* when tokens were last refilled */
	/* Accounting since the rate was last set (0 = unlimited: none). */
	uint64_t since_ns;	/* when the rate was set */
	uint64_t granted;	/* bytes granted since */
	uint64_t last_grant_ns;
	uint64_t waits;		/* refusals (the caller had to wait) */
};

/* Unlimited, with nothing granted. */
void throttle_init(struct throttle *t);

/*
 * Limit to RATE bytes per second (0: unlimited) from NOW.  The bucket
 * holds a quarter of a second of the rate, at least BURST_MIN bytes (the
 * largest frame, so that any frame can go), and starts full.  Setting
 * the rate it already has changes nothing.
 */
void throttle_set_rate(struct throttle *t, uint64_t rate, uint64_t burst_min,
		       uint64_t now_ns);

/*
 * May BYTES go at NOW?  0: yes, and they are taken from the bucket.
 * Otherwise the nanoseconds to wait before asking again (nothing taken).
 */
uint64_t throttle_take(struct throttle *t, uint64_t bytes, uint64_t now_ns);

#endif
