/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace client of the ferry.ko control device (include/ferry/
 * tracker_ioctl.h).  Used by ferryctl, the guest test programs and the
 * agent.
 *
 * Every call that can fail takes a struct ferry_err and, on failure,
 * returns -1 with err->errnum set to the errno and err->msg set to one line
 * saying what failed, on which device and what to do about it.  The
 * messages never end in a newline so callers can prefix them.
 */
#ifndef FERRY_TRACKER_H
#define FERRY_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include <ferry/tracker_ioctl.h>

#define FERRY_ERR_MAX	384

struct ferry_err {
	int errnum;
	char msg[FERRY_ERR_MAX];
};

/*
 * An open control device.  The ioctl hook exists so unit tests can stand in
 * for the module; ferry_ctl_open() sets it to the real ioctl(2).  It returns
 * 0, or -1 with errno set, like ioctl(2).
 */
struct ferry_ctl {
	int fd;
	int (*ioctl)(struct ferry_ctl *ctl, unsigned long req, void *arg);
	void *priv;
};

/* A block device as the user named it, and its number. */
struct ferry_blkdev {
	uint32_t major;
	uint32_t minor;
	char name[256];		/* for messages: the path, or "MAJ:MIN" */
};

/* The ioctls, for ferry_strerror(). */
enum ferry_op {
	FERRY_OP_OPEN,
	FERRY_OP_VERSION,
	FERRY_OP_ATTACH,
	FERRY_OP_DETACH,
	FERRY_OP_DRAIN,
	FERRY_OP_STATS,
	FERRY_OP_LIST,
};

/* Open path, or FERRY_CTL_PATH when path is NULL. */
int ferry_ctl_open(struct ferry_ctl *ctl, const char *path,
		   struct ferry_err *err);
void ferry_ctl_close(struct ferry_ctl *ctl);

/*
 * Resolve a device argument: a block device node (stat() and S_ISBLK), or
 * "MAJ:MIN" in decimal, which is how a device whose node is gone (hot
 * removed) can still be named for stats and detach.
 */
int ferry_blkdev_resolve(const char *arg, struct ferry_blkdev *dev,
			 struct ferry_err *err);

/*
 * "NAME (MAJ:MIN)" for messages, or just "MAJ:MIN" when that is the name.
 * Returns buf.
 */
const char *ferry_blkdev_label(const struct ferry_blkdev *dev, char *buf,
			       size_t len);

int ferry_version_get(struct ferry_ctl *ctl, struct ferry_version *v,
		      struct ferry_err *err);

/* granularity 0 asks for FERRY_GRAN_DEFAULT; generation may be NULL. */
int ferry_attach(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		 uint32_t granularity, uint64_t *generation,
		 struct ferry_err *err);
int ferry_detach(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		 struct ferry_err *err);
int ferry_stats_get(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		    struct ferry_stats *st, struct ferry_err *err);

/*
 * List the tracked devices into a malloc()ed array the caller frees; *nr
 * is its length.  Retries when devices are attached while it runs.
 */
int ferry_list(struct ferry_ctl *ctl, struct ferry_dev **devs, size_t *nr,
	       struct ferry_err *err);

/* What one drain handed out. */
struct ferry_drain_info {
	uint64_t generation;	/* attach generation */
	uint64_t sequence;	/* number of the set */
	uint64_t set_bytes;	/* dirty bytes in the set, per the module */
	uint64_t extents;	/* extents passed to the callback */
	uint64_t bytes;		/* bytes those extents cover */
	uint32_t status;	/* OR of FERRY_STATUS_* over all pages,
				 * without FERRY_STATUS_MORE */
	uint32_t pages;		/* DRAIN ioctls issued */
};

/*
 * Called for each extent of a drained set, in the order the module hands
 * them out.  A positive return stops the drain (ferry_drain() returns it;
 * -1 is reserved for failures).  Pages not fetched yet stay with the
 * module, which folds them into the next set; but the rest of the page
 * in hand has left the module and is dropped.  The ABI has no way to hand
 * extents back, so a consumer that can fail (the agent) should record the
 * extents (extent.h) and act on them afterwards, not in the callback.
 */
typedef int (*ferry_drain_fn)(void *arg, const struct ferry_extent *ext);

/*
 * Take the device's dirty set and page through all of it, max_page
 * extents per ioctl (0: a default of 4096).  Returns 0 when the set was
 * read to the end, the callback's value if it stopped the drain, or -1 on
 * failure (err filled in; ESTALE means another reader restarted the drain
 * and the unread rest went into the next set).  info is filled in either
 * way as far as the drain got.
 */
int ferry_drain(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		uint32_t max_page, ferry_drain_fn fn, void *arg,
		struct ferry_drain_info *info, struct ferry_err *err);

/*
 * Human text for errnum as returned by op: the documented errnos of
 * tracker_ioctl.h get an explanation and a hint, others strerror().
 */
const char *ferry_strerror(enum ferry_op op, int errnum);

/* Is g a granularity the module accepts (0 = default included)? */
int ferry_granularity_valid(uint64_t g);

/*
 * Parse a byte count: decimal digits with an optional binary suffix K, M,
 * G, T (also KiB, MiB, ..., k, m, g); "64K" is 65536.  Returns 0 or -1 for
 * empty, malformed or overflowing input.
 */
int ferry_parse_bytes(const char *s, uint64_t *out);

/*
 * Format status bits as "ok" or a comma-separated list ("overflow,gone").
 * Unknown bits are shown as hex so a newer module is not misreported.
 * Returns buf.
 */
const char *ferry_status_str(uint32_t status, char *buf, size_t len);
/* The name of one FERRY_STATUS_* bit ("overflow", ...), NULL if unknown. */
const char *ferry_status_bit_name(uint32_t bit);

#endif /* FERRY_TRACKER_H */
