// SPDX-License-Identifier: GPL-2.0
/* Linux 6.14+: freezing a queue returns memalloc flags to restore. */
#include <linux/blk-mq.h>

void ferry_probe(struct request_queue *q);
void ferry_probe(struct request_queue *q)
{
	unsigned int memflags = blk_mq_freeze_queue(q);

	blk_mq_unfreeze_queue(q, memflags);
}
