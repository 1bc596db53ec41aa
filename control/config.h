/* SPDX-License-Identifier: GPL-2.0 */
/* config.h - ferry-control's settings, from its command line. */
#ifndef FERRY_CONTROL_CONFIG_H
#define FERRY_CONTROL_CONFIG_H

#define CONTROL_MAX_NAMES 16

struct control_config {
	const char *data_dir;	  /* --data-dir (default /var/lib/ferry-control) */
	const char *assets_dir;	  /* --assets-dir (default DATA_DIR/assets) */
	const char *listen_addr;  /* --listen host part (default 0.0.0.0) */
	unsigned short port;	  /* --listen port part (default 443) */
	const char *region;	  /* --region (default us-east-1) */
	const char *cert_file;	  /* --cert: administrator's server cert */
	const char *key_file;	  /* --key: its private key */
	const char *names[CONTROL_MAX_NAMES]; /* --hostname: extra SANs */
	int n_names;
	int agent_timeout;	  /* --agent-timeout SECS: AGENT_NOT_SEEN */
	/* --replicator-timeout SECS: a replicator not heard from this long
	 * is lost (no server placed on it, its launch tasks fail) */
	int replicator_timeout;
	int session_ttl;	  /* lifetime of issued agent credentials, s */
	int threads;		  /* --threads: HTTP worker threads */
	char account_id[16];	  /* 12 digits, made at first start */
};

#endif
