// SPDX-License-Identifier: GPL-2.0
/*
 * volume.c - staging volumes and their metadata (volume.h).
 */
#include "volume.h"
#include "snapshot.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#define META_FORMAT 1
#define META_MAX 4096

int volume_storage_code(int e)
{
	return e == ENOSPC || e == EDQUOT ? FERRY_E_NOSPC : FERRY_E_IO;
}

int volume_file_name(const char *name, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	while (*name == '/')
		name++;
	if (!*name)
		return -1;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		unsigned char c = *p;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '_' || c == '-' ||
			     (c == '.' && o > 0);

		if (c == '/') {
			if (o + 1 >= len)
				return -1;
			out[o++] = '_';
		} else if (plain) {
			if (o + 1 >= len)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= len)
				return -1;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

void volume_close(struct volume *v)
{
	snap_cow_close(v);
	if (v->fd >= 0)
		close(v->fd);
	if (v->dir_fd >= 0)
		close(v->dir_fd);
	free(v->img_path);
	v->fd = -1;
	v->dir_fd = -1;
	v->img_path = NULL;
}

/* ---- metadata ---------------------------------------------------------- */

static void hex16(const uint8_t id[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int unhex16(const char *s, uint8_t id[16])
{
	if (strlen(s) != 32)
		return -1;
	for (int i = 0; i < 16; i++) {
		unsigned int b;

		if (sscanf(s + 2 * i, "%2x", &b) != 1 ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
			return -1;
		id[i] = (uint8_t)b;
	}
	return 0;
}

int volume_store_meta(struct volume *v, char *err, size_t errlen)
{
	char buf[META_MAX], id[33], tmp[VOLUME_FILE_MAX + 16],
	     dst[VOLUME_FILE_MAX + 16];
	size_t off = 0;
	int fd, n, e;

	hex16(v->id, id);
	n = snprintf(buf, sizeof(buf),
		     "# ferry-replicator staging volume metadata; "
		     "replaced atomically\n"
		     "format = %d\nsource = %s\ndisk = %s\nvolume_id = %s\n"
		     "size = %" PRIu64 "\nsync_mark = %" PRIu64 "\n"
		     "last_cp = %" PRIu64 "\nlast_cp_time_ms = %" PRIu64 "\n",
		     META_FORMAT, v->source, v->disk, id, v->size,
		     v->sync_mark, v->last_cp, v->last_cp_time_ms);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		set_err(err, errlen, "metadata of %s too long", v->img_path);
		return FERRY_E_INTERNAL;
	}
	snprintf(tmp, sizeof(tmp), "%s.meta.tmp", v->file);
	snprintf(dst, sizeof(dst), "%s.meta", v->file);
	fd = openat(v->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		e = errno;
		goto fail;
	}
	while (off < (size_t)n) {
		ssize_t w = write(fd, buf + off, (size_t)n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e = w < 0 ? errno : EIO;
			close(fd);
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd)) {
		e = errno;
		close(fd);
		goto fail;
	}
	close(fd);
	if (renameat(v->dir_fd, tmp, v->dir_fd, dst) || fsync(v->dir_fd)) {
		e = errno;
		goto fail;
	}
	return 0;
fail:
	unlinkat(v->dir_fd, tmp, 0);
	set_err(err, errlen, "cannot write metadata %s.meta of %s: %s",
		v->file, v->img_path, strerror(e));
	return volume_storage_code(e);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/* Read V's metadata file; 1 if there is none, 0, or -1 with ERR. */
static int load_meta(struct volume *v, char *err, size_t errlen)
{
	char buf[META_MAX + 1], name[VOLUME_FILE_MAX + 16], *line, *save;
	unsigned int seen = 0;
	ssize_t n;
	int fd;

	snprintf(name, sizeof(name), "%s.meta", v->file);
	fd = openat(v->dir_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		set_err(err, errlen, "cannot open metadata %s of %s: %s",
			name, v->img_path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || n > META_MAX) {
		set_err(err, errlen, "cannot read metadata %s of %s: %s", name,
			v->img_path, n < 0 ? strerror(errno) : "too large");
		return -1;
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq, *key = line, *val;
		uint64_t u = 0;
		int bad = 0;

		if (*line == '#')
			continue;
		eq = strstr(line, " = ");
		if (!eq)
			goto corrupt;
		*eq = '\0';
		val = eq + 3;
		if (!strcmp(key, "format")) {
			bad = parse_u64(val, &u) || u != META_FORMAT;
			seen |= 1;
		} else if (!strcmp(key, "source")) {
			bad = strcmp(val, v->source) != 0;
			seen |= 2;
		} else if (!strcmp(key, "disk")) {
			if (strcmp(val, v->disk)) {
				set_err(err, errlen,
					"staging file %s belongs to disk %s, "
					"not %s: rename one of the disks",
					v->img_path, val, v->disk);
				return -1;
			}
			seen |= 4;
		} else if (!strcmp(key, "volume_id")) {
			bad = unhex16(val, v->id);
			seen |= 8;
		} else if (!strcmp(key, "size")) {
			bad = parse_u64(val, &v->size);
			seen |= 16;
		} else if (!strcmp(key, "sync_mark")) {
			bad = parse_u64(val, &v->sync_mark);
			seen |= 32;
		} else if (!strcmp(key, "last_cp")) {
			bad = parse_u64(val, &v->last_cp);
			seen |= 64;
		} else if (!strcmp(key, "last_cp_time_ms")) {
			bad = parse_u64(val, &v->last_cp_time_ms);
			seen |= 128;
		}
		/* Unknown keys: written by a newer version; keep going. */
		if (bad)
			goto corrupt;
	}
	if (seen != 255)
		goto corrupt;
	return 0;
corrupt:
	set_err(err, errlen,
		"metadata %s of %s is damaged; move the volume's .img and "
		".meta away to start it afresh (the agent then resends "
		"the disk)",
		name, v->img_path);
	return -1;
}

/* ---- open / create ------------------------------------------------------ */

static int open_dir(const char *data_dir, const char *source, char *err,
		    size_t errlen)
{
	int top, fd, e;

	if (mkdir(data_dir, 0750) && errno != EEXIST) {
		e = errno;
		set_err(err, errlen, "cannot create data directory %s: %s",
			data_dir, strerror(e));
		return -volume_storage_code(e);
	}
	top = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0) {
		e = errno;
		set_err(err, errlen, "cannot open data directory %s: %s",
			data_dir, strerror(e));
		return -volume_storage_code(e);
	}
	if (mkdirat(top, source, 0750) == 0) {
		/* The new directory entry must survive a crash too. */
		fsync(top);
	} else if (errno != EEXIST) {
		e = errno;
		close(top);
		set_err(err, errlen, "cannot create %s/%s: %s", data_dir,
			source, strerror(e));
		return -volume_storage_code(e);
	}
	fd = openat(top, source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	e = errno;
	close(top);
	if (fd < 0) {
		set_err(err, errlen, "cannot open %s/%s: %s", data_dir, source,
			strerror(e));
		return -volume_storage_code(e);
	}
	return fd;
}

/* Make the image file SIZE bytes of zeros and its metadata new. */
static int create_volume(struct volume *v, uint64_t size, char *err,
			 size_t errlen)
{
	int e;

	if (getrandom(v->id, sizeof(v->id), 0) != sizeof(v->id)) {
		set_err(err, errlen, "no random bytes for volume %s: %s",
			v->img_path, strerror(errno));
		return FERRY_E_INTERNAL;
	}
	/* A leftover .img without .meta is from a creation cut short:
	 * its contents are nobody's, start from zeros. */
	if (ftruncate(v->fd, 0) || ftruncate(v->fd, (off_t)size) ||
	    fsync(v->fd)) {
		e = errno;
		set_err(err, errlen, "cannot create %s of %" PRIu64
			" bytes: %s", v->img_path, size, strerror(e));
		return volume_storage_code(e);
	}
	v->size = size;
	v->sync_mark = 0;
	v->last_cp = 0;
	v->last_cp_time_ms = 0;
	v->created = true;
	return volume_store_meta(v, err, errlen);
}

int volume_open(struct volume *v, const char *data_dir, const char *source,
		const char *disk, uint64_t size, char *err, size_t errlen)
{
	char img[VOLUME_FILE_MAX + 8];
	struct stat st;
	int rc, e;

	memset(v, 0, sizeof(*v));
	v->fd = -1;
	v->dir_fd = -1;
	if (!ferry_id_valid(source) ||
	    strlen(disk) >= sizeof(v->disk) ||
	    volume_file_name(disk, v->file, sizeof(v->file) - 16)) {
		set_err(err, errlen, "disk name \"%s\" of %s cannot name a "
			"staging volume", disk, source);
		return FERRY_E_UNKNOWN_DISK;
	}
	if (size == 0 || size % FERRY_WIRE_SECTOR || size > INT64_MAX) {
		set_err(err, errlen, "disk %s of %s: size %" PRIu64
			" is not a positive multiple of %d", disk, source, size,
			FERRY_WIRE_SECTOR);
		return FERRY_E_RANGE;
	}
	snprintf(v->source, sizeof(v->source), "%s", source);
	snprintf(v->disk, sizeof(v->disk), "%s", disk);
	if (asprintf(&v->img_path, "%s/%s/%s.img", data_dir, source,
		     v->file) < 0) {
		v->img_path = NULL;
		set_err(err, errlen, "out of memory");
		return FERRY_E_INTERNAL;
	}
	rc = open_dir(data_dir, source, err, errlen);
	if (rc < 0) {
		volume_close(v);
		return -rc;
	}
	v->dir_fd = rc;
	snprintf(img, sizeof(img), "%s.img", v->file);
	v->fd = openat(v->dir_fd, img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (v->fd < 0) {
		e = errno;
		set_err(err, errlen, "cannot open %s: %s", v->img_path,
			strerror(e));
		volume_close(v);
		return volume_storage_code(e);
	}
	/* Before anything changes it (create_volume() truncates): a
	 * second replicator on the same data directory stops here. */
	if (flock(v->fd, LOCK_EX | LOCK_NB)) {
		set_err(err, errlen, "%s is in use by another process (a "
			"second ferry-replicator on %s?)", v->img_path,
			data_dir);
		volume_close(v);
		return FERRY_E_BUSY;
	}
	rc = load_meta(v, err, errlen);
	if (rc < 0) {
		volume_close(v);
		return FERRY_E_IO;
	}
	if (rc == 1) {
		rc = snap_may_start_afresh(v, data_dir, err, errlen);
		if (!rc)
			rc = create_volume(v, size, err, errlen);
		if (!rc)
			rc = snap_attach(v, data_dir, err, errlen);
		if (rc)
			volume_close(v);
		return rc;
	}
	if (fstat(v->fd, &st)) {
		e = errno;
		set_err(err, errlen, "cannot stat %s: %s", v->img_path,
			strerror(e));
		volume_close(v);
		return volume_storage_code(e);
	}
	if ((uint64_t)st.st_size < v->size) {
		set_err(err, errlen, "%s is %jd bytes but its metadata says %"
			PRIu64 ": it was truncated outside ferry-replicator; "
			"move it and its .meta away to start it afresh",
			v->img_path, (intmax_t)st.st_size, v->size);
		volume_close(v);
		return FERRY_E_IO;
	}
	/*
	 * What an earlier connection wrote and did not flush (cut before
	 * its commit) must be durable before this one hashes it for a
	 * rescan or acknowledges anything: its commits flush only what it
	 * writes itself.
	 */
	if (fsync(v->fd)) {
		e = errno;
		set_err(err, errlen, "cannot flush %s: %s", v->img_path,
			strerror(e));
		volume_close(v);
		return volume_storage_code(e);
	}
	/* Copy on write from here on: a shrink cuts off blocks that the
	 * newest snapshot may still need. */
	rc = snap_attach(v, data_dir, err, errlen);
	if (rc) {
		volume_close(v);
		return rc;
	}
	if (size != v->size) {
		/*
		 * Resize, ordered so that a crash in between leaves the file
		 * at least as large as the metadata says (which opens fine):
		 * to grow, the file first; to shrink, the metadata first.
		 */
		uint64_t old = v->size;

		v->size = size;
		if (v->sync_mark > size)
			v->sync_mark = size;
		if (size < old) {
			/* The cut-off part reads as zeros in a snapshot
			 * from now on: keep what it holds, as zeroing does. */
			rc = snap_cow_before(v, size, old - size, true, err,
					     errlen);
			if (!rc)
				rc = volume_store_meta(v, err, errlen);
			if (rc) {
				volume_close(v);
				return rc;
			}
		}
		if (ftruncate(v->fd, (off_t)size) || fsync(v->fd)) {
			e = errno;
			set_err(err, errlen, "cannot resize %s to %" PRIu64
				" bytes: %s", v->img_path, size, strerror(e));
			volume_close(v);
			return volume_storage_code(e);
		}
		if (size > old) {
			rc = volume_store_meta(v, err, errlen);
			if (rc) {
				volume_close(v);
				return rc;
			}
		}
	}
	return 0;
}

/* ---- data path ---------------------------------------------------------- */

int volume_write(struct volume *v, uint64_t off, const void *buf,
		 size_t len, char *err, size_t errlen)
{
	const char *p = buf;
	int rc = snap_cow_before(v, off, len, false, err, errlen);

	if (rc)
		return rc;
	while (len) {
		ssize_t n = pwrite(v->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			v->dirty = true;	/* part of it may be there */
			set_err(err, errlen, "write of %zu bytes at %" PRIu64
				" to %s failed: %s", len, off, v->img_path,
				strerror(e));
			return volume_storage_code(e);
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	v->dirty = true;
	return 0;
}

int volume_zero(struct volume *v, uint64_t off, uint64_t len, char *err,
		size_t errlen)
{
	static const uint8_t zeros[65536];
	int e = snap_cow_before(v, off, len, true, err, errlen);

	if (e)
		return e;
	if (!fallocate(v->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       (off_t)off, (off_t)len)) {
		v->dirty = true;
		v->punched = true;
		return 0;
	}
	e = errno;
	if (e != EOPNOTSUPP && e != ENOSYS) {
		set_err(err, errlen, "cannot zero %" PRIu64 " bytes at %" PRIu64
			" of %s: %s", len, off, v->img_path, strerror(e));
		return volume_storage_code(e);
	}
	/* A filesystem without holes: write the zeros. */
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = volume_write(v, off, zeros, n, err, errlen);

		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

int volume_hash(struct volume *v, uint64_t off, uint64_t len, uint32_t chunk,
		void *scratch, uint8_t *out, uint32_t *count, char *err,
		size_t errlen)
{
	uint32_t n = 0;

	while (len) {
		size_t want = len < chunk ? (size_t)len : chunk, got = 0;
		XXH128_canonical_t c;

		while (got < want) {
			ssize_t r = pread(v->fd, (char *)scratch + got,
					  want - got, (off_t)(off + got));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				int e = errno;

				set_err(err, errlen, "read of %zu bytes at %"
					PRIu64 " of %s failed: %s", want, off,
					v->img_path, strerror(e));
				return FERRY_E_IO;
			}
			if (r == 0) {
				/* Beyond the end of file reads as zeros. */
				memset((char *)scratch + got, 0, want - got);
				break;
			}
			got += (size_t)r;
		}
		/* Canonical form: big-endian, high half first (the wire's). */
		XXH128_canonicalFromHash(&c, XXH3_128bits(scratch, want));
		memcpy(out + (size_t)n * FERRY_WIRE_HASH_LEN, c.digest,
		       FERRY_WIRE_HASH_LEN);
		n++;
		off += want;
		len -= want;
	}
	*count = n;
	return 0;
}

int volume_sync(struct volume *v, char *err, size_t errlen)
{
	int e;

	if (!v->dirty)
		return 0;
	/* Punching changes the extent map, which fdatasync may skip. */
	if (v->punched ? fsync(v->fd) : fdatasync(v->fd)) {
		e = errno;
		set_err(err, errlen, "cannot flush %s to stable storage: %s",
			v->img_path, strerror(e));
		return volume_storage_code(e);
	}
	v->dirty = false;
	v->punched = false;
	return 0;
}
