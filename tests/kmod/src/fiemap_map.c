// SPDX-License-Identifier: GPL-2.0
/*
 * FIEMAP range mapping: see fiemap_map.h.
 */
#include "fiemap_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

int fm_map_range(const struct fiemap_extent *ext, size_t n, uint64_t loff,
		 uint64_t len, fm_fn fn, void *arg, uint64_t *bad)
{
	uint64_t pos = loff, end = loff + len;

	for (size_t i = 0; i < n && pos < end; i++) {
		const struct fiemap_extent *e = &ext[i];
		uint64_t e_end = e->fe_logical + e->fe_length;
		uint64_t piece;
		int r;

		if (e_end <= pos)
			continue;
		if (e->fe_logical > pos) {
			*bad = pos;	/* a hole before this extent */
			return -1;
		}
		if (e->fe_flags & FM_UNMAPPABLE) {
			*bad = pos;
			return -2;
		}
		piece = (e_end < end ? e_end : end) - pos;
		r = fn(arg, e->fe_physical + (pos - e->fe_logical), piece, pos);
		if (r)
			return r;
		pos += piece;
	}
	if (pos < end) {
		*bad = pos;
		return -1;
	}
	return 0;
}

int fm_fetch(int fd, uint64_t loff, uint64_t len, struct fiemap_extent **ext,
	     size_t *n)
{
	enum { BATCH = 64 };
	struct fiemap_extent *out = NULL;
	struct fiemap *fm;
	uint64_t pos = loff, end = loff + len;
	size_t nout = 0;
	int saved;

	fm = calloc(1, sizeof(*fm) + BATCH * sizeof(struct fiemap_extent));
	if (!fm)
		return -1;
	while (pos < end) {
		struct fiemap_extent *grown;
		uint32_t got;

		memset(fm, 0, sizeof(*fm));
		fm->fm_start = pos;
		fm->fm_length = end - pos;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0)
			goto fail;
		got = fm->fm_mapped_extents;
		if (!got)
			break;		/* the rest is a hole */
		grown = realloc(out, (nout + got) * sizeof(*out));
		if (!grown)
			goto fail;
		out = grown;
		memcpy(out + nout, fm->fm_extents, got * sizeof(*out));
		nout += got;
		if (out[nout - 1].fe_flags & FIEMAP_EXTENT_LAST || got < BATCH)
			break;
		/* Continue after the last extent we were given. */
		pos = out[nout - 1].fe_logical + out[nout - 1].fe_length;
	}
	free(fm);
	*ext = out;
	*n = nout;
	return 0;
fail:
	saved = errno;
	free(fm);
	free(out);
	errno = saved;
	return -1;
}
