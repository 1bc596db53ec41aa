/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Loading ferry.ko when its control device is missing (module_load.c).
 */
#ifndef FERRY_AGENT_MODULE_LOAD_H
#define FERRY_AGENT_MODULE_LOAD_H

#include <stddef.h>

/*
 * Run `modprobe NAME` (from PATH) and wait for it.  0 when it exited 0;
 * -1 otherwise, with why in ERR: modprobe's own last line of output
 * ("modprobe: FATAL: Module ferry not found in directory ..."), or how
 * it could not be run.
 */
int module_load(const char *name, char *err, size_t errlen);

#endif
