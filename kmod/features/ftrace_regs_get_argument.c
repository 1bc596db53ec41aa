// SPDX-License-Identifier: GPL-2.0
/* Function arguments can be read from ftrace_regs without SAVE_REGS. */
#include <linux/ftrace.h>

/* The accessor exists everywhere since 6.x, but only works with this. */
#ifndef CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS
#error "function arguments are only saved with DYNAMIC_FTRACE_WITH_ARGS"
#endif

unsigned long ferry_probe(struct ftrace_regs *fregs);
unsigned long ferry_probe(struct ftrace_regs *fregs)
{
	return ftrace_regs_get_argument(fregs, 0);
}
