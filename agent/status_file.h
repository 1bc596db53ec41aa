/* SPDX-License-Identifier: GPL-2.0 */
/*
 * status_file.h - the agent's status as JSON in STATE_DIR/status.json,
 * rewritten atomically about once a second, read by `ferryctl status`.
 */
#ifndef FERRY_AGENT_STATUS_FILE_H
#define FERRY_AGENT_STATUS_FILE_H

#include <stddef.h>

#include "agent.h"
#include "config.h"

/* Snapshot sh->rt and sh->st under the lock, write the file outside it.
 * 0, or -1 with a reason in ERR. */
int agent_status_write(struct agent_shared *sh, const struct agent_config *cfg,
		       char *err, size_t errlen);

#endif
