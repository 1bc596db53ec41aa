/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ferry.ko control interface: the ioctls of /dev/ferry-ctl.
 *
 * This header is shared verbatim by the kernel module and userspace, so it
 * only uses <linux/types.h> fixed-width types and no padding holes.  Every
 * struct ends in reserved words that callers must zero: the module refuses
 * non-zero reserved fields with EINVAL so they can be given a meaning later
 * without breaking old agents.
 *
 * A device is named by its block device number (major:minor); ferryctl and
 * the agent stat() the device node to get it.  Offsets and lengths handed
 * back are in bytes relative to the start of the tracked device (a
 * partition's own offset 0, not the disk's).
 *
 * Errors (errno) every ioctl may return:
 *   EPERM    caller lacks CAP_SYS_ADMIN
 *   EFAULT   an argument or buffer pointer is not readable/writable
 *   EINVAL   unknown flags, non-zero reserved fields, or a major:minor
 *            that is not a valid device number (major < 4096, minor < 2^20)
 *   ENOTTY   unknown ioctl number
 * EPERM is checked before anything else, VERSION included.  A refused call
 * changes nothing: in particular a refused DRAIN takes no set.
 * and per ioctl:
 *   ATTACH   ENODEV no block device with that number; EINVAL granularity is
 *            not a power of two in [FERRY_GRAN_MIN, FERRY_GRAN_MAX];
 *            EEXIST the device is tracked already; ENOMEM; EOPNOTSUPP the
 *            kernel could not hook the block layer, or the device is DAX
 *            or zoned, or its driver writes pages without bios (rw_page,
 *            before 6.3), whose writes cannot all be seen (see dmesg)
 *   DETACH   ENOENT the device is not tracked
 *   DRAIN    ENOENT not tracked; ENOBUFS the buffer cannot hold one extent;
 *            EFAULT the buffer is NULL or not writable; ESTALE
 *            FERRY_DRAIN_CONTINUE with a sequence or cursor that is not the
 *            one the module holds, or after the last page was returned
 *   STATS    ENOENT not tracked
 */
#ifndef FERRY_TRACKER_IOCTL_H
#define FERRY_TRACKER_IOCTL_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define FERRY_CTL_NAME		"ferry-ctl"
#define FERRY_CTL_PATH		"/dev/ferry-ctl"
#define FERRY_ABI_VERSION	1

#define FERRY_GRAN_MIN		4096u
#define FERRY_GRAN_MAX		(1u << 30)
#define FERRY_GRAN_DEFAULT	4096u

/* Status bits, reported by DRAIN (for the set handed out) and STATS. */
/* A write could not be recorded: the set is incomplete, rescan the device. */
#define FERRY_STATUS_OVERFLOW	(1u << 0)
/* The device was removed (hot-unplug, loop detach); detach it. */
#define FERRY_STATUS_GONE	(1u << 1)
/* The device changed size since attach; rescan and re-attach. */
#define FERRY_STATUS_RESIZED	(1u << 2)
/* DRAIN only: more extents remain, call again with FERRY_DRAIN_CONTINUE. */
#define FERRY_STATUS_MORE	(1u << 3)

struct ferry_version {
	__u32 abi;		/* out: FERRY_ABI_VERSION of the module */
	__u32 reserved0;
	__u64 load_id;		/* out: random, new at every module load */
	char version[32];	/* out: module version string, NUL-terminated */
};

struct ferry_attach {
	__u32 major;		/* in */
	__u32 minor;		/* in */
	__u32 granularity;	/* in: bytes per bit; 0 means the default */
	__u32 flags;		/* in: must be 0 */
	__u64 generation;	/* out: new at every attach and module load */
	__u64 reserved[4];
};

struct ferry_detach {
	__u32 major;
	__u32 minor;
	__u32 flags;		/* must be 0 */
	__u32 reserved0;
	__u64 reserved[2];
};

struct ferry_extent {
	__u64 offset;		/* bytes from the start of the device */
	__u64 length;		/* bytes, a multiple of the granularity
				 * except at the end of the device */
};

/*
 * DRAIN without FERRY_DRAIN_CONTINUE atomically takes the device's dirty set
 * and starts a fresh one; it returns the first max_extents extents of the
 * taken set.  While FERRY_STATUS_MORE is set in status, call again with
 * FERRY_DRAIN_CONTINUE and sequence/cursor as returned to page through the
 * rest.  Starting a new drain before the previous one was read to the end
 * folds what was not read yet into the new set: nothing is ever dropped.
 *
 * Extents come sorted by offset, never overlap or touch (adjacent runs are
 * merged), start on a granularity boundary, and are whole granules except
 * one that ends at the end of the device; set_bytes counts them so.  If
 * copying a page out faults (EFAULT), the set stays held and a new drain
 * returns it again.
 *
 * Guarantee (docs/tracker.md): a write that completed before the drain
 * began is in this set or an earlier one; a write still in flight when the
 * drain began, or submitted after, is in a later set.
 */
#define FERRY_DRAIN_CONTINUE	(1u << 0)

struct ferry_drain {
	__u32 major;		/* in */
	__u32 minor;		/* in */
	__u32 flags;		/* in: FERRY_DRAIN_* */
	__u32 max_extents;	/* in: room in the buffer, in extents */
	__u64 extents;		/* in: user pointer to struct ferry_extent[] */
	__u64 sequence;		/* in (CONTINUE) / out: number of this set */
	__u64 cursor;		/* in (CONTINUE) / out: where the next page
				 * starts */
	__u64 generation;	/* out: the attach generation */
	__u32 nr_extents;	/* out: extents written to the buffer */
	__u32 status;		/* out: FERRY_STATUS_* */
	__u64 set_bytes;	/* out: dirty bytes in the whole set */
	__u64 reserved[4];
};

struct ferry_stats {
	__u32 major;		/* in */
	__u32 minor;		/* in */
	__u32 granularity;	/* out: bytes per bit */
	__u32 status;		/* out: FERRY_STATUS_* of the current set */
	__u64 generation;	/* out */
	__u64 size;		/* out: device size in bytes, at attach */
	__u64 writes;		/* out: data-changing requests seen */
	__u64 write_bytes;	/* out: bytes those requests covered */
	__u64 discards;		/* out: of which discard/write-zeroes/erase */
	__u64 dirty_blocks;	/* out: dirty now, not yet drained */
	__u64 memory_bytes;	/* out: memory held by the dirty sets */
	__u64 drains;		/* out: sets drained since attach */
	__u64 overflows;	/* out: times a write could not be recorded */
	__u64 reserved[8];
};

struct ferry_dev {
	__u32 major;
	__u32 minor;
};

/* LIST copies up to max devices and sets nr to the number tracked. */
struct ferry_list {
	__u64 devs;		/* in: user pointer to struct ferry_dev[] */
	__u32 max;		/* in */
	__u32 nr;		/* out */
	__u64 reserved[2];
};

#define FERRY_IOC_MAGIC		0xF3
#define FERRY_IOC_VERSION	_IOR(FERRY_IOC_MAGIC, 0, struct ferry_version)
#define FERRY_IOC_ATTACH	_IOWR(FERRY_IOC_MAGIC, 1, struct ferry_attach)
#define FERRY_IOC_DETACH	_IOW(FERRY_IOC_MAGIC, 2, struct ferry_detach)
#define FERRY_IOC_DRAIN		_IOWR(FERRY_IOC_MAGIC, 3, struct ferry_drain)
#define FERRY_IOC_STATS		_IOWR(FERRY_IOC_MAGIC, 4, struct ferry_stats)
#define FERRY_IOC_LIST		_IOWR(FERRY_IOC_MAGIC, 5, struct ferry_list)

#endif /* FERRY_TRACKER_IOCTL_H */
