/* SPDX-License-Identifier: GPL-2.0 */
/*
 * config.h - ferry-replicator's settings: a standalone configuration file
 * of "key = value" lines ('#' starts a comment) whose keys are the
 * command line's long options, plus "allow" lines assigning disks to
 * source servers.  Flags given after --config override the file.
 */
#ifndef FERRY_REPLICATOR_CONFIG_H
#define FERRY_REPLICATOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/wire.h"
#include "peer_id.h"
#include "snapshot.h"

#define REP_DEFAULT_LISTEN "0.0.0.0:1500"
#define REP_DEFAULT_DATA_DIR "/var/lib/ferry-replicator"
#define REP_DEFAULT_IDLE 60
#define REP_DEFAULT_MAX_CONNS 256
#define REP_DEFAULT_REGION "us-east-1"
#define REP_DEFAULT_REPORT_INTERVAL 10
#define REP_DEFAULT_MAX_SOURCES 100
#define REP_DEFAULT_CERT_RENEW_DAYS 30

/* "allow = SOURCE DISK SIZE" or "allow = SOURCE *". */
struct rep_allow {
	char source[FERRY_ID_MAX + 1];
	char disk[FERRY_WIRE_MAX_NAME + 1];	/* "" for any disk */
	uint64_t size;				/* 0 for any disk */
};

struct rep_config {
	char *listen;
	char *data_dir;
	char *cert, *key, *ca;
	char *id;
	unsigned int idle_timeout;	/* seconds */
	unsigned int max_conns;
	struct rep_allow *allow;
	size_t n_allow;
	/* ferry-control (replicator/control_client.h); off without url. */
	char *control_url, *control_ca, *region, *advertise;
	char *access_key_id, *secret_access_key, *credentials_file;
	unsigned int report_interval;	/* seconds */
	unsigned int max_source_servers;
	/* Renew ferry-control's certificate when it ends within this. */
	unsigned int cert_renew_days;
	/* pit_policy: which snapshots are taken and kept (snapshot.h). */
	struct snap_policy pit;
	/* launch_format: raw (default) or qcow2 images of launches
	 * (launch.h). */
	bool launch_qcow2;
};

/* Defaults (no allow lines). */
void rep_config_init(struct rep_config *c);
void rep_config_free(struct rep_config *c);

/* Set KEY (a long option name without "--") to VALUE.  0, or -1 with a
 * message in ERR. */
int rep_config_set(struct rep_config *c, const char *key, const char *value,
		   char *err, size_t errlen);

/* Read the file PATH; ERR names the file and line at fault. */
int rep_config_load(struct rep_config *c, const char *path, char *err,
		    size_t errlen);

/* Settings that cannot work together or are missing; 0 or -1 with ERR. */
int rep_config_check(const struct rep_config *c, char *err, size_t errlen);

/*
 * The assignment of disk DISK to source server SOURCE: an exact allow
 * line first, else a wildcard one.  NULL if none; *KNOWN_SOURCE tells
 * whether SOURCE has any allow line at all.
 */
const struct rep_allow *rep_config_find(const struct rep_config *c,
					const char *source, const char *disk,
					int *known_source);

/*
 * CERT, a server certificate (WHAT says which: "certificate
 * /etc/ferry/replicator.pem"), is one agents take at all: ferry's
 * replicator key purpose, and valid now.  0, or -1 with why in ERR.
 */
int rep_cert_agents_take(X509 *cert, const char *what, char *err,
			 size_t errlen);

/* How a certificate's replicator ID compares with the configured id. */
enum rep_cert_id {
	REP_CERT_ID_OK,		/* it names id */
	REP_CERT_ID_NONE,	/* it names no replicator ID */
	REP_CERT_ID_OTHER,	/* it names another replicator */
};

/*
 * Compare the replicator ID of CERT (lib/peer_id.c
 * ferry_peer_replicator(), the URI SAN agents check) with ID; the one
 * it names goes to GOT[FERRY_ID_MAX + 1] ("" if none).  Unless they are
 * equal, ERR gets "WHAT names replicator X (URI SAN
 * urn:ferry:replicator:X), not ID" or "WHAT names no replicator ID (no
 * URI SAN urn:ferry:replicator:ID), so it cannot be ID", for the caller
 * to go on with what follows from it.  WHAT says which certificate
 * ("certificate /etc/ferry/replicator.pem").
 */
enum rep_cert_id rep_cert_id(X509 *cert, const char *what, const char *id,
			     char *got, char *err, size_t errlen);

/*
 * The server certificate C->cert (CERT: the one loaded from it, which
 * TLS shows), as agents will check it (docs/agent.md, *Which
 * replicator*): 0 when they take it and it names C->id (or there is no
 * id); -1 with a one-line reason and what to do in ERR when agents would
 * refuse it: not theirs at all (rep_cert_agents_take()), or it names
 * another replicator, or none while agents assigned by ferry-control
 * (control-url) expect id.  1 with a warning in ERR when
 * it names none standalone: only agents told a replicator-id refuse it.
 */
int rep_config_check_cert(const struct rep_config *c, X509 *cert, char *err,
			  size_t errlen);

/* Parse "ADDR:PORT" ("[v6]:PORT", "HOST:PORT") into HOST and PORT.  0, or
 * -1 with ERR. */
int rep_split_hostport(const char *s, char *host, size_t hostlen,
		       char *port, size_t portlen, char *err, size_t errlen);

#endif
