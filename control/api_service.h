/* SPDX-License-Identifier: GPL-2.0 */
/* api_service.h - the account's initialisation (ops_service.c). */
#ifndef FERRY_CONTROL_API_SERVICE_H
#define FERRY_CONTROL_API_SERVICE_H

#include "api.h"

/*
 * 0 if InitializeService has been called, else -1 with
 * UninitializedAccountException recorded.  Every public MGN operation
 * whose model lists that error calls it first, as MGN does.
 */
int api_require_initialized(struct api_ctx *ctx);

#endif
