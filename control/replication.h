/* SPDX-License-Identifier: GPL-2.0 */
/*
 * replication.h - replication settings for the other operation groups.
 *
 * A replication configuration template holds the settings that a newly
 * registered source server starts from; each server then has its own
 * replication configuration (MGN's ReplicationConfiguration shape),
 * changed only by UpdateReplicationConfiguration.  Both are kept as JSON
 * documents; members that Debian's MGN model does not know (the
 * point-in-time snapshot policy) live under a private "ferry" member and
 * never appear in public answers.
 *
 * All functions run inside the caller's transaction and record an
 * api_error() on failure.
 */
#ifndef FERRY_CONTROL_REPLICATION_H
#define FERRY_CONTROL_REPLICATION_H

#include <jansson.h>
#include <stdbool.h>

#include "api.h"

/*
 * Create the default template unless a template exists (InitializeService
 * calls it).  MGN's defaults: no throttling, private routing, GP3 large
 * staging disks, t3.small shared replication servers, default EBS
 * encryption, no public IP, and snapshots every 10 minutes kept for an
 * hour, hourly kept for a day, daily kept for a week.  0 or -1.
 */
int repl_default_template(struct api_ctx *ctx);

/*
 * Give source server ID its replication configuration at registration,
 * from the oldest template (the default one is made first if there is
 * none).  DISKS is the registration's list of {"deviceName", "bytes",
 * optional "isBootDisk"}; NULL takes sourceProperties.disks of the
 * saved record.  The boot disk is the one marked isBootDisk, else the
 * first.  Call it after ss_save() so the configuration's name is the
 * server's hostname.  If the server already has a configuration
 * (re-registration), only its disk list follows DISKS: settings of disks
 * still present are kept, new disks get defaults, gone disks are
 * dropped.  0 or -1.
 */
int repl_config_create(struct api_ctx *ctx, const char *source_server_id,
		       json_t *disks);

/*
 * The server's configuration (new reference) for the agent runtime and
 * the replicator assignment: the public members (bandwidthThrottling in
 * Mbps, 0 = unlimited; useDedicatedReplicationServer; dataPlaneRouting;
 * replicatedDisks; ...) plus, when an administrator set one, "pitPolicy":
 * a list of {"ruleID", "units" MINUTE|HOUR|DAY, "interval",
 * "retentionDuration", "enabled"} (absent: the replicator's pit_policy).
 * A server registered without a configuration gets one made now.
 * NULL if the server does not exist (no error recorded) or on a database
 * error (error recorded).
 */
json_t *repl_config_get(struct api_ctx *ctx, const char *source_server_id);

/* True if template TEMPLATE_ID exists (false also on a database error,
 * then recorded). */
bool repl_template_exists(struct api_ctx *ctx, const char *template_id);

/* Forget the server's configuration (DeleteSourceServer).  0 or -1. */
int repl_config_delete(struct api_ctx *ctx, const char *source_server_id);

#endif
