// SPDX-License-Identifier: GPL-2.0
/*
 * Sparse dirty-block bitmap; see ferry_bitmap.h for the rules.
 */
#include <linux/slab.h>
#include <linux/mempool.h>
#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/rcupdate.h>
#include <linux/minmax.h>
#include <linux/sched.h>

#include "ferry_bitmap.h"

struct ferry_chunk {
	struct rcu_head rcu;	/* a chunk replaced by FULL is freed late */
	unsigned long bits[BITS_TO_LONGS(FERRY_CHUNK_BITS)];
};

/* "Every bit of this chunk is set", stored in place of a chunk pointer. */
#define FERRY_CHUNK_FULL	xa_mk_value(1)

static struct kmem_cache *ferry_chunk_cache;
/*
 * Marking runs in interrupt context where it cannot wait for memory; the
 * pool keeps chunks in reserve so that a burst of writes to new regions
 * under memory pressure is still recorded rather than flagged overflow.
 */
static mempool_t *ferry_chunk_pool;

int ferry_bitmap_init_pool(unsigned int reserve)
{
	ferry_chunk_cache = kmem_cache_create("ferry_chunk",
					      sizeof(struct ferry_chunk), 0,
					      0, NULL);
	if (!ferry_chunk_cache)
		return -ENOMEM;
	ferry_chunk_pool = mempool_create_slab_pool(reserve, ferry_chunk_cache);
	if (!ferry_chunk_pool) {
		kmem_cache_destroy(ferry_chunk_cache);
		return -ENOMEM;
	}
	return 0;
}

void ferry_bitmap_exit_pool(void)
{
	/* Chunks replaced by FULL may still wait in call_rcu(). */
	rcu_barrier();
	mempool_destroy(ferry_chunk_pool);
	kmem_cache_destroy(ferry_chunk_cache);
}

static struct ferry_chunk *ferry_chunk_alloc(gfp_t gfp)
{
	struct ferry_chunk *chunk = mempool_alloc(ferry_chunk_pool, gfp);

	if (chunk)
		bitmap_zero(chunk->bits, FERRY_CHUNK_BITS);
	return chunk;
}

static void ferry_chunk_free_rcu(struct rcu_head *head)
{
	mempool_free(container_of(head, struct ferry_chunk, rcu),
		     ferry_chunk_pool);
}

static bool ferry_entry_is_chunk(void *entry)
{
	return entry && !xa_is_value(entry);
}

/* Bits in chunk @idx: all of them but for a last, partial chunk. */
static unsigned long ferry_chunk_len(struct ferry_bitmap *bm, u64 idx)
{
	u64 base = idx << FERRY_CHUNK_SHIFT;

	return min_t(u64, FERRY_CHUNK_BITS, bm->nbits - base);
}

struct ferry_bitmap *ferry_bitmap_alloc(u64 nbits, gfp_t gfp)
{
	struct ferry_bitmap *bm = kzalloc(sizeof(*bm), gfp);

	if (!bm)
		return NULL;
	/* Markers take the lock from hard interrupt context too. */
	xa_init_flags(&bm->chunks, XA_FLAGS_LOCK_IRQ);
	bm->nbits = nbits;
	return bm;
}

void ferry_bitmap_free(struct ferry_bitmap *bm)
{
	unsigned long idx;
	void *entry;

	if (!bm)
		return;
	xa_for_each(&bm->chunks, idx, entry) {
		if (ferry_entry_is_chunk(entry))
			mempool_free(entry, ferry_chunk_pool);
	}
	xa_destroy(&bm->chunks);
	kfree(bm);
}

/* Atomically set bits [lo, hi] of a chunk another CPU may be marking too. */
static void ferry_chunk_set(struct ferry_chunk *chunk, unsigned long lo,
			    unsigned long hi)
{
	unsigned long w = BIT_WORD(lo), last = BIT_WORD(hi);
	unsigned long mask = BITMAP_FIRST_WORD_MASK(lo);

	if (lo == hi) {
		set_bit(lo, chunk->bits);
		return;
	}
	for (; w <= last; w++) {
		if (w == last)
			mask &= BITMAP_LAST_WORD_MASK(hi + 1);
		/* Skip the locked op when the bits are already set. */
		if ((READ_ONCE(chunk->bits[w]) & mask) != mask)
			atomic_long_or(mask, (atomic_long_t *)&chunk->bits[w]);
		mask = ~0UL;
	}
}

/* Store @entry at @idx; returns the old entry or an xa_err() value. */
static void *ferry_xa_swap(struct ferry_bitmap *bm, u64 idx, void *old,
			   void *entry, bool cmp, gfp_t gfp)
{
	unsigned long flags;
	void *prev;

	xa_lock_irqsave(&bm->chunks, flags);
	if (cmp)
		prev = __xa_cmpxchg(&bm->chunks, idx, old, entry, gfp);
	else
		prev = __xa_store(&bm->chunks, idx, entry, gfp);
	xa_unlock_irqrestore(&bm->chunks, flags);
	return prev;
}

static int ferry_chunk_mark(struct ferry_bitmap *bm, u64 idx,
			    unsigned long lo, unsigned long hi, gfp_t gfp)
{
	struct ferry_chunk *chunk;
	void *entry, *prev;

	entry = xa_load(&bm->chunks, idx);
	if (entry == FERRY_CHUNK_FULL)
		return 0;

	if (lo == 0 && hi == ferry_chunk_len(bm, idx) - 1) {
		prev = ferry_xa_swap(bm, idx, NULL, FERRY_CHUNK_FULL, false,
				     gfp);
		if (xa_is_err(prev))
			return xa_err(prev);
		if (ferry_entry_is_chunk(prev)) {
			/* Another CPU may still be setting bits in it. */
			atomic_long_dec(&bm->nr_chunks);
			call_rcu(&((struct ferry_chunk *)prev)->rcu,
				 ferry_chunk_free_rcu);
		}
		return 0;
	}

	if (!entry) {
		chunk = ferry_chunk_alloc(gfp);
		if (!chunk)
			return -ENOMEM;
		prev = ferry_xa_swap(bm, idx, NULL, chunk, true, gfp);
		if (xa_is_err(prev)) {
			mempool_free(chunk, ferry_chunk_pool);
			return xa_err(prev);
		}
		if (prev) {
			/* Lost the race: use the winner's entry. */
			mempool_free(chunk, ferry_chunk_pool);
			if (prev == FERRY_CHUNK_FULL)
				return 0;
			chunk = prev;
		} else {
			atomic_long_inc(&bm->nr_chunks);
		}
	} else {
		chunk = entry;
	}
	ferry_chunk_set(chunk, lo, hi);
	return 0;
}

static int ferry_bitmap_mark_gfp(struct ferry_bitmap *bm, u64 first, u64 last,
				 gfp_t gfp)
{
	u64 idx;
	int ret;

	if (!bm->nbits)
		return 0;
	last = min(last, bm->nbits - 1);
	for (idx = first >> FERRY_CHUNK_SHIFT;
	     idx <= last >> FERRY_CHUNK_SHIFT; idx++) {
		u64 base = idx << FERRY_CHUNK_SHIFT;
		unsigned long lo = max(first, base) - base;
		unsigned long hi = min(last, base + FERRY_CHUNK_BITS - 1) - base;

		ret = ferry_chunk_mark(bm, idx, lo, hi, gfp);
		if (ret) {
			atomic_set(&bm->overflow, 1);
			return ret;
		}
	}
	return 0;
}

int ferry_bitmap_mark(struct ferry_bitmap *bm, u64 first, u64 last)
{
	return ferry_bitmap_mark_gfp(bm, first, last,
				     GFP_ATOMIC | __GFP_NOWARN);
}

/* Set bits of chunk @idx at or after block @from, clamped to the chunk. */
static u64 ferry_chunk_weight(struct ferry_bitmap *bm, u64 idx, void *entry,
			      u64 from)
{
	u64 base = idx << FERRY_CHUNK_SHIFT;
	unsigned long len = ferry_chunk_len(bm, idx);
	unsigned long lo = from > base ? from - base : 0;
	struct ferry_chunk *chunk = entry;

	if (lo >= len)
		return 0;
	if (entry == FERRY_CHUNK_FULL)
		return len - lo;
	return bitmap_weight(chunk->bits, len) - bitmap_weight(chunk->bits, lo);
}

u64 ferry_bitmap_weight(struct ferry_bitmap *bm, u64 from)
{
	unsigned long idx;
	void *entry;
	u64 sum = 0;

	xa_for_each_start(&bm->chunks, idx, entry, from >> FERRY_CHUNK_SHIFT)
		sum += ferry_chunk_weight(bm, idx, entry, from);
	return sum;
}

struct ferry_run {
	u64 start, end;		/* pending run [start, end), empty if equal */
	ferry_run_fn fn;
	void *arg;
};

static int ferry_run_add(struct ferry_run *run, u64 start, u64 end)
{
	int ret;

	if (run->start != run->end && run->end == start) {
		run->end = end;
		return 0;
	}
	if (run->start != run->end) {
		ret = run->fn(run->arg, run->start, run->end);
		if (ret)
			return ret;
	}
	run->start = start;
	run->end = end;
	return 0;
}

int ferry_bitmap_for_each_run(struct ferry_bitmap *bm, u64 from,
			      ferry_run_fn fn, void *arg)
{
	struct ferry_run run = { .fn = fn, .arg = arg };
	unsigned long idx;
	void *entry;
	int ret;

	xa_for_each_start(&bm->chunks, idx, entry, from >> FERRY_CHUNK_SHIFT) {
		u64 base = (u64)idx << FERRY_CHUNK_SHIFT;

		/* Process context only: a 64 TiB set has a million chunks. */
		cond_resched();
		unsigned long len = ferry_chunk_len(bm, idx);
		unsigned long bit = from > base ? from - base : 0;
		struct ferry_chunk *chunk = entry;

		if (entry == FERRY_CHUNK_FULL) {
			if (bit >= len)
				continue;
			ret = ferry_run_add(&run, base + bit, base + len);
			if (ret)
				return ret;
			continue;
		}
		for (;;) {
			unsigned long end;

			bit = find_next_bit(chunk->bits, len, bit);
			if (bit >= len)
				break;
			end = find_next_zero_bit(chunk->bits, len, bit);
			ret = ferry_run_add(&run, base + bit, base + end);
			if (ret)
				return ret;
			bit = end;
		}
	}
	if (run.start != run.end)
		return fn(arg, run.start, run.end);
	return 0;
}

static int ferry_merge_run(void *arg, u64 first, u64 end)
{
	return ferry_bitmap_mark_gfp(arg, first, end - 1, GFP_KERNEL);
}

int ferry_bitmap_merge(struct ferry_bitmap *dst, struct ferry_bitmap *src,
		       u64 from)
{
	if (atomic_read(&src->overflow))
		atomic_set(&dst->overflow, 1);
	return ferry_bitmap_for_each_run(src, from, ferry_merge_run, dst);
}

size_t ferry_bitmap_memory(struct ferry_bitmap *bm)
{
	long chunks = atomic_long_read(&bm->nr_chunks);

	/* One XArray node (576 bytes on 64-bit) per 64 slots, roughly. */
	return sizeof(*bm) + chunks * sizeof(struct ferry_chunk) +
	       DIV_ROUND_UP(chunks, XA_CHUNK_SIZE) * 576;
}
