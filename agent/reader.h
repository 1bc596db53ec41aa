/* SPDX-License-Identifier: GPL-2.0 */
/*
 * reader.h - the agent's read path: io_uring reads with O_DIRECT into a
 * fixed set of registered buffers.
 *
 * The buffers are DEPTH slots of CHUNK bytes, aligned for O_DIRECT and
 * registered with the ring once (io_uring_register_buffers), so a read
 * needs no per-I/O page pinning; DEPTH reads can be in flight at once.
 * O_DIRECT because the block device's page cache is not coherent with
 * what filesystems write (docs/tracker.md): a buffered read could return
 * stale data for a block the tracker reported.  The ring signals
 * completions on an eventfd so that one poll() waits for the network and
 * the disks together.
 */
#ifndef FERRY_AGENT_READER_H
#define FERRY_AGENT_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

struct reader {
	struct io_uring ring;
	bool ring_ok;
	bool fixed;		/* buffers registered (else plain reads) */
	unsigned int depth;
	uint32_t chunk;
	uint8_t *mem;		/* depth * chunk bytes */
	int efd;		/* eventfd: completions are waiting */
	unsigned int queued;	/* prepared, not yet submitted */
	unsigned int inflight;	/* submitted, not yet reaped */
};

/* A source device opened for reading. */
struct reader_dev {
	int fd;
	uint64_t size;		/* bytes */
	uint32_t block_size;	/* logical block size: 512 or 4096 */
	bool direct;		/* O_DIRECT (false only for files on a
				 * filesystem without it, e.g. tmpfs) */
	bool blockdev;
	unsigned int major, minor;
};

/* DEPTH slots of CHUNK bytes (a multiple of 4096).  0, or -1 with a
 * reason in ERR. */
int reader_init(struct reader *r, unsigned int depth, uint32_t chunk,
		char *err, size_t errlen);
/* Waits for reads in flight, then frees everything.  Idempotent. */
void reader_free(struct reader *r);

static inline uint8_t *reader_buf(const struct reader *r, unsigned int slot)
{
	return r->mem + (size_t)slot * r->chunk;
}

/*
 * Prepare a read of LEN bytes (<= chunk, a multiple of the device's block
 * size) at OFF of FD into SLOT's buffer, at BUF_OFF within it; it goes to
 * the kernel with reader_submit().  The completion carries SLOT.
 */
int reader_queue(struct reader *r, unsigned int slot, int fd, uint64_t off,
		 uint32_t buf_off, uint32_t len);
/* Submit what was prepared.  0, or -1 with a reason in ERR. */
int reader_submit(struct reader *r, char *err, size_t errlen);

/* Completions: FN(ARG, SLOT, RES) for each, RES as read(2) (bytes or
 * -errno).  WAIT: block until at least one is there (if any is in
 * flight).  Returns how many were handled. */
typedef void (*reader_done_fn)(void *arg, unsigned int slot, int res);
int reader_reap(struct reader *r, bool wait, reader_done_fn fn, void *arg);

/* Reap until nothing is in flight (FN as above). */
void reader_drain(struct reader *r, reader_done_fn fn, void *arg);

/* The eventfd to poll for POLLIN; reader_reap() clears it. */
static inline int reader_fd(const struct reader *r)
{
	return r->efd;
}

/*
 * Open PATH (a block device, or a regular file: the tests' images) for
 * O_DIRECT reads and find its size and logical block size.  The size
 * must be a multiple of 512 (the protocol's sector).  0, or -1 with a
 * reason naming the device in ERR.
 */
int reader_open(const char *path, struct reader_dev *dev, char *err,
		size_t errlen);
void reader_close(struct reader_dev *dev);

/* Is every byte of BUF[LEN] zero? */
bool reader_is_zero(const void *buf, size_t len);

#endif
