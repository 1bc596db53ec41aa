/* SPDX-License-Identifier: GPL-2.0 */
/*
 * freeze.h - freezing the filesystems of the replicated disks for a
 * consistency point (docs/agent.md, "Consistency points").
 *
 * The freezing is done by a child process forked before the agent starts
 * any thread.  It holds the frozen mount points open and thaws them when
 * told, when the freeze's deadline passes, or when the agent dies (its end
 * of the socket closes): a crashed or killed agent never leaves a server's
 * filesystems frozen.
 */
#ifndef FERRY_AGENT_FREEZE_H
#define FERRY_AGENT_FREEZE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct freezer {
	int fd;		/* our end of the socket pair, -1 when stopped */
	pid_t pid;	/* the child */
};

/* Fork the child.  Call before any thread exists.  0, or -1 with a
 * reason in ERR. */
int freezer_spawn(struct freezer *fz, char *err, size_t errlen);

/*
 * Freeze every filesystem mounted from the whole disks DISKS[N] (dev_t
 * numbers), from a partition of them, or from a device stacked on them
 * (device-mapper, md), until freezer_thaw() or TIMEOUT_MS.  Filesystems
 * frozen by someone else are left alone.  Returns the number frozen (0 is
 * possible: nothing mounted), or -1 with a reason in ERR (nothing is left
 * frozen then).
 */
int freezer_freeze(struct freezer *fz, const dev_t *disks, unsigned int n,
		   unsigned int timeout_ms, char *err, size_t errlen);

/*
 * Thaw what the last freezer_freeze() froze.  Returns 0, 1 if the
 * deadline had passed and the child thawed on its own before (the caller
 * must not trust the freeze then), or -1 with a reason in ERR.
 */
int freezer_thaw(struct freezer *fz, char *err, size_t errlen);

/* Thaw anything still frozen, end the child, reap it. */
void freezer_stop(struct freezer *fz);

#endif
