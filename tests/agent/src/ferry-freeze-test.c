// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-freeze-test: drives the agent's freezer (agent/freeze.c) for
 * tests/agent/t_freeze.py on a real filesystem.
 *
 *   ferry-freeze-test freeze DISK TIMEOUT_MS  freeze the filesystems on
 *       DISK (a whole-disk node), print "frozen N", wait for a line on
 *       stdin, thaw, print "thawed RC" (RC 1: the deadline thawed first)
 *   ferry-freeze-test die DISK               freeze for 10 minutes, print
 *       "frozen N", then exit without thawing (the child must thaw)
 *
 * Exit status 0, or 1 with a reason on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "freeze.h"

static int fail(const char *what, const char *err)
{
	fprintf(stderr, "ferry-freeze-test: %s: %s\n", what, err);
	return 1;
}

int main(int argc, char **argv)
{
	struct freezer fz;
	char err[1024], line[64];
	struct stat st;
	int n, rc;

	if (argc < 3 || (strcmp(argv[1], "freeze") && strcmp(argv[1], "die"))) {
		fprintf(stderr, "usage: ferry-freeze-test freeze DISK TIMEOUT_MS | die DISK\n");
		return 2;
	}
	if (stat(argv[2], &st) < 0 || !S_ISBLK(st.st_mode))
		return fail(argv[2], "not a block device");
	if (freezer_spawn(&fz, err, sizeof(err)) < 0)
		return fail("spawn", err);
	n = freezer_freeze(&fz, &st.st_rdev, 1,
			   strcmp(argv[1], "die") == 0 ? 600000 :
			   (unsigned int)atoi(argc > 3 ? argv[3] : "5000"),
			   err, sizeof(err));
	if (n < 0)
		return fail("freeze", err);
	printf("frozen %d\n", n);
	fflush(stdout);
	if (strcmp(argv[1], "die") == 0)
		_exit(0);	/* no thaw, no freezer_stop: the child's job */
	if (!fgets(line, sizeof(line), stdin))
		return fail("stdin", "closed");
	rc = freezer_thaw(&fz, err, sizeof(err));
	if (rc < 0)
		return fail("thaw", err);
	printf("thawed %d\n", rc);
	freezer_stop(&fz);
	return 0;
}
