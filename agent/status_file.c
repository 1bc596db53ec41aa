// SPDX-License-Identifier: GPL-2.0
/*
 * status_file.c - RUN_DIR/status.json (status_file.h; /run/ferry-agent by
 * default), for `ferryctl status`.  Field names follow MGN's where it has them
 * (dataReplicationState, replicatedStorageBytes, ...); docs/agent.md,
 * "ferryctl status", shows the file.
 */
#include "status_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "errmsg.h"
#include "state.h"
#include "wire.h"

/* ISO-8601 of MS since the epoch, or JSON null for 0. */
static json_t *time_json(uint64_t ms)
{
	char buf[40];

	if (!ms)
		return json_null();
	state_format_time((int64_t)(ms / 1000), buf, sizeof(buf));
	return json_string(buf);
}

static const char *codec_name(uint8_t codec)
{
	switch (codec) {
	case FERRY_CODEC_RAW:
		return "none";
	case FERRY_CODEC_ZSTD:
		return "zstd";
	case FERRY_CODEC_LZ4:
		return "lz4";
	default:
		return "unknown";
	}
}

static json_t *status_json(const struct agent_runtime *rt,
			   const struct agent_status *st,
			   const struct agent_control_status *ctl,
			   const struct agent_config *cfg)
{
	json_t *doc, *disks = json_array(), *rep, *control;
	uint64_t backlog = 0;

	for (unsigned int i = 0; i < st->n_disks; i++) {
		const struct agent_disk_status *d = &st->disks[i];

		backlog += d->backlog_bytes;
		json_array_append_new(disks, json_pack(
			"{s:s,s:s,s:I,s:I,s:I,s:I,s:I}",
			"deviceName", d->name,
			"state", agent_repl_state_name(d->state),
			"totalStorageBytes", (json_int_t)d->total_bytes,
			"replicatedStorageBytes",
			(json_int_t)d->replicated_bytes,
			"rescannedStorageBytes",
			(json_int_t)d->rescanned_bytes,
			"backloggedStorageBytes",
			(json_int_t)d->backlog_bytes,
			"sentBytes", (json_int_t)d->sent_bytes));
	}
	rep = rt->have_replicator ?
	      json_pack("{s:s,s:s,s:i}", "replicatorID", rt->replicator_id,
			"address", rt->replicator_host, "port",
			(int)rt->replicator_port) : json_null();
	control = cfg->standalone ? json_null() :
		  json_pack("{s:s,s:o,s:s,s:s?,s:o}",
			    "endpoint", cfg->endpoint,
			    "lastHeartbeatDateTime",
			    time_json(ctl->last_heartbeat_ms),
			    "serviceState", ctl->service_state,
			    "error", ctl->error[0] ? ctl->error : NULL,
			    "errorDateTime",
			    time_json(ctl->error[0] ? ctl->error_ms : 0));
	doc = json_pack("{s:i,s:i,s:s,s:o,s:b,s:s,s:o,s:b,s:b,s:I,s:s,"
			"s:I,s:I,s:I,s:o,s:o,s:o,s:o}",
			"version", 1, "pid", (int)getpid(),
			"sourceServerID", rt->source_server_id,
			"updatedDateTime", time_json(st->updated_ms),
			"standalone", cfg->standalone,
			"dataReplicationState",
			agent_repl_state_name(st->state),
			"replicator", rep,
			"paused", rt->paused, "stopped", rt->stopped,
			"bandwidthBytesPerSecond",
			(json_int_t)rt->bandwidth_bps,
			"compression", codec_name(rt->codec),
			"lagMs", (json_int_t)st->lag_ms,
			"etaSeconds", (json_int_t)st->eta_s,
			"backlogBytes", (json_int_t)backlog,
			"lastConsistencyPointDateTime",
			time_json(st->last_cp_ms),
			"dataReplicationError",
			st->error[0] ? json_pack("{s:s,s:s}", "error",
						 st->error, "rawError",
						 st->raw_error) : json_null(),
			"control", control,
			"disks", disks);
	return doc;
}

int agent_status_write(struct agent_shared *sh, const struct agent_config *cfg,
		       char *err, size_t errlen)
{
	/* Large: not on a thread's stack. */
	static __thread struct agent_runtime rt;
	static __thread struct agent_status st;
	static __thread struct agent_control_status ctl;
	json_t *doc;
	char *text;
	int rc;

	pthread_mutex_lock(&sh->lock);
	rt = sh->rt;
	st = sh->st;
	ctl = sh->ctl;
	pthread_mutex_unlock(&sh->lock);
	doc = status_json(&rt, &st, &ctl, cfg);
	text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	json_decref(doc);
	if (!text) {
		set_err(err, errlen, "out of memory for %s",
			AGENT_STATUS_FILE);
		return -1;
	}
	/* Rewritten every second: atomic for readers, not fsynced. */
	rc = state_write(cfg->run_dir, AGENT_STATUS_FILE, text,
			 strlen(text), 0644, false, err, errlen);
	free(text);
	return rc;
}
