// SPDX-License-Identifier: GPL-2.0
/*
 * test_snapshot: the copy-on-write snapshots of replicator/snapshot.c on
 * their failure paths, which the replicator's end-to-end tests cannot
 * reach: a snapshot delta whose flush fails, and a full staging
 * filesystem whose oldest snapshot still holds a disk's only history;
 * what zeroing a range keeps, and a shrinking disk.
 *
 * Linked with -Wl,--wrap=fdatasync: a flush can be made to fail once,
 * with what the kernel leaves behind then (the records written since the
 * last good flush are not on the disk: the pages are gone once evicted).
 * The data directory is on /dev/shm, a tmpfs, which has no reflinks, so
 * snapshots copy on write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "../../replicator/snapshot.h"
#include "../../replicator/volume.h"

#define MIB (1u << 20)

static char dir[] = "/dev/shm/test_snapshot.XXXXXX";

/* The fd of the live volume, whose own flushes are never failed. */
static int live_fd = -1;
static int fail_next_flush;

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

int __wrap_fdatasync(int fd)
{
	struct stat st;

	if (!fail_next_flush || fd == live_fd)
		return __real_fdatasync(fd);
	fail_next_flush = 0;
	/* The delta was empty before: nothing of it reached the disk. */
	if (fstat(fd, &st) == 0 && st.st_size)
		CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				0, st.st_size) == 0);
	errno = EIO;
	return -1;
}

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 13 + (i >> 12));
}

static struct snap_policy policy(void)
{
	struct snap_policy p;
	char err[256];

	CHECK(snap_policy_parse(&p, "1s:1h", err, sizeof(err)) == 0);
	return p;
}

/* Export the newest snapshot of SOURCE's first disk and compare it with
 * WANT (SIZE bytes). */
static int newest_equals(const char *source, const uint8_t *want,
			 size_t size, uint64_t cp)
{
	struct snap_export ex[FERRY_WIRE_MAX_DISKS];
	char out[600], err[512];
	uint64_t got_cp, t;
	unsigned int n;
	uint8_t *got = malloc(size);
	int fd, same = 0;

	snprintf(out, sizeof(out), "%s/export", dir);
	mkdir(out, 0700);
	if (snap_export_newest(dir, source, out, false, ex, &n, &got_cp, &t,
			       err, sizeof(err))) {
		fprintf(stderr, "export: %s\n", err);
		free(got);
		return 0;
	}
	CHECK_U64(got_cp, cp);
	fd = open(ex[0].path, O_RDONLY);
	if (got && fd >= 0 && pread(fd, got, size, 0) == (ssize_t)size)
		same = !memcmp(got, want, size);
	if (fd >= 0)
		close(fd);
	for (unsigned int i = 0; i < n; i++)
		unlink(ex[i].path);
	free(got);
	return same;
}

/* V: disk /dev/vda of SOURCE, SIZE bytes, of which the first LEN hold
 * DATA, fully copied, with snapshot cp 1 taken. */
static void copied_with_snapshot(struct volume *v, const char *source,
				 size_t size, const uint8_t *data, size_t len)
{
	struct snap_policy p = policy();
	char err[512];

	CHECK(volume_open(v, dir, source, "/dev/vda", size, err,
			  sizeof(err)) == 0);
	live_fd = v->fd;
	CHECK(volume_write(v, 0, data, len, err, sizeof(err)) == 0);
	CHECK(volume_sync(v, err, sizeof(err)) == 0);
	v->sync_mark = size;
	CHECK(snap_at_cp(v, 1, dir, source, &p, 1, 1000, err,
			 sizeof(err)) == 1);
}

static void test_failed_delta_flush(void)
{
	size_t size = 2 * MIB;
	uint8_t *a = malloc(size), *b = malloc(MIB);
	char err[512], path[600];
	struct volume v;
	struct stat st;

	fill(a, size, 1);
	fill(b, MIB, 99);
	copied_with_snapshot(&v, "s-1", size, a, size);
	CHECK(v.cow != NULL);

	/* The old blocks are copied, their flush fails: the live write is
	 * refused, and the volume keeps its old contents. */
	fail_next_flush = 1;
	CHECK(volume_write(&v, 0, b, MIB, err, sizeof(err)) == FERRY_E_IO);
	CHECK_HAS(err, "cannot flush the snapshot delta");
	CHECK(!fail_next_flush);
	/* Cut off the file too: a connection opening it later would
	 * index those records as held. */
	snprintf(path, sizeof(path), "%s/s-1/snapshots/1/dev_vda.delta", dir);
	CHECK(stat(path, &st) == 0 && st.st_size == 0);
	/* The retry (the agent sends the frame again) copies the blocks
	 * again: the records the failed flush lost are written anew. */
	CHECK(volume_write(&v, 0, b, MIB, err, sizeof(err)) == 0);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	CHECK(newest_equals("s-1", a, size, 1));
	volume_close(&v);
	free(a);
	free(b);
}

/* Zeroing keeps only the blocks that hold something: an fstrim on the
 * source zeroes its free space, mostly holes here, and a delta of all of
 * it would take the size of the range. */
static void test_zeroing_keeps_only_data(void)
{
	size_t size = 8 * MIB;
	uint8_t *a = calloc(1, size);
	char err[512], path[600];
	struct volume v;
	struct stat st;

	fill(a, MIB, 3);	/* data, then explicit zeros, then holes */
	copied_with_snapshot(&v, "s-3", size, a, 2 * MIB);
	CHECK(volume_zero(&v, 0, size, err, sizeof(err)) == 0);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	snprintf(path, sizeof(path), "%s/s-3/snapshots/1/dev_vda.delta", dir);
	/* 16 records of 64 KiB and their 32-byte headers: the first MiB. */
	CHECK(stat(path, &st) == 0);
	CHECK_U64(st.st_size, 16 * ((64 << 10) + 32));
	CHECK(newest_equals("s-3", a, size, 1));
	volume_close(&v);
	free(a);
}

/* A source disk that shrank: the staging volume is cut, and the newest
 * snapshot keeps the part cut off (it read zeros there before). */
static void test_shrink_keeps_the_tail(void)
{
	size_t size = 4 * MIB;
	uint8_t *a = malloc(size);
	struct volume v;
	char err[512];

	fill(a, size, 5);
	copied_with_snapshot(&v, "s-4", size, a, size);
	volume_close(&v);
	CHECK(volume_open(&v, dir, "s-4", "/dev/vda", size / 2 + 4096, err,
			  sizeof(err)) == 0);
	CHECK_U64(v.size, size / 2 + 4096);
	volume_close(&v);
	CHECK(newest_equals("s-4", a, size, 1));
	/* Grown back: the new part reads as zeros live, not in the past. */
	CHECK(volume_open(&v, dir, "s-4", "/dev/vda", size, err,
			  sizeof(err)) == 0);
	volume_close(&v);
	CHECK(newest_equals("s-4", a, size, 1));
	free(a);
}

/* A staging filesystem full: the oldest snapshot is deleted only when
 * every disk in it is also in a later one. */
static void test_yield_keeps_a_disks_only_history(void)
{
	struct snap_policy p = policy();
	struct volume v[2];
	char err[512], path[600];
	uint8_t *a = malloc(MIB);
	struct stat st;

	fill(a, MIB, 7);
	CHECK(volume_open(&v[0], dir, "s-2", "/dev/vda", MIB, err,
			  sizeof(err)) == 0);
	CHECK(volume_open(&v[1], dir, "s-2", "/dev/vdb", MIB, err,
			  sizeof(err)) == 0);
	for (int i = 0; i < 2; i++) {
		CHECK(volume_write(&v[i], 0, a, MIB, err, sizeof(err)) == 0);
		CHECK(volume_sync(&v[i], err, sizeof(err)) == 0);
		v[i].sync_mark = MIB;
	}
	/* None yet, then a single one: nothing to spare. */
	CHECK(snap_yield_oldest(dir, "s-2", err, sizeof(err)) == 0);
	CHECK(snap_at_cp(v, 2, dir, "s-2", &p, 1, 1000, err,
			 sizeof(err)) == 1);
	CHECK(snap_yield_oldest(dir, "s-2", err, sizeof(err)) == 0);

	/* cp 2 holds /dev/vda only: cp 1 is still /dev/vdb's newest. */
	usleep(1100 * 1000);
	CHECK(snap_at_cp(v, 1, dir, "s-2", &p, 2, 2000, err,
			 sizeof(err)) == 1);
	CHECK(snap_yield_oldest(dir, "s-2", err, sizeof(err)) == 0);
	snprintf(path, sizeof(path), "%s/s-2/snapshots/1.snap", dir);
	CHECK(stat(path, &st) == 0);

	/* cp 3 holds both: cp 1 can go. */
	usleep(1100 * 1000);
	CHECK(snap_at_cp(v, 2, dir, "s-2", &p, 3, 3000, err,
			 sizeof(err)) == 1);
	CHECK(snap_yield_oldest(dir, "s-2", err, sizeof(err)) == 1);
	CHECK(stat(path, &st) == -1 && errno == ENOENT);
	snprintf(path, sizeof(path), "%s/s-2/snapshots/2.snap", dir);
	CHECK(stat(path, &st) == 0);

	/* /dev/vdb no longer replicated: cp 3, its newest, can go in turn
	 * (kept, it would block making room for good). */
	volume_close(&v[1]);
	usleep(1100 * 1000);
	CHECK(snap_at_cp(v, 1, dir, "s-2", &p, 4, 4000, err,
			 sizeof(err)) == 1);
	CHECK(snap_yield_oldest(dir, "s-2", err, sizeof(err)) == 1);
	CHECK(stat(path, &st) == -1 && errno == ENOENT);	/* cp 2 */
	CHECK(snap_yield_oldest(dir, "s-2", err, sizeof(err)) == 1);
	snprintf(path, sizeof(path), "%s/s-2/snapshots/3.snap", dir);
	CHECK(stat(path, &st) == -1 && errno == ENOENT);
	CHECK(snap_yield_oldest(dir, "s-2", err, sizeof(err)) == 0);
	snprintf(path, sizeof(path), "%s/s-2/snapshots/4.snap", dir);
	CHECK(stat(path, &st) == 0);
	volume_close(&v[0]);
	free(a);
}

/* Pruning spares the snapshot a connection copies on write into even
 * when it is not the newest of all (a server's disks on two
 * connections), and only while that disk is written. */
static void test_prune_spares_a_written_disks_newest(void)
{
	struct snap_policy p;
	struct volume v[2];
	char err[512], path[600];
	uint8_t *a = malloc(MIB);
	struct stat st;

	CHECK(snap_policy_parse(&p, "1s:1s", err, sizeof(err)) == 0);
	fill(a, MIB, 9);
	CHECK(volume_open(&v[0], dir, "s-5", "/dev/vda", MIB, err,
			  sizeof(err)) == 0);
	CHECK(volume_open(&v[1], dir, "s-5", "/dev/vdb", MIB, err,
			  sizeof(err)) == 0);
	for (int i = 0; i < 2; i++) {
		CHECK(volume_write(&v[i], 0, a, MIB, err, sizeof(err)) == 0);
		CHECK(volume_sync(&v[i], err, sizeof(err)) == 0);
		v[i].sync_mark = MIB;
	}
	/* Each "connection" snapshots its own disk. */
	CHECK(snap_at_cp(&v[1], 1, dir, "s-5", &p, 1, 1000, err,
			 sizeof(err)) == 1);
	usleep(1100 * 1000);
	CHECK(snap_at_cp(&v[0], 1, dir, "s-5", &p, 2, 2000, err,
			 sizeof(err)) == 1);
	snprintf(path, sizeof(path), "%s/s-5/snapshots/1.snap", dir);
	CHECK(stat(path, &st) == 0);	/* past the policy, /dev/vdb's */
	/* /dev/vdb no longer written: the policy has its way. */
	volume_close(&v[1]);
	usleep(1100 * 1000);
	CHECK(snap_at_cp(&v[0], 1, dir, "s-5", &p, 3, 3000, err,
			 sizeof(err)) == 1);
	CHECK(stat(path, &st) == -1 && errno == ENOENT);
	snprintf(path, sizeof(path), "%s/s-5/snapshots/3.snap", dir);
	CHECK(stat(path, &st) == 0);
	volume_close(&v[0]);
	free(a);
}

int main(void)
{
	char cmd[600];
	int rc;

	if (!mkdtemp(dir)) {
		perror("mkdtemp under /dev/shm");
		return 1;
	}
	RUN(test_failed_delta_flush);
	RUN(test_zeroing_keeps_only_data);
	RUN(test_shrink_keeps_the_tail);
	RUN(test_yield_keeps_a_disks_only_history);
	RUN(test_prune_spares_a_written_disks_newest);
	rc = check_exit();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
	return rc;
}
