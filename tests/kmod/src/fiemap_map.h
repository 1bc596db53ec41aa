/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Map a byte range of a file to byte ranges of the device its filesystem
 * lives on, with FIEMAP.  ferry-writer --dir uses it to log which device
 * blocks a file write landed on.
 */
#ifndef FERRY_FIEMAP_MAP_H
#define FERRY_FIEMAP_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <linux/fiemap.h>

/*
 * Extent flags whose fe_physical does not say where the bytes are on the
 * device (or says they are not there yet).  UNWRITTEN is among them: after
 * fsync a range we wrote must not be unwritten any more.
 */
#define FM_UNMAPPABLE	(FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |   \
			 FIEMAP_EXTENT_ENCODED |			   \
			 FIEMAP_EXTENT_DATA_ENCRYPTED |			   \
			 FIEMAP_EXTENT_NOT_ALIGNED |			   \
			 FIEMAP_EXTENT_DATA_INLINE |			   \
			 FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_UNWRITTEN)

/* Called per mapped piece: device offset, length, file offset. */
typedef int (*fm_fn)(void *arg, uint64_t phys, uint64_t len, uint64_t logical);

/*
 * Map [loff, loff + len) through ext[0..n) (sorted by fe_logical, as
 * FIEMAP returns them).  Returns 0 when every byte was mapped, the
 * callback's non-zero value if it stopped, -1 when a byte is in no extent
 * (a hole), -2 when it is in an extent with an FM_UNMAPPABLE flag; *bad
 * is then that byte's file offset.
 */
int fm_map_range(const struct fiemap_extent *ext, size_t n, uint64_t loff,
		 uint64_t len, fm_fn fn, void *arg, uint64_t *bad);

/*
 * FIEMAP (with FIEMAP_FLAG_SYNC) the extents of fd overlapping
 * [loff, loff + len) into a malloc()ed array.  Returns 0 or -1 with errno.
 */
int fm_fetch(int fd, uint64_t loff, uint64_t len, struct fiemap_extent **ext,
	     size_t *n);

#endif /* FERRY_FIEMAP_MAP_H */
