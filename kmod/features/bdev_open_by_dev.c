// SPDX-License-Identifier: GPL-2.0
/* Linux 6.7-6.8: opening returns a struct bdev_handle. */
#include <linux/blkdev.h>

struct bdev_handle *ferry_probe(dev_t dev);
struct bdev_handle *ferry_probe(dev_t dev)
{
	struct bdev_handle *h = bdev_open_by_dev(dev, BLK_OPEN_READ, NULL,
						 NULL);

	if (!IS_ERR(h))
		bdev_release(h);
	return h;
}
