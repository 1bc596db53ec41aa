// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-badargs DEV: call every ioctl of /dev/ferry-ctl with bad arguments
 * and check the errno documented in include/ferry/tracker_ioctl.h, and that
 * a refused call changed nothing (DESIGN.md invariant 4).  Prints one
 * `ok` or `FAIL` line per check and exits 1 if any failed.
 *
 * DEV is a scratch block device that is not tracked: it gets attached and
 * detached, and a few of its blocks are overwritten.  Run as root.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>
#include <linux/capability.h>

#include "extent.h"
#include "kt_common.h"
#include "tracker.h"

#define NOBODY	65534
#define GRAN	FERRY_GRAN_DEFAULT

/* In shared memory so checks run in forked children count too. */
static unsigned int *counts;
#define passed		(counts[0])
#define failures	(counts[1])
static int ctl = -1;
static uint32_t dev_major, dev_minor;
static const char *dev_path;
static int dev_fd = -1;		/* O_DIRECT writer for making blocks dirty */
static void *wbuf;

static void report(bool ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(bool ok, const char *fmt, ...)
{
	va_list ap;

	fputs(ok ? "ok   " : "FAIL ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	if (ok)
		passed++;
	else
		failures++;
}

/* ioctl returning 0 or the errno. */
static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? errno : 0;
}

/* The central check: the call returned want (0 for success). */
static bool expect(const char *what, int got, int want)
{
	if (got == want)
		report(true, "%s -> %s", what, kt_errno_name(want));
	else
		report(false, "%s: got %s (%s), want %s", what,
		       kt_errno_name(got), got ? strerror(got) : "success",
		       kt_errno_name(want));
	return got == want;
}

static int do_attach(uint32_t maj, uint32_t min, uint32_t gran,
		     uint32_t flags, int reserved_idx)
{
	struct ferry_attach a;

	memset(&a, 0, sizeof(a));
	a.major = maj;
	a.minor = min;
	a.granularity = gran;
	a.flags = flags;
	if (reserved_idx >= 0)
		a.reserved[reserved_idx] = 1;
	return xioctl(ctl, FERRY_IOC_ATTACH, &a);
}

static int do_detach(void)
{
	struct ferry_detach d;

	memset(&d, 0, sizeof(d));
	d.major = dev_major;
	d.minor = dev_minor;
	return xioctl(ctl, FERRY_IOC_DETACH, &d);
}

static int do_stats(struct ferry_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->major = dev_major;
	st->minor = dev_minor;
	return xioctl(ctl, FERRY_IOC_STATS, st);
}

static void init_drain(struct ferry_drain *d, struct ferry_extent *buf,
		       uint32_t max)
{
	memset(d, 0, sizeof(*d));
	d->major = dev_major;
	d->minor = dev_minor;
	d->max_extents = max;
	d->extents = (uintptr_t)buf;
}

/* A refused call must leave the device untracked (or tracked). */
static void expect_tracked(const char *after, bool tracked)
{
	struct ferry_stats st;
	int e = do_stats(&st);

	if (tracked)
		report(e == 0, "%s: device still tracked%s%s", after,
		       e ? ", but STATS says " : "", e ? kt_errno_name(e) : "");
	else
		report(e == ENOENT, "%s: device still not tracked%s%s", after,
		       e != ENOENT ? ", but STATS says " : "",
		       e != ENOENT ? kt_errno_name(e) : "");
}

/* Make block number b of the device dirty with an O_DIRECT write. */
static void dirty_block(uint64_t b)
{
	if (kt_pwrite_full(dev_fd, wbuf, GRAN, b * GRAN) < 0)
		kt_die("O_DIRECT write of block %" PRIu64 " of %s failed: %s",
		       b, dev_path, strerror(errno));
}

/*
 * Drain everything (fresh drain, then CONTINUE pages) into set; returns 0
 * or the errno of the first failing call.
 */
static int drain_all(struct extent_set *set, uint32_t page)
{
	struct ferry_extent buf[64];
	struct ferry_drain d;
	uint64_t seq = 0, cursor = 0;
	bool first = true;

	for (;;) {
		int e;

		init_drain(&d, buf, page);
		if (!first) {
			d.flags = FERRY_DRAIN_CONTINUE;
			d.sequence = seq;
			d.cursor = cursor;
		}
		e = xioctl(ctl, FERRY_IOC_DRAIN, &d);
		if (e)
			return e;
		for (uint32_t i = 0; i < d.nr_extents && i < page; i++)
			extent_set_add(set, buf[i].offset, buf[i].length);
		if (!(d.status & FERRY_STATUS_MORE))
			return 0;
		first = false;
		seq = d.sequence;
		cursor = d.cursor;
	}
}

static void check_node(void)
{
	struct stat st;

	if (stat(FERRY_CTL_PATH, &st) < 0) {
		report(false, "stat %s: %s", FERRY_CTL_PATH, strerror(errno));
		return;
	}
	report(S_ISCHR(st.st_mode) && (st.st_mode & 07777) == 0600 &&
	       st.st_uid == 0,
	       "%s is a character device, mode 0600, owner root (mode %04o, uid %u)",
	       FERRY_CTL_PATH, (unsigned int)(st.st_mode & 07777),
	       (unsigned int)st.st_uid);
}

static void check_version(void)
{
	struct ferry_version v;
	int e;

	memset(&v, 0xff, sizeof(v));
	e = xioctl(ctl, FERRY_IOC_VERSION, &v);
	if (expect("VERSION", e, 0)) {
		report(v.abi == FERRY_ABI_VERSION, "VERSION abi is %u (got %u)",
		       FERRY_ABI_VERSION, v.abi);
		report(memchr(v.version, '\0', sizeof(v.version)) != NULL,
		       "VERSION string is NUL-terminated");
		report(v.reserved0 == 0, "VERSION reserved0 is zeroed (got %u)",
		       v.reserved0);
	}
	expect("VERSION with a NULL pointer", xioctl(ctl, FERRY_IOC_VERSION,
						      NULL), EFAULT);
}

static void check_attach_errors(void)
{
	static const uint32_t bad_gran[] = {
		1000, 3000, 6144, 2048, 512, 1u << 31, 0xffffffffu,
		FERRY_GRAN_MIN + 1,
	};
	char what[128];
	int e;

	expect("ATTACH 0:0 (no such device)", do_attach(0, 0, 0, 0, -1),
	       ENODEV);
	expect("ATTACH 259:9999 (no such device)",
	       do_attach(259, 9999, 0, 0, -1), ENODEV);
	for (size_t i = 0; i < sizeof(bad_gran) / sizeof(bad_gran[0]); i++) {
		snprintf(what, sizeof(what), "ATTACH granularity %" PRIu32,
			 bad_gran[i]);
		if (expect(what, do_attach(dev_major, dev_minor, bad_gran[i], 0,
					   -1), EINVAL))
			continue;
		do_detach();	/* it was wrongly attached: undo */
	}
	expect_tracked("after refused ATTACHes", false);

	/*
	 * dev_t has 12 bits of major and 20 of minor: MKDEV(M - 1, 2^20 + m)
	 * and MKDEV(M + 4096, m) are both DEV itself.  A module that does
	 * not range-check would track DEV under a name that is not its own.
	 */
	if (dev_major > 0) {
		e = do_attach(dev_major - 1, (1u << 20) + dev_minor, 0, 0, -1);
		report(e == ENODEV || e == EINVAL,
		       "ATTACH %u:%u (minor beyond 20 bits, aliases %u:%u) -> ENODEV or EINVAL (got %s)",
		       dev_major - 1, (1u << 20) + dev_minor, dev_major,
		       dev_minor, kt_errno_name(e));
		if (!e)
			do_detach();
	}
	e = do_attach(dev_major + 4096, dev_minor, 0, 0, -1);
	report(e == ENODEV || e == EINVAL,
	       "ATTACH %u:%u (major beyond 12 bits, aliases %u:%u) -> ENODEV or EINVAL (got %s)",
	       dev_major + 4096, dev_minor, dev_major, dev_minor,
	       kt_errno_name(e));
	if (!e)
		do_detach();
	expect_tracked("after ATTACHes with out-of-range numbers", false);

	if (!expect("ATTACH flags=1", do_attach(dev_major, dev_minor, 0, 1,
						 -1), EINVAL))
		do_detach();
	for (int k = 0; k < 4; k++) {
		snprintf(what, sizeof(what), "ATTACH reserved[%d]=1", k);
		if (!expect(what, do_attach(dev_major, dev_minor, 0, 0, k),
			    EINVAL))
			do_detach();
	}
	expect_tracked("after ATTACHes with bad fields", false);
	expect("ATTACH with a NULL pointer",
	       xioctl(ctl, FERRY_IOC_ATTACH, NULL), EFAULT);
	expect_tracked("after ATTACH with a NULL pointer", false);
}

static void check_untracked(void)
{
	struct ferry_extent buf[4];
	struct ferry_stats st;
	struct ferry_drain d;

	expect("DETACH of an untracked device", do_detach(), ENOENT);
	expect("STATS of an untracked device", do_stats(&st), ENOENT);
	init_drain(&d, buf, 4);
	expect("DRAIN of an untracked device",
	       xioctl(ctl, FERRY_IOC_DRAIN, &d), ENOENT);
	init_drain(&d, buf, 4);
	d.major = 0;
	d.minor = 0;
	expect("DRAIN of 0:0", xioctl(ctl, FERRY_IOC_DRAIN, &d), ENOENT);
}

static void check_attached(void)
{
	struct ferry_attach a;
	struct ferry_stats st;
	char what[64];
	int e;

	memset(&a, 0, sizeof(a));
	a.major = dev_major;
	a.minor = dev_minor;
	e = xioctl(ctl, FERRY_IOC_ATTACH, &a);
	if (!expect("ATTACH granularity 0 (the default)", e, 0))
		kt_die("cannot attach %s: the remaining checks need it",
		       dev_path);
	if (expect("STATS", do_stats(&st), 0)) {
		report(st.granularity == FERRY_GRAN_DEFAULT,
		       "STATS granularity is the default %u (got %" PRIu32 ")",
		       FERRY_GRAN_DEFAULT, st.granularity);
		report(st.generation == a.generation,
		       "STATS generation equals ATTACH's (%" PRIu64 " vs %"
		       PRIu64 ")", (uint64_t)st.generation,
		       (uint64_t)a.generation);
	}
	expect("ATTACH again (same granularity)",
	       do_attach(dev_major, dev_minor, 0, 0, -1), EEXIST);
	expect("ATTACH again (granularity 65536)",
	       do_attach(dev_major, dev_minor, 65536, 0, -1), EEXIST);
	if (do_stats(&st) == 0)
		report(st.granularity == FERRY_GRAN_DEFAULT &&
		       st.generation == a.generation,
		       "refused re-ATTACH changed neither granularity nor generation");

	/* DETACH with bad fields must not detach. */
	{
		struct ferry_detach d;

		memset(&d, 0, sizeof(d));
		d.major = dev_major;
		d.minor = dev_minor;
		d.flags = 1;
		expect("DETACH flags=1", xioctl(ctl, FERRY_IOC_DETACH, &d),
		       EINVAL);
		d.flags = 0;
		d.reserved0 = 1;
		expect("DETACH reserved0=1", xioctl(ctl, FERRY_IOC_DETACH, &d),
		       EINVAL);
		d.reserved0 = 0;
		for (int k = 0; k < 2; k++) {
			memset(d.reserved, 0, sizeof(d.reserved));
			d.reserved[k] = 1;
			snprintf(what, sizeof(what), "DETACH reserved[%d]=1", k);
			expect(what, xioctl(ctl, FERRY_IOC_DETACH, &d), EINVAL);
		}
		expect("DETACH with a NULL pointer",
		       xioctl(ctl, FERRY_IOC_DETACH, NULL), EFAULT);
		expect_tracked("after refused DETACHes", true);
	}

	/* STATS with bad fields. */
	for (int k = 0; k < 8; k += 7) {
		memset(&st, 0, sizeof(st));
		st.major = dev_major;
		st.minor = dev_minor;
		st.reserved[k] = 1;
		snprintf(what, sizeof(what), "STATS reserved[%d]=1", k);
		expect(what, xioctl(ctl, FERRY_IOC_STATS, &st), EINVAL);
	}
	expect("STATS with a NULL pointer",
	       xioctl(ctl, FERRY_IOC_STATS, NULL), EFAULT);
}

static void check_drain_errors(void)
{
	struct ferry_extent buf[16];
	struct extent_set got = EXTENT_SET_INIT;
	struct ferry_drain d;
	char what[64];
	void *ro;
	int e;

	/* Empty the set, then dirty block 0. */
	drain_all(&got, 16);
	extent_set_clear(&got);
	dirty_block(0);

	init_drain(&d, buf, 0);
	expect("DRAIN max_extents=0", xioctl(ctl, FERRY_IOC_DRAIN, &d),
	       ENOBUFS);
	init_drain(&d, buf, 16);
	d.flags = 1u << 1;
	expect("DRAIN unknown flag 0x2", xioctl(ctl, FERRY_IOC_DRAIN, &d),
	       EINVAL);
	for (int k = 0; k < 4; k++) {
		init_drain(&d, buf, 16);
		d.reserved[k] = 1;
		snprintf(what, sizeof(what), "DRAIN reserved[%d]=1", k);
		expect(what, xioctl(ctl, FERRY_IOC_DRAIN, &d), EINVAL);
	}
	/*
	 * The header allows two readings of a NULL buffer: "not writable"
	 * (EFAULT) or "cannot hold one extent" (ENOBUFS).  Either is a clear
	 * refusal; what matters is that it takes nothing (checked below).
	 */
	init_drain(&d, NULL, 16);
	e = xioctl(ctl, FERRY_IOC_DRAIN, &d);
	report(e == EFAULT || e == ENOBUFS,
	       "DRAIN into a NULL buffer -> EFAULT or ENOBUFS (got %s)",
	       kt_errno_name(e));
	ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro != MAP_FAILED) {
		init_drain(&d, ro, 16);
		expect("DRAIN into a read-only buffer",
		       xioctl(ctl, FERRY_IOC_DRAIN, &d), EFAULT);
		munmap(ro, 4096);
	}
	expect("DRAIN with a NULL pointer", xioctl(ctl, FERRY_IOC_DRAIN, NULL),
	       EFAULT);

	/* Invariant 4: none of the refused drains may have lost block 0. */
	e = drain_all(&got, 16);
	report(!e && extent_set_contains(&got, 0, GRAN),
	       "block 0 written before the refused DRAINs is still drained afterwards%s%s",
	       e ? ": DRAIN failed with " : "", e ? kt_errno_name(e) : "");
	extent_set_free(&got);
}

/* Blocks 0, 2 and 4: three extents that cannot coalesce. */
static void dirty_three(void)
{
	dirty_block(0);
	dirty_block(2);
	dirty_block(4);
}

static bool has_three(const struct extent_set *s)
{
	return extent_set_contains(s, 0, GRAN) &&
	       extent_set_contains(s, 2 * GRAN, GRAN) &&
	       extent_set_contains(s, 4 * GRAN, GRAN);
}

static void check_continue(void)
{
	struct extent_set got = EXTENT_SET_INIT;
	struct ferry_extent buf[16];
	struct ferry_drain d, first;
	uint64_t seq, cursor;
	int e;

	/* CONTINUE when no drain is in progress. */
	drain_all(&got, 16);
	extent_set_clear(&got);
	init_drain(&d, buf, 16);
	d.flags = FERRY_DRAIN_CONTINUE;
	d.sequence = 0x5eed5eed;
	expect("DRAIN CONTINUE with a sequence never issued",
	       xioctl(ctl, FERRY_IOC_DRAIN, &d), ESTALE);

	/* Page through three extents one at a time, with wrong keys between. */
	dirty_three();
	init_drain(&first, buf, 1);
	e = xioctl(ctl, FERRY_IOC_DRAIN, &first);
	if (!expect("DRAIN max_extents=1 of 3 dirty blocks", e, 0))
		return;
	report(first.nr_extents == 1 && (first.status & FERRY_STATUS_MORE),
	       "first page has 1 extent and MORE (nr %" PRIu32 ", status 0x%"
	       PRIx32 ")", first.nr_extents, first.status);
	if (first.nr_extents == 1)
		extent_set_add(&got, buf[0].offset, buf[0].length);
	seq = first.sequence;
	cursor = first.cursor;

	init_drain(&d, buf, 1);
	d.flags = FERRY_DRAIN_CONTINUE;
	d.sequence = seq + 1;
	d.cursor = cursor;
	expect("DRAIN CONTINUE with a wrong sequence",
	       xioctl(ctl, FERRY_IOC_DRAIN, &d), ESTALE);
	init_drain(&d, buf, 1);
	d.flags = FERRY_DRAIN_CONTINUE;
	d.sequence = seq;
	d.cursor = cursor ^ 0x5a5a5a5a00000000ull;
	expect("DRAIN CONTINUE with a wrong cursor",
	       xioctl(ctl, FERRY_IOC_DRAIN, &d), ESTALE);

	/* The right keys still work after the refused ones. */
	for (;;) {
		init_drain(&d, buf, 1);
		d.flags = FERRY_DRAIN_CONTINUE;
		d.sequence = seq;
		d.cursor = cursor;
		e = xioctl(ctl, FERRY_IOC_DRAIN, &d);
		if (e)
			break;
		if (d.nr_extents == 1)
			extent_set_add(&got, buf[0].offset, buf[0].length);
		if (!(d.status & FERRY_STATUS_MORE))
			break;
		seq = d.sequence;
		cursor = d.cursor;
	}
	expect("DRAIN CONTINUE with the right sequence and cursor", e, 0);
	report(has_three(&got),
	       "paging one extent at a time returned blocks 0, 2 and 4");

	/* The set was read to the end: nothing left to continue. */
	init_drain(&d, buf, 1);
	d.flags = FERRY_DRAIN_CONTINUE;
	d.sequence = seq;
	d.cursor = cursor;
	e = xioctl(ctl, FERRY_IOC_DRAIN, &d);
	report(e == ESTALE || (e == 0 && d.nr_extents == 0 &&
			       !(d.status & FERRY_STATUS_MORE)),
	       "DRAIN CONTINUE after the last page -> ESTALE or empty (got %s, %"
	       PRIu32 " extents)", kt_errno_name(e), e ? 0 : d.nr_extents);

	/* A fresh drain in the middle of paging folds the rest in. */
	extent_set_clear(&got);
	dirty_three();
	init_drain(&first, buf, 1);
	e = xioctl(ctl, FERRY_IOC_DRAIN, &first);
	if (!e && first.nr_extents == 1)
		extent_set_add(&got, buf[0].offset, buf[0].length);
	e = e ? e : drain_all(&got, 16);
	report(!e && has_three(&got),
	       "a fresh DRAIN while paging returns the unread rest (nothing dropped)%s%s",
	       e ? ": " : "", e ? kt_errno_name(e) : "");
	init_drain(&d, buf, 1);
	d.flags = FERRY_DRAIN_CONTINUE;
	d.sequence = first.sequence;
	d.cursor = first.cursor;
	expect("DRAIN CONTINUE of a set superseded by a fresh DRAIN",
	       xioctl(ctl, FERRY_IOC_DRAIN, &d), ESTALE);
	extent_set_free(&got);
}

static void check_list(void)
{
	struct ferry_dev devs[64];
	struct ferry_list l;
	bool found = false;
	int e;

	memset(&l, 0, sizeof(l));
	e = xioctl(ctl, FERRY_IOC_LIST, &l);
	if (expect("LIST max=0", e, 0))
		report(l.nr >= 1, "LIST max=0 reports the number tracked (%"
		       PRIu32 ", want >= 1)", l.nr);
	memset(&l, 0, sizeof(l));
	l.devs = (uintptr_t)devs;
	l.max = 64;
	e = xioctl(ctl, FERRY_IOC_LIST, &l);
	if (expect("LIST", e, 0)) {
		for (uint32_t i = 0; i < l.nr && i < 64; i++)
			if (devs[i].major == dev_major &&
			    devs[i].minor == dev_minor)
				found = true;
		report(found, "LIST contains %s (%u:%u)", dev_path, dev_major,
		       dev_minor);
	}
	memset(&l, 0, sizeof(l));
	l.devs = (uintptr_t)devs;
	l.max = 64;
	l.reserved[1] = 1;
	expect("LIST reserved[1]=1", xioctl(ctl, FERRY_IOC_LIST, &l), EINVAL);
	memset(&l, 0, sizeof(l));
	l.max = 4;
	expect("LIST into a NULL buffer", xioctl(ctl, FERRY_IOC_LIST, &l),
	       EFAULT);
	expect("LIST with a NULL pointer", xioctl(ctl, FERRY_IOC_LIST, NULL),
	       EFAULT);
}

static void check_unknown_ioctls(void)
{
	struct { char c[8]; } small;
	struct ferry_version v;

	memset(&small, 0, sizeof(small));
	expect("unknown ioctl number _IO(0xF3, 0x7f)",
	       xioctl(ctl, _IO(FERRY_IOC_MAGIC, 0x7f), NULL), ENOTTY);
	/* The number encodes the size: a wrong size is another ioctl. */
	expect("ATTACH number with a wrong size",
	       xioctl(ctl, _IOWR(FERRY_IOC_MAGIC, 1, small), &small), ENOTTY);
	expect("VERSION with another magic",
	       xioctl(ctl, _IOR('x', 0, struct ferry_version), &v), ENOTTY);
}

/*
 * Each unprivileged caller must get EPERM from every ioctl, before any
 * other check: the arguments here are all valid (and name the tracked
 * device), so any other answer means the permission check came too late.
 */
static void all_eperm(const char *who, int fd)
{
	struct ferry_extent buf[4];
	struct ferry_version v;
	struct ferry_attach a;
	struct ferry_detach dt;
	struct ferry_stats st;
	struct ferry_drain d;
	struct ferry_dev devs[4];
	struct ferry_list l;
	char what[128];

	memset(&a, 0, sizeof(a));
	a.major = dev_major;
	a.minor = dev_minor;
	memset(&dt, 0, sizeof(dt));
	dt.major = dev_major;
	dt.minor = dev_minor;
	memset(&st, 0, sizeof(st));
	st.major = dev_major;
	st.minor = dev_minor;
	init_drain(&d, buf, 4);
	memset(&l, 0, sizeof(l));
	l.devs = (uintptr_t)devs;
	l.max = 4;

	snprintf(what, sizeof(what), "%s: VERSION", who);
	expect(what, xioctl(fd, FERRY_IOC_VERSION, &v), EPERM);
	snprintf(what, sizeof(what), "%s: ATTACH", who);
	expect(what, xioctl(fd, FERRY_IOC_ATTACH, &a), EPERM);
	snprintf(what, sizeof(what), "%s: DETACH", who);
	expect(what, xioctl(fd, FERRY_IOC_DETACH, &dt), EPERM);
	snprintf(what, sizeof(what), "%s: DRAIN", who);
	expect(what, xioctl(fd, FERRY_IOC_DRAIN, &d), EPERM);
	snprintf(what, sizeof(what), "%s: STATS", who);
	expect(what, xioctl(fd, FERRY_IOC_STATS, &st), EPERM);
	snprintf(what, sizeof(what), "%s: LIST", who);
	expect(what, xioctl(fd, FERRY_IOC_LIST, &l), EPERM);
}

/* Run fn in a child (privileges are dropped there); count its results. */
static void in_child(void (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		kt_die("fork failed: %s", strerror(errno));
	if (pid == 0) {
		fn();
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		report(false, "privilege check child failed (status 0x%x)",
		       status);
}

/* uid 0 without CAP_SYS_ADMIN: can open the node, ioctls are EPERM. */
static void child_no_cap(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
	};
	struct __user_cap_data_struct data[2];
	int fd;

	if (syscall(SYS_capget, &hdr, data) < 0)
		kt_die("capget failed: %s", strerror(errno));
	data[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
	data[CAP_SYS_ADMIN / 32].permitted &= ~(1u << (CAP_SYS_ADMIN % 32));
	data[CAP_SYS_ADMIN / 32].inheritable &= ~(1u << (CAP_SYS_ADMIN % 32));
	if (syscall(SYS_capset, &hdr, data) < 0)
		kt_die("capset (dropping CAP_SYS_ADMIN) failed: %s",
		       strerror(errno));
	all_eperm("root without CAP_SYS_ADMIN, inherited fd", ctl);
	fd = open(FERRY_CTL_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		report(false, "root without CAP_SYS_ADMIN: open %s: %s",
		       FERRY_CTL_PATH, strerror(errno));
		return;
	}
	all_eperm("root without CAP_SYS_ADMIN, own fd", fd);
	close(fd);
}

/* uid 65534: the 0600 node cannot be opened; a kept fd gets EPERM. */
static void child_nobody(void)
{
	int fd;

	if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0)
		kt_die("dropping to uid %d failed: %s", NOBODY,
		       strerror(errno));
	fd = open(FERRY_CTL_PATH, O_RDWR | O_CLOEXEC);
	expect("uid 65534: open " FERRY_CTL_PATH, fd < 0 ? errno : 0, EACCES);
	if (fd >= 0)
		close(fd);
	all_eperm("uid 65534, fd opened as root", ctl);
}

static void check_privileges(void)
{
	struct ferry_stats st;

	in_child(child_no_cap);
	in_child(child_nobody);
	expect("STATS as root after the unprivileged calls", do_stats(&st), 0);
}

int main(int argc, char **argv)
{
	struct ferry_blkdev dev;
	struct ferry_err err;
	struct ferry_stats st;

	kt_prog = "ferry-badargs";
	counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		kt_die("mmap of the shared counters failed: %s",
		       strerror(errno));
	if (argc != 2 || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "--help")) {
		printf("usage: ferry-badargs DEV\n\n"
		       "Check the documented errno of every ferry.ko ioctl with bad arguments.\n"
		       "DEV: a scratch, untracked block device (a few blocks get overwritten).\n");
		return argc == 2 ? 0 : 2;
	}
	dev_path = argv[1];
	if (ferry_blkdev_resolve(dev_path, &dev, &err) < 0)
		kt_die("%s", err.msg);
	dev_major = dev.major;
	dev_minor = dev.minor;
	dev_fd = open(dev_path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (dev_fd < 0)
		kt_die("cannot open %s with O_DIRECT: %s", dev_path,
		       strerror(errno));
	wbuf = kt_aligned_alloc(4096, GRAN);
	memset(wbuf, 0xa5, GRAN);
	ctl = open(FERRY_CTL_PATH, O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		kt_die("cannot open %s: %s", FERRY_CTL_PATH,
		       ferry_strerror(FERRY_OP_OPEN, errno));
	if (do_stats(&st) != ENOENT)
		kt_die("%s is tracked already (or STATS fails): give an untracked scratch device",
		       dev_path);

	check_node();
	check_version();
	check_attach_errors();
	check_untracked();
	check_attached();
	check_drain_errors();
	check_continue();
	check_list();
	check_unknown_ioctls();
	check_privileges();

	expect("DETACH", do_detach(), 0);
	expect("DETACH again", do_detach(), ENOENT);
	expect_tracked("after DETACH", false);

	printf("ferry-badargs: %u checks passed, %u failed\n", passed,
	       failures);
	return failures ? 1 : 0;
}
