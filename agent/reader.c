// SPDX-License-Identifier: GPL-2.0
/*
 * reader.c - io_uring reads into registered, O_DIRECT-aligned buffers
 * (reader.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fs.h>

#include "errmsg.h"
#include "reader.h"

#define ALIGN 4096

int reader_init(struct reader *r, unsigned int depth, uint32_t chunk,
		char *err, size_t errlen)
{
	struct iovec *iov;
	int rc;

	memset(r, 0, sizeof(*r));
	r->efd = -1;
	if (!depth || !chunk || chunk % ALIGN) {
		set_err(err, errlen,
			"reader: queue depth %u and chunk %u: need a depth of "
			"1 or more and a chunk that is a multiple of %d",
			depth, chunk, ALIGN);
		return -1;
	}
	r->depth = depth;
	r->chunk = chunk;
	if (posix_memalign((void **)&r->mem, ALIGN, (size_t)depth * chunk)) {
		set_err(err, errlen,
			"reader: cannot allocate %u buffers of %u bytes", depth,
			chunk);
		return -1;
	}
	/* Touch the buffers now: registration pins them anyway. */
	memset(r->mem, 0, (size_t)depth * chunk);
	rc = io_uring_queue_init(depth, &r->ring, 0);
	if (rc < 0) {
		set_err(err, errlen,
			"io_uring_queue_init(%u): %s (the agent needs io_uring; "
			"is it disabled by sysctl kernel.io_uring_disabled?)",
			depth, strerror(-rc));
		goto fail;
	}
	r->ring_ok = true;
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->efd < 0) {
		set_err(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	rc = io_uring_register_eventfd(&r->ring, r->efd);
	if (rc < 0) {
		set_err(err, errlen, "io_uring_register_eventfd: %s",
			strerror(-rc));
		goto fail;
	}
	iov = calloc(depth, sizeof(*iov));
	if (!iov) {
		set_err(err, errlen, "reader: out of memory");
		goto fail;
	}
	for (unsigned int i = 0; i < depth; i++) {
		iov[i].iov_base = reader_buf(r, i);
		iov[i].iov_len = chunk;
	}
	/* Registered buffers are pinned once; without them (RLIMIT_MEMLOCK
	 * for a non-root user) plain reads still work, a little slower. */
	r->fixed = io_uring_register_buffers(&r->ring, iov, depth) == 0;
	free(iov);
	return 0;
fail:
	reader_free(r);
	return -1;
}

static void ignore_done(void *arg, unsigned int slot, int res)
{
}

void reader_free(struct reader *r)
{
	if (r->ring_ok) {
		reader_drain(r, ignore_done, NULL);
		io_uring_queue_exit(&r->ring);
		r->ring_ok = false;
	}
	if (r->efd >= 0)
		close(r->efd);
	r->efd = -1;
	free(r->mem);
	r->mem = NULL;
}

int reader_queue(struct reader *r, unsigned int slot, int fd, uint64_t off,
		 uint32_t buf_off, uint32_t len)
{
	struct io_uring_sqe *sqe;
	uint8_t *buf = reader_buf(r, slot) + buf_off;

	if (slot >= r->depth || buf_off + (uint64_t)len > r->chunk)
		return -1;
	sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		/* The ring has DEPTH entries and at most DEPTH reads are
		 * ever outstanding, so this only happens if a caller
		 * queues more than that without submitting. */
		io_uring_submit(&r->ring);
		r->inflight += r->queued;
		r->queued = 0;
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			return -1;
	}
	if (r->fixed)
		io_uring_prep_read_fixed(sqe, fd, buf, len, off, (int)slot);
	else
		io_uring_prep_read(sqe, fd, buf, len, off);
	io_uring_sqe_set_data64(sqe, slot);
	r->queued++;
	return 0;
}

int reader_submit(struct reader *r, char *err, size_t errlen)
{
	int rc;

	if (!r->queued)
		return 0;
	do
		rc = io_uring_submit(&r->ring);
	while (rc == -EINTR);
	if (rc < 0) {
		set_err(err, errlen, "io_uring_submit: %s", strerror(-rc));
		return -1;
	}
	r->inflight += r->queued;
	r->queued = 0;
	return 0;
}

int reader_reap(struct reader *r, bool wait, reader_done_fn fn, void *arg)
{
	struct io_uring_cqe *cqe;
	uint64_t junk;
	int n = 0, rc;

	/* Clear the eventfd first: a completion after this re-arms it. */
	if (read(r->efd, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
		return -1;
	for (;;) {
		if (wait && !n && r->inflight)
			rc = io_uring_wait_cqe(&r->ring, &cqe);
		else
			rc = io_uring_peek_cqe(&r->ring, &cqe);
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			break;
		unsigned int slot = (unsigned int)io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&r->ring, cqe);
		if (r->inflight)
			r->inflight--;
		fn(arg, slot, res);
		n++;
	}
	return n;
}

void reader_drain(struct reader *r, reader_done_fn fn, void *arg)
{
	char e[128];

	/* FN may queue the rest of a short read: submitted and waited for
	 * too, or it would land later in a buffer given to another read. */
	for (;;) {
		if (r->queued)
			reader_submit(r, e, sizeof(e));
		if (!r->inflight)
			break;
		if (reader_reap(r, true, fn, arg) < 0)
			break;
	}
}

int reader_open(const char *path, struct reader_dev *dev, char *err,
		size_t errlen)
{
	struct stat st;
	int sz;

	memset(dev, 0, sizeof(*dev));
	dev->fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	dev->direct = true;
	if (dev->fd < 0 && errno == EINVAL) {
		/* A filesystem without O_DIRECT (tmpfs): only test
		 * images live there, never a source disk. */
		dev->fd = open(path, O_RDONLY | O_CLOEXEC);
		dev->direct = false;
	}
	if (dev->fd < 0) {
		set_err(err, errlen, "cannot open %s for reading: %s", path,
			strerror(errno));
		return -1;
	}
	if (fstat(dev->fd, &st)) {
		set_err(err, errlen, "stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		dev->blockdev = true;
		dev->major = major(st.st_rdev);
		dev->minor = minor(st.st_rdev);
		if (ioctl(dev->fd, BLKGETSIZE64, &dev->size)) {
			set_err(err, errlen, "%s: BLKGETSIZE64: %s", path,
				strerror(errno));
			goto fail;
		}
		if (ioctl(dev->fd, BLKSSZGET, &sz) || sz <= 0) {
			set_err(err, errlen, "%s: BLKSSZGET: %s", path,
				strerror(errno));
			goto fail;
		}
		dev->block_size = (uint32_t)sz;
	} else if (S_ISREG(st.st_mode)) {
		dev->size = (uint64_t)st.st_size;
		dev->block_size = 512;
	} else {
		set_err(err, errlen,
			"%s is neither a block device nor a disk image file",
			path);
		goto fail;
	}
	if (dev->block_size != 512 && dev->block_size != 4096) {
		set_err(err, errlen,
			"%s has a logical block size of %u bytes; the protocol "
			"carries 512 or 4096", path, dev->block_size);
		goto fail;
	}
	if (!dev->size || dev->size % dev->block_size) {
		set_err(err, errlen,
			"%s: size %llu is not a positive multiple of its "
			"block size %u", path, (unsigned long long)dev->size,
			dev->block_size);
		goto fail;
	}
	return 0;
fail:
	close(dev->fd);
	dev->fd = -1;
	return -1;
}

void reader_close(struct reader_dev *dev)
{
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
}

bool reader_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t head = len < 16 ? len : 16;

	for (size_t i = 0; i < head; i++)
		if (p[i])
			return false;
	/* The first 16 bytes are zero; every byte equal to the one 16
	 * before it makes all of them zero. */
	return len <= 16 || !memcmp(p, p + 16, len - 16);
}
