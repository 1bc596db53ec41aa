// SPDX-License-Identifier: GPL-2.0
/* Linux 6.9+: block devices are opened as files. */
#include <linux/blkdev.h>
#include <linux/fs.h>

struct file *ferry_probe(dev_t dev);
struct file *ferry_probe(dev_t dev)
{
	struct file *f = bdev_file_open_by_dev(dev, BLK_OPEN_READ, NULL, NULL);

	if (!IS_ERR(f))
		(void)file_bdev(f);
	return f;
}
