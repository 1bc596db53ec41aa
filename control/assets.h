/* SPDX-License-Identifier: GPL-2.0 */
/*
 * assets.h - the agent's installation assets that ferry-control serves
 * (install.sh downloads them): the packages of `make deb` / `make rpm`,
 * laid out in the assets directory (--assets-dir, default
 * DATA_DIR/assets) as build/pkg is:
 *
 *   DIR/deb/SHA512SUMS, DIR/deb/ferry-agent_0.1.0-1_amd64.deb, ...
 *   DIR/rpm/SHA512SUMS, DIR/rpm/ferry-agent-0.1.0-1.x86_64.rpm, ...
 *
 * Only the files SHA512SUMS names are served; their digests are computed
 * here from the files (cached by path, size and mtime), never copied from
 * SHA512SUMS, so that a file changed on disk is never vouched for.
 */
#ifndef FERRY_CONTROL_ASSETS_H
#define FERRY_CONTROL_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

#define ASSETS_URL_PREFIX "/assets/latest/linux/"
#define ASSETS_MAX 16

struct asset {
	char name[128];		/* file name, e.g. ferry-agent_0.1.0-1_amd64.deb */
	char path[4352];	/* DIR/FORMAT/NAME */
	char sha512[129];	/* hex */
	long long size;
};

/*
 * The packages of FORMAT ("deb" or "rpm") in DIR: up to ASSETS_MAX
 * entries in OUT, in SHA512SUMS's order, with their digests.  The count,
 * or -1 with a reason in ERR (no such directory, no SHA512SUMS, a listed
 * file missing or unreadable).
 */
int assets_list(const char *dir, const char *format, struct asset *out,
		int max, char *err, size_t errlen);

/*
 * The asset a GET of the raw request target URI names under
 * ASSETS_URL_PREFIX: FORMAT/NAME (the file) or FORMAT/NAME.sha512 (*DIGEST
 * set: its "HEX  NAME\n" line).  0 with A filled, or -1: not an asset (a
 * 404, whatever the reason: traversal, encoding, an unlisted file).
 */
int assets_lookup(const char *dir, const char *uri, struct asset *a,
		  bool *digest);

#endif
