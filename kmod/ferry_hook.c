// SPDX-License-Identifier: GPL-2.0
/*
 * The block layer hook.
 *
 * Upstream Linux has no block filter API, so ferry watches
 * submit_bio_noacct() with an ftrace callback: every bio passes through it,
 * whether submitted by a filesystem, through a partition, or by a stacking
 * driver (device-mapper, md) remapping onto the disks below.  The callback
 * only reads the bio and swaps its completion for ferry's; it never changes
 * where the bio goes, so the device stack is untouched and nothing needs to
 * be remounted.  The hook is installed only while a device is tracked.
 *
 * Why mark at completion: a write is recorded in the set that is current
 * when it completes, before its submitter is told.  A write that completed
 * before a drain is therefore in the drained set (or an earlier one), and a
 * write still in flight during a drain lands in a later set, so the agent
 * re-reads the block after the new data is on the disk.  docs/tracker.md.
 */
#define pr_fmt(fmt) "ferry: " fmt

#include <linux/module.h>
#include <linux/ftrace.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/mempool.h>
#include <linux/slab.h>
#include <linux/delay.h>
#include <linux/atomic.h>
#include <linux/trace_recursion.h>
#include <linux/workqueue.h>
#include <linux/percpu.h>

#include "ferry.h"
#include "ferry_compat.h"

/*
 * The hook runs with preemption off and takes a record from a mempool;
 * on PREEMPT_RT allocations and spinlocks sleep, so it would splat at the
 * first write.  Refuse to build (DKMS then says why) rather than load.
 */
#ifdef CONFIG_PREEMPT_RT
#error "ferry.ko does not support PREEMPT_RT kernels (linux-image-rt): its submit_bio hook allocates with preemption disabled"
#endif

/* What a wrapped bio needs to be marked when it completes. */
struct ferry_bio_ctx {
	bio_end_io_t *end_io;
	void *private;
	struct gendisk *disk;
	sector_t sector;
	unsigned int nr_sects;
	/* Only when the completion is handed to ferry_wq: */
	struct bio *bio;
	struct work_struct work;
};

static struct kmem_cache *ferry_ctx_cache;
static mempool_t *ferry_ctx_pool;
static struct workqueue_struct *ferry_wq;
static unsigned int ferry_hook_users;	/* ferry_lock */
/*
 * Records outstanding, per CPU: a bio may complete on another CPU than it
 * was submitted on, so one CPU's count may go negative; only the sum
 * means anything.  Per CPU rather than one atomic_t so that the I/O path
 * touches no cache line shared between CPUs; module exit, which is rare,
 * pays for it by polling the sum.
 */
static DEFINE_PER_CPU(long, ferry_inflight);
/* Bumped whenever the callback had to skip a bio (recursion). */
static atomic_t ferry_missed = ATOMIC_INIT(0);

/*
 * bio_endio() walks a chain of bios (discard and zero-out chains, iomap
 * writeback) in a loop, but only while it sees bio_chain_endio(); a wrapped
 * child turns each link into a nested call.  Past this depth the rest of
 * the chain completes from a workqueue instead of the interrupt stack.
 */
#define FERRY_ENDIO_MAX_DEPTH	8
static DEFINE_PER_CPU(unsigned int, ferry_endio_depth);

static unsigned int ferry_ctx_reserve = 4096;
module_param_named(ctx_reserve, ferry_ctx_reserve, uint, 0444);
MODULE_PARM_DESC(ctx_reserve,
		 "Completion records kept in reserve for writes under memory pressure (default 4096)");

/*
 * Called once the hook is unregistered, which orders every increment
 * before us: a decrement not yet seen can only make the sum too large,
 * so a sum of 0 means every wrapped bio has finished.
 */
static long ferry_inflight_sum(void)
{
	long sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu(ferry_inflight, cpu);
	return sum;
}

/* The submitter's completion; the last thing ferry does for a bio. */
static void ferry_finish_bio(struct bio *bio)
{
	if (bio->bi_end_io)
		bio->bi_end_io(bio);
	/* Module exit waits for this count, then for RCU tasks. */
	this_cpu_dec(ferry_inflight);
}

static void ferry_end_io_work(struct work_struct *work)
{
	struct ferry_bio_ctx *ctx = container_of(work, struct ferry_bio_ctx,
						 work);
	struct bio *bio = ctx->bio;

	mempool_free(ctx, ferry_ctx_pool);
	ferry_finish_bio(bio);
}

static void ferry_bio_end_io(struct bio *bio)
{
	struct ferry_bio_ctx *ctx = bio->bi_private;
	unsigned int depth;

	bio->bi_end_io = ctx->end_io;
	bio->bi_private = ctx->private;
	/* Marked before anyone can learn that the write completed. */
	ferry_mark_range(ctx->disk, ctx->sector, ctx->nr_sects);

	/* The depth is this CPU's stack's: stay on it until we unwind. */
	preempt_disable();
	depth = this_cpu_inc_return(ferry_endio_depth);
	if (depth > FERRY_ENDIO_MAX_DEPTH) {
		this_cpu_dec(ferry_endio_depth);
		preempt_enable();
		ctx->bio = bio;
		INIT_WORK(&ctx->work, ferry_end_io_work);
		queue_work(ferry_wq, &ctx->work);
		return;
	}
	mempool_free(ctx, ferry_ctx_pool);
	ferry_finish_bio(bio);
	this_cpu_dec(ferry_endio_depth);
	preempt_enable();
}

/* Does this request change the device's data, and if so is it a range? */
static bool ferry_bio_changes_data(struct bio *bio)
{
	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
	case REQ_OP_ZONE_APPEND:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
	case REQ_OP_WRITE_ZEROES:
#if defined(FERRY_HAVE_REQ_OP_WRITE_SAME)
	case REQ_OP_WRITE_SAME:
#endif
		/* An empty REQ_PREFLUSH write carries no data. */
		return bio_sectors(bio) != 0;
	default:
		return false;
	}
}

static void ferry_track_bio(struct bio *bio)
{
	struct block_device *bdev = bio->bi_bdev;
	struct ferry_bio_ctx *ctx;
	struct gendisk *disk;
	sector_t sector;
	unsigned int nr;

	if (!bdev || !ferry_bio_changes_data(bio))
		return;
	disk = bdev->bd_disk;
	/*
	 * The remainder of a split, resubmitted: the record taken at first
	 * submission already covers (and counted) the whole original range.
	 */
	if (bio->bi_end_io == ferry_bio_end_io &&
	    ((struct ferry_bio_ctx *)bio->bi_private)->disk == disk)
		return;
	sector = bio->bi_iter.bi_sector;
	/* A bio resubmitted after a split was remapped to the disk already. */
	if (bdev_is_partition(bdev) && !bio_flagged(bio, BIO_REMAPPED))
		sector += bdev->bd_start_sect;
	nr = bio_sectors(bio);

	rcu_read_lock();
	if (!ferry_count_submit(bio, disk, sector, nr))
		goto out;
	/*
	 * A new record, or one more for a bio a driver remapped in place to
	 * another disk (md): records nest and unwind in order.
	 */
	ctx = mempool_alloc(ferry_ctx_pool, GFP_ATOMIC | __GFP_NOWARN);
	if (!ctx) {
		ferry_mark_unwrapped(disk, sector, nr);
		goto out;
	}
	ctx->end_io = bio->bi_end_io;
	ctx->private = bio->bi_private;
	ctx->disk = disk;
	ctx->sector = sector;
	ctx->nr_sects = nr;
	this_cpu_inc(ferry_inflight);
	bio->bi_private = ctx;
	bio->bi_end_io = ferry_bio_end_io;
out:
	rcu_read_unlock();
}

static void notrace ferry_ftrace_handler(unsigned long ip,
					 unsigned long parent_ip,
					 struct ftrace_ops *ops,
					 struct ftrace_regs *fregs)
{
	struct bio *bio = (struct bio *)ferry_ftrace_arg0(fregs);
	int bit;

	/* Also disables preemption: the handler runs as one RCU section. */
	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (bit < 0) {
		atomic_inc(&ferry_missed);
		return;
	}
	if (bio)
		ferry_track_bio(bio);
	ftrace_test_recursion_unlock(bit);
}

static struct ftrace_ops ferry_ftrace_ops = {
	.func = ferry_ftrace_handler,
	/*
	 * PERMANENT: refuse "sysctl kernel.ftrace_enabled=0" while we track,
	 * since that would silently stop recording writes.
	 */
	.flags = FTRACE_OPS_FL_PERMANENT | FERRY_FTRACE_OPS_FLAGS,
};

static char ferry_hooked_fn[] = "submit_bio_noacct";

/* Install the hook for the first tracker; ferry_lock held. */
int ferry_hook_get(void)
{
	int ret;

	lockdep_assert_held(&ferry_lock);
	if (ferry_hook_users++)
		return 0;

	ret = ftrace_set_filter(&ferry_ftrace_ops, ferry_hooked_fn,
				strlen(ferry_hooked_fn), 1);
	if (!ret)
		ret = register_ftrace_function(&ferry_ftrace_ops);
	if (ret) {
		ferry_hook_users--;
		pr_err("cannot hook %s (error %d): the kernel needs CONFIG_DYNAMIC_FTRACE and kernel.ftrace_enabled=1\n",
		       ferry_hooked_fn, ret);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Remove the hook with the last tracker; ferry_lock held. */
void ferry_hook_put(void)
{
	lockdep_assert_held(&ferry_lock);
	if (WARN_ON_ONCE(!ferry_hook_users) || --ferry_hook_users)
		return;
	/* Waits until no CPU is inside ferry_ftrace_handler(). */
	unregister_ftrace_function(&ferry_ftrace_ops);
	ftrace_set_filter(&ferry_ftrace_ops, NULL, 0, 1);
}

int ferry_hook_init(void)
{
	/*
	 * WQ_MEM_RECLAIM: writeback completions must progress under
	 * pressure.  Per-CPU: a completion is finished on the CPU that
	 * took it, as it always was before WQ_PERCPU made it explicit.
	 */
	ferry_wq = alloc_workqueue("ferry_endio", WQ_MEM_RECLAIM | WQ_HIGHPRI |
				   FERRY_WQ_PERCPU, 0);
	if (!ferry_wq)
		return -ENOMEM;
	ferry_ctx_cache = KMEM_CACHE(ferry_bio_ctx, 0);
	if (!ferry_ctx_cache)
		goto err_wq;
	ferry_ctx_pool = mempool_create_slab_pool(ferry_ctx_reserve,
						  ferry_ctx_cache);
	if (!ferry_ctx_pool)
		goto err_cache;
	return 0;

err_cache:
	kmem_cache_destroy(ferry_ctx_cache);
err_wq:
	destroy_workqueue(ferry_wq);
	return -ENOMEM;
}

void ferry_hook_exit(void)
{
	/*
	 * Trackers are gone and the hook is removed, so no bio gets a new
	 * record; bios still in flight hold records and will call
	 * ferry_bio_end_io(), which lives in this module: wait for them...
	 */
	while (ferry_inflight_sum())
		msleep(10);
	/*
	 * ...and for the last of them to return out of this module's text:
	 * RCU Tasks waits until every task has switched voluntarily, which a
	 * task preempted on the way out has not yet done.
	 */
	synchronize_rcu();
	synchronize_rcu_tasks();
	/* The hook is unregistered: free its (emptied) filter hash. */
	ftrace_free_filter(&ferry_ftrace_ops);
	destroy_workqueue(ferry_wq);
	mempool_destroy(ferry_ctx_pool);
	kmem_cache_destroy(ferry_ctx_cache);
}

/* Trackers compare this with what they saw last to detect missed bios. */
int ferry_hook_missed(void)
{
	return atomic_read(&ferry_missed);
}
