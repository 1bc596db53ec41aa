// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.14+: a freeze started by hand, waited for with a timeout and
 * undone without memalloc flags to restore.
 */
#include <linux/blk-mq.h>

bool ferry_probe(struct request_queue *q);
bool ferry_probe(struct request_queue *q)
{
	bool drained;

	blk_freeze_queue_start(q);
	drained = blk_mq_freeze_queue_wait_timeout(q, HZ) > 0;
	blk_mq_unfreeze_queue_nomemrestore(q);
	return drained;
}
