/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ca_util.h - helpers that go with ca.h: the atomic file writer the CA
 * and `ferry-control certs` share (implemented in control/ca.c).
 */
#ifndef FERRY_CONTROL_CA_UTIL_H
#define FERRY_CONTROL_CA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The certificate IDs, URI SAN prefixes and the peer's source server ID
 * are lib/peer_id.h's, shared with the replicator and the agent. */
#include "peer_id.h"

/*
 * Write DATA to PATH through a temporary file in the same directory
 * (created O_EXCL with mode 0600, so never readable by others, then
 * chmod'ed to MODE), fsync'ed, then renamed over PATH, or, if REPLACE is
 * false, linked to PATH only if PATH does not exist yet.
 * Returns 0, 1 if !REPLACE and PATH already existed (nothing written),
 * or -1 with a message in ERR.
 */
int ca_write_file(const char *path, const void *data, size_t len,
		  mode_t mode, bool replace, char *err, size_t errlen);

#endif
