/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ferry.ko internals shared between the module's files.
 *
 *   ferry_main.c     module init/exit and parameters
 *   ferry_ctl.c      /dev/ferry-ctl and its ioctls (argument checking)
 *   ferry_tracker.c  trackers: attach, detach, drain, stats, marking
 *   ferry_hook.c     the block layer hook and the bio completion wrapper
 *   ferry_bitmap.c   the sparse dirty bitmap
 */
#ifndef FERRY_H
#define FERRY_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/rcupdate.h>
#include <linux/blk_types.h>

#include <ferry/tracker_ioctl.h>

#define FERRY_VERSION	"0.1.0"

struct gendisk;
struct ferry_bitmap;

struct ferry_pcpu_stats {
	u64 writes;
	u64 write_bytes;
	u64 discards;
};

struct ferry_tracker {
	struct hlist_node hnode;	/* ferry_disk_hash, by disk; RCU */
	struct list_head node;		/* ferry_trackers; ferry_lock */
	struct rcu_head rcu;

	dev_t devt;
	struct gendisk *disk;		/* the whole disk written through */
	struct block_device *bdev;	/* the tracked device (may be a part) */
	sector_t start;			/* first sector of bdev on disk */
	sector_t nr_sects;		/* size of bdev at attach */
	unsigned int gran_shift;	/* log2(granularity in bytes) */
	u64 nbits;
	u64 generation;

	/* Written by the hook, swapped by drain: RCU. */
	struct ferry_bitmap __rcu *active;
	/* A drained set not yet read to the end; ferry_lock. */
	struct ferry_bitmap *held;
	u64 held_seq;
	u64 held_cursor;
	u64 held_bytes;
	u64 drains;

	/*
	 * Report overflow until then (jiffies_64): see ferry_hold_overflow().
	 * 64 bits: 32-bit jiffies wrap in weeks and would report it again.
	 */
	atomic64_t overflow_until;
	struct module *owner;		/* the disk's driver, pinned */
	int missed_seen;		/* ferry_hook_missed() when attached */
	atomic64_t overflows;
	struct ferry_pcpu_stats __percpu *stats;
};

/* ferry_tracker.c */
extern struct mutex ferry_lock;
int ferry_tracker_attach(dev_t devt, u32 granularity, u64 *generation);
int ferry_tracker_detach(dev_t devt);
void ferry_tracker_detach_all(void);
int ferry_tracker_drain(struct ferry_drain *arg, void __user *uarg);
int ferry_tracker_stats(struct ferry_stats *arg);
int ferry_tracker_list(struct ferry_dev *devs, u32 max, u32 *nr);
bool ferry_count_submit(struct bio *bio, struct gendisk *disk,
			sector_t sector, unsigned int nr_sects);
void ferry_mark_unwrapped(struct gendisk *disk, sector_t sector,
			  unsigned int nr_sects);
void ferry_mark_range(struct gendisk *disk, sector_t sector,
		      unsigned int nr_sects);

/* ferry_hook.c */
int ferry_hook_init(void);
void ferry_hook_exit(void);
int ferry_hook_get(void);
void ferry_hook_put(void);
int ferry_hook_missed(void);

/* ferry_ctl.c */
int ferry_ctl_init(void);
void ferry_ctl_exit(void);

/* ferry_main.c */
extern u64 ferry_load_id;
extern unsigned int ferry_overflow_hold_secs;

#endif /* FERRY_H */
