/* SPDX-License-Identifier: GPL-2.0 */
/*
 * keys.h - access keys: long-term keys made by `ferry-control keys
 * create` (roles admin, installer, replicator) and temporary credentials
 * with a session token that ferry-control issues to one source server's
 * agent.  Secrets are stored as given (SigV4 needs the secret itself to
 * verify), in the store, which is mode 0600 like its directory.
 */
#ifndef FERRY_CONTROL_KEYS_H
#define FERRY_CONTROL_KEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "api.h"

struct store;

extern const char keys_schema_sql[];

struct key_record {
	char access_key_id[32];
	char secret[64];
	char name[64];
	unsigned role;		    /* one enum api_role bit */
	char session_token[160];    /* "" for long-term keys */
	time_t expires;		    /* 0: never */
	char source_server_id[32];  /* ROLE_AGENT */
	char replicator_id[32];	    /* ROLE_REPLICATOR */
	bool active;
};

/* Role names as the command line spells them; 0 if unknown. */
unsigned keys_role_parse(const char *name);
const char *keys_role_name(unsigned role);

/* Find a key by its ID: 0 found, 1 unknown, -1 store error. */
int keys_lookup(struct store *st, const char *access_key_id,
		struct key_record *out);

/* Make a long-term key; fills OUT (with the secret). 0 or -1. */
int keys_create(struct store *st, const char *name, unsigned role,
		time_t now, struct key_record *out);

/*
 * Issue temporary credentials for the agent of SOURCE_SERVER_ID, valid
 * TTL seconds; earlier credentials of that server stay valid until they
 * expire.  Returns {"accessKeyId","secretAccessKey","sessionToken",
 * "expiration"} or NULL.
 */
json_t *keys_issue_agent(struct store *st, const char *source_server_id,
			 int ttl, time_t now);

/* Set the replicator a replicator key acts for. */
int keys_bind_replicator(struct store *st, const char *access_key_id,
			 const char *replicator_id);

/* Revoke every key of a source server (DisconnectFromService,
 * DeleteSourceServer). */
int keys_revoke_server(struct store *st, const char *source_server_id);

/* CLI: keys create|list|delete. Returns the process exit code. */
int keys_cli(int argc, char **argv);

#endif
