// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 5.11-6.x on x86: with DYNAMIC_FTRACE_WITH_ARGS the argument
 * registers are saved in ftrace_regs' embedded pt_regs even without
 * FTRACE_OPS_FL_SAVE_REGS, which would save every register on every call.
 */
#include <linux/ftrace.h>

#ifndef CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS
#error "function arguments are only saved with DYNAMIC_FTRACE_WITH_ARGS"
#endif

unsigned long ferry_probe(struct ftrace_regs *fregs);
unsigned long ferry_probe(struct ftrace_regs *fregs)
{
	return regs_get_kernel_argument(&fregs->regs, 0);
}
