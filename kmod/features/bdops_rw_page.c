// SPDX-License-Identifier: GPL-2.0
/* Drivers can write pages without a bio (->rw_page, removed in 6.3). */
#include <linux/blkdev.h>

int ferry_probe(const struct block_device_operations *ops);
int ferry_probe(const struct block_device_operations *ops)
{
	return ops->rw_page != NULL;
}
