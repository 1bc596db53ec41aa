// SPDX-License-Identifier: GPL-2.0
/*
 * test_snapshot: the copy-on-write snapshots of replicator/snapshot.c on
 * their failure paths, which the replicator's end-to-end tests cannot
 * reach: a snapshot delta whose flush fails, on a write and when a
 * connection opens it; a full staging filesystem whose oldest snapshot
 * still holds a disk's only history; a delta that cannot be read when a
 * connection opens it; a snapshot description whose rename cannot be
 * flushed; a volume moved away under a copy-on-write snapshot; a damaged
 * snapshot description, which stops pruning and yielding; an export whose
 * delta index a failed flush made stale, before it read a block or half-way
 * through; what zeroing a range keeps, and a shrinking disk.
 *
 * Linked with -Wl,--wrap=fdatasync: a flush can be made to fail once,
 * with what the kernel leaves behind then (the records written since the
 * last good flush are not on the disk: the pages are gone once evicted).
 * And with -Wl,--wrap=ftruncate, where an export thread can be stopped
 * after it indexed its deltas, before it reads a block, or at its read of
 * a given block of the volume.  And with
 * -Wl,--wrap=pread, where reads of a delta past its first record can be
 * made to fail (a media error), and -Wl,--wrap=fsync, where flushes of a
 * server's snapshots directory can.
 * The data directory is on /dev/shm, a tmpfs, which has no reflinks, so
 * snapshots copy on write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "../../replicator/snapshot.h"
#include "../../replicator/volume.h"

#define MIB (1u << 20)
#define COW_BLOCK (64u << 10)	/* snapshot.c's copy-on-write block */
#define REC_BYTES (COW_BLOCK + 32)	/* one delta record */

static char dir[] = "/dev/shm/test_snapshot.XXXXXX";

/* The fd of the live volume, whose own flushes are never failed. */
static int live_fd = -1;
/* The next flush of another file fails: FAIL_LOSING, with nothing of
 * the file on the disk (it was empty at its last good flush);
 * FAIL_KEEPING, with all of it there (only the report failed). */
enum { FAIL_LOSING = 1, FAIL_KEEPING };
static int fail_next_flush;
/* Called first by a flush made to fail. */
static void (*on_failed_flush)(void);

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __real_ftruncate(int fd, off_t len);
int __wrap_ftruncate(int fd, off_t len);
int __real_fsync(int fd);
int __wrap_fsync(int fd);
ssize_t __real_pread(int fd, void *buf, size_t len, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t len, off_t off);

/* fsync() of a server's snapshots directory fails with EIO. */
static bool fail_dir_fsync;

int __wrap_fsync(int fd)
{
	char link[64], path[600];
	ssize_t n;

	if (fail_dir_fsync) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 10 && !memcmp(path + n - 10, "/snapshots", 10)) {
			errno = EIO;
			return -1;
		}
	}
	return __real_fsync(fd);
}

/* Reads of any *.delta past its first record fail with EIO. */
static bool fail_delta_reads;

static void stage_reach(int s);
static void stage_wait(int s);
/* An export thread stops at its read of a volume (*.img) at this offset,
 * as it stops at ftruncate() below; -1: it does not. */
static _Thread_local off_t stops_at_volume_read = -1;

ssize_t __wrap_pread(int fd, void *buf, size_t len, off_t off)
{
	char link[64], path[600];
	ssize_t n;

	if (stops_at_volume_read >= 0 && off == stops_at_volume_read) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 4 && !memcmp(path + n - 4, ".img", 4)) {
			stops_at_volume_read = -1;
			stage_reach(1);
			stage_wait(2);
		}
	}
	if (fail_delta_reads && off > 0) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 6 && !memcmp(path + n - 6, ".delta", 6)) {
			errno = EIO;
			return -1;
		}
	}
	return __real_pread(fd, buf, len, off);
}

int __wrap_fdatasync(int fd)
{
	int mode = fail_next_flush;
	struct stat st;

	if (!mode || fd == live_fd)
		return __real_fdatasync(fd);
	fail_next_flush = 0;
	if (on_failed_flush)
		on_failed_flush();
	if (mode == FAIL_LOSING && fstat(fd, &st) == 0 && st.st_size)
		CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				0, st.st_size) == 0);
	errno = EIO;
	return -1;
}

/*
 * An export thread stops at its first ftruncate(), of its output: its
 * deltas are indexed, no block is read yet.  STAGE: 0, it runs; 1, it
 * stopped there (or returned); 2, it goes on.
 */
static _Thread_local bool stops_at_ftruncate;
static pthread_mutex_t stage_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stage_cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void stage_reach(int s)
{
	pthread_mutex_lock(&stage_mu);
	if (stage < s)
		stage = s;
	pthread_cond_broadcast(&stage_cv);
	pthread_mutex_unlock(&stage_mu);
}

static void stage_wait(int s)
{
	pthread_mutex_lock(&stage_mu);
	while (stage < s)
		pthread_cond_wait(&stage_cv, &stage_mu);
	pthread_mutex_unlock(&stage_mu);
}

int __wrap_ftruncate(int fd, off_t len)
{
	if (stops_at_ftruncate) {
		stops_at_ftruncate = false;
		stage_reach(1);
		stage_wait(2);
	}
	return __real_ftruncate(fd, len);
}

/* Log lines (stderr) from log_begin() on: log_end() puts them in BUF
 * (LEN bytes) and echoes them. */
static int saved_stderr = -1, log_fd = -1;

static void log_begin(void)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/log", dir);
	fflush(stderr);
	log_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	saved_stderr = dup(2);
	CHECK(log_fd >= 0 && saved_stderr >= 0 && dup2(log_fd, 2) == 2);
}

static void log_end(char *buf, size_t len)
{
	ssize_t n;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	n = pread(log_fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(log_fd);
	fputs(buf, stderr);
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

/* One snapshot per millisecond kept for RETENTION_MS, finer than the
 * text form goes (seconds): snapshots need not be a second apart. */
static struct snap_policy quick_policy(uint64_t retention_ms)
{
	struct snap_policy p = {
		.n = 1,
		.rule = { { .interval_ms = 1, .retention_ms = retention_ms } },
	};

	return p;
}

/* The file at PATH holds WANT (SIZE bytes). */
static int file_equals(const char *path, const uint8_t *want, size_t size)
{
	uint8_t *got = malloc(size);
	int fd = open(path, O_RDONLY), same = 0;

	if (got && fd >= 0 && pread(fd, got, size, 0) == (ssize_t)size)
		same = !memcmp(got, want, size);
	if (fd >= 0)
		close(fd);
	free(got);
	return same;
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
	int same;

	snprintf(out, sizeof(out), "%s/export", dir);
	mkdir(out, 0700);
	if (snap_export_newest(dir, source, out, false, ex, &n, &got_cp, &t,
			       err, sizeof(err))) {
		fprintf(stderr, "export: %s\n", err);
		return 0;
	}
	CHECK_U64(got_cp, cp);
	same = file_equals(ex[0].path, want, size);
	for (unsigned int i = 0; i < n; i++)
		unlink(ex[i].path);
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
	fail_next_flush = FAIL_LOSING;
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

/* How many of snapshots 1 to 3 of SOURCE's /dev/vda still have their
 * delta with its one record (those that lack it are named). */
static int deltas_held(const char *source)
{
	char path[600];
	struct stat st;
	int held = 0;

	for (int cp = 1; cp <= 3; cp++) {
		snprintf(path, sizeof(path),
			 "%s/%s/snapshots/%d/dev_vda.delta", dir, source, cp);
		if (stat(path, &st) == 0 && st.st_size == REC_BYTES)
			held++;
		else
			fprintf(stderr, "lost: %s\n", path);
	}
	return held;
}

/*
 * A damaged snapshot description fails the list of snapshots as a
 * whole, so that nothing is deleted: neither pruning nor the yield to a
 * full staging filesystem (with it left out, they deleted data they had
 * not seen: its directory as an orphan, the oldest snapshot with the
 * delta it reads through), nor is it read.  The log names the file.
 */
/* Snapshot 2 of SID's three cut short just before the text CUT (a
 * description is never rewritten in place: this is damage from outside). */
static void damaged_description(const char *sid, const char *cut)
{
	struct snap_policy keep = quick_policy(3600 * 1000);
	struct snap_policy drop = quick_policy(1);
	struct snap_export ex[FERRY_WIRE_MAX_DISKS];
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	char err[512] = "", logged[8192], out[600], path[600], text[4096];
	const char *at;
	ssize_t len;
	int fd;
	uint64_t cp, t;
	unsigned int n;
	struct volume v;
	struct stat st;

	fill(a, MIB, 11);
	fill(b, MIB, 12);
	copied_with_snapshot(&v, sid, MIB, a, MIB);
	/* Snapshots 1 to 3, each delta holding one block changed after. */
	for (cp = 1; cp <= 3; cp++) {
		if (cp > 1) {
			usleep(2000);
			CHECK(snap_at_cp(&v, 1, dir, sid, &keep, cp,
					 cp * 1000, err, sizeof(err)) == 1);
		}
		CHECK(volume_write(&v, cp * COW_BLOCK, b, COW_BLOCK, err,
				   sizeof(err)) == 0);
		CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	}
	CHECK_U64(deltas_held(sid), 3);
	snprintf(path, sizeof(path), "%s/%s/snapshots/2.snap", dir, sid);
	fd = open(path, O_RDONLY);
	len = read(fd, text, sizeof(text) - 1);
	close(fd);
	CHECK(len > 0);
	text[len > 0 ? len : 0] = '\0';
	at = strstr(text, cut);
	CHECK(at != NULL);
	CHECK(truncate(path, at ? at - text : 0) == 0);

	log_begin();
	CHECK(snap_yield_oldest(dir, sid, err, sizeof(err)) == 0);
	log_end(logged, sizeof(logged));
	CHECK_HAS(logged, path);
	CHECK_U64(deltas_held(sid), 3);

	/* A snapshot is due, with a policy that keeps only the newest. */
	usleep(2000);
	log_begin();
	CHECK(snap_at_cp(&v, 1, dir, sid, &drop, 4, 4000, err,
			 sizeof(err)) == 0);
	log_end(logged, sizeof(logged));
	CHECK_HAS(logged, path);
	CHECK_U64(deltas_held(sid), 3);
	snprintf(path, sizeof(path), "%s/%s/snapshots/4.snap", dir, sid);
	CHECK(stat(path, &st) == -1 && errno == ENOENT);

	snprintf(out, sizeof(out), "%s/export-%s", dir, sid);
	mkdir(out, 0700);
	CHECK(snap_export_newest(dir, sid, out, false, ex, &n, &cp, &t, err,
				 sizeof(err)) == -1);
	CHECK_HAS(err, strerror(EBADMSG));
	volume_close(&v);
	free(a);
	free(b);
}

static void test_damaged_description_deletes_nothing(void)
{
	damaged_description("s-6", "cp_id");
	/* Its cp_id kept but not its disk lines: read as a snapshot of no
	 * disk, it made an export skip its delta (format 1). */
	damaged_description("s-10", "disk = ");
}

/* test_export_sees_a_reused_offset's export, in a thread of its own. */
struct export_job {
	pthread_t thread;
	const char *source;
	off_t stop_at;		/* stops_at_volume_read, or -1: at ftruncate */
	char out[600], err[512];
	struct snap_export ex[FERRY_WIRE_MAX_DISKS];
	unsigned int n;
	int rc;
};

static struct export_job job;

static void *export_thread(void *arg)
{
	struct export_job *j = arg;
	uint64_t cp, t;

	stops_at_volume_read = j->stop_at;
	stops_at_ftruncate = j->stop_at < 0;
	j->rc = snap_export_newest(dir, j->source, j->out, false, j->ex,
				   &j->n, &cp, &t, j->err, sizeof(j->err));
	stops_at_ftruncate = false;
	stops_at_volume_read = -1;
	stage_reach(1);		/* returned before it stopped: go on */
	return NULL;
}

/* The export indexes the delta while the failing flush's record is in. */
static void start_export(void)
{
	CHECK(pthread_create(&job.thread, NULL, export_thread, &job) == 0);
	stage_wait(1);
}

/* Entries of directory PATH but . and .. */
static uint64_t dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	uint64_t n = 0;

	if (!d)
		return UINT64_MAX;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/*
 * The export of SOURCE's newest snapshot (A, a MIB) starts in a thread of
 * its own when the flush of a write of LEN bytes at OFF fails, and stops
 * at its read of the volume at STOP_AT (-1: before it reads a block);
 * the failed flush cuts the delta back to nothing, then the block at
 * NEXT is written and flushed, and its record takes the offset the first
 * record had.  The export must then say ESTALE and leave no image.
 */
static void export_across_a_failed_flush(struct volume *v,
					 const char *source, off_t stop_at,
					 uint64_t off, size_t len,
					 uint64_t next, const uint8_t *a,
					 const uint8_t *b)
{
	char err[512] = "";

	snprintf(job.out, sizeof(job.out), "%s/export-%s", dir, source);
	CHECK(mkdir(job.out, 0700) == 0);
	job.source = source;
	job.err[0] = '\0';
	job.stop_at = stop_at;
	stage = 0;
	on_failed_flush = start_export;
	fail_next_flush = FAIL_LOSING;
	CHECK(volume_write(v, off, b, len, err, sizeof(err)) == FERRY_E_IO);
	on_failed_flush = NULL;
	CHECK(volume_write(v, next, b, COW_BLOCK, err, sizeof(err)) == 0);
	CHECK(volume_sync(v, err, sizeof(err)) == 0);
	stage_reach(2);
	CHECK(pthread_join(job.thread, NULL) == 0);

	CHECK(job.rc == -1);
	CHECK_HAS(job.err, strerror(ESTALE));
	/* No image cut short is left to be taken for the snapshot. */
	CHECK_U64(dir_entries(job.out), 0);
	/* Without the check, the block at NEXT is its new contents. */
	if (!job.rc)
		CHECK(file_equals(job.ex[0].path, a, MIB));
	/* Exported again, the snapshot is exact. */
	CHECK(newest_equals(source, a, MIB, 1));
}

/*
 * An export indexed a delta before a failed flush cut it back: another
 * block's record then takes the offset the export's index has for the
 * first block.  The export says so (ESTALE: export again) rather than
 * give that record's bytes as the first block's.
 */
static void test_export_sees_a_reused_offset(void)
{
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	struct volume v;

	fill(a, MIB, 13);
	fill(b, MIB, 14);
	copied_with_snapshot(&v, "s-7", MIB, a, MIB);
	/* Block 0's record goes in at offset 0, the export indexes it and
	 * stops; block 1's record then takes offset 0. */
	export_across_a_failed_flush(&v, "s-7", -1, 0, COW_BLOCK, COW_BLOCK,
				     a, b);
	volume_close(&v);
	free(a);
	free(b);
}

/*
 * An export half-way through a live snapshot when a failed flush cuts
 * its delta back below what the export indexed: the next record appended
 * takes an offset the export will not read again, and holds a block the
 * export has yet to read from the volume, already overwritten.  The
 * delta, now shorter than the export's index, says so: ESTALE.
 */
static void test_export_sees_a_shorter_delta(void)
{
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	struct volume v;

	fill(a, MIB, 17);
	fill(b, MIB, 18);
	copied_with_snapshot(&v, "s-13", MIB, a, MIB);
	/* Records 0 and 1 (blocks 0 and 1) go in; the export reads blocks
	 * 0 and 1 from them and stops before block 2, which it reads from
	 * the volume; block 5's record then takes offset 0. */
	export_across_a_failed_flush(&v, "s-13", 2 * (off_t)COW_BLOCK, 0,
				     2 * COW_BLOCK, 5 * COW_BLOCK, a, b);
	volume_close(&v);
	free(a);
	free(b);
}

/*
 * A connection that opens a delta flushes it first: records a killed
 * process appended are indexed as held, and a live write relies on them
 * being on the disk.  When that flush fails, the volume does not open,
 * nor does a new snapshot's copy on write start.
 */
static void test_failed_flush_at_open(void)
{
	struct snap_policy keep = quick_policy(3600 * 1000);
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	char err[512] = "", path[600];
	struct volume v;
	int rc;

	fill(a, MIB, 15);
	fill(b, MIB, 16);
	copied_with_snapshot(&v, "s-8", MIB, a, MIB);
	CHECK(volume_write(&v, 0, b, MIB / 2, err, sizeof(err)) == 0);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	volume_close(&v);
	live_fd = -1;	/* closed: the delta may get its number */

	/* The records are all there: only the flush fails. */
	fail_next_flush = FAIL_KEEPING;
	rc = volume_open(&v, dir, "s-8", "/dev/vda", MIB, err, sizeof(err));
	CHECK(rc == FERRY_E_IO);
	CHECK(!fail_next_flush);
	snprintf(path, sizeof(path), "%s/s-8/snapshots/1/dev_vda.delta", dir);
	CHECK_HAS(err, path);
	CHECK(v.fd == -1 && v.cow == NULL);
	if (!rc)
		volume_close(&v);
	fail_next_flush = 0;
	/* The flush works again, and so does the volume. */
	CHECK(volume_open(&v, dir, "s-8", "/dev/vda", MIB, err,
			  sizeof(err)) == 0);
	live_fd = v.fd;
	v.sync_mark = MIB;	/* as copied_with_snapshot(), not stored */
	CHECK(v.cow != NULL);
	CHECK(newest_equals("s-8", a, MIB, 1));

	/* The new snapshot's empty delta: committed, then the flush that
	 * would start copying on write into it fails. */
	usleep(2000);
	fail_next_flush = FAIL_KEEPING;
	CHECK(snap_at_cp(&v, 1, dir, "s-8", &keep, 2, 2000, err,
			 sizeof(err)) == FERRY_E_IO);
	CHECK(!fail_next_flush);
	fail_next_flush = 0;
	snprintf(path, sizeof(path), "%s/s-8/snapshots/2/dev_vda.delta", dir);
	CHECK_HAS(err, path);
	volume_close(&v);
	free(a);
	free(b);
}

/*
 * A delta that cannot be read when a connection opens it is an error,
 * not a torn tail: cutting it there would lose every record after the
 * failed read for good (the snapshot would then read those blocks from
 * the live volume).
 */
static void test_read_error_at_open(void)
{
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	char err[512] = "", path[600];
	struct volume v;
	struct stat st;
	off_t size;
	int rc;

	fill(a, MIB, 21);
	fill(b, MIB, 22);
	copied_with_snapshot(&v, "s-9", MIB, a, MIB);
	CHECK(volume_write(&v, 0, b, MIB, err, sizeof(err)) == 0);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	volume_close(&v);
	live_fd = -1;
	snprintf(path, sizeof(path), "%s/s-9/snapshots/1/dev_vda.delta", dir);
	CHECK(stat(path, &st) == 0 && st.st_size >= 2 * (off_t)REC_BYTES);
	size = st.st_size;

	fail_delta_reads = true;
	rc = volume_open(&v, dir, "s-9", "/dev/vda", MIB, err, sizeof(err));
	fail_delta_reads = false;
	CHECK(rc == FERRY_E_IO);
	CHECK_HAS(err, path);
	if (!rc)
		volume_close(&v);
	CHECK(stat(path, &st) == 0 && st.st_size == size);
	/* Readable again: every record is still there. */
	CHECK(volume_open(&v, dir, "s-9", "/dev/vda", MIB, err,
			  sizeof(err)) == 0);
	live_fd = v.fd;
	v.sync_mark = MIB;
	CHECK(newest_equals("s-9", a, MIB, 1));
	volume_close(&v);
	live_fd = -1;
	free(a);
	free(b);
}

/*
 * A snapshot whose description's rename cannot be flushed is not copied
 * on write into: a crash could drop the description, the new delta would
 * go as an orphan, and the previous snapshot would read what was
 * overwritten since from the live volume.  The snapshot fails (the
 * connection ends), and the next open flushes the directory before it
 * attaches, or refuses the volume.
 */
static void test_unflushed_description(void)
{
	struct snap_policy keep = quick_policy(3600 * 1000);
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	char err[512] = "";
	struct volume v;
	int rc;

	fill(a, MIB, 31);
	fill(b, MIB, 32);
	copied_with_snapshot(&v, "s-11", MIB, a, MIB);
	usleep(2000);
	fail_dir_fsync = true;
	rc = snap_at_cp(&v, 1, dir, "s-11", &keep, 2, 2000, err, sizeof(err));
	fail_dir_fsync = false;
	CHECK(rc == FERRY_E_IO);
	CHECK_HAS(err, "after storing snapshot description");
	volume_close(&v);
	live_fd = -1;

	fail_dir_fsync = true;
	rc = volume_open(&v, dir, "s-11", "/dev/vda", MIB, err, sizeof(err));
	fail_dir_fsync = false;
	CHECK(rc == FERRY_E_IO);
	CHECK_HAS(err, "cannot flush the snapshots directory");
	if (!rc)
		volume_close(&v);

	/* Flushed now: the volume copies on write into snapshot 2. */
	CHECK(volume_open(&v, dir, "s-11", "/dev/vda", MIB, err,
			  sizeof(err)) == 0);
	live_fd = v.fd;
	v.sync_mark = MIB;
	CHECK(volume_write(&v, 0, b, MIB, err, sizeof(err)) == 0);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	CHECK(newest_equals("s-11", a, MIB, 2));
	volume_close(&v);
	live_fd = -1;
	free(a);
	free(b);
}

/* Move SOURCE's volume of /dev/vda and its .meta to *.old, or back. */
static void move_volume(const char *source, bool away)
{
	char from[600], to[620];

	for (int i = 0; i < 2; i++) {
		snprintf(from, sizeof(from), "%s/%s/dev_vda.%s", dir, source,
			 i ? "meta" : "img");
		snprintf(to, sizeof(to), "%s.old", from);
		CHECK(away ? rename(from, to) == 0 : rename(to, from) == 0);
	}
}

/*
 * A volume moved away (with its .meta) is not started afresh under a
 * copy-on-write snapshot of its disk: the snapshot reads the blocks it
 * does not hold from the volume, so a new one would change it.  With the
 * snapshots moved away too, it is.  Snapshots that cannot be listed may
 * hold such a snapshot: refused too.
 */
static void test_no_fresh_volume_under_a_snapshot(void)
{
	uint8_t *a = malloc(MIB);
	char err[512] = "", from[600], to[620];
	struct volume v;
	int fd, rc;

	fill(a, MIB, 41);
	copied_with_snapshot(&v, "s-12", MIB, a, MIB);
	volume_close(&v);
	live_fd = -1;
	move_volume("s-12", true);
	rc = volume_open(&v, dir, "s-12", "/dev/vda", MIB, err, sizeof(err));
	CHECK(rc == FERRY_E_IO);
	CHECK_HAS(err, "has no metadata, but snapshot 1");
	CHECK_HAS(err, "s-12/snapshots");
	if (!rc)
		volume_close(&v);

	/* Snapshots that cannot be listed (a description cut short) may
	 * hold one too: the volume is refused as well, saying why. */
	snprintf(from, sizeof(from), "%s/s-12/snapshots/2.snap", dir);
	fd = open(from, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && write(fd, "cp_id = ", 8) == 8);
	if (fd >= 0)
		close(fd);
	rc = volume_open(&v, dir, "s-12", "/dev/vda", MIB, err, sizeof(err));
	CHECK(rc == FERRY_E_IO);
	CHECK_HAS(err, "cannot list the snapshots of");
	CHECK_HAS(err, "a new volume must not change one");
	CHECK_HAS(err, strerror(EBADMSG));
	if (!rc)
		volume_close(&v);
	CHECK(unlink(from) == 0);

	/* The snapshot still reads as it was taken. */
	move_volume("s-12", false);
	CHECK(newest_equals("s-12", a, MIB, 1));

	snprintf(from, sizeof(from), "%s/s-12/snapshots", dir);
	snprintf(to, sizeof(to), "%s/s-12-snapshots.old", dir);
	CHECK(rename(from, to) == 0);
	snprintf(from, sizeof(from), "%s/s-12/dev_vda.meta", dir);
	CHECK(unlink(from) == 0);
	CHECK(volume_open(&v, dir, "s-12", "/dev/vda", MIB, err,
			  sizeof(err)) == 0);
	CHECK(v.created);
	volume_close(&v);
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
	RUN(test_damaged_description_deletes_nothing);
	RUN(test_export_sees_a_reused_offset);
	RUN(test_export_sees_a_shorter_delta);
	RUN(test_failed_flush_at_open);
	RUN(test_read_error_at_open);
	RUN(test_unflushed_description);
	RUN(test_no_fresh_volume_under_a_snapshot);
	rc = check_exit();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
	return rc;
}
