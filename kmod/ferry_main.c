// SPDX-License-Identifier: GPL-2.0
/*
 * ferry.ko: records which blocks of chosen block devices are written, so
 * that ferry-agent replicates only those.  See docs/tracker.md.
 */
#define pr_fmt(fmt) "ferry: " fmt

#include <linux/module.h>
#include <linux/random.h>

#include "ferry.h"
#include "ferry_bitmap.h"

u64 ferry_load_id;

unsigned int ferry_overflow_hold_secs = 120;
module_param_named(overflow_hold_secs, ferry_overflow_hold_secs, uint, 0644);
MODULE_PARM_DESC(overflow_hold_secs,
		 "After a write could not be given a completion record, report overflow for this long (default 120 s, beyond the block layer's I/O timeouts)");

static unsigned int ferry_chunk_reserve = 256;
module_param_named(chunk_reserve, ferry_chunk_reserve, uint, 0444);
MODULE_PARM_DESC(chunk_reserve,
		 "Bitmap chunks (2 KiB, 64 MiB of disk each at 4 KiB) kept in reserve (default 256)");

static int __init ferry_init(void)
{
	int ret;

	ferry_load_id = get_random_u64();
	ret = ferry_bitmap_init_pool(ferry_chunk_reserve);
	if (ret)
		return ret;
	ret = ferry_hook_init();
	if (ret)
		goto err_bitmap;
	ret = ferry_ctl_init();
	if (ret)
		goto err_hook;
	pr_info("version %s loaded, control device /dev/%s\n", FERRY_VERSION,
		FERRY_CTL_NAME);
	return 0;

err_hook:
	ferry_hook_exit();
err_bitmap:
	ferry_bitmap_exit_pool();
	return ret;
}

static void __exit ferry_exit(void)
{
	/* No new ioctl can start once the device is gone. */
	ferry_ctl_exit();
	ferry_tracker_detach_all();
	ferry_hook_exit();
	ferry_bitmap_exit_pool();
	pr_info("unloaded\n");
}

module_init(ferry_init);
module_exit(ferry_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ferry developers");
MODULE_DESCRIPTION("Dirty-block tracking for live block replication");
MODULE_VERSION(FERRY_VERSION);
