// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the guest test programs: see kt_common.h.
 */
#include "kt_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/fs.h>

#include "tracker.h"

const char *kt_prog = "ferry-test";

noreturn void kt_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", kt_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

noreturn void kt_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", kt_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", kt_prog);
	exit(2);
}

void kt_rng_seed(struct kt_rng *r, uint64_t seed)
{
	r->state = seed;
}

uint64_t kt_rng_next(struct kt_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t kt_rng_below(struct kt_rng *r, uint64_t n)
{
	/* Rejection sampling: no modulo bias, which matters for offsets. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t v;

	do {
		v = kt_rng_next(r);
	} while (v >= limit);
	return v % n;
}

void kt_rng_fill(struct kt_rng *r, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len >= 8) {
		uint64_t v = kt_rng_next(r);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = kt_rng_next(r);

		memcpy(p, &v, len);
	}
}

uint64_t kt_parse_bytes(const char *opt, const char *s)
{
	uint64_t v;

	if (ferry_parse_bytes(s, &v) < 0)
		kt_usage("%s: '%s' is not a byte count (digits, optional K/M/G suffix)",
			 opt, s);
	return v;
}

void kt_parse_range(const char *opt, const char *s, uint64_t *off,
		    uint64_t *len)
{
	const char *colon = strchr(s, ':');
	char head[64];

	if (!colon || (size_t)(colon - s) >= sizeof(head))
		kt_usage("%s: '%s' is not OFFSET:LENGTH", opt, s);
	memcpy(head, s, colon - s);
	head[colon - s] = '\0';
	*off = kt_parse_bytes(opt, head);
	*len = kt_parse_bytes(opt, colon + 1);
}

int kt_blkdev_size(int fd, uint64_t *size)
{
	return ioctl(fd, BLKGETSIZE64, size);
}

int kt_blkdev_lbs(int fd, unsigned int *lbs)
{
	int v;

	if (ioctl(fd, BLKSSZGET, &v) < 0)
		return -1;
	*lbs = (unsigned int)v;
	return 0;
}

void *kt_aligned_alloc(size_t align, size_t len)
{
	void *p;
	int err = posix_memalign(&p, align, len);

	if (err)
		kt_die("cannot allocate %zu bytes aligned to %zu: %s", len,
		       align, strerror(err));
	return p;
}

int kt_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENODATA;	/* past the end of the device */
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int kt_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

const char *kt_errno_name(int e)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
		{ 0, "success" }, { EPERM, "EPERM" }, { ENOENT, "ENOENT" },
		{ EINTR, "EINTR" }, { EIO, "EIO" }, { ENXIO, "ENXIO" },
		{ EBADF, "EBADF" }, { EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" },
		{ EACCES, "EACCES" }, { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },
		{ ENOTBLK, "ENOTBLK" }, { EINVAL, "EINVAL" },
		{ ENOTTY, "ENOTTY" }, { ENOSPC, "ENOSPC" },
		{ ERANGE, "ERANGE" }, { ENOSYS, "ENOSYS" },
		{ ENOBUFS, "ENOBUFS" }, { EOPNOTSUPP, "EOPNOTSUPP" },
		{ ESTALE, "ESTALE" }, { EOVERFLOW, "EOVERFLOW" },
		{ EPROTO, "EPROTO" }, { ENODATA, "ENODATA" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	return "E?";
}
