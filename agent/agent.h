/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agent.h - what the parts of ferry-agent share.
 *
 * ferry-agent runs two threads:
 *
 *   the control thread (control_loop.c) talks to ferry-control: it
 *     registers, keeps credentials fresh, fetches the runtime
 *     configuration, heartbeats and polls commands;
 *   the replication thread (replicate.c) attaches the tracker, copies
 *     the disks, drains, reads and sends, and keeps the per-disk counters.
 *
 * They meet only in struct agent_shared, under its mutex: the control
 * thread writes the runtime configuration and queues commands; the
 * replication thread writes the status.  Neither blocks the other while
 * holding the mutex (no I/O under it).
 *
 * docs/agent.md describes the design.
 */
#ifndef FERRY_AGENT_H
#define FERRY_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define AGENT_MAX_DISKS 64	/* FERRY_WIRE_MAX_DISKS */
#define AGENT_NAME_MAX 128	/* device names, IDs */
#define AGENT_HOST_MAX 256
#define AGENT_MSG_MAX 1024

#ifndef AGENT_VERSION
/* Reported to ferry-control and the replicator. */
#define AGENT_VERSION "0.1.0"
#endif

/* Files in the state directory (--state-dir, /var/lib/ferry-agent). */
#define AGENT_STATE_DIR "/var/lib/ferry-agent"
/* status.json: rewritten every second, so on tmpfs, not on the disks the
 * agent replicates (where each rewrite would be replicated in turn). */
#define AGENT_RUN_DIR "/run/ferry-agent"
#define AGENT_CONF_FILE "/etc/ferry/agent.conf"
/* ferry-agent's exit status on a machine that is not the registered
 * source server (a launched copy): EX_CONFIG, which the systemd unit
 * does not restart (RestartPreventExitStatus). */
#define AGENT_EXIT_NOT_THIS_MACHINE 78
#define AGENT_CERT_FILE "agent.pem"	/* data-plane client certificate */
#define AGENT_KEY_FILE "agent-key.pem"	/* its key, 0600 */
#define AGENT_CA_FILE "ca.pem"		/* ferry-control's CA */
#define AGENT_STATUS_FILE "status.json"	/* what `ferryctl status` shows */

/* MGN's dataReplicationState values the agent reports. */
enum agent_repl_state {
	AGENT_INITIATING,
	AGENT_INITIAL_SYNC,
	AGENT_BACKLOG,
	AGENT_CREATING_SNAPSHOT,
	AGENT_CONTINUOUS,
	AGENT_RESCAN,
	AGENT_STALLED,
	AGENT_PAUSED,
	AGENT_STOPPED,
	AGENT_DISCONNECTED,	/* shown locally; never sent (the service's) */
};

/* "INITIAL_SYNC" ... (MGN's spelling). */
const char *agent_repl_state_name(enum agent_repl_state s);

/* Commands from GetAgentCommandForMgn the replication thread acts on. */
enum agent_cmd {
	AGENT_CMD_NONE,
	AGENT_CMD_START,
	AGENT_CMD_STOP,
	AGENT_CMD_PAUSE,
	AGENT_CMD_RESUME,
	AGENT_CMD_RETRY,
	AGENT_CMD_RESCAN,
	AGENT_CMD_UNINSTALL,
};

/* What ferry-control's GetAgentRuntimeConfigurationForMgn said. */
struct agent_runtime {
	bool valid;			/* fetched at least once */
	bool have_cert;			/* AGENT_CERT_FILE etc. are in place */
	uint64_t version;		/* bumped at every change */
	char source_server_id[AGENT_NAME_MAX];
	bool have_replicator;
	char replicator_id[AGENT_NAME_MAX];
	char replicator_host[AGENT_HOST_MAX];
	uint16_t replicator_port;
	uint64_t bandwidth_bps;		/* bytes per second, 0 unlimited */
	uint8_t codec;			/* enum ferry_codec */
	bool paused;			/* dataReplicationPaused */
	bool stopped;			/* dataReplicationStopped */
	unsigned int n_disks;		/* replicatedDisks */
	char disks[AGENT_MAX_DISKS][AGENT_NAME_MAX];
};

/* One disk as the replication thread reports it. */
struct agent_disk_status {
	char name[AGENT_NAME_MAX];	/* MGN's deviceName: "/dev/vda" */
	uint64_t total_bytes;
	uint64_t replicated_bytes;	/* initial copy acknowledged */
	uint64_t rescanned_bytes;	/* of the current rescan */
	uint64_t backlog_bytes;		/* dirty, not yet acknowledged */
	uint64_t sent_bytes;		/* payload bytes sent, ever (this run) */
	enum agent_repl_state state;
};

struct agent_status {
	enum agent_repl_state state;	/* the server's, for the heartbeat */
	unsigned int n_disks;
	struct agent_disk_status disks[AGENT_MAX_DISKS];
	uint64_t lag_ms;		/* age of the oldest unacknowledged
					 * change; 0 when none */
	int64_t eta_s;			/* -1 unknown */
	uint64_t last_cp_ms;		/* source time of the last CP acked */
	/* MGN's DataReplicationErrorString, "" none, and the detail. */
	char error[64];
	char raw_error[AGENT_MSG_MAX];
	uint64_t updated_ms;		/* CLOCK_REALTIME of the last update */
};

/* What the control thread knows of ferry-control (for the status file). */
struct agent_control_status {
	uint64_t last_heartbeat_ms;	/* CLOCK_REALTIME of the last heartbeat
					 * ferry-control accepted, 0 none */
	char service_state[32];		/* dataReplicationState it shows */
	char error[AGENT_MSG_MAX];	/* a call failing now (its last error),
					 * "" when every call succeeds */
	uint64_t error_ms;		/* when it failed */
};

struct agent_shared {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* signalled on every change; timed
					 * waits use CLOCK_MONOTONIC */
	bool quit;			/* SIGTERM/SIGINT: both threads stop */
	struct agent_runtime rt;
	/* Commands, in arrival order; the replication thread pops them. */
	enum agent_cmd cmds[32];
	unsigned int n_cmds;
	struct agent_status st;
	struct agent_control_status ctl;	/* the control thread's */
};

void agent_shared_init(struct agent_shared *sh);
void agent_shared_destroy(struct agent_shared *sh);

/* Under sh->lock (taken inside): queue CMD and wake the other thread.
 * Returns -1 if the queue is full (the caller retries later). */
int agent_push_cmd(struct agent_shared *sh, enum agent_cmd cmd);

#endif
