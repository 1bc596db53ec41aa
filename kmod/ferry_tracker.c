// SPDX-License-Identifier: GPL-2.0
/*
 * Trackers: one per tracked block device.
 *
 * A tracker covers a range of sectors of a whole disk (all of it, or one
 * partition) and owns the bitmap that writes mark.  Trackers are found from
 * a bio by the disk it is written to, through an RCU hash, so that writes
 * through a partition land on a tracked whole disk and writes through the
 * whole disk land on a tracked partition.
 *
 * Locking: ferry_lock (a mutex) serialises attach, detach, drain, stats
 * and list, and protects ferry_trackers, every tracker's held set and
 * counters.  The I/O paths never take it: they find trackers and the active
 * bitmap under RCU only.  docs/tracker.md explains why the drain is exact.
 */
#define pr_fmt(fmt) "ferry: " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/hashtable.h>
#include <linux/random.h>
#include <linux/percpu.h>
#include <linux/jiffies.h>
#include <linux/uaccess.h>
#include <linux/log2.h>
#include <linux/minmax.h>
#include <linux/device.h>

#include "ferry.h"
#include "ferry_bitmap.h"
#include "ferry_compat.h"

DEFINE_MUTEX(ferry_lock);
static LIST_HEAD(ferry_trackers);
static DEFINE_HASHTABLE(ferry_disk_hash, 6);

#define ferry_for_each_disk_tracker(t, disk)				\
	hash_for_each_possible_rcu(ferry_disk_hash, t, hnode,		\
				   (unsigned long)(disk))		\
		if (t->disk == (disk))

static struct ferry_tracker *ferry_find(dev_t devt)
{
	struct ferry_tracker *t;

	lockdep_assert_held(&ferry_lock);
	list_for_each_entry(t, &ferry_trackers, node)
		if (t->devt == devt)
			return t;
	return NULL;
}

/* The part of [sector, sector + nr) inside @t, in blocks; false if none. */
static bool ferry_blocks(struct ferry_tracker *t, sector_t sector,
			 unsigned int nr, u64 *first, u64 *last)
{
	sector_t s = max(sector, t->start);
	sector_t e = min(sector + nr, t->start + t->nr_sects);
	unsigned int shift = t->gran_shift - SECTOR_SHIFT;

	if (s >= e)
		return false;
	*first = (u64)(s - t->start) >> shift;
	*last = (u64)(e - 1 - t->start) >> shift;
	return true;
}

static void ferry_flag_overflow(struct ferry_tracker *t,
				struct ferry_bitmap *bm)
{
	atomic_set(&bm->overflow, 1);
	atomic64_inc(&t->overflows);
	pr_warn_ratelimited("%u:%u: a write could not be recorded; the next drain reports overflow and the device must be rescanned\n",
			    MAJOR(t->devt), MINOR(t->devt));
}

/*
 * A write may complete unrecorded (no completion record, or in flight
 * across attach): report overflow on every drain for long enough that the
 * rescan this triggers reads the blocks after such a write has completed.
 */
static void ferry_hold_overflow(struct ferry_tracker *t)
{
	unsigned int secs = clamp(ferry_overflow_hold_secs, 30U, 3600U);

	atomic64_set(&t->overflow_until, get_jiffies_64() + (u64)secs * HZ);
}

/*
 * Called from the hook, in the submitter's context with preemption off,
 * under rcu_read_lock(): count the request on every tracker it overlaps.
 * Returns false when it overlaps none, so the bio needs no record.
 */
bool ferry_count_submit(struct bio *bio, struct gendisk *disk,
			sector_t sector, unsigned int nr_sects)
{
	enum req_op op = bio_op(bio);
	struct ferry_tracker *t;
	u64 first, last;
	bool tracked = false;

	ferry_for_each_disk_tracker(t, disk) {
		struct ferry_pcpu_stats *st;

		if (!ferry_blocks(t, sector, nr_sects, &first, &last))
			continue;
		tracked = true;
		st = this_cpu_ptr(t->stats);
		st->writes++;
		st->write_bytes += (u64)nr_sects << SECTOR_SHIFT;
		if (op != REQ_OP_WRITE && op != REQ_OP_ZONE_APPEND)
			st->discards++;
	}
	return tracked;
}

/*
 * The bio could not be given a completion record: mark it now and keep
 * reporting overflow long enough for the write to complete before the
 * agent's rescan reads it.  Same context as ferry_count_submit().
 */
void ferry_mark_unwrapped(struct gendisk *disk, sector_t sector,
			  unsigned int nr_sects)
{
	struct ferry_tracker *t;
	u64 first, last;

	ferry_for_each_disk_tracker(t, disk) {
		struct ferry_bitmap *bm = rcu_dereference(t->active);

		if (!ferry_blocks(t, sector, nr_sects, &first, &last))
			continue;
		ferry_bitmap_mark(bm, first, last);
		ferry_hold_overflow(t);
		ferry_flag_overflow(t, bm);
	}
}

/*
 * Record a completed write on every tracker of @disk it overlaps.  Runs in
 * bio completion context (possibly hard interrupt), before the submitter
 * learns that the write completed.
 */
void ferry_mark_range(struct gendisk *disk, sector_t sector,
		      unsigned int nr_sects)
{
	struct ferry_tracker *t;
	u64 first, last;

	rcu_read_lock();
	ferry_for_each_disk_tracker(t, disk) {
		struct ferry_bitmap *bm;

		if (!ferry_blocks(t, sector, nr_sects, &first, &last))
			continue;
		bm = rcu_dereference(t->active);
		if (ferry_bitmap_mark(bm, first, last))
			ferry_flag_overflow(t, bm);
	}
	rcu_read_unlock();
}

static void ferry_tracker_free(struct ferry_tracker *t)
{
	ferry_bitmap_free(rcu_dereference_protected(t->active, true));
	ferry_bitmap_free(t->held);
	free_percpu(t->stats);
	if (t->bdev)
		put_device(&t->bdev->bd_device);
	/* After put_device(): releasing the disk may call into its driver. */
	module_put(t->owner);
	kfree(t);
}

static int ferry_check_granularity(dev_t devt, u32 gran)
{
	if (gran >= FERRY_GRAN_MIN && gran <= FERRY_GRAN_MAX &&
	    is_power_of_2(gran))
		return 0;
	pr_warn_ratelimited("attach %u:%u: granularity %u is not a power of two between %u and %u bytes\n",
			    MAJOR(devt), MINOR(devt), gran, FERRY_GRAN_MIN,
			    FERRY_GRAN_MAX);
	return -EINVAL;
}

/*
 * Refuse devices whose writes would escape the hook rather than track them
 * incompletely: DAX maps storage into memory and writes bypass bios, a
 * driver's rw_page (brd, zram, btt before 6.3) takes swap and mpage writes
 * without a bio, and zone management commands change data without a data
 * range.
 */
static int ferry_check_device(dev_t devt, struct block_device *bdev)
{
	const char *why = NULL;

	if (blk_queue_dax(bdev_get_queue(bdev)))
		why = "it supports DAX, whose writes bypass the block layer";
#ifdef FERRY_HAVE_BDOPS_RW_PAGE
	else if (bdev->bd_disk->fops->rw_page)
		why = "its driver writes pages without bios (rw_page)";
#endif
	else if (bdev_is_zoned(bdev))
		why = "zoned block devices are not supported";
	if (!why)
		return 0;
	pr_warn_ratelimited("attach %u:%u: refused: %s\n", MAJOR(devt),
			    MINOR(devt), why);
	return -EOPNOTSUPP;
}

int ferry_tracker_attach(dev_t devt, u32 gran, u64 *generation)
{
	struct ferry_bdev_ref ref;
	struct ferry_tracker *t;
	struct block_device *bdev;
	int ret;

	if (!gran)
		gran = FERRY_GRAN_DEFAULT;
	ret = ferry_check_granularity(devt, gran);
	if (ret)
		return ret;

	ret = ferry_bdev_open(devt, &ref);
	if (ret) {
		pr_warn_ratelimited("attach %u:%u: no such block device (error %d)\n",
				    MAJOR(devt), MINOR(devt), ret);
		return -ENODEV;
	}
	bdev = ref.bdev;
	ret = ferry_check_device(devt, bdev);
	if (ret) {
		ferry_bdev_close(&ref);
		return ret;
	}

	mutex_lock(&ferry_lock);
	if (ferry_find(devt)) {
		pr_warn_ratelimited("attach %u:%u: already tracked\n",
				    MAJOR(devt), MINOR(devt));
		ret = -EEXIST;
		goto out_unlock;
	}

	ret = -ENOMEM;
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		goto out_unlock;
	t->devt = devt;
	t->disk = bdev->bd_disk;
	t->start = bdev_is_partition(bdev) ? bdev->bd_start_sect : 0;
	t->nr_sects = bdev_nr_sectors(bdev);
	t->gran_shift = ilog2(gran);
	t->nbits = DIV_ROUND_UP_ULL((u64)t->nr_sects << SECTOR_SHIFT, gran);
	t->stats = alloc_percpu(struct ferry_pcpu_stats);
	RCU_INIT_POINTER(t->active, ferry_bitmap_alloc(t->nbits, GFP_KERNEL));
	if (!t->stats || !rcu_access_pointer(t->active)) {
		ferry_tracker_free(t);
		goto out_unlock;
	}
	do {
		t->generation = get_random_u64();
	} while (!t->generation);

	ret = ferry_hook_get();
	if (ret) {
		ferry_tracker_free(t);
		goto out_unlock;
	}
	t->missed_seen = ferry_hook_missed();
	/*
	 * Keep the device structure (not the device) alive: a disk removed
	 * while tracked stays a valid key until it is detached.  Releasing it
	 * calls the driver's ->free_disk(), so the driver stays loaded too.
	 */
	if (!try_module_get(bdev->bd_disk->fops->owner)) {
		ferry_tracker_free(t);
		ferry_hook_put();
		ret = -ENODEV;
		goto out_unlock;
	}
	t->owner = bdev->bd_disk->fops->owner;
	get_device(&bdev->bd_device);
	t->bdev = bdev;
	atomic64_set(&t->overflow_until, get_jiffies_64());

	list_add_tail(&t->node, &ferry_trackers);
	hash_add_rcu(ferry_disk_hash, &t->hnode, (unsigned long)t->disk);
	/* From here on every submission sees the tracker... */
	synchronize_rcu();
	/*
	 * ...and requests submitted before it did are waited for, so that a
	 * write in flight at attach time cannot complete unrecorded after
	 * the agent's initial copy read the old data.
	 */
	if (!queue_is_mq(t->disk->queue) ||
	    !ferry_queue_drain_inflight(t->disk->queue, 30 * HZ)) {
		/*
		 * A bio-based device has no queue to wait on, and a queue
		 * that does not drain in time (error recovery, no path) must
		 * not hang every ioctl: treat what was in flight as unrecorded.
		 */
		ferry_hold_overflow(t);
		pr_info("%u:%u: writes in flight at attach cannot be waited for; reporting overflow for %u s so that they are rescanned\n",
			MAJOR(devt), MINOR(devt),
			clamp(ferry_overflow_hold_secs, 30U, 3600U));
	}

	*generation = t->generation;
	pr_info("%u:%u: tracking %llu bytes at %u-byte granularity, generation %016llx\n",
		MAJOR(devt), MINOR(devt),
		(unsigned long long)t->nr_sects << SECTOR_SHIFT, gran,
		(unsigned long long)t->generation);
	ret = 0;
out_unlock:
	mutex_unlock(&ferry_lock);
	ferry_bdev_close(&ref);
	return ret;
}

static void ferry_tracker_remove(struct ferry_tracker *t)
{
	list_del(&t->node);
	hash_del_rcu(&t->hnode);
	/* No hook or completion can reach the tracker after this. */
	synchronize_rcu();
	ferry_tracker_free(t);
	ferry_hook_put();
}

int ferry_tracker_detach(dev_t devt)
{
	struct ferry_tracker *t;
	int ret = 0;

	mutex_lock(&ferry_lock);
	t = ferry_find(devt);
	if (!t) {
		pr_warn_ratelimited("detach %u:%u: not tracked\n",
				    MAJOR(devt), MINOR(devt));
		ret = -ENOENT;
	} else {
		ferry_tracker_remove(t);
		pr_info("%u:%u: detached\n", MAJOR(devt), MINOR(devt));
	}
	mutex_unlock(&ferry_lock);
	return ret;
}

void ferry_tracker_detach_all(void)
{
	struct ferry_tracker *t, *n;

	mutex_lock(&ferry_lock);
	list_for_each_entry_safe(t, n, &ferry_trackers, node)
		ferry_tracker_remove(t);
	mutex_unlock(&ferry_lock);
}

static u32 ferry_device_status(struct ferry_tracker *t)
{
	u32 status = 0;

	/* A partition deleted (or re-created by a re-read) is gone too. */
	if (!disk_live(t->disk) || !device_is_registered(&t->bdev->bd_device))
		status |= FERRY_STATUS_GONE;
	else if (bdev_nr_sectors(t->bdev) != t->nr_sects)
		status |= FERRY_STATUS_RESIZED;
	if (ferry_hook_missed() != t->missed_seen)
		status |= FERRY_STATUS_OVERFLOW;
	if (time_before64(get_jiffies_64(),
			  (u64)atomic64_read(&t->overflow_until)))
		status |= FERRY_STATUS_OVERFLOW;
	return status;
}

struct ferry_emit {
	struct ferry_tracker *t;
	struct ferry_extent __user *ubuf;
	u32 room;		/* extents the user buffer can still take */
	u32 nr;			/* extents written */
	u64 stop;		/* block the next page starts at */
	int err;
};

static int ferry_emit_run(void *arg, u64 first, u64 end)
{
	struct ferry_emit *e = arg;
	struct ferry_tracker *t = e->t;
	u64 size = (u64)t->nr_sects << SECTOR_SHIFT;
	struct ferry_extent ext;

	if (!e->room) {
		e->stop = first;
		return 1;
	}
	ext.offset = first << t->gran_shift;
	ext.length = min(end << t->gran_shift, size) - ext.offset;
	if (copy_to_user(&e->ubuf[e->nr], &ext, sizeof(ext))) {
		e->err = -EFAULT;
		return 1;
	}
	e->nr++;
	e->room--;
	return 0;
}

/* Take the active set, fold in what was not read of the previous one. */
static int ferry_take_set(struct ferry_tracker *t)
{
	struct ferry_bitmap *fresh, *old;

	fresh = ferry_bitmap_alloc(t->nbits, GFP_KERNEL);
	if (!fresh)
		return -ENOMEM;
	old = rcu_replace_pointer(t->active, fresh,
				  lockdep_is_held(&ferry_lock));
	/*
	 * Markers run under RCU: once this returns, none is still writing
	 * into @old, and every write that completed before the swap is in it.
	 */
	synchronize_rcu_expedited();

	/*
	 * The hook skipped a bio (see ferry_ftrace_handler()): rescan, and
	 * keep saying so while that bio may still be in flight, or the
	 * rescan could read its block before it lands.
	 */
	if (ferry_hook_missed() != t->missed_seen) {
		t->missed_seen = ferry_hook_missed();
		ferry_flag_overflow(t, old);
		ferry_hold_overflow(t);
	}
	if (t->held) {
		if (ferry_bitmap_merge(old, t->held, t->held_cursor))
			ferry_flag_overflow(t, old);
		ferry_bitmap_free(t->held);
	}
	t->held = old;
	t->held_seq = ++t->drains;
	t->held_cursor = 0;
	t->held_bytes = ferry_bitmap_weight(old, 0) << t->gran_shift;
	/* The last block may stretch past the end of the device. */
	if (t->nbits && ferry_bitmap_weight(old, t->nbits - 1))
		t->held_bytes -= (t->nbits << t->gran_shift) -
				 ((u64)t->nr_sects << SECTOR_SHIFT);
	return 0;
}

int ferry_tracker_drain(struct ferry_drain *arg, void __user *uarg)
{
	dev_t devt = MKDEV(arg->major, arg->minor);
	struct ferry_emit e = { .ubuf = u64_to_user_ptr(arg->extents),
				.room = arg->max_extents };
	struct ferry_tracker *t;
	int ret;

	mutex_lock(&ferry_lock);
	t = ferry_find(devt);
	if (!t) {
		pr_warn_ratelimited("drain %u:%u: not tracked\n",
				    MAJOR(devt), MINOR(devt));
		ret = -ENOENT;
		goto out;
	}
	if (arg->flags & FERRY_DRAIN_CONTINUE) {
		if (!t->held || arg->sequence != t->held_seq ||
		    arg->cursor != t->held_cursor) {
			pr_warn_ratelimited("drain %u:%u: continue of set %llu at %llu does not match the set held\n",
					    MAJOR(devt), MINOR(devt),
					    arg->sequence, arg->cursor);
			ret = -ESTALE;
			goto out;
		}
	} else {
		ret = ferry_take_set(t);
		if (ret)
			goto out;
	}

	e.t = t;
	e.stop = t->nbits;
	ret = ferry_bitmap_for_each_run(t->held, t->held_cursor,
					ferry_emit_run, &e);
	if (e.err) {
		/* The set stays held: the caller can continue from cursor. */
		ret = e.err;
		goto out;
	}

	arg->status = ferry_device_status(t);
	if (atomic_read(&t->held->overflow))
		arg->status |= FERRY_STATUS_OVERFLOW;
	arg->sequence = t->held_seq;
	arg->generation = t->generation;
	arg->nr_extents = e.nr;
	arg->set_bytes = t->held_bytes;
	arg->cursor = ret > 0 ? e.stop : 0;
	if (ret > 0)
		arg->status |= FERRY_STATUS_MORE;
	/*
	 * Hand the answer over before committing: if the caller cannot
	 * receive it, the set stays held at the old cursor.
	 */
	if (copy_to_user(uarg, arg, sizeof(*arg))) {
		ret = -EFAULT;
		goto out;
	}
	if (ret > 0) {
		/* The buffer is full: page on from e.stop next time. */
		t->held_cursor = e.stop;
	} else {
		ferry_bitmap_free(t->held);
		t->held = NULL;
	}
	ret = 0;
out:
	mutex_unlock(&ferry_lock);
	return ret;
}

int ferry_tracker_stats(struct ferry_stats *arg)
{
	dev_t devt = MKDEV(arg->major, arg->minor);
	struct ferry_tracker *t;
	struct ferry_bitmap *bm;
	int cpu;

	mutex_lock(&ferry_lock);
	t = ferry_find(devt);
	if (!t) {
		mutex_unlock(&ferry_lock);
		pr_warn_ratelimited("stats %u:%u: not tracked\n",
				    MAJOR(devt), MINOR(devt));
		return -ENOENT;
	}
	arg->granularity = 1U << t->gran_shift;
	arg->generation = t->generation;
	arg->size = (u64)t->nr_sects << SECTOR_SHIFT;
	arg->writes = arg->write_bytes = arg->discards = 0;
	for_each_possible_cpu(cpu) {
		struct ferry_pcpu_stats *st = per_cpu_ptr(t->stats, cpu);

		arg->writes += READ_ONCE(st->writes);
		arg->write_bytes += READ_ONCE(st->write_bytes);
		arg->discards += READ_ONCE(st->discards);
	}
	bm = rcu_dereference_protected(t->active, lockdep_is_held(&ferry_lock));
	/*
	 * Markers may be setting bits meanwhile (the count is a snapshot)
	 * and replacing chunks, which are freed after a grace period.
	 */
	rcu_read_lock();
	arg->dirty_blocks = ferry_bitmap_weight(bm, 0);
	rcu_read_unlock();
	arg->memory_bytes = ferry_bitmap_memory(bm) + sizeof(*t);
	arg->status = ferry_device_status(t);
	if (atomic_read(&bm->overflow))
		arg->status |= FERRY_STATUS_OVERFLOW;
	if (t->held) {
		arg->dirty_blocks += ferry_bitmap_weight(t->held,
							 t->held_cursor);
		arg->memory_bytes += ferry_bitmap_memory(t->held);
		if (atomic_read(&t->held->overflow))
			arg->status |= FERRY_STATUS_OVERFLOW;
	}
	arg->drains = t->drains;
	arg->overflows = atomic64_read(&t->overflows);
	mutex_unlock(&ferry_lock);
	return 0;
}

int ferry_tracker_list(struct ferry_dev *devs, u32 max, u32 *nr)
{
	struct ferry_tracker *t;
	u32 n = 0;

	mutex_lock(&ferry_lock);
	list_for_each_entry(t, &ferry_trackers, node) {
		if (n < max) {
			devs[n].major = MAJOR(t->devt);
			devs[n].minor = MINOR(t->devt);
		}
		n++;
	}
	mutex_unlock(&ferry_lock);
	*nr = n;
	return 0;
}
