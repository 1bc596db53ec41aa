// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-race: the agent's replication loop in miniature, under a write
 * storm, to show that drain-then-copy never leaves the replica stale.
 *
 *   1. attach the tracker to DEV (or, with --attached, take over an
 *      existing attachment and drain it once to start clean);
 *   2. copy all of DEV into the replica (the initial sync);
 *   3. start --writers threads that overwrite random parts of a small set
 *      of --blocks granules with random data, O_DIRECT;
 *   4. --cycles times: drain DEV, read every drained extent from DEV and
 *      write it into the replica at the same offset;
 *   5. stop the writers, drain and copy once more, check that one more
 *      drain is empty (nothing writes any more), detach;
 *   6. compare replica and DEV byte for byte.
 *
 * Pass: the replica equals DEV, no drain reported OVERFLOW, GONE or
 * RESIZED, the generation never changed, and the writers did write.
 *
 * Why it is a race: a writer can complete a write to a block while this
 * program is reading that block for the previous drain, so the copy may
 * hold old, new or torn data.  The tracker's guarantee (a write still in
 * flight when a drain begins is in a later set) means such a block is
 * drained again later, and the final drain after the writers stopped
 * repairs whatever is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "extent.h"
#include "kt_common.h"
#include "tracker.h"

#define COPY_CHUNK	(1u << 20)

struct race {
	const char *dev_path;
	const char *replica_path;
	uint64_t cycles;
	uint64_t min_secs;	/* --seconds */
	unsigned int nwriters;
	unsigned int nblocks;
	uint32_t gran;
	uint64_t seed;
	bool attached;		/* --attached: someone else attached */
	bool no_final;		/* --no-final-drain: self-test, must fail */
	bool we_attached;

	struct ferry_ctl ctl;
	struct ferry_blkdev dev;
	uint64_t generation;
	int fd_dev;		/* O_RDONLY | O_DIRECT */
	int fd_rep;
	uint64_t size;
	unsigned int lbs;
	uint64_t *blocks;	/* the hot set, block numbers */
	struct extent_set hot;	/* the same, as byte ranges */
	unsigned char *buf;	/* COPY_CHUNK, aligned for O_DIRECT */
	unsigned char *buf2;

	atomic_bool stop;
	pthread_mutex_t lock;
	char failure[768];	/* first failure, under lock */

	uint64_t drains;
	uint64_t extents;
	uint64_t bytes_copied;
	uint64_t current_cycle;
};

struct writer {
	struct race *r;
	pthread_t thread;
	unsigned int idx;
	int fd;
	struct kt_rng rng;
	unsigned char *buf;
	uint64_t writes;
	uint64_t bytes;
};

static const char usage[] =
	"usage: ferry-race --device DEV --replica FILE [options]\n"
	"\n"
	"Replicate DEV into FILE by draining the tracker while writer threads\n"
	"hammer a few blocks, then compare FILE and DEV byte for byte.  DEV is\n"
	"overwritten.  ferry-race attaches the tracker itself and detaches it\n"
	"at the end; DEV must not be tracked yet unless --attached is given.\n"
	"\n"
	"  --cycles N        drain-and-copy cycles while writing (default 1000)\n"
	"  --seconds N       and go on cycling until N seconds have passed\n"
	"                    (default 0): on a slow device the cycles can end\n"
	"                    before the writers have written much\n"
	"  --writers N       writer threads (default 4)\n"
	"  --blocks N        size of the hot set, in granules (default 64)\n"
	"  --granularity G   tracker granularity when attaching (default 4096)\n"
	"  --seed S          random seed (default 1)\n"
	"  --attached        DEV is tracked already: use that attachment (its\n"
	"                    granularity) and leave it attached\n"
	"  --no-final-drain  self-test of the comparison: skip the drains after\n"
	"                    the writers stop and write one sector more, so the\n"
	"                    replica misses writes and the run must FAIL\n";

static void race_fail(struct race *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the first failure and stop everything. */
static void race_fail(struct race *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->lock);
	if (!r->failure[0]) {
		va_start(ap, fmt);
		vsnprintf(r->failure, sizeof(r->failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&r->lock);
	atomic_store(&r->stop, true);
}

static bool failed(struct race *r)
{
	bool f;

	pthread_mutex_lock(&r->lock);
	f = r->failure[0] != '\0';
	pthread_mutex_unlock(&r->lock);
	return f;
}

/*
 * One write: a random hot block, a random sector range inside it and
 * possibly the next block (so writes straddle granule boundaries too).
 */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct race *r = w->r;
	uint64_t gran = r->gran, lbs = r->lbs;

	while (!atomic_load(&r->stop)) {
		uint64_t b = r->blocks[kt_rng_below(&w->rng, r->nblocks)];
		uint64_t start = b * gran;
		uint64_t span = gran * (1 + kt_rng_below(&w->rng, 2));
		uint64_t nsec, s, e, off, len;

		if (span > r->size - start)
			span = r->size - start;
		nsec = span / lbs;
		s = kt_rng_below(&w->rng, nsec);
		e = s + 1 + kt_rng_below(&w->rng, nsec - s);
		off = start + s * lbs;
		len = (e - s) * lbs;
		if (len > COPY_CHUNK)
			len = COPY_CHUNK;
		kt_rng_fill(&w->rng, w->buf, len);
		if (kt_pwrite_full(w->fd, w->buf, len, off) < 0) {
			race_fail(r, "writer %u: O_DIRECT write of %" PRIu64
				  " bytes at %" PRIu64 " to %s failed: %s",
				  w->idx, len, off, r->dev_path,
				  strerror(errno));
			break;
		}
		w->writes++;
		w->bytes += len;
	}
	return NULL;
}

/*
 * --no-final-drain: invert the first sector of the first hot block on
 * the device, so that the replica surely misses a write.
 */
static int write_undrained(struct race *r)
{
	uint64_t off = r->blocks[0] * r->gran;
	int fd = open(r->dev_path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	int rc = -1;

	if (fd < 0) {
		race_fail(r, "cannot open %s for writing: %s", r->dev_path,
			  strerror(errno));
		return -1;
	}
	if (kt_pread_full(r->fd_dev, r->buf, r->lbs, off) < 0) {
		race_fail(r, "O_DIRECT read of %u bytes at %" PRIu64
			  " from %s failed: %s", r->lbs, off, r->dev_path,
			  strerror(errno));
	} else {
		for (uint64_t i = 0; i < r->lbs; i++)
			((unsigned char *)r->buf)[i] ^= 0xff;
		if (kt_pwrite_full(fd, r->buf, r->lbs, off) < 0)
			race_fail(r, "O_DIRECT write of %u bytes at %" PRIu64
				  " to %s failed: %s", r->lbs, off,
				  r->dev_path, strerror(errno));
		else
			rc = 0;
	}
	close(fd);
	return rc;
}

/*
 * Copy [off, off + len) from the device to the replica.  The device is
 * read with O_DIRECT: its page cache is not coherent with writes that reach
 * the disk another way (a filesystem on a partition, device-mapper or md
 * above it, or another O_DIRECT writer), so a buffered read could return
 * cached old data for a block the tracker says changed, and the replica
 * would silently stay stale.  The agent reads the same way.
 */
static int copy_range(struct race *r, uint64_t off, uint64_t len)
{
	while (len) {
		size_t chunk = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;

		if (kt_pread_full(r->fd_dev, r->buf, chunk, off) < 0) {
			race_fail(r, "O_DIRECT read of %zu bytes at %" PRIu64
				  " from %s failed: %s", chunk, off,
				  r->dev_path, strerror(errno));
			return 1;
		}
		if (kt_pwrite_full(r->fd_rep, r->buf, chunk, off) < 0) {
			race_fail(r, "write of %zu bytes at %" PRIu64
				  " to the replica %s failed: %s", chunk, off,
				  r->replica_path, strerror(errno));
			return 1;
		}
		off += chunk;
		len -= chunk;
		r->bytes_copied += chunk;
	}
	return 0;
}

static int copy_extent(void *arg, const struct ferry_extent *e)
{
	struct race *r = arg;

	if (!e->length || e->offset > r->size ||
	    e->length > r->size - e->offset ||
	    e->offset % r->gran) {
		race_fail(r, "cycle %" PRIu64 ": drain of %s returned a bad extent %"
			  PRIu64 "+%" PRIu64 " (device %" PRIu64
			  " bytes, granularity %" PRIu32 ")",
			  r->current_cycle, r->dev_path,
			  (uint64_t)e->offset, (uint64_t)e->length, r->size,
			  r->gran);
		return 1;
	}
	r->extents++;
	return copy_range(r, e->offset, e->length);
}

/* Drain the set and copy it; returns the extents drained, or -1. */
static int64_t drain_and_copy(struct race *r)
{
	struct ferry_drain_info info;
	struct ferry_err err;
	char sbuf[64];
	int ret;

	ret = ferry_drain(&r->ctl, &r->dev, 0, copy_extent, r, &info, &err);
	r->drains++;
	if (ret < 0) {
		race_fail(r, "cycle %" PRIu64 ": %s", r->current_cycle,
			  err.msg);
		return -1;
	}
	if (ret > 0)
		return -1;	/* copy_extent recorded why */
	if (info.status) {
		race_fail(r, "cycle %" PRIu64 ": drain of %s reported status %s (the module must not overflow with %u blocks written)",
			  r->current_cycle, r->dev_path,
			  ferry_status_str(info.status, sbuf, sizeof(sbuf)),
			  r->nblocks);
		return -1;
	}
	if (info.generation != r->generation) {
		race_fail(r, "cycle %" PRIu64 ": generation of %s changed from %"
			  PRIu64 " to %" PRIu64 " (re-attached behind our back?)",
			  r->current_cycle, r->dev_path, r->generation,
			  info.generation);
		return -1;
	}
	return (int64_t)info.extents;
}

static void pick_blocks(struct race *r, struct kt_rng *rng)
{
	uint64_t total = (r->size + r->gran - 1) / r->gran;

	if (r->nblocks > total)
		r->nblocks = (unsigned int)total;
	r->blocks = calloc(r->nblocks, sizeof(*r->blocks));
	if (!r->blocks)
		kt_die("out of memory");
	for (unsigned int i = 0; i < r->nblocks;) {
		uint64_t b = kt_rng_below(rng, total);

		if (extent_set_contains(&r->hot, b * r->gran, 1))
			continue;
		if (extent_set_add(&r->hot, b * r->gran, r->gran) < 0)
			kt_die("out of memory");
		r->blocks[i++] = b;
	}
}

static void open_devices(struct race *r)
{
	struct stat dst, rst;
	bool is_file;

	r->fd_dev = open(r->dev_path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (r->fd_dev < 0)
		kt_die("cannot open %s with O_DIRECT: %s", r->dev_path,
		       strerror(errno));
	if (fstat(r->fd_dev, &dst) < 0 || !S_ISBLK(dst.st_mode))
		kt_die("%s is not a block device", r->dev_path);
	if (kt_blkdev_size(r->fd_dev, &r->size) < 0 ||
	    kt_blkdev_lbs(r->fd_dev, &r->lbs) < 0)
		kt_die("cannot read the size of %s: %s", r->dev_path,
		       strerror(errno));
	if (stat(r->replica_path, &rst) == 0) {
		if (S_ISBLK(rst.st_mode) && rst.st_rdev == dst.st_rdev)
			kt_die("the replica %s is the device itself",
			       r->replica_path);
		is_file = !S_ISBLK(rst.st_mode);
	} else {
		is_file = true;
	}
	r->fd_rep = open(r->replica_path, O_RDWR | O_CREAT | O_CLOEXEC |
			 (is_file ? O_TRUNC : 0), 0600);
	if (r->fd_rep < 0)
		kt_die("cannot open the replica %s: %s", r->replica_path,
		       strerror(errno));
	if (is_file && ftruncate(r->fd_rep, (off_t)r->size) < 0)
		kt_die("cannot size the replica %s to %" PRIu64 " bytes: %s",
		       r->replica_path, r->size, strerror(errno));
}

/* Byte-for-byte comparison; returns true when equal. */
static bool compare(struct race *r)
{
	uint64_t first = UINT64_MAX, bad_granules = 0, last_bad = UINT64_MAX;

	for (uint64_t off = 0; off < r->size; off += COPY_CHUNK) {
		size_t chunk = r->size - off < COPY_CHUNK ?
			       (size_t)(r->size - off) : COPY_CHUNK;

		if (kt_pread_full(r->fd_dev, r->buf, chunk, off) < 0) {
			race_fail(r, "compare: O_DIRECT read at %" PRIu64
				  " from %s failed: %s", off, r->dev_path,
				  strerror(errno));
			return false;
		}
		if (kt_pread_full(r->fd_rep, r->buf2, chunk, off) < 0) {
			race_fail(r, "compare: read at %" PRIu64
				  " from the replica %s failed: %s", off,
				  r->replica_path, strerror(errno));
			return false;
		}
		if (!memcmp(r->buf, r->buf2, chunk))
			continue;
		for (size_t i = 0; i < chunk; i++) {
			uint64_t g;

			if (r->buf[i] == r->buf2[i])
				continue;
			if (first == UINT64_MAX)
				first = off + i;
			g = (off + i) / r->gran;
			if (g != last_bad) {
				bad_granules++;
				last_bad = g;
			}
		}
	}
	if (first == UINT64_MAX)
		return true;
	race_fail(r, "replica differs from %s: first differing byte at offset %"
		  PRIu64 " (granule %" PRIu64 ", %s the hot set), %" PRIu64
		  " granules differ: a write was not drained, or was copied before it completed and not drained again",
		  r->dev_path, first, first / r->gran,
		  extent_set_contains(&r->hot, first, 1) ? "in" : "NOT in",
		  bad_granules);
	return false;
}

static uint64_t secs_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)(t.tv_sec - t0->tv_sec);
}

static void parse_args(struct race *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "device", required_argument, NULL, 'd' },
		{ "replica", required_argument, NULL, 'r' },
		{ "cycles", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "writers", required_argument, NULL, 'w' },
		{ "blocks", required_argument, NULL, 'b' },
		{ "granularity", required_argument, NULL, 'g' },
		{ "seed", required_argument, NULL, 's' },
		{ "attached", no_argument, NULL, 'a' },
		{ "no-final-drain", no_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case 'd':
			r->dev_path = optarg;
			break;
		case 'r':
			r->replica_path = optarg;
			break;
		case 'c':
			r->cycles = kt_parse_bytes("--cycles", optarg);
			break;
		case 'S':
			r->min_secs = kt_parse_bytes("--seconds", optarg);
			break;
		case 'w':
			v = kt_parse_bytes("--writers", optarg);
			if (!v || v > 256)
				kt_usage("--writers must be from 1 to 256");
			r->nwriters = (unsigned int)v;
			break;
		case 'b':
			v = kt_parse_bytes("--blocks", optarg);
			if (!v || v > 1u << 20)
				kt_usage("--blocks must be from 1 to 1048576");
			r->nblocks = (unsigned int)v;
			break;
		case 'g':
			v = kt_parse_bytes("--granularity", optarg);
			if (!v || !ferry_granularity_valid(v))
				kt_usage("--granularity must be a power of two from 4096 to 1G");
			r->gran = (uint32_t)v;
			break;
		case 's':
			r->seed = kt_parse_bytes("--seed", optarg);
			break;
		case 'a':
			r->attached = true;
			break;
		case 'N':
			r->no_final = true;
			break;
		case ':':
			kt_usage("option '%s' needs a value", argv[optind - 1]);
		default:
			kt_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		kt_usage("unexpected argument '%s'", argv[optind]);
	if (!r->dev_path || !r->replica_path)
		kt_usage("--device and --replica are required");
}

/* Attach (or adopt the attachment) and start from an empty set. */
static void setup_tracker(struct race *r)
{
	struct ferry_stats st;
	struct ferry_err err;

	if (ferry_blkdev_resolve(r->dev_path, &r->dev, &err) < 0 ||
	    ferry_ctl_open(&r->ctl, NULL, &err) < 0)
		kt_die("%s", err.msg);
	if (!r->attached) {
		if (ferry_attach(&r->ctl, &r->dev, r->gran, NULL, &err) < 0) {
			if (err.errnum == EEXIST)
				kt_die("%s; detach it or pass --attached",
				       err.msg);
			kt_die("%s", err.msg);
		}
		r->we_attached = true;
	}
	if (ferry_stats_get(&r->ctl, &r->dev, &st, &err) < 0)
		kt_die("%s", err.msg);
	/*
	 * A device the module could not quiesce at attach (bio-based, like
	 * device-mapper) reports overflow for its hold period: writes that
	 * were in flight then must be rescanned.  Nothing was writing here,
	 * so wait the hold out, as an agent would before its rescan.
	 */
	for (int waited = 0; st.status & FERRY_STATUS_OVERFLOW; waited++) {
		if (waited == 0)
			printf("ferry-race: %s reports overflow after attach (writes in flight could not be waited for); waiting for the hold to end\n",
			       r->dev_path);
		if (waited >= 3700)
			kt_die("%s still reports overflow after %d s",
			       r->dev_path, waited);
		sleep(1);
		if (ferry_stats_get(&r->ctl, &r->dev, &st, &err) < 0)
			kt_die("%s", err.msg);
	}
	r->gran = st.granularity;
	r->generation = st.generation;
}

static void release_tracker(struct race *r)
{
	struct ferry_err err;

	if (r->we_attached && ferry_detach(&r->ctl, &r->dev, &err) < 0)
		race_fail(r, "%s", err.msg);
	ferry_ctl_close(&r->ctl);
}

int main(int argc, char **argv)
{
	struct writer *w = NULL;
	struct kt_rng rng;
	struct race r;
	uint64_t writes = 0, wbytes = 0;
	unsigned int started = 0;
	struct timespec t0;
	int64_t n;

	kt_prog = "ferry-race";
	memset(&r, 0, sizeof(r));
	r.cycles = 1000;
	r.nwriters = 4;
	r.nblocks = 64;
	r.gran = FERRY_GRAN_DEFAULT;
	r.seed = 1;
	extent_set_init(&r.hot);
	pthread_mutex_init(&r.lock, NULL);
	atomic_init(&r.stop, false);
	parse_args(&r, argc, argv);

	/* Open first: a failure then leaves no attachment behind. */
	open_devices(&r);
	setup_tracker(&r);
	if (r.size < r.gran) {
		race_fail(&r, "%s (%" PRIu64 " bytes) is smaller than one granule (%" PRIu32 " bytes)",
			  r.dev_path, r.size, r.gran);
		goto out;
	}
	r.buf = kt_aligned_alloc(4096, COPY_CHUNK);
	r.buf2 = kt_aligned_alloc(4096, COPY_CHUNK);
	kt_rng_seed(&rng, r.seed);
	pick_blocks(&r, &rng);

	/* With an adopted attachment, forget what was dirty before. */
	if (r.attached && drain_and_copy(&r) < 0)
		goto out;
	/* Initial sync: nothing writes yet, so a plain copy is exact. */
	if (copy_range(&r, 0, r.size))
		goto out;
	r.bytes_copied = 0;

	w = calloc(r.nwriters, sizeof(*w));
	if (!w)
		kt_die("out of memory");
	for (unsigned int i = 0; i < r.nwriters; i++) {
		w[i].r = &r;
		w[i].idx = i;
		kt_rng_seed(&w[i].rng, r.seed * 1000003u + i + 1);
		w[i].buf = kt_aligned_alloc(4096, COPY_CHUNK);
		w[i].fd = open(r.dev_path, O_WRONLY | O_DIRECT | O_CLOEXEC);
		if (w[i].fd < 0) {
			race_fail(&r, "writer %u: cannot open %s: %s", i,
				  r.dev_path, strerror(errno));
			goto stop;
		}
		if (pthread_create(&w[i].thread, NULL, writer_main, &w[i])) {
			race_fail(&r, "cannot start writer thread %u", i);
			close(w[i].fd);
			goto stop;
		}
		started++;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (r.current_cycle = 0; r.current_cycle < r.cycles ||
	     secs_since(&t0) < r.min_secs; r.current_cycle++) {
		if (drain_and_copy(&r) < 0 || failed(&r))
			break;
	}
	r.cycles = r.current_cycle;
stop:
	atomic_store(&r.stop, true);
	for (unsigned int i = 0; i < started; i++) {
		pthread_join(w[i].thread, NULL);
		close(w[i].fd);
		writes += w[i].writes;
		wbytes += w[i].bytes;
	}
	if (failed(&r))
		goto out;

	if (r.no_final) {
		/* The writers' last writes may all have been drained
		 * (a starved guest vCPU lets the last cycles pass with no
		 * write between them): one more, which no drain sees. */
		if (write_undrained(&r))
			goto out;
		goto compare;
	}
	/* Every write has completed: this drain holds all of the rest. */
	r.current_cycle = r.cycles;
	if (drain_and_copy(&r) < 0)
		goto out;
	/* Nothing writes now, so the next set must be empty. */
	r.current_cycle++;
	n = drain_and_copy(&r);
	if (n < 0)
		goto out;
	if (n > 0) {
		race_fail(&r, "a drain after all writes had completed and been drained returned %"
			  PRId64 " extents: the tracker reports writes that did not happen",
			  n);
		goto out;
	}
compare:
	if (!writes) {
		race_fail(&r, "the writers did not complete a single write: the test proves nothing");
		goto out;
	}
	compare(&r);
out:
	atomic_store(&r.stop, true);
	release_tracker(&r);
	if (r.failure[0]) {
		printf("ferry-race: FAIL: %s\n", r.failure);
		return 1;
	}
	printf("ferry-race: PASS: %" PRIu64 " cycles, %" PRIu64 " drains, %"
	       PRIu64 " writes (%" PRIu64 " bytes) by %u writers on %u blocks of %"
	       PRIu32 " bytes, %" PRIu64 " extents (%" PRIu64
	       " bytes) copied; replica equals %s (%" PRIu64 " bytes)\n",
	       r.cycles, r.drains, writes, wbytes, r.nwriters, r.nblocks,
	       r.gran,
	       r.extents, r.bytes_copied, r.dev_path, r.size);
	return 0;
}
