/* SPDX-License-Identifier: GPL-2.0 */
/*
 * replicate.h - the replication thread: attach the tracker, copy each
 * disk once, then drain, read, send and forget only what the replicator
 * acknowledged durable (docs/agent.md).
 */
#ifndef FERRY_AGENT_REPLICATE_H
#define FERRY_AGENT_REPLICATE_H

#include "agent.h"
#include "config.h"
#include "freeze.h"

/*
 * Run until sh->quit (or, with ONCE, until every disk's copy or rescan
 * is acknowledged, without the tracker: a cold copy of disks nobody
 * writes).  Reads sh->rt, pops sh->cmds, writes sh->st.  0, or -1 with
 * a one-line reason in ERR.  FZ, the freezer (NULL: none), makes
 * consistency points under a write load (docs/agent.md).
 */
int replicate_run(struct agent_shared *sh, const struct agent_config *cfg,
		  struct freezer *fz, bool once, char *err, size_t errlen);

#endif
