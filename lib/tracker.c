// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace client of the ferry.ko ioctl ABI: see tracker.h.
 */
#include "tracker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define DRAIN_PAGE_DEFAULT	4096u

static void set_err(struct ferry_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(struct ferry_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static int real_ioctl(struct ferry_ctl *ctl, unsigned long req, void *arg)
{
	return ioctl(ctl->fd, req, arg);
}

/*
 * Every ioctl goes through here.  EINTR is retried: the module either did
 * the whole operation or none of it, and an interrupted DRAIN took nothing.
 */
static int do_ioctl(struct ferry_ctl *ctl, unsigned long req, void *arg)
{
	int ret;

	do {
		ret = ctl->ioctl(ctl, req, arg);
	} while (ret < 0 && errno == EINTR);
	return ret;
}

const char *ferry_strerror(enum ferry_op op, int errnum)
{
	switch (errnum) {
	case EPERM:
		return "needs root (CAP_SYS_ADMIN)";
	case EACCES:
		return "permission denied: needs root (CAP_SYS_ADMIN)";
	case ENOENT:
		if (op == FERRY_OP_OPEN)
			return "no such file: is ferry.ko loaded? modprobe ferry";
		return "not tracked (attach it first: ferryctl tracker attach DEV)";
	case ENODEV:
	case ENXIO:
		if (op == FERRY_OP_OPEN)
			return "no driver behind the node: is ferry.ko loaded? modprobe ferry";
		return "no block device with that number (removed, or a typo?)";
	case EINVAL:
		if (op == FERRY_OP_ATTACH)
			return "invalid argument: the granularity must be a power of two from 4096 to 1073741824 bytes (0 for the default, 4096) and flags 0";
		return "invalid argument: unknown flags or non-zero reserved fields (do ferryctl and ferry.ko versions differ? see ferryctl version)";
	case EEXIST:
		return "already tracked (detach it first to change the granularity)";
	case ENOMEM:
		return "out of kernel memory";
	case EOPNOTSUPP:
		return "this device cannot be tracked: a DAX or zoned device, or one whose driver writes pages without bios (rw_page: brd, zram, btt before Linux 6.3), whose writes can escape tracking, or the kernel could not hook the block layer (see dmesg)";
	case ENOBUFS:
		return "the buffer cannot hold one extent (max_extents must be at least 1)";
	case ESTALE:
		return "another reader restarted the drain; the unread rest was folded into the next set: drain again";
	case EFAULT:
		return "bad buffer address (a bug in the caller)";
	case ENOTTY:
		return "ioctl unknown to the module: ferry.ko and this program speak different ABIs (see ferryctl version)";
	case EPROTO:
		return "the module answered against the ABI (a ferry.ko bug, or a different ABI version)";
	default:
		return strerror(errnum);
	}
}

int ferry_ctl_open(struct ferry_ctl *ctl, const char *path,
		   struct ferry_err *err)
{
	if (!path)
		path = FERRY_CTL_PATH;
	ctl->ioctl = real_ioctl;
	ctl->priv = NULL;
	ctl->fd = open(path, O_RDWR | O_CLOEXEC);
	if (ctl->fd < 0) {
		int e = errno;

		set_err(err, e, "cannot open %s: %s", path,
			ferry_strerror(FERRY_OP_OPEN, e));
		return -1;
	}
	return 0;
}

void ferry_ctl_close(struct ferry_ctl *ctl)
{
	if (ctl->fd >= 0)
		close(ctl->fd);
	ctl->fd = -1;
}

static const char *file_kind(mode_t mode)
{
	if (S_ISREG(mode))
		return "a regular file";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a block device";
}

/* Parse "MAJ:MIN" (decimal); returns 0 on a full match. */
static int parse_majmin(const char *s, uint32_t *maj, uint32_t *min)
{
	unsigned long a, b;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	a = strtoul(s, &end, 10);
	if (errno || *end != ':' || a > UINT32_MAX)
		return -1;
	s = end + 1;
	if (*s < '0' || *s > '9')
		return -1;
	b = strtoul(s, &end, 10);
	if (errno || *end || b > UINT32_MAX)
		return -1;
	*maj = (uint32_t)a;
	*min = (uint32_t)b;
	return 0;
}

int ferry_blkdev_resolve(const char *arg, struct ferry_blkdev *dev,
			 struct ferry_err *err)
{
	struct stat st;

	snprintf(dev->name, sizeof(dev->name), "%s", arg);
	if (stat(arg, &st) < 0) {
		int e = errno;

		/* A removed device can only be named by its number. */
		if (!parse_majmin(arg, &dev->major, &dev->minor))
			return 0;
		set_err(err, e,
			"cannot use %s: %s (name a block device node such as /dev/vdb, or MAJ:MIN)",
			arg, strerror(e));
		return -1;
	}
	if (!S_ISBLK(st.st_mode)) {
		set_err(err, ENOTBLK,
			"cannot use %s: it is %s, not a block device (name a disk or partition such as /dev/vdb; for a file, losetup it first)",
			arg, file_kind(st.st_mode));
		return -1;
	}
	dev->major = major(st.st_rdev);
	dev->minor = minor(st.st_rdev);
	return 0;
}

const char *ferry_blkdev_label(const struct ferry_blkdev *dev, char *buf,
			       size_t len)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu32 ":%" PRIu32, dev->major,
		 dev->minor);
	if (!strcmp(num, dev->name))
		snprintf(buf, len, "%s", num);
	else
		snprintf(buf, len, "%s (%s)", dev->name, num);
	return buf;
}

/* "attach /dev/vdb (254:16): already tracked (...)" */
static void ioctl_err(struct ferry_err *err, enum ferry_op op,
		      const char *verb, const struct ferry_blkdev *dev, int e)
{
	char label[300];

	if (dev)
		set_err(err, e, "%s %s: %s", verb,
			ferry_blkdev_label(dev, label, sizeof(label)),
			ferry_strerror(op, e));
	else
		set_err(err, e, "%s: %s", verb, ferry_strerror(op, e));
}

int ferry_version_get(struct ferry_ctl *ctl, struct ferry_version *v,
		      struct ferry_err *err)
{
	memset(v, 0, sizeof(*v));
	if (do_ioctl(ctl, FERRY_IOC_VERSION, v) < 0) {
		ioctl_err(err, FERRY_OP_VERSION, "version of ferry.ko", NULL,
			  errno);
		return -1;
	}
	/* Never trust the module to terminate the string. */
	v->version[sizeof(v->version) - 1] = '\0';
	return 0;
}

int ferry_attach(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		 uint32_t granularity, uint64_t *generation,
		 struct ferry_err *err)
{
	struct ferry_attach a;

	memset(&a, 0, sizeof(a));
	a.major = dev->major;
	a.minor = dev->minor;
	a.granularity = granularity;
	if (do_ioctl(ctl, FERRY_IOC_ATTACH, &a) < 0) {
		ioctl_err(err, FERRY_OP_ATTACH, "attach", dev, errno);
		return -1;
	}
	if (generation)
		*generation = a.generation;
	return 0;
}

int ferry_detach(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		 struct ferry_err *err)
{
	struct ferry_detach d;

	memset(&d, 0, sizeof(d));
	d.major = dev->major;
	d.minor = dev->minor;
	if (do_ioctl(ctl, FERRY_IOC_DETACH, &d) < 0) {
		ioctl_err(err, FERRY_OP_DETACH, "detach", dev, errno);
		return -1;
	}
	return 0;
}

int ferry_stats_get(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		    struct ferry_stats *st, struct ferry_err *err)
{
	memset(st, 0, sizeof(*st));
	st->major = dev->major;
	st->minor = dev->minor;
	if (do_ioctl(ctl, FERRY_IOC_STATS, st) < 0) {
		ioctl_err(err, FERRY_OP_STATS, "stats of", dev, errno);
		return -1;
	}
	return 0;
}

int ferry_list(struct ferry_ctl *ctl, struct ferry_dev **devs, size_t *nr,
	       struct ferry_err *err)
{
	struct ferry_dev *buf = NULL;
	uint32_t cap = 64;

	/* Devices may be attached between two calls: retry a few times. */
	for (int tries = 0; tries < 8; tries++) {
		struct ferry_dev *nbuf;
		struct ferry_list l;

		nbuf = realloc(buf, cap * sizeof(*buf));
		if (!nbuf) {
			free(buf);
			set_err(err, ENOMEM,
				"list tracked devices: cannot allocate room for %" PRIu32 " devices",
				cap);
			return -1;
		}
		buf = nbuf;
		memset(&l, 0, sizeof(l));
		l.devs = (uintptr_t)buf;
		l.max = cap;
		if (do_ioctl(ctl, FERRY_IOC_LIST, &l) < 0) {
			int e = errno;

			free(buf);
			ioctl_err(err, FERRY_OP_LIST, "list tracked devices",
				  NULL, e);
			return -1;
		}
		if (l.nr <= cap) {
			*devs = buf;
			*nr = l.nr;
			return 0;
		}
		if (l.nr > UINT32_MAX - 64)
			break;
		cap = l.nr + 64;
	}
	free(buf);
	set_err(err, EAGAIN,
		"list tracked devices: the list kept growing while it was read; try again");
	return -1;
}

int ferry_drain(struct ferry_ctl *ctl, const struct ferry_blkdev *dev,
		uint32_t max_page, ferry_drain_fn fn, void *arg,
		struct ferry_drain_info *info, struct ferry_err *err)
{
	struct ferry_extent *buf;
	struct ferry_drain d;
	int ret = -1;

	memset(info, 0, sizeof(*info));
	if (!max_page)
		max_page = DRAIN_PAGE_DEFAULT;
	buf = calloc(max_page, sizeof(*buf));
	if (!buf) {
		set_err(err, ENOMEM,
			"drain %s: cannot allocate a buffer of %" PRIu32 " extents",
			dev->name, max_page);
		return -1;
	}

	memset(&d, 0, sizeof(d));
	for (;;) {
		uint64_t seq = d.sequence, cursor = d.cursor;
		uint32_t flags = info->pages ? FERRY_DRAIN_CONTINUE : 0;

		/* Rebuild the request: reserved words must be zero. */
		memset(&d, 0, sizeof(d));
		d.major = dev->major;
		d.minor = dev->minor;
		d.flags = flags;
		d.max_extents = max_page;
		d.extents = (uintptr_t)buf;
		d.sequence = seq;
		d.cursor = cursor;
		if (do_ioctl(ctl, FERRY_IOC_DRAIN, &d) < 0) {
			ioctl_err(err, FERRY_OP_DRAIN, "drain", dev, errno);
			goto out;
		}
		info->pages++;
		if (info->pages == 1) {
			info->generation = d.generation;
			info->sequence = d.sequence;
			info->set_bytes = d.set_bytes;
		} else if (d.sequence != info->sequence ||
			   d.generation != info->generation) {
			set_err(err, EPROTO,
				"drain %s: the module switched sets while paging (sequence %" PRIu64 " -> %" PRIu64 ", generation %" PRIu64 " -> %" PRIu64 "): %s",
				dev->name, info->sequence,
				(uint64_t)d.sequence, info->generation,
				(uint64_t)d.generation,
				ferry_strerror(FERRY_OP_DRAIN, EPROTO));
			goto out;
		}
		if (d.nr_extents > max_page) {
			set_err(err, EPROTO,
				"drain %s: the module returned %" PRIu32 " extents for a buffer of %" PRIu32 ": %s",
				dev->name, d.nr_extents, max_page,
				ferry_strerror(FERRY_OP_DRAIN, EPROTO));
			goto out;
		}
		info->status |= d.status & ~FERRY_STATUS_MORE;
		for (uint32_t i = 0; i < d.nr_extents; i++) {
			info->extents++;
			info->bytes += buf[i].length;
			if (fn) {
				int r = fn(arg, &buf[i]);

				if (r) {
					ret = r;
					goto out;
				}
			}
		}
		if (!(d.status & FERRY_STATUS_MORE))
			break;
		/* MORE with an empty page would make us spin forever. */
		if (!d.nr_extents) {
			set_err(err, EPROTO,
				"drain %s: the module said MORE but returned no extent: %s",
				dev->name,
				ferry_strerror(FERRY_OP_DRAIN, EPROTO));
			goto out;
		}
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

int ferry_granularity_valid(uint64_t g)
{
	if (!g)
		return 1;
	return g >= FERRY_GRAN_MIN && g <= FERRY_GRAN_MAX && !(g & (g - 1));
}

int ferry_parse_bytes(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned int shift;
	} units[] = {
		{ "", 0 },
		{ "K", 10 }, { "k", 10 }, { "KiB", 10 },
		{ "M", 20 }, { "m", 20 }, { "MiB", 20 },
		{ "G", 30 }, { "g", 30 }, { "GiB", 30 },
		{ "T", 40 }, { "t", 40 }, { "TiB", 40 },
	};
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix))
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -1;
		*out = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -1;
}

const char *ferry_status_bit_name(uint32_t bit)
{
	switch (bit) {
	case FERRY_STATUS_OVERFLOW:
		return "overflow";
	case FERRY_STATUS_GONE:
		return "gone";
	case FERRY_STATUS_RESIZED:
		return "resized";
	case FERRY_STATUS_MORE:
		return "more";
	default:
		return NULL;
	}
}

const char *ferry_status_str(uint32_t status, char *buf, size_t len)
{
	size_t used = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	if (!status) {
		snprintf(buf, len, "ok");
		return buf;
	}
	for (unsigned int i = 0; i < 32; i++) {
		const char *name = ferry_status_bit_name(1u << i);

		if (!(status & (1u << i)) || !name)
			continue;
		status &= ~(1u << i);
		if (used < len)
			used += snprintf(buf + used, len - used, "%s%s",
					 used ? "," : "", name);
	}
	if (status && used < len)
		snprintf(buf + used, len - used, "%s0x%" PRIx32,
			 used ? "," : "", status);
	return buf;
}
