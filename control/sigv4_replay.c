// SPDX-License-Identifier: GPL-2.0
/*
 * sigv4_replay.c - the replay cache: every accepted signature is kept
 * until its request could no longer pass the skew check (request time +
 * SIGV4_MAX_SKEW), so a captured request cannot be sent a second time.
 *
 * An open-addressing hash table (linear probing) of 16-byte entries: the
 * first 11 bytes of the signature (88 bits: with 5 million live entries
 * the chance that a new signature meets another's is below 1e-19), a
 * flag byte and a 32-bit expiry in Unix seconds (0 marks an empty slot).
 * Signatures are HMAC outputs, uniformly spread, so their first bytes
 * serve as the hash.  Expired entries are dropped lazily: an insertion
 * reuses the first expired slot on its probe path, and the table is
 * rebuilt with the live entries only, sized to be half full (so it also
 * shrinks), when 3/4 of its slots are taken or after cap/4 insertions,
 * whichever comes first: O(cap) work per cap/4 insertions, 4 slot moves
 * per request amortized.
 * The size is any multiple of 1024 (not a power of two, which would
 * waste up to half the memory); a slot index is the hash scaled to it.
 *
 * Memory: with clocks in sync an entry lives SIGV4_MAX_SKEW = 900 s, so
 * R accepted requests per second keep 900 R entries, in 21 to 32 bytes
 * each (load between 1/2 and 3/4): about 20-29 KB per request/s, e.g.
 * 96-144 MB at the 5,000 requests/s goal.  A client whose clock is ahead
 * by up to 15 minutes keeps its entries twice as long.
 *
 * A signature is recorded in flight, while its request runs, and settled
 * (sigv4_replay_settle) once the operation committed, or forgotten
 * (sigv4_replay_forget) if it failed.  A second request with the same
 * signature that comes while the first is in flight waits for that
 * outcome (a condition variable, up to wait_ms): an SDK's retry of a
 * request whose answer is late must not be refused as a replay of a
 * first attempt that then fails.
 *
 * One mutex: a check is a few memory accesses; the rare rebuild of a
 * large table holds it for tens of milliseconds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigv4.h"

#define SIG_BYTES 11
#define SLOT_ROUND 1024u
#define MAX_SLOTS (1u << 31)
#define IN_FLIGHT 1u
#define DEFAULT_WAIT_MS 10000

struct replay_entry {
	unsigned char sig[SIG_BYTES];
	uint8_t flags;		/* IN_FLIGHT */
	uint32_t expiry;	/* Unix seconds; 0: empty */
};

struct sigv4_replay {
	pthread_mutex_t lock;
	pthread_cond_t settled;	/* an in-flight entry settled or forgot */
	unsigned int wait_ms;	/* for an in-flight first attempt */
	struct replay_entry *slots;
	size_t cap;		/* multiple of SLOT_ROUND, 0 before first use */
	size_t used;		/* non-empty slots, expired ones included */
	size_t inserts;		/* since the last rebuild */
};

/* The first 4 signature bytes scaled to [0, cap). */
static size_t slot_of(const unsigned char *sig, size_t cap)
{
	uint32_t h;

	memcpy(&h, sig, sizeof(h));
	return (size_t)(((uint64_t)h * cap) >> 32);
}

static size_t next_slot(size_t i, size_t cap)
{
	return i + 1 == cap ? 0 : i + 1;
}

struct sigv4_replay *sigv4_replay_new(void)
{
	struct sigv4_replay *r = calloc(1, sizeof(*r));
	pthread_condattr_t attr;
	bool cond = false;

	if (!r)
		return NULL;
	r->wait_ms = DEFAULT_WAIT_MS;
	if (!pthread_condattr_init(&attr)) {
		cond = !pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) &&
		       !pthread_cond_init(&r->settled, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (!cond) {
		free(r);
		return NULL;
	}
	if (pthread_mutex_init(&r->lock, NULL)) {
		pthread_cond_destroy(&r->settled);
		free(r);
		return NULL;
	}
	return r;
}

void sigv4_replay_set_wait(struct sigv4_replay *r, unsigned int ms)
{
	pthread_mutex_lock(&r->lock);
	r->wait_ms = ms;
	pthread_mutex_unlock(&r->lock);
}

void sigv4_replay_free(struct sigv4_replay *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->settled);
	free(r->slots);
	free(r);
}

/* Re-insert the entries live at NOW into a table sized for them. */
static int rebuild(struct sigv4_replay *r, uint32_t now)
{
	size_t live = 0, cap;
	struct replay_entry *slots;

	for (size_t i = 0; i < r->cap; i++)
		live += r->slots[i].expiry > now;
	/* Half full after the rebuild, counting the newcomer. */
	if (live >= MAX_SLOTS / 2 - SLOT_ROUND)
		return -1;
	cap = ((live + 1) * 2 + SLOT_ROUND - 1) / SLOT_ROUND * SLOT_ROUND;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < r->cap; i++) {
		const struct replay_entry *e = &r->slots[i];
		size_t j;

		if (e->expiry <= now)
			continue;
		for (j = slot_of(e->sig, cap); slots[j].expiry;
		     j = next_slot(j, cap))
			;
		slots[j] = *e;
	}
	free(r->slots);
	r->slots = slots;
	r->cap = cap;
	r->used = live;
	r->inserts = 0;
	return 0;
}

/* The first SIG_BYTES of hex SIGNATURE into SIG; -1 if it is not hex. */
static int sig_bytes(const char *signature, unsigned char *sig)
{
	for (size_t k = 0; k < SIG_BYTES; k++) {
		int v[2];

		for (int h = 0; h < 2; h++) {
			char c = signature[2 * k + h];

			v[h] = c >= '0' && c <= '9' ? c - '0' :
			       c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			if (v[h] < 0)
				return -1; /* not from sigv4_parse */
		}
		sig[k] = (unsigned char)(v[0] << 4 | v[1]);
	}
	return 0;
}

/* Wait for an entry to settle until DEADLINE (CLOCK_MONOTONIC; set to
 * wait_ms from now on the first call); true once past it. */
static bool wait_for_settle(struct sigv4_replay *r, struct timespec *deadline)
{
	if (!deadline->tv_sec && !deadline->tv_nsec) {
		clock_gettime(CLOCK_MONOTONIC, deadline);
		deadline->tv_sec += r->wait_ms / 1000;
		deadline->tv_nsec += (long)(r->wait_ms % 1000) * 1000000L;
		if (deadline->tv_nsec >= 1000000000L) {
			deadline->tv_sec++;
			deadline->tv_nsec -= 1000000000L;
		}
	}
	return pthread_cond_timedwait(&r->settled, &r->lock, deadline) ==
	       ETIMEDOUT;
}

int sigv4_replay_check(struct sigv4_replay *r, const char *signature,
		       time_t request_time, time_t now)
{
	unsigned char sig[SIG_BYTES];
	struct replay_entry *reuse;
	struct timespec deadline = { 0 };
	bool timed_out = false;
	uint32_t expiry, now32;
	size_t i;
	int seen;

	if (!r || !signature || sig_bytes(signature, sig))
		return -1;
	/* Outside the window the skew check refuses it anyway.  The
	 * window is closed at both ends, as sigv4_verify() has it: a
	 * request exactly SIGV4_MAX_SKEW old is accepted, so it is kept
	 * (expired from request_time + SIGV4_MAX_SKEW + 1 on). */
	if (now <= 0 || now >= (time_t)UINT32_MAX - SIGV4_MAX_SKEW - 1 ||
	    request_time > now + SIGV4_MAX_SKEW ||
	    request_time + SIGV4_MAX_SKEW < now)
		return 0;
	expiry = (uint32_t)(request_time + SIGV4_MAX_SKEW + 1);
	now32 = (uint32_t)now;

	pthread_mutex_lock(&r->lock);
again:
	if (((r->used + 1) * 4 > r->cap * 3 || r->inserts >= r->cap / 4) &&
	    rebuild(r, now32) && r->used + 1 >= r->cap) {
		/* No memory and no free slot: refuse rather than forget. */
		pthread_mutex_unlock(&r->lock);
		return -1;
	}
	reuse = NULL;
	seen = 0;
	for (i = slot_of(sig, r->cap); r->slots[i].expiry;
	     i = next_slot(i, r->cap)) {
		struct replay_entry *e = &r->slots[i];

		if (e->expiry <= now32) {
			if (!reuse)
				reuse = e;
		} else if (!memcmp(e->sig, sig, SIG_BYTES)) {
			seen = e->flags & IN_FLIGHT ? 2 : 1;
			break;
		}
	}
	if (seen == 2 && !timed_out) {
		/* The first attempt is running: its outcome decides. */
		timed_out = wait_for_settle(r, &deadline);
		goto again;
	}
	if (!seen) {
		if (!reuse) {
			reuse = &r->slots[i];
			r->used++;
		}
		memcpy(reuse->sig, sig, SIG_BYTES);
		reuse->flags = IN_FLIGHT;
		reuse->expiry = expiry;
		r->inserts++;
	}
	pthread_mutex_unlock(&r->lock);
	return seen;
}

/* Settle SIGNATURE's entry, or forget it (FORGET), and wake its waiters. */
static void resolve(struct sigv4_replay *r, const char *signature,
		    bool forget)
{
	unsigned char sig[SIG_BYTES];

	if (!r || !signature || sig_bytes(signature, sig))
		return;
	pthread_mutex_lock(&r->lock);
	for (size_t i = r->cap ? slot_of(sig, r->cap) : 0;
	     r->cap && r->slots[i].expiry; i = next_slot(i, r->cap)) {
		struct replay_entry *e = &r->slots[i];

		if (e->expiry > 1 && !memcmp(e->sig, sig, SIG_BYTES)) {
			/* Forgotten: expired, not empty, so that the probe
			 * paths through this slot stay whole; the slot is
			 * reused as any expired one. */
			if (forget)
				e->expiry = 1;
			e->flags = 0;
			pthread_cond_broadcast(&r->settled);
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

void sigv4_replay_settle(struct sigv4_replay *r, const char *signature)
{
	resolve(r, signature, false);
}

void sigv4_replay_forget(struct sigv4_replay *r, const char *signature)
{
	resolve(r, signature, true);
}

void sigv4_replay_stats(struct sigv4_replay *r, size_t *entries,
			size_t *bytes)
{
	pthread_mutex_lock(&r->lock);
	if (entries)
		*entries = r->used;
	if (bytes)
		*bytes = sizeof(*r) + r->cap * sizeof(*r->slots);
	pthread_mutex_unlock(&r->lock);
}
