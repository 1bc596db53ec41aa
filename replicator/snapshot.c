// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot.c - point-in-time snapshots (snapshot.h, docs/replicator.md).
 *
 * Two stores.  Where the filesystem shares extents (XFS with reflink=1,
 * btrfs), a snapshot of a disk is a FICLONE copy of its .img: it costs
 * what changes afterwards.  Elsewhere, a snapshot of a disk is a delta
 * log: before a block of the live volume is first overwritten after the
 * newest snapshot, its old contents are appended to that snapshot's
 * delta and made durable; then the live write goes ahead.  Reading
 * snapshot S resolves each block through the chain: the delta of S, of
 * the next snapshot, ..., and finally the live volume (or the first
 * reflinked image on the way).
 *
 * A delta is an append-only sequence of records (header + one block),
 * each checked by a hash, so a crash can only tear the last record, which
 * was never followed by its live write: it is ignored and cut off.
 * Deleting snapshot S appends to the previous snapshot's delta the
 * records of S's that it lacks (their value is the same at both points,
 * as the block did not change in between), then removes S's description
 * and files: a crash at any point leaves every other snapshot exact.
 *
 * Every change to the set of snapshots of a source server (take, prune,
 * delete) holds an exclusive flock on snapshots/lock; an export holds it
 * shared.  The server only tries it at a CP (an export in progress
 * postpones the snapshot to a later CP).  The server holds an flock on
 * each live .img it writes, so that `snapshot delete` never merges away
 * the delta the server is appending to.
 */

#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "log.h"
#include "volume.h"

#define SNAP_BLOCK	(64u << 10)	/* copy-on-write granularity */
#define REC_HDR		32
#define REC_LEN		(REC_HDR + SNAP_BLOCK)
#define REC_MAGIC	"FERRYCW1"
#define SNAP_META_MAX	(64u << 10)
#define MAX_SNAPS	4096	/* deltas a read goes through; above
				 * SNAP_MAX_KEPT */

enum store { STORE_COW, STORE_REFLINK };

struct snap_disk {
	char file[VOLUME_FILE_MAX];
	char name[FERRY_WIRE_MAX_NAME + 1];
	uint64_t size;
	enum store store;
};

struct snap {
	uint64_t cp_id, cp_time_ms, time_ms;
	unsigned int n;
	struct snap_disk d[FERRY_WIRE_MAX_DISKS];
};

/* An opened delta: which blocks it holds, at which file offset.  A hash
 * table, so that memory follows the change, not the disk size. */
struct delta {
	int fd;
	uint64_t nblocks;	/* of the snapshot's disk size */
	uint64_t *slot;		/* pairs: block+1 (0: free, SLOT_GONE: a
				 * forgotten record), offset+1 */
	size_t cap, count;	/* slots (a power of 2), used */
	uint64_t end;		/* bytes of valid records */
};

/* The copy-on-write state of a live volume (struct volume's cow). */
struct snap_cow {
	struct delta d;
	uint8_t *rec;
	bool unsynced;		/* records appended, not yet flushed */
	uint64_t synced_end;	/* d.end at the last successful flush */
};

/* A slot whose record was forgotten (delta_forget_from()): it keeps the
 * probe chains through it whole; never a block + 1. */
#define SLOT_GONE UINT64_MAX

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got,
				  (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			/* Beyond the end of file reads as zeros. */
			memset((char *)buf + got, 0, len - got);
			break;
		}
		got += (size_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)w;
	}
	return 0;
}

/* ---- snapshot descriptions ---------------------------------------------- */

/*
 * Store S's description in DIR: the snapshot's commit point.  0 once it
 * is renamed into place; *DURABLE then says whether the rename was
 * flushed too (ERR says why not).
 */
static int write_snap(const char *dir, const struct snap *s, bool *durable,
		      char *err, size_t errlen)
{
	char *buf = malloc(SNAP_META_MAX);
	char tmp[PATH_MAX + 64], dst[PATH_MAX + 64];
	size_t off = 0;
	int fd, e;

	if (!buf) {
		set_err(err, errlen, "out of memory");
		return FERRY_E_INTERNAL;
	}
	off += (size_t)snprintf(buf + off, SNAP_META_MAX - off,
		"# ferry-replicator snapshot; replaced atomically\n"
		"format = 2\ncp_id = %" PRIu64 "\ncp_time_ms = %" PRIu64
		"\ntime_ms = %" PRIu64 "\ndisks = %u\n", s->cp_id,
		s->cp_time_ms, s->time_ms, s->n);
	for (unsigned int i = 0; i < s->n; i++)
		off += (size_t)snprintf(buf + off, SNAP_META_MAX - off,
			"disk = %s %" PRIu64 " %s %s\n", s->d[i].file,
			s->d[i].size, s->d[i].store == STORE_REFLINK ?
			"reflink" : "cow", s->d[i].name);
	/* Format 2 says how many disks and where it ends: a description
	 * cut short (outside damage) is then refused, not read as a
	 * snapshot without the disks it lost. */
	off += (size_t)snprintf(buf + off, SNAP_META_MAX - off, "end\n");
	snprintf(tmp, sizeof(tmp), "%s/%" PRIu64 ".snap.tmp", dir, s->cp_id);
	snprintf(dst, sizeof(dst), "%s/%" PRIu64 ".snap", dir, s->cp_id);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || pwrite_full(fd, buf, off, 0) || fsync(fd)) {
		e = errno;
		if (fd >= 0)
			close(fd);
		free(buf);
		unlink(tmp);
		set_err(err, errlen, "cannot write snapshot description %s: "
			"%s", tmp, strerror(e));
		return volume_storage_code(e);
	}
	close(fd);
	free(buf);
	if (rename(tmp, dst)) {
		e = errno;
		set_err(err, errlen, "cannot store snapshot description %s: "
			"%s", dst, strerror(e));
		return volume_storage_code(e);
	}
	/*
	 * Committed: undoing is not safe now.  Nor is copying on write
	 * into the new delta before the rename is durable: a crash could
	 * drop the description, the delta would go as an orphan, and the
	 * previous snapshot would read the blocks first overwritten after
	 * this one from the live volume.
	 */
	*durable = !fsync_path(dir);
	if (!*durable)
		set_err(err, errlen, "cannot flush %s after storing snapshot "
			"description %s: %s", dir, dst, strerror(errno));
	return 0;
}

/* 0, -1 if it cannot be read now (errno), -2 if it is not a snapshot's
 * whole description. */
static int read_snap(const char *path, struct snap *s)
{
	char *buf = malloc(SNAP_META_MAX + 1), *line, *save;
	unsigned int format = 1, disks = 0;
	bool end = false, bad = false;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), e;

	memset(s, 0, sizeof(*s));
	if (fd < 0 || !buf) {
		e = fd < 0 ? errno : ENOMEM;
		if (fd >= 0)
			close(fd);
		free(buf);
		errno = e;
		return -1;
	}
	n = read(fd, buf, SNAP_META_MAX);
	e = errno;
	close(fd);
	if (n < 0) {
		free(buf);
		errno = e;
		return -1;
	}
	if (n == 0) {
		free(buf);
		return -2;
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char store[16];
		int pos = 0;

		if (sscanf(line, "format = %u", &format) == 1 ||
		    sscanf(line, "cp_id = %" SCNu64, &s->cp_id) == 1 ||
		    sscanf(line, "cp_time_ms = %" SCNu64,
			   &s->cp_time_ms) == 1 ||
		    sscanf(line, "time_ms = %" SCNu64, &s->time_ms) == 1 ||
		    sscanf(line, "disks = %u", &disks) == 1)
			continue;
		if (!strcmp(line, "end")) {
			end = true;
			continue;
		}
		if (!strncmp(line, "disk = ", 7)) {
			struct snap_disk *d = &s->d[s->n];

			if (s->n >= FERRY_WIRE_MAX_DISKS ||
			    sscanf(line + 7, "%255s %" SCNu64 " %15s %n",
				   d->file, &d->size, store, &pos) < 3 ||
			    !pos) {
				bad = true;
				continue;
			}
			snprintf(d->name, sizeof(d->name), "%s",
				 line + 7 + pos);
			d->store = strcmp(store, "reflink") ? STORE_COW
							    : STORE_REFLINK;
			s->n++;
		}
	}
	free(buf);
	if (format >= 2 && (!end || bad || disks != s->n))
		return -2;
	return s->cp_id ? 0 : -2;
}

static int cmp_snap(const void *a, const void *b)
{
	const struct snap *x = a, *y = b;

	return x->cp_id < y->cp_id ? -1 : x->cp_id > y->cp_id;
}

/*
 * The snapshots under DIR (SOURCE/snapshots), ascending cp_id, in *OUT
 * (free it).  All of them or none: a partial list would make a caller
 * copy on write into an older snapshot, read a snapshot past a delta it
 * holds, or prune and drop the data of ones it did not see.  0 (none if
 * DIR does not exist), or -1 with errno (EBADMSG: a damaged description,
 * logged with the way out).
 */
static int list_snaps(const char *dir, struct snap **out, unsigned int *count)
{
	struct snap *v = NULL;
	unsigned int n = 0, cap = 0;
	struct dirent *e;
	DIR *d = opendir(dir);
	int rc = 0;

	*out = NULL;
	*count = 0;
	if (!d)
		return errno == ENOENT ? 0 : -1;
	for (;;) {
		size_t l;
		char path[PATH_MAX];

		errno = 0;
		e = readdir(d);
		if (!e) {
			rc = errno ? -1 : 0;
			break;
		}
		l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".snap"))
			continue;
		if (n == cap) {
			struct snap *nv;

			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				errno = ENOMEM;
				rc = -1;
				break;
			}
			v = nv;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		rc = read_snap(path, &v[n]);
		if (rc == -2) {
			rlog_error("snapshot %s is damaged (cut short, no "
				   "cp_id, or a bad disk line): no "
				   "snapshot of this server is taken, pruned or "
				   "read until it and its directory are moved "
				   "away", path);
			errno = EBADMSG;
			rc = -1;
			break;
		}
		if (rc && errno == ENOENT) {	/* deleted meanwhile */
			rc = 0;
			continue;
		}
		if (rc)
			break;
		n++;
	}
	if (rc) {
		int err = errno;

		closedir(d);
		free(v);
		errno = err;
		return -1;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_snap);
	*out = v;
	*count = n;
	return 0;
}

static const struct snap_disk *snap_find_disk(const struct snap *s,
					      const char *file)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (!strcmp(s->d[i].file, file))
			return &s->d[i];
	return NULL;
}

/* ---- deltas ------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
	return !p[0] && !memcmp(p, p + 1, n - 1);
}

static void rec_fill(uint8_t *rec, uint64_t block)
{
	uint64_t h = XXH3_64bits_withSeed(rec + REC_HDR, SNAP_BLOCK, block);

	memset(rec, 0, REC_HDR);
	memcpy(rec, REC_MAGIC, 8);
	memcpy(rec + 8, &block, 8);
	memcpy(rec + 16, &h, 8);
}

/* REC holds block B, whole (the index of a delta being read can be
 * older than a cut after a failed flush, and the offset reused). */
static bool rec_holds(const uint8_t *rec, uint64_t b)
{
	uint64_t block, h;

	memcpy(&block, rec + 8, 8);
	memcpy(&h, rec + 16, 8);
	return !memcmp(rec, REC_MAGIC, 8) && block == b &&
	       h == XXH3_64bits_withSeed(rec + REC_HDR, SNAP_BLOCK, block);
}

static size_t slot_of(const struct delta *d, uint64_t b)
{
	return (size_t)((b * 0x9e3779b97f4a7c15ull) >> 32) & (d->cap - 1);
}

/* The offset + 1 of block B's record in D, 0 if D lacks it. */
static uint64_t delta_get(const struct delta *d, uint64_t b)
{
	if (!d->cap)
		return 0;
	for (size_t i = slot_of(d, b); d->slot[2 * i];
	     i = (i + 1) & (d->cap - 1))
		if (d->slot[2 * i] == b + 1)
			return d->slot[2 * i + 1];
	return 0;
}

/* Record that D holds block B at offset AT (B not held yet). */
static int delta_put(struct delta *d, uint64_t b, uint64_t at)
{
	size_t i;

	if ((d->count + 1) * 2 > d->cap) {
		struct delta n = { .cap = d->cap ? d->cap * 2 : 256 };

		n.slot = calloc(n.cap, 2 * sizeof(*n.slot));
		if (!n.slot) {
			errno = ENOMEM;
			return -1;
		}
		for (i = 0; i < d->cap; i++) {
			size_t j;

			if (!d->slot[2 * i] || d->slot[2 * i] == SLOT_GONE)
				continue;
			n.count++;
			for (j = slot_of(&n, d->slot[2 * i] - 1); n.slot[2 * j];
			     j = (j + 1) & (n.cap - 1))
				;
			n.slot[2 * j] = d->slot[2 * i];
			n.slot[2 * j + 1] = d->slot[2 * i + 1];
		}
		free(d->slot);
		d->slot = n.slot;
		d->cap = n.cap;
		d->count = n.count;
	}
	for (i = slot_of(d, b); d->slot[2 * i]; i = (i + 1) & (d->cap - 1))
		;
	d->slot[2 * i] = b + 1;
	d->slot[2 * i + 1] = at + 1;
	d->count++;
	return 0;
}

/*
 * Forget D's records from offset END on and append from there again.
 * After a failed fdatasync() their pages may never reach the disk: Linux
 * reports a writeback error once and then counts those pages clean, so a
 * second flush would succeed without writing them.  Written again, they
 * are dirty again.  No allocation: this runs when things already fail.
 */
static void delta_forget_from(struct delta *d, uint64_t end)
{
	for (size_t i = 0; i < d->cap; i++)
		if (d->slot[2 * i] && d->slot[2 * i] != SLOT_GONE &&
		    d->slot[2 * i + 1] > end) {
			d->slot[2 * i] = SLOT_GONE;
			d->slot[2 * i + 1] = 0;
		}
	d->end = end;
}

/*
 * Index the valid records of D from D->end on (a refresh reads only what
 * was appended since).  TRUNCATE: cut off a torn tail.  A read that fails
 * is an error, never a torn tail: cutting there would lose every record
 * after it for good.  A file now shorter than what was indexed was cut
 * back by the server (a failed flush) and may be appended to anew below
 * our index: ESTALE, read it again from the start.
 */
static int delta_scan(struct delta *d, bool truncate)
{
	uint8_t *rec = malloc(REC_LEN);
	struct stat st;

	if (!rec || fstat(d->fd, &st)) {
		free(rec);
		return -1;
	}
	if ((uint64_t)st.st_size < d->end) {
		free(rec);
		errno = ESTALE;
		return -1;
	}
	while (d->end + REC_LEN <= (uint64_t)st.st_size) {
		uint64_t block, h;

		if (pread_full(d->fd, rec, REC_LEN, d->end)) {
			int e = errno;

			free(rec);
			errno = e;
			return -1;
		}
		memcpy(&block, rec + 8, 8);
		memcpy(&h, rec + 16, 8);
		if (memcmp(rec, REC_MAGIC, 8) ||
		    h != XXH3_64bits_withSeed(rec + REC_HDR, SNAP_BLOCK,
					      block))
			break;
		if (block < d->nblocks && !delta_get(d, block) &&
		    delta_put(d, block, d->end)) {
			free(rec);
			return -1;
		}
		d->end += REC_LEN;
	}
	free(rec);
	if (truncate && (uint64_t)st.st_size != d->end &&
	    (ftruncate(d->fd, (off_t)d->end) || fsync(d->fd)))
		return -1;
	return 0;
}

static int delta_open(struct delta *d, const char *path, uint64_t size,
		      bool writable)
{
	memset(d, 0, sizeof(*d));
	d->nblocks = (size + SNAP_BLOCK - 1) / SNAP_BLOCK;
	d->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (d->fd < 0)
		return -1;
	if (delta_scan(d, writable)) {
		int e = errno;

		close(d->fd);
		free(d->slot);
		d->fd = -1;
		errno = e;
		return -1;
	}
	return 0;
}

static void delta_close(struct delta *d)
{
	if (d->fd >= 0)
		close(d->fd);
	free(d->slot);
	d->fd = -1;
	d->slot = NULL;
}

static void snap_dir(char *out, size_t len, const char *data_dir,
		     const char *source)
{
	snprintf(out, len, "%s/%s/snapshots", data_dir, source);
}

/* ---- the live volume's side --------------------------------------------- */

void snap_cow_close(struct volume *v)
{
	if (!v->cow)
		return;
	delta_close(&v->cow->d);
	free(v->cow->rec);
	free(v->cow);
	v->cow = NULL;
}

/* Make V copy on write into the delta at PATH (a snapshot of SIZE). */
static int cow_open(struct volume *v, const char *path, uint64_t size,
		    char *err, size_t errlen)
{
	struct snap_cow *c = calloc(1, sizeof(*c));
	int e;

	if (!c || !(c->rec = malloc(REC_LEN))) {
		free(c);
		set_err(err, errlen, "out of memory for the delta of %s",
			v->img_path);
		return FERRY_E_INTERNAL;
	}
	/* Records appended by a process killed before its flush are
	 * indexed as held: durable before a live write relies on them. */
	if (delta_open(&c->d, path, size, true) || fdatasync(c->d.fd)) {
		e = errno;
		if (c->d.fd >= 0)
			delta_close(&c->d);
		free(c->rec);
		free(c);
		set_err(err, errlen, "cannot open snapshot delta %s of %s: %s",
			path, v->img_path, strerror(e));
		return volume_storage_code(e);
	}
	c->synced_end = c->d.end;
	snap_cow_close(v);
	v->cow = c;
	return 0;
}

/* The snapshots of V's server, from DIR (its snapshots directory, set
 * here); an error names V, DIR and WHY it was listed. */
static int list_snaps_of(const struct volume *v, const char *data_dir,
			 char *dir, size_t dirlen, struct snap **s,
			 unsigned int *n, const char *why, char *err,
			 size_t errlen)
{
	int e;

	snap_dir(dir, dirlen, data_dir, v->source);
	if (!list_snaps(dir, s, n))
		return 0;
	e = errno;
	set_err(err, errlen, "cannot list the snapshots of %s in %s (%s): %s",
		v->img_path, dir, why, strerror(e));
	return volume_storage_code(e);
}

int snap_may_start_afresh(const struct volume *v, const char *data_dir,
			  char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct snap *s;
	unsigned int n;
	int rc = list_snaps_of(v, data_dir, dir, sizeof(dir), &s, &n,
			       "a new volume must not change one",
			       err, errlen);

	if (rc)
		return rc;
	for (unsigned int i = n; i-- > 0 && !rc;) {
		const struct snap_disk *d = snap_find_disk(&s[i], v->file);

		if (d && d->store == STORE_COW) {
			set_err(err, errlen, "%s has no metadata, but snapshot "
				"%" PRIu64 " in %s keeps only the blocks of this "
				"disk overwritten since it was taken and reads "
				"the others from the volume: put the volume and "
				"its .meta back, or move %s away too (its "
				"snapshots are then gone)", v->img_path,
				s[i].cp_id, dir, dir);
			rc = FERRY_E_IO;
		}
	}
	free(s);
	return rc;
}

int snap_attach(struct volume *v, const char *data_dir, char *err,
		size_t errlen)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	struct snap *s;
	unsigned int n;
	int rc = list_snaps_of(v, data_dir, dir, sizeof(dir), &s, &n,
			       "the newest must keep the blocks it overwrites",
			       err, errlen);

	if (rc)
		return rc;
	/* The newest description may be a rename not yet flushed (its
	 * flush failed when it was taken): durable before we copy on
	 * write into its delta (write_snap()). */
	if (n && fsync_path(dir)) {
		int e = errno;

		free(s);
		set_err(err, errlen, "cannot flush the snapshots directory %s "
			"of %s: %s", dir, v->img_path, strerror(e));
		return volume_storage_code(e);
	}
	for (unsigned int i = n; i-- > 0;) {
		const struct snap_disk *d = snap_find_disk(&s[i], v->file);

		if (!d)
			continue;
		if (d->store == STORE_COW) {
			snprintf(path, sizeof(path), "%s/%" PRIu64 "/%s.delta",
				 dir, s[i].cp_id, v->file);
			rc = cow_open(v, path, d->size, err, errlen);
		}
		break;
	}
	free(s);
	return rc;
}

int snap_cow_before(struct volume *v, uint64_t off, uint64_t len,
		    bool zeroing, char *err, size_t errlen)
{
	struct snap_cow *c = v->cow;
	uint64_t b, last;

	if (!c || !len)
		return 0;
	b = off / SNAP_BLOCK;
	last = (off + len - 1) / SNAP_BLOCK;
	for (; b <= last && b < c->d.nblocks; b++) {
		if (delta_get(&c->d, b))
			continue;
		/* Zeroing a block that reads as zeros changes nothing: holes
		 * are skipped without reading them (an fstrim on the source
		 * zeroes all its free space, mostly holes here). */
		if (zeroing) {
			off_t at = (off_t)(b * SNAP_BLOCK);
			off_t data = lseek(v->fd, at, SEEK_DATA);

			if (data < 0 && errno == ENXIO)
				break;		/* holes to the end */
			if (data >= at + (off_t)SNAP_BLOCK) {
				b = (uint64_t)data / SNAP_BLOCK - 1;
				continue;
			}
		}
		if (pread_full(v->fd, c->rec + REC_HDR, SNAP_BLOCK,
			       b * SNAP_BLOCK)) {
			set_err(err, errlen, "cannot read block %" PRIu64
				" of %s for its snapshot: %s", b, v->img_path,
				strerror(errno));
			return FERRY_E_IO;
		}
		if (zeroing && all_zero(c->rec + REC_HDR, SNAP_BLOCK))
			continue;
		rec_fill(c->rec, b);
		if (pwrite_full(c->d.fd, c->rec, REC_LEN, c->d.end)) {
			int e = errno;

			/* A partial record is cut off at the next open. */
			set_err(err, errlen, "cannot keep block %" PRIu64
				" of %s in its snapshot's delta: %s", b,
				v->img_path, strerror(e));
			return volume_storage_code(e);
		}
		if (delta_put(&c->d, b, c->d.end)) {
			set_err(err, errlen, "out of memory for the snapshot "
				"delta of %s", v->img_path);
			return FERRY_E_INTERNAL;
		}
		c->d.end += REC_LEN;
		c->unsynced = true;
	}
	/* The old contents are durable before the live write is issued:
	 * the page cache may write the volume back at any time.  After a
	 * failed flush the live write is not issued; its retry copies the
	 * blocks again from the volume, still unchanged. */
	if (c->unsynced && fdatasync(c->d.fd)) {
		int e = errno;

		delta_forget_from(&c->d, c->synced_end);
		/* Off the file too: a later open would index them. */
		if (ftruncate(c->d.fd, (off_t)c->synced_end))
			rlog_error("cannot cut the snapshot delta of %s back "
				   "to its last flush: %s", v->img_path,
				   strerror(errno));
		set_err(err, errlen, "cannot flush the snapshot delta of %s: "
			"%s", v->img_path, strerror(e));
		return volume_storage_code(e);
	}
	c->unsynced = false;
	c->synced_end = c->d.end;
	return 0;
}

/* ---- taking, pruning, deleting ------------------------------------------ */

static int lock_snaps(const char *dir, int how)
{
	char path[PATH_MAX + 8];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, how)) {
		close(fd);
		return -2;
	}
	return fd;
}

static void rm_tree(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 600];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Copy the records of delta FROM that delta TO lacks into TO, durably. */
static int delta_merge(const char *from, const char *to, uint64_t size,
		       char *err, size_t errlen)
{
	struct delta f, t;
	uint8_t *rec = malloc(REC_LEN);
	int rc = 0, e = 0;

	if (!rec)
		return FERRY_E_INTERNAL;
	if (delta_open(&f, from, size, false)) {
		e = errno;
		free(rec);
		set_err(err, errlen, "cannot open delta %s: %s", from,
			strerror(e));
		return volume_storage_code(e);
	}
	if (delta_open(&t, to, size, true)) {
		e = errno;
		delta_close(&f);
		free(rec);
		set_err(err, errlen, "cannot open delta %s: %s", to,
			strerror(e));
		return volume_storage_code(e);
	}
	for (size_t i = 0; i < f.cap && !e; i++) {
		uint64_t b = f.slot[2 * i] - 1;

		if (!f.slot[2 * i] || delta_get(&t, b))
			continue;
		if (pread_full(f.fd, rec, REC_LEN, f.slot[2 * i + 1] - 1) ||
		    pwrite_full(t.fd, rec, REC_LEN, t.end) ||
		    delta_put(&t, b, t.end))
			e = errno;
		t.end += REC_LEN;
	}
	if (!e && fdatasync(t.fd))
		e = errno;
	if (e) {
		set_err(err, errlen, "cannot merge delta %s into %s: %s", from,
			to, strerror(e));
		rc = volume_storage_code(e);
	}
	delta_close(&f);
	delta_close(&t);
	free(rec);
	return rc;
}

/* Disk FILE in the first of the N snapshots S after S[I], or NULL: if
 * none, S[I] is that disk's newest (its volume copies on write into it). */
static const struct snap_disk *later_disk(const struct snap *s,
					  unsigned int n, unsigned int i,
					  const char *file)
{
	const struct snap_disk *d = NULL;

	for (unsigned int j = i + 1; j < n && !d; j++)
		d = snap_find_disk(&s[j], file);
	return d;
}


/* Disk K of snapshot S[I] (delete_snap()): merge its delta backwards. */
static int delete_disk(const char *dir, const char *src_dir,
		       const struct snap *s, unsigned int n, unsigned int i,
		       unsigned int k, bool check_live, int *live,
		       int *n_live, char *err, size_t errlen)
{
	const struct snap_disk *d = &s[i].d[k];
	const struct snap_disk *pd = NULL;
	char path[PATH_MAX + 64], to[PATH_MAX + 64];
	unsigned int p;

	if (check_live && !later_disk(s, n, i, d->file)) {
		int fd;

		snprintf(path, sizeof(path), "%s/%s.img", src_dir, d->file);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			live[(*n_live)++] = fd;
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB)) {
			set_err(err, errlen, "snapshot %" PRIu64 " is the "
				"newest of disk %s, which is being replicated "
				"now; the replicator prunes it by its policy",
				s[i].cp_id, d->name);
			return FERRY_E_BUSY;
		}
	}
	for (p = i; p-- > 0;) {
		pd = snap_find_disk(&s[p], d->file);
		if (pd)
			break;
	}
	if (!pd || pd->store != STORE_COW)
		return 0;	/* nothing older reads through it */
	if (d->store != STORE_COW) {
		set_err(err, errlen, "snapshot %" PRIu64 " of disk %s is a "
			"reflinked image that the older copy-on-write "
			"snapshot %" PRIu64 " reads through; delete that one "
			"first", s[i].cp_id, d->name, s[p].cp_id);
		return FERRY_E_BUSY;
	}
	snprintf(path, sizeof(path), "%s/%" PRIu64 "/%s.delta", dir,
		 s[i].cp_id, d->file);
	snprintf(to, sizeof(to), "%s/%" PRIu64 "/%s.delta", dir,
		 s[p].cp_id, d->file);
	return delta_merge(path, to, pd->size < d->size ? pd->size : d->size,
			   err, errlen);
}

/*
 * Delete snapshot S[I] of the N in DIR (lock held): its delta blocks go
 * to the previous snapshot of each disk first.  With CHECK_LIVE, refuses
 * (BUSY) when S[I] is the newest of a disk being written (the server
 * appends to its delta).
 */
static int delete_snap(const char *dir, const char *src_dir,
		       struct snap *s, unsigned int n, unsigned int i,
		       bool check_live, char *err, size_t errlen)
{
	char path[PATH_MAX + 64], sub[PATH_MAX + 32];
	int live[FERRY_WIRE_MAX_DISKS], n_live = 0, rc = 0;

	/* Held until the end: a server attaching the disk meanwhile would
	 * append to the delta being merged away (snap_attach() locks too). */
	for (unsigned int k = 0; k < s[i].n && !rc; k++)
		rc = delete_disk(dir, src_dir, s, n, i, k, check_live, live,
				 &n_live, err, errlen);
	if (!rc) {
		snprintf(path, sizeof(path), "%s/%" PRIu64 ".snap", dir,
			 s[i].cp_id);
		if (unlink(path) || fsync_path(dir)) {
			set_err(err, errlen, "cannot remove %s: %s", path,
				strerror(errno));
			rc = volume_storage_code(errno);
		}
	}
	while (n_live > 0)
		close(live[--n_live]);
	if (rc)
		return rc;
	snprintf(sub, sizeof(sub), "%s/%" PRIu64, dir, s[i].cp_id);
	rm_tree(sub);
	memmove(&s[i], &s[i + 1], (n - i - 1) * sizeof(*s));
	return 0;
}

/* Which of the N snapshots S POLICY keeps at NOW (the newest always;
 * prune() also keeps a disk's newest while a connection writes it). */
static void policy_keep(const struct snap_policy *policy, const struct snap *s,
			unsigned int n, uint64_t now, bool *keep)
{
	for (unsigned int i = 0; i < n; i++)
		keep[i] = i == n - 1;
	for (unsigned int r = 0; r < policy->n; r++) {
		const struct snap_rule *ru = &policy->rule[r];
		uint64_t bucket = UINT64_MAX;

		/* The oldest of each interval within the retention: a kept
		 * snapshot stays kept while newer ones arrive. */
		for (unsigned int i = 0; i < n; i++) {
			if (s[i].time_ms + ru->retention_ms < now)
				continue;
			if (s[i].time_ms / ru->interval_ms != bucket) {
				bucket = s[i].time_ms / ru->interval_ms;
				keep[i] = true;
			}
		}
	}
}

/* Remove data directories without a description: a snapshot cut short
 * by a crash, or a deletion that removed the description first. */
static void drop_orphans(const char *dir, const struct snap *s,
			 unsigned int n)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char sub[PATH_MAX + 300];
		uint64_t cp;
		unsigned int i;

		if (!e->d_name[0] || strspn(e->d_name, "0123456789") !=
		    strlen(e->d_name) || sscanf(e->d_name, "%" SCNu64,
						&cp) != 1)
			continue;
		for (i = 0; i < n && s[i].cp_id != cp; i++)
			;
		if (i < n)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		rm_tree(sub);
	}
	closedir(d);
}

static int prune(const char *dir, const char *src_dir,
		 const struct snap_policy *policy, uint64_t now, char *err,
		 size_t errlen)
{
	unsigned int n, i = 0, k = 0;
	struct snap *s;
	bool *keep;
	int rc = 0;

	if (list_snaps(dir, &s, &n)) {
		int e = errno;

		set_err(err, errlen, "cannot list the snapshots in %s: %s",
			dir, strerror(e));
		return volume_storage_code(e);
	}
	keep = calloc(n ? n : 1, sizeof(*keep));
	if (!keep) {
		free(s);
		return FERRY_E_INTERNAL;
	}
	drop_orphans(dir, s, n);
	policy_keep(policy, s, n, now, keep);
	/*
	 * Oldest first: a deleted snapshot merges into the kept ones.  Not
	 * the newest snapshot of a disk that a connection writes (BUSY): it
	 * copies on write into it (with a server's disks split among
	 * connections, that is not always the newest of all).  That of a
	 * disk no longer replicated goes by the policy like the others.
	 */
	while (i < n && !rc) {
		uint64_t cp = s[i].cp_id;

		if (keep[k++]) {
			i++;
			continue;
		}
		rc = delete_snap(dir, src_dir, s, n, i, true, err, errlen);
		if (rc == FERRY_E_BUSY) {
			rc = 0;
			i++;
			continue;
		}
		if (!rc) {
			rlog_info("snapshot %s: pruned cp %" PRIu64 " (policy "
				  "no longer keeps it)", dir, cp);
			n--;
		}
	}
	free(keep);
	free(s);
	return rc;
}

static int reflink_copy(int src, const char *dst, char *err, size_t errlen,
			bool *unsupported)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), e;

	*unsupported = false;
	if (fd < 0) {
		e = errno;
		set_err(err, errlen, "cannot create %s: %s", dst,
			strerror(e));
		return volume_storage_code(e);
	}
	if (ioctl(fd, FICLONE, src) == 0) {
		if (fsync(fd) == 0) {
			close(fd);
			return 0;
		}
	} else if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL ||
		   errno == ENOTTY || errno == ENOSYS) {
		*unsupported = true;
	}
	e = errno;
	close(fd);
	unlink(dst);
	if (*unsupported)
		return 0;
	set_err(err, errlen, "cannot reflink %s: %s", dst, strerror(e));
	return volume_storage_code(e);
}

bool snap_due(const struct volume *vols, unsigned int n, const char *data_dir,
	      const char *source, const struct snap_policy *policy,
	      uint64_t cp_id)
{
	uint64_t min_iv = UINT64_MAX;
	char dir[PATH_MAX];
	unsigned int count;
	struct snap *s;
	bool due;

	if (!n)
		return false;
	for (unsigned int i = 0; i < n; i++)
		if (vols[i].sync_mark < vols[i].size)
			return false;	/* not a whole image yet */
	for (unsigned int r = 0; r < policy->n; r++)
		if (policy->rule[r].interval_ms < min_iv)
			min_iv = policy->rule[r].interval_ms;
	snap_dir(dir, sizeof(dir), data_dir, source);
	if (list_snaps(dir, &s, &count)) {
		rlog_error("snapshots of %s: cannot list %s, no snapshot "
			   "taken: %s", source, dir, strerror(errno));
		return false;
	}
	due = !count || now_ms() >= s[count - 1].time_ms + min_iv;
	if (count && s[count - 1].cp_id >= cp_id)
		due = false;
	free(s);
	return due;
}

int snap_at_cp(struct volume *vols, unsigned int n, const char *data_dir,
	       const char *source, const struct snap_policy *policy,
	       uint64_t cp_id, uint64_t cp_time_ms, char *err, size_t errlen)
{
	char dir[PATH_MAX], src_dir[PATH_MAX], sub[PATH_MAX + 32],
	     path[PATH_MAX + 300];
	uint64_t now = now_ms();
	struct snap snap;
	bool durable = false;
	int lock, rc = 0;

	if (!snap_due(vols, n, data_dir, source, policy, cp_id))
		return 0;
	snprintf(src_dir, sizeof(src_dir), "%s/%s", data_dir, source);
	snap_dir(dir, sizeof(dir), data_dir, source);
	if (mkdir(dir, 0750) == 0)
		fsync_path(src_dir);
	lock = lock_snaps(dir, LOCK_EX | LOCK_NB);
	if (lock == -2)
		return 0;	/* an export or delete: at a later CP */
	if (lock < 0) {
		set_err(err, errlen, "cannot lock snapshots in %s: %s", dir,
			strerror(errno));
		return volume_storage_code(errno);
	}
	memset(&snap, 0, sizeof(snap));
	snap.cp_id = cp_id;
	snap.cp_time_ms = cp_time_ms;
	snap.time_ms = now;
	snap.n = n;
	snprintf(sub, sizeof(sub), "%s/%" PRIu64, dir, cp_id);
	rm_tree(sub);	/* a snapshot cut short by a crash */
	if (mkdir(sub, 0750)) {
		set_err(err, errlen, "cannot create %s: %s", sub,
			strerror(errno));
		rc = volume_storage_code(errno);
		goto out;
	}
	for (unsigned int i = 0; i < n && !rc; i++) {
		struct snap_disk *d = &snap.d[i];
		bool unsupported;
		int fd;

		snprintf(d->file, sizeof(d->file), "%s", vols[i].file);
		snprintf(d->name, sizeof(d->name), "%s", vols[i].disk);
		d->size = vols[i].size;
		snprintf(path, sizeof(path), "%s/%s.img", sub, d->file);
		rc = reflink_copy(vols[i].fd, path, err, errlen,
				  &unsupported);
		if (rc)
			break;
		if (!unsupported) {
			d->store = STORE_REFLINK;
			continue;
		}
		d->store = STORE_COW;
		snprintf(path, sizeof(path), "%s/%s.delta", sub, d->file);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || fsync(fd)) {
			set_err(err, errlen, "cannot create %s: %s", path,
				strerror(errno));
			rc = volume_storage_code(errno);
		}
		if (fd >= 0)
			close(fd);
	}
	if (!rc && fsync_path(sub)) {
		set_err(err, errlen, "cannot flush %s: %s", sub,
			strerror(errno));
		rc = volume_storage_code(errno);
	}
	/* The description is the commit point of the snapshot. */
	if (!rc)
		rc = write_snap(dir, &snap, &durable, err, errlen);
	if (rc) {
		rm_tree(sub);
		goto out;
	}
	/* Stop here, copying on write into the previous delta still: the
	 * connection ends, and the next one's snap_attach() flushes the
	 * directory before it attaches to the newest snapshot. */
	if (!durable) {
		rc = FERRY_E_IO;
		goto out;
	}
	for (unsigned int i = 0; i < n && !rc; i++) {
		if (snap.d[i].store == STORE_REFLINK) {
			snap_cow_close(&vols[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.delta", sub,
			 snap.d[i].file);
		rc = cow_open(&vols[i], path, snap.d[i].size, err, errlen);
	}
	/* Past the commit point: not a failure that freeing space and
	 * trying again mends (the snapshot is no longer due then). */
	if (rc == FERRY_E_NOSPC)
		rc = FERRY_E_IO;
	/* A failed prune leaves every snapshot exact: say so, go on. */
	if (!rc && prune(dir, src_dir, policy, now, err, errlen))
		rlog_error("snapshots of %s: pruning failed (tried again at "
			   "the next snapshot): %s", source, err);
out:
	close(lock);
	return rc ? rc : 1;
}

int snap_yield_oldest(const char *data_dir, const char *source, char *err,
		      size_t errlen)
{
	char dir[PATH_MAX], src_dir[PATH_MAX];
	struct snap *s;
	unsigned int n;
	int lock, rc = 0;

	snprintf(src_dir, sizeof(src_dir), "%s/%s", data_dir, source);
	snap_dir(dir, sizeof(dir), data_dir, source);
	lock = lock_snaps(dir, LOCK_EX | LOCK_NB);
	if (lock == -2)
		return 0;	/* an export holds them */
	if (lock < 0) {
		if (errno != ENOENT)	/* ENOENT: no snapshot yet */
			rlog_error("snapshots of %s: cannot lock %s to make "
				   "room: %s", source, dir, strerror(errno));
		return 0;
	}
	if (list_snaps(dir, &s, &n)) {
		rlog_error("snapshots of %s: cannot list %s to make room: %s",
			   source, dir, strerror(errno));
		close(lock);
		return 0;
	}
	/*
	 * The oldest that can go, never the newest of all: not one that a
	 * volume being written copies on write into, the newest that holds
	 * its disk, which need not be the newest of all (its disk left out
	 * of later ones, or another connection of the server took them):
	 * delete_snap()'s live check answers BUSY for those.
	 */
	for (unsigned int i = 0; i + 1 < n; i++) {
		uint64_t cp = s[i].cp_id, now = now_ms();
		uint64_t age_s = now > s[i].time_ms ?
				 (now - s[i].time_ms) / 1000 : 0;

		rc = delete_snap(dir, src_dir, s, n, i, true, err, errlen);
		if (rc == FERRY_E_BUSY) {
			rc = 0;
			continue;
		}
		if (!rc) {
			rlog_info("snapshots of %s: the staging filesystem is "
				  "full: deleted the oldest snapshot%s (cp %"
				  PRIu64 ", %" PRIu64 " s old) so that "
				  "replication goes on; %u left", source,
				  i ? " that could go" : "", cp, age_s, n - 1);
			rc = 1;
		}
		break;
	}
	free(s);
	close(lock);
	return rc;
}

/* ---- reading a snapshot ------------------------------------------------- */

/* The chain to read disk FILE of snapshot S[I] through. */
struct chain {
	unsigned int n;
	struct delta d[MAX_SNAPS];
	int img;		/* the reflinked image or the live volume */
	bool live;		/* IMG is the live volume: refresh d[n-1] */
	uint64_t size;
};

static void chain_close(struct chain *c)
{
	for (unsigned int i = 0; i < c->n; i++)
		delta_close(&c->d[i]);
	if (c->img >= 0)
		close(c->img);
}

static int chain_open(struct chain *c, const char *src_dir, const char *dir,
		      const struct snap *s, unsigned int n, unsigned int i,
		      const struct snap_disk *disk, char *err, size_t errlen)
{
	char path[PATH_MAX + 300];

	c->n = 0;
	c->img = -1;
	c->size = disk->size;
	for (unsigned int j = i; j < n; j++) {
		const struct snap_disk *d = snap_find_disk(&s[j], disk->file);

		if (!d)
			continue;
		if (d->store == STORE_REFLINK) {
			snprintf(path, sizeof(path), "%s/%" PRIu64 "/%s.img",
				 dir, s[j].cp_id, d->file);
			c->img = open(path, O_RDONLY | O_CLOEXEC);
			if (c->img < 0)
				goto fail;
			return 0;
		}
		snprintf(path, sizeof(path), "%s/%" PRIu64 "/%s.delta", dir,
			 s[j].cp_id, d->file);
		if (c->n == MAX_SNAPS) {
			errno = EMFILE;
			goto fail;
		}
		/* Blocks beyond this snapshot's size are not needed. */
		if (delta_open(&c->d[c->n], path, disk->size, false))
			goto fail;
		c->n++;
	}
	snprintf(path, sizeof(path), "%s/%s.img", src_dir, disk->file);
	c->img = open(path, O_RDONLY | O_CLOEXEC);
	if (c->img < 0)
		goto fail;
	c->live = true;
	return 0;
fail:
	set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
	chain_close(c);
	return FERRY_E_IO;
}

/* Block B of the snapshot into BUF (SNAP_BLOCK bytes). */
static int chain_read(struct chain *c, uint64_t b, uint8_t *buf,
		      uint8_t *rec)
{
	for (unsigned int i = 0; i < c->n; i++) {
		uint64_t at = delta_get(&c->d[i], b);

		if (!at)
			continue;
		if (pread_full(c->d[i].fd, rec, REC_LEN, at - 1))
			return -1;
		if (!rec_holds(rec, b)) {
			errno = ESTALE;	/* changed under us: export again */
			return -1;
		}
		memcpy(buf, rec + REC_HDR, SNAP_BLOCK);
		return 0;
	}
	if (pread_full(c->img, buf, SNAP_BLOCK, b * SNAP_BLOCK))
		return -1;
	/* The server may have overwritten the block since we looked: it
	 * appends the old contents to the newest delta before it writes,
	 * so a second look at that delta catches it. */
	if (c->live && c->n) {
		struct delta *d = &c->d[c->n - 1];

		if (delta_scan(d, false))
			return -1;
		if (!delta_get(d, b))
			return 0;
		if (pread_full(d->fd, rec, REC_LEN, delta_get(d, b) - 1))
			return -1;
		if (!rec_holds(rec, b)) {
			errno = ESTALE;
			return -1;
		}
		memcpy(buf, rec + REC_HDR, SNAP_BLOCK);
	}
	return 0;
}

static int export_raw(struct chain *c, int out, char *err, size_t errlen)
{
	uint8_t *buf = malloc(SNAP_BLOCK), *rec = malloc(REC_LEN);
	uint64_t nb = (c->size + SNAP_BLOCK - 1) / SNAP_BLOCK;
	int rc = 0;

	if (!buf || !rec || ftruncate(out, 0) ||
	    ftruncate(out, (off_t)c->size)) {
		set_err(err, errlen, "cannot size the output: %s",
			strerror(errno));
		rc = -1;
	}
	for (uint64_t b = 0; b < nb && !rc; b++) {
		uint64_t len = c->size - b * SNAP_BLOCK;

		if (len > SNAP_BLOCK)
			len = SNAP_BLOCK;
		if (chain_read(c, b, buf, rec)) {
			set_err(err, errlen, "cannot read block %" PRIu64
				": %s", b, strerror(errno));
			rc = -1;
		} else if (!all_zero(buf, len) &&
			   pwrite_full(out, buf, len, b * SNAP_BLOCK)) {
			set_err(err, errlen, "cannot write the output: %s",
				strerror(errno));
			rc = -1;
		}
	}
	if (!rc && fsync(out)) {
		set_err(err, errlen, "cannot flush the output: %s",
			strerror(errno));
		rc = -1;
	}
	free(buf);
	free(rec);
	return rc;
}

/* ---- command line ------------------------------------------------------- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static uint64_t bytes_held(const char *sub)
{
	struct dirent *e;
	uint64_t sum = 0;
	DIR *d = opendir(sub);

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 600];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", sub, e->d_name);
		if (e->d_name[0] != '.' && !stat(path, &st))
			sum += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > FERRY_ID_MAX || s[0] == '.')
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		      "0123456789._-") == n;
}

/* 0, or 1 if SOURCE's snapshots could not be listed (said on stderr). */
static int list_source(const char *data_dir, const char *source,
		       bool *first)
{
	char dir[PATH_MAX], sub[PATH_MAX + 32];
	unsigned int n;
	struct snap *s;

	snap_dir(dir, sizeof(dir), data_dir, source);
	if (list_snaps(dir, &s, &n)) {
		fprintf(stderr, "ferry-replicator: cannot list the snapshots "
			"in %s: %s\n", dir, strerror(errno));
		return 1;
	}
	printf("%s\n  {\"source_id\": ", *first ? "" : ",");
	*first = false;
	json_str(source);
	printf(", \"snapshots\": [");
	for (unsigned int i = 0; i < n; i++) {
		time_t t = (time_t)(s[i].time_ms / 1000);
		char when[32];
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(sub, sizeof(sub), "%s/%" PRIu64, dir, s[i].cp_id);
		printf("%s\n    {\"id\": \"%s@%" PRIu64 "\", \"cp_id\": %"
		       PRIu64
		       ", \"time\": \"%s\", \"time_ms\": %" PRIu64
		       ", \"cp_time_ms\": %" PRIu64 ", \"bytes_held\": %" PRIu64
		       ", \"disks\": [", i ? "," : "", source, s[i].cp_id,
		       s[i].cp_id, when, s[i].time_ms, s[i].cp_time_ms,
		       bytes_held(sub));
		for (unsigned int k = 0; k < s[i].n; k++) {
			printf("%s{\"name\": ", k ? ", " : "");
			json_str(s[i].d[k].name);
			printf(", \"file\": ");
			json_str(s[i].d[k].file);
			printf(", \"size\": %" PRIu64 ", \"store\": \"%s\"}",
			       s[i].d[k].size,
			       s[i].d[k].store == STORE_REFLINK ? "reflink"
								: "cow");
		}
		printf("]}");
	}
	printf("%s]}", n ? "\n  " : "");
	free(s);
	return 0;
}

static int cli_list(const char *data_dir, const char *source)
{
	bool first = true;
	struct dirent *e;
	int rc = 0;
	DIR *d;

	printf("{\"source_servers\": [");
	if (source) {
		rc = list_source(data_dir, source, &first);
	} else if ((d = opendir(data_dir))) {
		while ((e = readdir(d))) {
			char p[PATH_MAX + 300];
			struct stat st;

			snprintf(p, sizeof(p), "%s/%s/snapshots", data_dir,
				 e->d_name);
			if (valid_id(e->d_name) && !stat(p, &st) &&
			    list_source(data_dir, e->d_name, &first))
				rc = 1;
		}
		closedir(d);
	} else {
		fprintf(stderr, "ferry-replicator: cannot read %s: %s\n",
			data_dir, strerror(errno));
		return 1;
	}
	printf("%s]}\n", first ? "" : "\n");
	return rc;
}

static void usage(void)
{
	fprintf(stderr,
"usage: ferry-replicator snapshot list --data-dir DIR [--source-id ID]\n"
"       ferry-replicator snapshot delete --data-dir DIR --id SOURCE@CP\n"
"       ferry-replicator snapshot export --data-dir DIR --id SOURCE@CP\n"
"                        --disk NAME --format raw|qcow2 --out FILE\n");
}

/* Convert the raw file RAW into qcow2 OUT with qemu-img. */
static int to_qcow2(const char *raw, const char *out)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execlp("qemu-img", "qemu-img", "convert", "-q", "-f", "raw",
		       "-O", "qcow2", raw, out, (char *)NULL);
		fprintf(stderr, "ferry-replicator: cannot run qemu-img (Debian "
			"package qemu-utils): %s\n", strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/*
 * Disk D of snapshot S[I] (of N, in DIR; the live volumes in SRC_DIR)
 * into the file OUT: raw and sparse, or QCOW2 through a raw OUT.raw.tmp.
 * The caller holds the snapshots' lock, shared at least.
 */
static int export_disk(const char *src_dir, const char *dir,
		       const struct snap *s, unsigned int n, unsigned int i,
		       const struct snap_disk *d, bool qcow2, const char *out,
		       char *err, size_t errlen)
{
	char tmp[PATH_MAX + 16];
	struct chain *c = calloc(1, sizeof(*c));
	int fd, rc = -1;

	if (!c) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	if (chain_open(c, src_dir, dir, s, n, i, d, err, errlen)) {
		free(c);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.raw.tmp", out);
	fd = open(qcow2 ? tmp : out, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		set_err(err, errlen, "cannot create %s: %s", qcow2 ? tmp : out,
			strerror(errno));
	else if (export_raw(c, fd, err, errlen))
		;
	else if (qcow2 && to_qcow2(tmp, out))
		set_err(err, errlen, "qemu-img convert to %s failed", out);
	else
		rc = 0;
	if (fd >= 0)
		close(fd);
	/* A raw image cut short must not be taken for the snapshot. */
	if (qcow2 || (rc && fd >= 0))
		unlink(qcow2 ? tmp : out);
	chain_close(c);
	free(c);
	return rc;
}

int snap_export_newest(const char *data_dir, const char *source,
		       const char *out_dir, bool qcow2,
		       struct snap_export *out, unsigned int *n_out,
		       uint64_t *cp_id, uint64_t *time_ms, char *err,
		       size_t errlen)
{
	char dir[PATH_MAX], src_dir[PATH_MAX], path[PATH_MAX + 300];
	const struct snap *last;
	unsigned int n, k;
	struct snap *s;
	int lock, rc = -1;

	*n_out = 0;
	snprintf(src_dir, sizeof(src_dir), "%s/%s", data_dir, source);
	snap_dir(dir, sizeof(dir), data_dir, source);
	/* Shared: snapshots are postponed, not lost, while it runs. */
	lock = lock_snaps(dir, LOCK_SH);
	if (lock < 0) {
		set_err(err, errlen, "no snapshots of %s in %s (%s)", source,
			data_dir, strerror(errno));
		return -1;
	}
	if (list_snaps(dir, &s, &n)) {
		set_err(err, errlen, "cannot list the snapshots in %s: %s",
			dir, strerror(errno));
		goto out;
	}
	if (!n) {
		set_err(err, errlen, "source server %s has no snapshot in %s "
			"yet", source, data_dir);
		goto out;
	}
	last = &s[n - 1];	/* list_snaps sorts oldest first */
	for (k = 0; k < last->n; k++) {
		const struct snap_disk *d = &last->d[k];

		snprintf(path, sizeof(path), "%s/%s.%s", out_dir, d->file,
			 qcow2 ? "qcow2" : "img");
		if (export_disk(src_dir, dir, s, n, n - 1, d, qcow2, path,
				err, errlen))
			goto out;
		snprintf(out[k].name, sizeof(out[k].name), "%s", d->name);
		snprintf(out[k].path, sizeof(out[k].path), "%s", path);
		out[k].size = d->size;
	}
	*n_out = last->n;
	*cp_id = last->cp_id;
	*time_ms = last->cp_time_ms ? last->cp_time_ms : last->time_ms;
	rc = 0;
out:
	free(s);
	close(lock);
	return rc;
}

int snap_cli(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "source-id", required_argument, NULL, 's' },
		{ "id", required_argument, NULL, 'i' },
		{ "disk", required_argument, NULL, 'k' },
		{ "format", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	const char *data_dir = NULL, *source = NULL, *id = NULL, *disk = NULL,
		   *format = "raw", *out = NULL, *cmd;
	char src[FERRY_ID_MAX + 1], dir[PATH_MAX], src_dir[PATH_MAX],
	     err[1024] = "", file[VOLUME_FILE_MAX], *at;
	struct snap *s;
	unsigned int n, i;
	uint64_t cp;
	int ch, lock, rc = 1;

	if (argc < 2) {
		usage();
		return 2;
	}
	cmd = argv[1];
	argv++;
	argc--;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': data_dir = optarg; break;
		case 's': source = optarg; break;
		case 'i': id = optarg; break;
		case 'k': disk = optarg; break;
		case 'f': format = optarg; break;
		case 'o': out = optarg; break;
		default: usage(); return 2;
		}
	}
	if (!data_dir || optind != argc) {
		usage();
		return 2;
	}
	if (source && !valid_id(source)) {
		fprintf(stderr, "ferry-replicator: bad --source-id %s\n",
			source);
		return 2;
	}
	if (!strcmp(cmd, "list"))
		return cli_list(data_dir, source);
	if (strcmp(cmd, "delete") && strcmp(cmd, "export")) {
		usage();
		return 2;
	}
	at = id ? strrchr(id, '@') : NULL;
	if (!at || (size_t)(at - id) > FERRY_ID_MAX ||
	    sscanf(at + 1, "%" SCNu64, &cp) != 1) {
		fprintf(stderr, "ferry-replicator: --id wants SOURCE@CP, as "
			"`snapshot list` shows\n");
		return 2;
	}
	snprintf(src, sizeof(src), "%.*s", (int)(at - id), id);
	if (!valid_id(src)) {
		fprintf(stderr, "ferry-replicator: bad source in --id %s\n",
			id);
		return 2;
	}
	if (!strcmp(cmd, "export") &&
	    (!disk || !out || (strcmp(format, "raw") &&
			       strcmp(format, "qcow2")))) {
		fprintf(stderr, "ferry-replicator: export wants --disk, --out "
			"and --format raw|qcow2\n");
		return 2;
	}
	snprintf(src_dir, sizeof(src_dir), "%s/%s", data_dir, src);
	snap_dir(dir, sizeof(dir), data_dir, src);
	lock = lock_snaps(dir, strcmp(cmd, "export") ? LOCK_EX : LOCK_SH);
	if (lock < 0) {
		fprintf(stderr, "ferry-replicator: no snapshots of %s in %s "
			"(%s)\n", src, data_dir, strerror(errno));
		return 1;
	}
	if (list_snaps(dir, &s, &n)) {
		fprintf(stderr, "ferry-replicator: cannot list the snapshots "
			"in %s: %s\n", dir, strerror(errno));
		goto out;
	}
	for (i = 0; i < n && s[i].cp_id != cp; i++)
		;
	if (i == n) {
		fprintf(stderr, "ferry-replicator: no snapshot %s in %s\n", id,
			data_dir);
		goto out;
	}
	if (!strcmp(cmd, "delete")) {
		if (delete_snap(dir, src_dir, s, n, i, true, err,
				sizeof(err)))
			fprintf(stderr, "ferry-replicator: cannot delete %s: "
				"%s\n", id, err);
		else
			rc = 0;
		goto out;
	}
	{
		const struct snap_disk *d = snap_find_disk(&s[i], disk);

		if (!d && !volume_file_name(disk, file, sizeof(file)))
			d = snap_find_disk(&s[i], file);
		if (!d) {
			fprintf(stderr, "ferry-replicator: snapshot %s has no "
				"disk %s\n", id, disk);
			goto out;
		}
		if (export_disk(src_dir, dir, s, n, i, d,
				!strcmp(format, "qcow2"), out, err,
				sizeof(err)))
			fprintf(stderr, "ferry-replicator: cannot export %s "
				"disk %s: %s\n", id, disk, err);
		else
			rc = 0;
	}
out:
	free(s);
	close(lock);
	return rc;
}
