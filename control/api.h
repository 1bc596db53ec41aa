/* SPDX-License-Identifier: GPL-2.0 */
/*
 * api.h - how ferry-control's operations are declared and answered.
 *
 * Every operation is a handler that reads a parsed JSON request and
 * either fills a JSON response or records one AWS-style error with
 * api_error().  The HTTP layer (http.c) has already verified the
 * request's Signature V4, found the caller's role, opened a transaction
 * on the store and parsed the body; it commits when the handler returns
 * 0 and rolls back otherwise, so a failed operation changes nothing.
 */
#ifndef FERRY_CONTROL_API_H
#define FERRY_CONTROL_API_H

#include <stdbool.h>

#include <jansson.h>
#include <stdint.h>
#include <time.h>

struct store;
struct control_config;
struct ca;

/* Who may call an operation (bit mask). */
enum api_role {
	ROLE_ADMIN = 1u << 0,	   /* administrators: the public MGN API */
	ROLE_INSTALLER = 1u << 1,  /* install.sh: registers an agent once */
	ROLE_AGENT = 1u << 2,	   /* issued to one source server */
	ROLE_REPLICATOR = 1u << 3, /* ferry-replicator */
};

/* The AWS error types ferry-control answers with (MGN's model). */
enum api_err {
	API_OK = 0,
	API_VALIDATION,		 /* 400 ValidationException */
	API_UNINITIALIZED,	 /* 400 UninitializedAccountException */
	API_NOT_FOUND,		 /* 404 ResourceNotFoundException */
	API_CONFLICT,		 /* 409 ConflictException */
	API_ACCESS_DENIED,	 /* 403 AccessDeniedException */
	API_QUOTA,		 /* 402 ServiceQuotaExceededException */
	API_THROTTLING,		 /* 429 ThrottlingException */
	API_INTERNAL,		 /* 500 InternalServerException */
	API_UNKNOWN_OPERATION,	 /* 404 UnknownOperationException */
	API_SERIALIZATION,	 /* 400 SerializationException (bad JSON) */
	API_TOO_LARGE,		 /* 413 RequestEntityTooLargeException */
	API_MISSING_AUTH,	 /* 403 MissingAuthenticationTokenException */
	API_INCOMPLETE_SIGNATURE, /* 400 IncompleteSignatureException */
	API_INVALID_SIGNATURE,	 /* 403 InvalidSignatureException */
	API_UNRECOGNIZED_CLIENT, /* 403 UnrecognizedClientException */
	API_EXPIRED_TOKEN,	 /* 403 ExpiredTokenException */
	API_ERR_COUNT
};

/* The authenticated caller. */
struct api_principal {
	char access_key_id[32];
	char name[64];
	unsigned role;		   /* one enum api_role bit */
	char source_server_id[32]; /* ROLE_AGENT: the only server it may touch */
	char replicator_id[32];	   /* ROLE_REPLICATOR: its replicator */
};

struct api_ctx {
	struct store *st;
	const struct control_config *cfg;
	struct ca *ca;
	const char *host;	/* the request's Host header (for URLs), or "" */
	const struct api_principal *who;
	time_t now;		/* one clock reading per request */
	const char *path_param; /* decoded {resourceArn} of /tags/{..} */
	json_t *query;		/* query arguments: name -> [values...] */
	/* Set by api_error() */
	enum api_err err;
	char message[512];
	json_t *err_fields; /* extra members of the error body, or NULL */
	/* Set by a handler that answers with another status than the
	 * operation's default (rare). 0 = the operation's. */
	int status;
};

typedef int (*api_handler)(struct api_ctx *ctx, json_t *in, json_t **out);

struct api_op {
	const char *name;   /* MGN operation name */
	const char *method; /* "POST", "GET", "DELETE" */
	const char *path;   /* "/Name", or "/tags/" (then a path parameter) */
	unsigned roles;	    /* enum api_role bits allowed to call it */
	int status;	    /* HTTP status on success (200, 201, 202, 204) */
	api_handler fn;
	/* Its commit must survive a power cut (store_run_durable): it
	 * hands out credentials whose holder then forgets the ones it
	 * used, so losing them locks the caller out. */
	bool durable;
};

struct store;

/*
 * A group of operations with the tables it needs.  schema_sql runs at
 * every start and must be idempotent (CREATE TABLE IF NOT EXISTS ...).
 * migrate, if set, runs at every open after all the schemas, in a
 * transaction of its own, to rewrite documents stored by an older
 * ferry-control (it must keep a mark of what it did, e.g. in the meta
 * table); 0, or -1 with a message in ERR, which stops the open.
 * periodic, if set, runs about once a second in a transaction of its own
 * (for timeouts such as AGENT_NOT_SEEN).
 */
struct api_module {
	const char *name;
	const char *schema_sql;
	const struct api_op *ops;
	size_t n_ops;
	int (*migrate)(struct store *st, char *err, size_t errlen);
	void (*periodic)(struct api_ctx *ctx);
};

/* The modules, in control/api.c; each lives in its own ops_*.c. */
extern const struct api_module api_module_service;	  /* ops_service.c */
extern const struct api_module api_module_source_servers; /* ops_source_servers.c */
extern const struct api_module api_module_replication;	  /* ops_replication.c */
extern const struct api_module api_module_tags;		  /* ops_tags.c */
extern const struct api_module api_module_jobs;		  /* ops_jobs.c */
extern const struct api_module api_module_agent;	  /* ops_agent.c */
extern const struct api_module api_module_replicator;	  /* ops_replicator.c */
extern const struct api_module api_module_assets;	  /* ops_assets.c */
extern const struct api_module api_module_launch;	  /* ops_launch.c */

extern const struct api_module *const api_modules[];
extern const size_t api_n_modules;

/* Find the operation for METHOD and PATH; sets *param to the start of a
 * path parameter (still percent-encoded) or NULL. */
const struct api_op *api_find_op(const char *method, const char *path,
				 const char **param);

/* Record an error for the response; returns -1 so handlers can
 * `return api_error(...)`.  The first error recorded wins. */
int api_error(struct api_ctx *ctx, enum api_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Add a member to the error body (steals VALUE), e.g. "resourceId". */
void api_error_field(struct api_ctx *ctx, const char *key, json_t *value);

/* ResourceNotFoundException with MGN's resourceId and resourceType. */
int api_not_found(struct api_ctx *ctx, const char *type, const char *id);

/* ValidationException with MGN's reason and a fieldList naming FIELD. */
int api_invalid_field(struct api_ctx *ctx, const char *field,
		      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int api_err_status(enum api_err err);
const char *api_err_type(enum api_err err);

#endif
