// SPDX-License-Identifier: GPL-2.0
/*
 * ferry.ko loaded by the agent itself when /dev/ferry-ctl is missing.
 *
 * The service loads the module before the agent starts (ExecStartPre),
 * but after a kernel upgrade and a reboot DKMS may have had no module for
 * the new kernel yet (its headers installed later, `dkms autoinstall` run
 * by hand), or someone unloaded it: the agent tries again at each setup
 * retry, so its disks are tracked as soon as a module exists, and its
 * error says what modprobe said.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "module_load.h"
#include "errmsg.h"

extern char **environ;

int module_load(const char *name, char *err, size_t errlen)
{
	char *argv[] = { "modprobe", (char *)name, NULL };
	char out[512], *line;
	posix_spawn_file_actions_t fa;
	size_t len = 0;
	int p[2], rc, status;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC)) {
		set_err(err, errlen, "cannot run modprobe %s: pipe: %s", name,
			strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	rc = posix_spawnp(&pid, "modprobe", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc) {
		close(p[0]);
		set_err(err, errlen, "cannot run modprobe %s: %s", name,
			strerror(rc));
		return -1;
	}
	/* Keep the last of what it says: its reason comes last. */
	while ((n = read(p[0], out + len, sizeof(out) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
		if (len == sizeof(out) - 1) {
			memmove(out, out + len / 2, len - len / 2);
			len -= len / 2;
		}
	}
	close(p[0]);
	out[len] = '\0';
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			set_err(err, errlen, "modprobe %s: waitpid: %s", name,
				strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	/* The last non-empty line. */
	while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
		out[--len] = '\0';
	line = strrchr(out, '\n');
	line = line ? line + 1 : out;
	if (WIFEXITED(status))
		set_err(err, errlen, "modprobe %s exited with %d%s%s", name,
			WEXITSTATUS(status), *line ? ": " : "", line);
	else
		set_err(err, errlen, "modprobe %s killed by signal %d", name,
			WTERMSIG(status));
	return -1;
}
