/* SPDX-License-Identifier: GPL-2.0 */
/*
 * control_loop.h - the control thread: ferry-control as the agent sees
 * it (docs/api.md, agent operations).
 */
#ifndef FERRY_AGENT_CONTROL_LOOP_H
#define FERRY_AGENT_CONTROL_LOOP_H

#include <pthread.h>

#include "agent.h"
#include "config.h"

/*
 * Synchronous start-up, before replication: register on first start
 * (then forget the installer's secret), load or refresh the credentials,
 * get the data-plane certificate, fetch the runtime configuration into
 * sh->rt.  0, or -1 with a one-line reason in ERR (the agent exits 1),
 * or CONTROL_NOT_THIS_MACHINE with ERR: the registration was made on
 * another machine, this one is a copy booted from its disks (the agent
 * exits AGENT_EXIT_NOT_THIS_MACHINE and systemd does not restart it).
 */
#define CONTROL_NOT_THIS_MACHINE (-2)
int control_init(struct agent_shared *sh, struct agent_config *cfg,
		 char *err, size_t errlen);

/* Start the thread that heartbeats, polls commands and the runtime
 * configuration until sh->quit.  0, or -1 with a reason in ERR. */
int control_loop_start(struct agent_shared *sh, struct agent_config *cfg,
		       pthread_t *thread, char *err, size_t errlen);

/*
 * ferry-agent --disconnect (scripts/uninstall.sh): tell ferry-control
 * that this source server leaves (DisconnectFromService with the agent's
 * own credentials, which ferry-control then revokes) and forget the
 * registration.  The agent must not be running.  0 with what was done in
 * MSG (also when there was nothing to do), or -1 with a reason in ERR.
 */
int control_disconnect(struct agent_config *cfg, char *msg, size_t msglen,
		       char *err, size_t errlen);

/*
 * ferry-agent --accept-new-host: this machine is the registered source
 * server although its machine ID changed (a new system UUID): record it
 * in the registration, so that the agent runs here again (a launched
 * copy is refused otherwise, docs/agent.md).  The agent must not be
 * running.  0 with what was done in MSG, or -1 with ERR.
 */
int control_accept_host(struct agent_config *cfg, char *msg, size_t msglen,
			char *err, size_t errlen);

#endif
