// SPDX-License-Identifier: GPL-2.0
/* Linux 6.17+: a workqueue says it is per-CPU (the default turns unbound). */
#include <linux/workqueue.h>

unsigned int ferry_probe(void);
unsigned int ferry_probe(void)
{
	return WQ_PERCPU;
}
