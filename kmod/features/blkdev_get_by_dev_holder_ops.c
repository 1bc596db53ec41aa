// SPDX-License-Identifier: GPL-2.0
/* Linux 6.5-6.8: blkdev_get_by_dev() takes a blk_mode_t and holder ops. */
#include <linux/blkdev.h>

struct block_device *ferry_probe(dev_t dev);
struct block_device *ferry_probe(dev_t dev)
{
	struct block_device *b = blkdev_get_by_dev(dev, BLK_OPEN_READ, NULL,
						   NULL);

	if (!IS_ERR(b))
		blkdev_put(b, NULL);
	return b;
}
