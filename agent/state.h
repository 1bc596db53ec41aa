/* SPDX-License-Identifier: GPL-2.0 */
/*
 * state.h - ferry-agent's state directory (/var/lib/ferry-agent, or
 * state-dir): what the agent keeps across restarts.
 *
 *   registration.json  source server ID, ARN, endpoint, the credentials
 *                      ferry-control issued and their expiry      0600
 *   runtime.json       the last runtime configuration, so that a
 *                      restart can replicate while ferry-control is
 *                      unreachable                                 0600
 *   agent-key.pem      the data-plane key, made here, never sent   0600
 *   agent.csr          the certificate request made from it        0600
 *   agent.pem, ca.pem  the data-plane certificate and ferry-control's
 *                      CA                                          0644
 *   status.json        what `ferryctl status` shows (status_file.h) 0644
 *
 * The directory is 0700.  Every file is replaced atomically (a temporary
 * file, fsync, rename, fsync of the directory), so a crash leaves the old
 * or the new version, never a mix.  docs/agent.md, "State directory".
 */
#ifndef FERRY_AGENT_STATE_H
#define FERRY_AGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define STATE_REG_FILE "registration.json"
#define STATE_RUNTIME_FILE "runtime.json"
#define STATE_CSR_FILE "agent.csr"

struct agent_creds {
	char access_key_id[129];
	char secret_access_key[129];
	char session_token[2048];
	int64_t expiration;		/* UNIX seconds */
	int64_t issued;			/* when received, UNIX seconds */
};

struct agent_state {
	char dir[AGENT_PATH_MAX];
	bool registered;		/* registration.json with credentials */
	char source_server_id[AGENT_NAME_MAX];
	char arn[256];
	char endpoint[AGENT_URL_MAX];	/* where it registered */
	int64_t registered_at;
	/* hostinfo_machine_id() of the machine that registered: a machine
	 * booted from a copy of its disks has another ("": not recorded
	 * yet, the first start records it). */
	char machine_id[65];
	int64_t disconnected_at;	/* uninstall acknowledged; 0 never */
	bool started;			/* no-replication: `start` came */
	struct agent_creds creds;
};

/*
 * Read DIR's registration into S (S->dir = DIR).  A missing file is no
 * error: S->registered is false then.  -1 with ERR for an unreadable or
 * malformed file, or one readable by others.
 */
int state_load(struct agent_state *s, const char *dir, char *err,
	       size_t errlen);

/* Write S to its registration.json (creating the directory).  0 or -1
 * with ERR. */
int state_save(const struct agent_state *s, char *err, size_t errlen);

/* DIR/NAME into OUT. */
void state_path(const char *dir, const char *name, char *out, size_t len);

/* Create DIR (and its parents) mode 0700, or make an existing one 0700.
 * 0 or -1 with ERR. */
int state_mkdir(const char *dir, char *err, size_t errlen);

/* Replace DIR/NAME with LEN bytes of DATA, mode MODE, atomically and
 * durably (DURABLE false: no fsync, for the status file).  0 or -1. */
int state_write(const char *dir, const char *name, const void *data,
		size_t len, mode_t mode, bool durable, char *err,
		size_t errlen);

/* Wipe the secret parts of S from memory. */
void state_forget(struct agent_state *s);

/* "2024-05-01T18:00:00Z" -> UNIX seconds, -1 if malformed; and back. */
int64_t state_parse_time(const char *iso);
void state_format_time(int64_t t, char *out, size_t len);

#endif
