/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel interfaces that changed across the kernels we support,
 * selected by ferry_features.h (see detect-features.sh), never by version.
 */
#ifndef FERRY_COMPAT_H
#define FERRY_COMPAT_H

#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/ftrace.h>

#include "ferry_features.h"

/*
 * WQ_PERCPU exists from 6.17 (and in stable backports, 6.12.118 among
 * them); 7.x warns at a workqueue that says neither it nor WQ_UNBOUND
 * (the default is turning unbound); before, per-CPU was the default.
 */
#if defined(FERRY_HAVE_WQ_PERCPU)
#define FERRY_WQ_PERCPU WQ_PERCPU
#else
#define FERRY_WQ_PERCPU 0
#endif

/* An open reference to a block device, however this kernel spells it. */
struct ferry_bdev_ref {
	struct block_device *bdev;
#if defined(FERRY_HAVE_BDEV_FILE_OPEN_BY_DEV)
	struct file *file;
#elif defined(FERRY_HAVE_BDEV_OPEN_BY_DEV)
	struct bdev_handle *handle;
#endif
};

/* Open read-only and not exclusively: the device stays usable by others. */
static inline int ferry_bdev_open(dev_t devt, struct ferry_bdev_ref *ref)
{
#if defined(FERRY_HAVE_BDEV_FILE_OPEN_BY_DEV)
	ref->file = bdev_file_open_by_dev(devt, BLK_OPEN_READ, NULL, NULL);
	if (IS_ERR(ref->file))
		return PTR_ERR(ref->file);
	ref->bdev = file_bdev(ref->file);
#elif defined(FERRY_HAVE_BDEV_OPEN_BY_DEV)
	ref->handle = bdev_open_by_dev(devt, BLK_OPEN_READ, NULL, NULL);
	if (IS_ERR(ref->handle))
		return PTR_ERR(ref->handle);
	ref->bdev = ref->handle->bdev;
#elif defined(FERRY_HAVE_BLKDEV_GET_BY_DEV_HOLDER_OPS)
	ref->bdev = blkdev_get_by_dev(devt, BLK_OPEN_READ, NULL, NULL);
	if (IS_ERR(ref->bdev))
		return PTR_ERR(ref->bdev);
#else
	ref->bdev = blkdev_get_by_dev(devt, FMODE_READ, NULL);
	if (IS_ERR(ref->bdev))
		return PTR_ERR(ref->bdev);
#endif
	return 0;
}

static inline void ferry_bdev_close(struct ferry_bdev_ref *ref)
{
#if defined(FERRY_HAVE_BDEV_FILE_OPEN_BY_DEV)
	fput(ref->file);
#elif defined(FERRY_HAVE_BDEV_OPEN_BY_DEV)
	bdev_release(ref->handle);
#elif defined(FERRY_HAVE_BLKDEV_GET_BY_DEV_HOLDER_OPS)
	blkdev_put(ref->bdev, NULL);
#else
	blkdev_put(ref->bdev, FMODE_READ);
#endif
}

/*
 * Wait until every request already queued on @q has completed, for at most
 * @timeout jiffies; false if it did not drain in time.
 */
static inline bool ferry_queue_drain_inflight(struct request_queue *q,
					      unsigned long timeout)
{
#if defined(FERRY_HAVE_BLK_MQ_UNFREEZE_QUEUE_NOMEMRESTORE)
	/* 6.14+: nothing is allocated while frozen, so no memalloc flags
	 * to save: bounded like the older kernels below. */
	bool drained;

	blk_freeze_queue_start(q);
	drained = blk_mq_freeze_queue_wait_timeout(q, timeout) > 0;
	blk_mq_unfreeze_queue_nomemrestore(q);
	return drained;
#elif defined(FERRY_HAVE_BLK_MQ_FREEZE_QUEUE_MEMFLAGS)
	/* Kernels that track memalloc flags across a freeze but cannot
	 * undo one without them: unbounded. */
	unsigned int memflags = blk_mq_freeze_queue(q);

	blk_mq_unfreeze_queue(q, memflags);
	return true;
#else
	bool drained;

	blk_freeze_queue_start(q);
	drained = blk_mq_freeze_queue_wait_timeout(q, timeout) > 0;
	blk_mq_unfreeze_queue(q);
	return drained;
#endif
}

/*
 * The first argument of the hooked function.  Newer kernels expose it from
 * the lightweight ftrace_regs through an accessor, 5.11-6.x x86 kernels in
 * its embedded pt_regs; others need the full pt_regs, which the ops then
 * asks for with FTRACE_OPS_FL_SAVE_REGS (slower: every register saved).
 */
#if defined(FERRY_HAVE_FTRACE_REGS_GET_ARGUMENT)
#define FERRY_FTRACE_OPS_FLAGS	0
static inline unsigned long ferry_ftrace_arg0(struct ftrace_regs *fregs)
{
	return ftrace_regs_get_argument(fregs, 0);
}
#elif defined(FERRY_HAVE_FTRACE_REGS_PT_REGS)
#define FERRY_FTRACE_OPS_FLAGS	0
static inline unsigned long ferry_ftrace_arg0(struct ftrace_regs *fregs)
{
	return regs_get_kernel_argument(&fregs->regs, 0);
}
#else
#define FERRY_FTRACE_OPS_FLAGS	FTRACE_OPS_FL_SAVE_REGS
static inline unsigned long ferry_ftrace_arg0(struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);

	return regs ? regs_get_kernel_argument(regs, 0) : 0;
}
#endif

#endif /* FERRY_COMPAT_H */
