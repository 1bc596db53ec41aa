/* SPDX-License-Identifier: GPL-2.0 */
/*
 * volume.h - staging volumes: one sparse file per (source server, disk)
 * under the data directory, DIR/<source-id>/<file>.img, with its
 * metadata in <file>.meta (docs/replicator.md has the format).
 *
 * The metadata is always replaced atomically (temporary file, fsync,
 * rename, fsync of the directory), so after a crash it describes either
 * the old or the new state, never a mix.  Functions that touch storage
 * return 0 or a ferry_wire_error code (NOSPC, IO, ...) with a message
 * in ERR naming the volume, so that the caller can send it as is.
 */
#ifndef FERRY_REPLICATOR_VOLUME_H
#define FERRY_REPLICATOR_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/wire.h"
#include "peer_id.h"

#define VOLUME_FILE_MAX 256	/* an escaped disk name, with ".meta" */

struct volume {
	int fd;			/* the .img file, O_RDWR; -1: closed */
	int dir_fd;		/* DIR/<source-id>, for fsync after rename */
	char source[FERRY_ID_MAX + 1];
	char disk[FERRY_WIRE_MAX_NAME + 1];
	char file[VOLUME_FILE_MAX];	/* escaped name, no extension */
	char *img_path;		/* for messages */
	uint8_t id[16];		/* volume_id: new for every new volume */
	uint64_t size;		/* bytes */
	uint64_t sync_mark;	/* initial copy durable below this */
	uint64_t last_cp;	/* last durable consistency point, 0: none */
	uint64_t last_cp_time_ms;
	bool created;		/* volume_open() made it just now */
	bool dirty;		/* written since the last volume_sync() */
	bool punched;		/* ... with holes punched: needs fsync */
	/* Snapshots (snapshot.h): the newest snapshot's copy-on-write
	 * delta, written before the live blocks it keeps; NULL: none. */
	struct snap_cow *cow;
};

/*
 * The file name (without extension) of disk NAME: leading '/' dropped,
 * '/' turned into '_', bytes outside [A-Za-z0-9._-] and a leading '.'
 * written as %XX ("/dev/vda" -> "dev_vda").  Two names can map to the
 * same file ("/dev/a_b", "/dev/a/b"); the metadata records the real name
 * and volume_open() refuses a mismatch.  0, or -1 if NAME is empty or
 * the result does not fit in OUT[LEN].
 */
int volume_file_name(const char *name, char *out, size_t len);

/*
 * Open the staging volume of disk DISK of source server SOURCE under
 * DATA_DIR, creating it with SIZE bytes (sparse) and a new random
 * volume_id if it does not exist.  An existing volume of another size is
 * resized to SIZE (the source disk grew or shrank; a sync_mark beyond
 * the new size is lowered to it).  From the open on, V copies on write
 * into its newest snapshot (snap_attach(), which also locks the file),
 * the part a shrink cuts off included.  Returns 0 or an error code with
 * a message in ERR; V is closed on error.
 */
int volume_open(struct volume *v, const char *data_dir, const char *source,
		const char *disk, uint64_t size, char *err, size_t errlen);

/* Close V (no sync: callers sync first); safe on a closed volume. */
void volume_close(struct volume *v);

/* Write LEN bytes of BUF at OFF (the caller checked the range). */
int volume_write(struct volume *v, uint64_t off, const void *buf,
		 size_t len, char *err, size_t errlen);

/* Make [OFF, OFF+LEN) read as zeros: punch a hole, or write zeros where
 * the filesystem cannot punch. */
int volume_zero(struct volume *v, uint64_t off, uint64_t len, char *err,
		size_t errlen);

/*
 * XXH3-128 of each CHUNK-byte piece of [OFF, OFF+LEN) into OUT
 * (FERRY_WIRE_HASH_LEN bytes each, big-endian); the last piece may be
 * shorter.  SCRATCH holds CHUNK bytes.  *COUNT gets the number of hashes.
 */
int volume_hash(struct volume *v, uint64_t off, uint64_t len, uint32_t chunk,
		void *scratch, uint8_t *out, uint32_t *count, char *err,
		size_t errlen);

/* Make every write since the last call durable (fdatasync, or fsync
 * after a punched hole); nothing to do if there was none. */
int volume_sync(struct volume *v, char *err, size_t errlen);

/* Replace the metadata file with V's current fields, durably. */
int volume_store_meta(struct volume *v, char *err, size_t errlen);

/* The wire error for a failed storage call with errno E: a full disk is
 * worth retrying later (NOSPC), anything else is an I/O error. */
int volume_storage_code(int e);

#endif
