/* SPDX-License-Identifier: GPL-2.0 */
/*
 * config.h - ferry-agent's configuration: /etc/ferry/agent.conf (`key =
 * value` lines, `#` comments) and the command line (`--key value`, same
 * names), applied in order so that flags after --config win.
 * docs/agent.md lists every key.
 */
#ifndef FERRY_AGENT_CONFIG_H
#define FERRY_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define AGENT_PATH_MAX 4096
#define AGENT_URL_MAX 2048
#define AGENT_MAX_TAGS 50

struct agent_tag {
	char key[129];
	char value[257];
};

struct agent_config {
	char conf_file[AGENT_PATH_MAX];	/* where it was read, "" none */
	char state_dir[AGENT_PATH_MAX];	/* AGENT_STATE_DIR */
	/* status.json; "" until agent_config_check(): AGENT_RUN_DIR, or
	 * state_dir when only that was given (tests, a second agent) */
	char run_dir[AGENT_PATH_MAX];
	char tracker_ctl[AGENT_PATH_MAX]; /* /dev/ferry-ctl */

	/* ferry-control (absent only in standalone mode) */
	char endpoint[AGENT_URL_MAX];	/* https://host:port */
	char region[64];		/* us-east-1 */
	char s3_endpoint[AGENT_URL_MAX];
	char proxy[AGENT_URL_MAX];	/* also https_proxy from the env */
	char ca_bundle[AGENT_PATH_MAX];	/* CAs for HTTPS to the endpoint */
	/* The installer's keys: used once to register, then removed from
	 * the configuration file (invariant 5). */
	char access_key_id[129];
	char secret_access_key[129];
	char session_token[2048];
	char user_provided_id[257];
	struct agent_tag tags[AGENT_MAX_TAGS];
	unsigned int n_tags;

	/* What to replicate */
	unsigned int n_devices;		/* 0: every physical disk */
	char devices[AGENT_MAX_DISKS][AGENT_PATH_MAX];
	bool no_replication;		/* register, then wait for `start` */

	/* Standalone: no ferry-control; the data plane from here. */
	bool standalone;
	char replicator[AGENT_HOST_MAX + 8];	/* HOST:PORT */
	char replicator_id[AGENT_NAME_MAX];	/* "": any of the CA's */
	char source_server_id[AGENT_NAME_MAX];
	char cert[AGENT_PATH_MAX];
	char key[AGENT_PATH_MAX];
	char ca[AGENT_PATH_MAX];

	/* Replication tuning */
	uint32_t granularity;		/* tracker bytes per bit, 0 default */
	unsigned int queue_depth;	/* io_uring reads in flight, >= 16 */
	uint32_t read_chunk;		/* bytes per read and per DATA frame */
	int codec;			/* -1: as ferry-control says */
	uint64_t bandwidth_bps;		/* 0: as ferry-control says */
	unsigned int drain_interval_ms;	/* pause between idle drains */
	unsigned int not_converging_s;	/* behind this long: NOT_CONVERGING */
	bool freeze;			/* fsfreeze for consistency points */
	uint64_t freeze_max_bytes;	/* freeze only when the dirty set is
					 * smaller (docs/agent.md) */
	unsigned int freeze_timeout_ms;	/* the freezer thaws by then */
	unsigned int cp_interval_s;	/* under load, freeze for a CP when
					 * the last is this old */
};

/* Defaults into CFG. */
void agent_config_defaults(struct agent_config *cfg);

/*
 * Apply one `key = value` (or --key value); SOURCE names the file and
 * line, or the flag, for the message.  0, or -1 with a message in ERR.
 */
int agent_config_set(struct agent_config *cfg, const char *key,
		     const char *value, const char *source, char *err,
		     size_t errlen);

/* Read PATH into CFG.  0, or -1 with "PATH:LINE: reason" in ERR. */
int agent_config_load(struct agent_config *cfg, const char *path, char *err,
		      size_t errlen);

/* After everything is applied: a complete, coherent configuration?  Also
 * takes https_proxy from the environment when no proxy was set. */
int agent_config_check(struct agent_config *cfg, char *err, size_t errlen);

/*
 * Rewrite PATH without the installer's secret (secret-access-key,
 * session-token), keeping every other line and the file's mode (0600).
 * Atomic (write a temporary file, fsync, rename).
 */
int agent_config_forget_secret(const char *path, char *err, size_t errlen);

#endif
