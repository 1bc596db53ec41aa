// SPDX-License-Identifier: GPL-2.0
/* Function arguments can be read from ftrace_regs without SAVE_REGS. */
#include <linux/ftrace.h>

unsigned long ferry_probe(struct ftrace_regs *fregs);
unsigned long ferry_probe(struct ftrace_regs *fregs)
{
	return ftrace_regs_get_argument(fregs, 0);
}
