/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sparse dirty-block bitmap.
 *
 * One bit per block of the tracked device.  The bits live in fixed-size
 * chunks held in an XArray indexed by chunk number, so a clean region costs
 * nothing; a chunk fully covered by one request (a large discard, mkfs)
 * is stored as a value entry meaning "all set" and costs no chunk memory.
 *
 * Marking is lock-free against other markers and may run in any context
 * (the submission hook, bio completion in hard or soft interrupt), so it
 * only allocates with GFP_ATOMIC from a reserved pool.  Everything else
 * but a statistics snapshot of the weight requires that no marker can reach
 * the bitmap any more: the tracker swaps in a fresh bitmap and waits for an
 * RCU grace period before it reads the old one.
 */
#ifndef FERRY_BITMAP_H
#define FERRY_BITMAP_H

#include <linux/types.h>
#include <linux/xarray.h>
#include <linux/atomic.h>

/* Bits per chunk: 16384 bits = 2 KiB, 64 MiB of disk at 4 KiB blocks. */
#define FERRY_CHUNK_SHIFT	14
#define FERRY_CHUNK_BITS	(1UL << FERRY_CHUNK_SHIFT)

struct ferry_bitmap {
	struct xarray chunks;		/* chunk index -> chunk or FULL */
	u64 nbits;			/* blocks covered */
	atomic_long_t nr_chunks;	/* chunks allocated, for accounting */
	atomic_t overflow;		/* a mark could not be recorded */
};

/* Called back for each run of set bits, in increasing order. */
typedef int (*ferry_run_fn)(void *arg, u64 first, u64 end);

int ferry_bitmap_init_pool(unsigned int reserve);
void ferry_bitmap_exit_pool(void);

struct ferry_bitmap *ferry_bitmap_alloc(u64 nbits, gfp_t gfp);
void ferry_bitmap_free(struct ferry_bitmap *bm);

/* Mark blocks [first, last]; returns -ENOMEM and flags overflow on failure. */
int ferry_bitmap_mark(struct ferry_bitmap *bm, u64 first, u64 last);

/* Set bits from @from on; on a live bitmap under rcu_read_lock() too. */
u64 ferry_bitmap_weight(struct ferry_bitmap *bm, u64 from);

/* Quiescent bitmaps only, from here on. */
int ferry_bitmap_for_each_run(struct ferry_bitmap *bm, u64 from,
			      ferry_run_fn fn, void *arg);
int ferry_bitmap_merge(struct ferry_bitmap *dst, struct ferry_bitmap *src,
		       u64 from);
size_t ferry_bitmap_memory(struct ferry_bitmap *bm);

#endif /* FERRY_BITMAP_H */
