/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sigv4.h - verification of AWS Signature Version 4 on incoming HTTP
 * requests (Authorization header form).
 *
 * Written here because no maintained C library verifies SigV4 on the
 * server side: libcurl and the AWS SDKs only sign.  The hashing and HMAC
 * are OpenSSL's.
 */
#ifndef FERRY_CONTROL_SIGV4_H
#define FERRY_CONTROL_SIGV4_H

#include <stddef.h>
#include <time.h>

struct sigv4_header {
	const char *name;  /* as received, any case */
	const char *value; /* as received (leading/trailing space allowed) */
};

struct sigv4_request {
	const char *method;	/* "POST" */
	const char *path;	/* raw request path, still percent-encoded */
	const char *query;	/* raw query string after '?', or NULL */
	const struct sigv4_header *headers;
	size_t n_headers;
	const void *body;
	size_t body_len;
};

/* What the Authorization header and X-Amz-Date said. */
struct sigv4_auth {
	char access_key_id[129];
	char date[9];		/* credential scope date YYYYMMDD */
	char region[64];
	char service[64];
	char signed_headers[1024]; /* "content-type;host;x-amz-date" */
	char signature[65];	/* 64 lower-case hex */
	char amz_date[17];	/* YYYYMMDDTHHMMSSZ */
	time_t request_time;	/* amz_date as a time */
	const char *security_token; /* X-Amz-Security-Token value or NULL */
};

enum sigv4_result {
	SIGV4_OK = 0,
	SIGV4_MISSING,	  /* no Authorization header: MissingAuthenticationToken */
	SIGV4_INCOMPLETE, /* malformed header, missing part or date:
			     IncompleteSignatureException */
	SIGV4_BAD_SCOPE,  /* wrong region/service/date in the scope:
			     InvalidSignatureException */
	SIGV4_SKEW,	  /* timestamp > 15 minutes off: InvalidSignatureException
			     "Signature expired" */
	SIGV4_MISMATCH,	  /* signature differs: InvalidSignatureException */
};

#define SIGV4_MAX_SKEW 900 /* seconds, as AWS */

/*
 * Parse the Authorization header and X-Amz-Date (or Date) of REQ into
 * AUTH.  Checks the form only; on failure writes AWS's message to MSG.
 */
enum sigv4_result sigv4_parse(const struct sigv4_request *req,
			      struct sigv4_auth *auth, char *msg,
			      size_t msglen);

/*
 * Check the scope (REGION, SERVICE, date matching X-Amz-Date), the
 * clock skew against NOW, that host and x-amz-date (and
 * x-amz-security-token when present) are signed, and the signature
 * computed with SECRET.  On failure writes AWS's message to MSG.
 */
enum sigv4_result sigv4_verify(const struct sigv4_request *req,
			       const struct sigv4_auth *auth,
			       const char *secret, const char *region,
			       const char *service, time_t now, char *msg,
			       size_t msglen);

/*
 * Sign REQ as a client would: the signature (64 lower-case hex, into
 * OUT_SIGNATURE) for the scope (date, region, service), amz_date and
 * signed_headers in AUTH, with the canonical form AWS and botocore use
 * (form 1 in sigv4.c).  The payload hash is an X-Amz-Content-SHA256
 * header's value if REQ has one, else the body's.  For tests and the
 * fuzz target.  Returns 0, or -1 if REQ or AUTH cannot be signed.
 */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_auth *auth,
	       const char *secret, char out_signature[65]);

/*
 * Replay protection: remembers every accepted signature until it could
 * no longer pass the skew check.  Call sigv4_replay_check() only after
 * sigv4_verify() accepted the request.  Returns 0 if SIGNATURE (64 hex)
 * is new: it is recorded in flight, and the caller must then call
 * sigv4_replay_settle() once the request took effect or
 * sigv4_replay_forget() if it changed nothing.  A check that meets the
 * signature in flight waits (up to 10 s, sigv4_replay_set_wait) for that
 * outcome: 1 if it settled (a replay: refuse), 0 if it was forgotten (the
 * retry is recorded in its place), 2 if it is still in flight after the
 * wait (refuse: its outcome is unknown).  Returns -1 (treat as a replay:
 * refuse) if SIGNATURE is not hex or memory ran out; 0 without recording
 * for a request_time outside now +/- SIGV4_MAX_SKEW.  Thread-safe.
 */
struct sigv4_replay;
struct sigv4_replay *sigv4_replay_new(void);
void sigv4_replay_free(struct sigv4_replay *r);
int sigv4_replay_check(struct sigv4_replay *r, const char *signature,
		       time_t request_time, time_t now);
/* SIGNATURE's request took effect: a later check of it returns 1. */
void sigv4_replay_settle(struct sigv4_replay *r, const char *signature);
/*
 * Forget SIGNATURE, recorded by sigv4_replay_check() for a request that
 * then failed and changed nothing: the client's retry of it, which SDKs
 * send with the same signature within the same second, is accepted.
 */
void sigv4_replay_forget(struct sigv4_replay *r, const char *signature);
/* How long a check waits for an in-flight first attempt (tests). */
void sigv4_replay_set_wait(struct sigv4_replay *r, unsigned int ms);
/* Entries held (expired ones not yet dropped included) and bytes used. */
void sigv4_replay_stats(struct sigv4_replay *r, size_t *entries,
			size_t *bytes);

#endif
