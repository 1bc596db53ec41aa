// SPDX-License-Identifier: GPL-2.0
/*
 * shared.c - struct agent_shared (agent.h): what the control and the
 * replication threads exchange.
 */
#include <string.h>

#include "agent.h"

static const char *const state_names[] = {
	[AGENT_INITIATING] = "INITIATING",
	[AGENT_INITIAL_SYNC] = "INITIAL_SYNC",
	[AGENT_BACKLOG] = "BACKLOG",
	[AGENT_CREATING_SNAPSHOT] = "CREATING_SNAPSHOT",
	[AGENT_CONTINUOUS] = "CONTINUOUS",
	[AGENT_RESCAN] = "RESCAN",
	[AGENT_STALLED] = "STALLED",
	[AGENT_PAUSED] = "PAUSED",
	[AGENT_STOPPED] = "STOPPED",
	[AGENT_DISCONNECTED] = "DISCONNECTED",
};

const char *agent_repl_state_name(enum agent_repl_state s)
{
	if ((unsigned int)s >= sizeof(state_names) / sizeof(state_names[0]) ||
	    !state_names[s])
		return "UNKNOWN";
	return state_names[s];
}

void agent_shared_init(struct agent_shared *sh)
{
	pthread_condattr_t ca;

	memset(sh, 0, sizeof(*sh));
	pthread_mutex_init(&sh->lock, NULL);
	/* Timed waits on the monotonic clock: a clock step must not stall
	 * a heartbeat or wake every waiter at once. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sh->cond, &ca);
	pthread_condattr_destroy(&ca);
	sh->st.state = AGENT_INITIATING;
	sh->st.eta_s = -1;
}

void agent_shared_destroy(struct agent_shared *sh)
{
	pthread_cond_destroy(&sh->cond);
	pthread_mutex_destroy(&sh->lock);
}

int agent_push_cmd(struct agent_shared *sh, enum agent_cmd cmd)
{
	int rc = -1;

	pthread_mutex_lock(&sh->lock);
	if (sh->n_cmds < sizeof(sh->cmds) / sizeof(sh->cmds[0])) {
		sh->cmds[sh->n_cmds++] = cmd;
		rc = 0;
	}
	pthread_cond_broadcast(&sh->cond);
	pthread_mutex_unlock(&sh->lock);
	return rc;
}
