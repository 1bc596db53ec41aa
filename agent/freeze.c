// SPDX-License-Identifier: GPL-2.0
/*
 * freeze.c - the freezer child process (freeze.h).
 *
 * The agent and its child speak over a SOCK_SEQPACKET pair: one request
 * per packet, one answer per request.  The child is single-threaded and
 * forked before the agent's threads exist, so it may use stdio and malloc
 * freely.  While filesystems are frozen it writes nothing to any of them
 * (it only reads /proc and /sys, which are not frozen).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>

#include "agent.h"
#include "errmsg.h"
#include "freeze.h"

#define FREEZE_MAX_MOUNTS 256
#define STACK_DEPTH_MAX 8

enum fz_op {
	FZ_FREEZE = 1,
	FZ_THAW = 2,
};

struct fz_req {
	uint32_t op;
	uint32_t timeout_ms;
	uint32_t n;
	uint32_t reserved;
	uint64_t disks[AGENT_MAX_DISKS];
};

struct fz_resp {
	int32_t rc;		/* FREEZE: count or -1; THAW: 0, 1 late, -1 */
	char msg[AGENT_MSG_MAX];
};

/* ---- the child ---- */

struct frozen {
	int fd;			/* the mount point, open */
	dev_t dev;
};

static struct frozen frozen[FREEZE_MAX_MOUNTS];
static unsigned int n_frozen;
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void thaw_all(void)
{
	while (n_frozen > 0) {
		struct frozen *f = &frozen[--n_frozen];

		/* EINVAL: someone thawed it already; nothing else to do. */
		ioctl(f->fd, FITHAW, 0);
		close(f->fd);
	}
}

static int read_dev_file(const char *path, dev_t *dev)
{
	unsigned int ma, mi;
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%u:%u", &ma, &mi) == 2;
	fclose(f);
	if (!ok)
		return -1;
	*dev = makedev(ma, mi);
	return 0;
}

/*
 * Is block device DEV one of DISKS, a partition of one, or stacked (dm,
 * md) on one?  Sysfs: a partition has a `partition` file and its disk is
 * its parent directory; a stacked device lists what it sits on in
 * `slaves/`.
 */
static bool dev_on_disks(dev_t dev, const uint64_t *disks, unsigned int n,
			 int depth)
{
	char path[PATH_MAX], real[PATH_MAX];
	struct stat st;
	dev_t parent;
	char *slash;

	for (unsigned int i = 0; i < n; i++)
		if (disks[i] == (uint64_t)dev)
			return true;
	if (depth >= STACK_DEPTH_MAX || major(dev) == 0)
		return false;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition",
		 major(dev), minor(dev));
	if (stat(path, &st) == 0) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u",
			 major(dev), minor(dev));
		if (!realpath(path, real))
			return false;
		slash = strrchr(real, '/');
		if (!slash)
			return false;
		snprintf(slash, sizeof(real) - (size_t)(slash - real), "/dev");
		return read_dev_file(real, &parent) == 0 &&
		       dev_on_disks(parent, disks, n, depth + 1);
	}

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/slaves",
		 major(dev), minor(dev));
	DIR *d = opendir(path);
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		char file[PATH_MAX];
		dev_t slave;

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(file, sizeof(file), "%s/%s/dev", path,
				     de->d_name) >= sizeof(file))
			continue;
		if (read_dev_file(file, &slave) == 0)
			found = dev_on_disks(slave, disks, n, depth + 1);
	}
	closedir(d);
	return found;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' &&
		    r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 +
				      (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/*
 * The block device behind one mountinfo line: the source when it is a
 * block device node (btrfs shows an anonymous st_dev in the MAJ:MIN
 * field), else the MAJ:MIN field.  0 when it has none (tmpfs, proc).
 */
static dev_t mount_dev(const char *majmin, const char *source)
{
	unsigned int ma, mi;
	struct stat st;

	if (source[0] == '/' && stat(source, &st) == 0 && S_ISBLK(st.st_mode))
		return st.st_rdev;
	if (sscanf(majmin, "%u:%u", &ma, &mi) == 2 && ma != 0)
		return makedev(ma, mi);
	return 0;
}

struct candidate {
	dev_t dev;
	char *path;
};

/* Mount points of filesystems on DISKS, one per superblock. */
static int find_mounts(const uint64_t *disks, unsigned int n,
		       struct candidate *out, unsigned int *nout,
		       struct fz_resp *resp)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;

	*nout = 0;
	if (!f) {
		set_err(resp->msg, sizeof(resp->msg),
			"cannot read /proc/self/mountinfo: %s",
			strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok[32], *source = NULL;
		unsigned int nf = 0, dash = 0;
		dev_t dev;

		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE
		 * SOURCE SUPEROPTS */
		for (char *t = strtok_r(line, " \n", &save); t && nf < 32;
		     t = strtok_r(NULL, " \n", &save)) {
			if (!dash && nf >= 6 && strcmp(t, "-") == 0)
				dash = nf;
			tok[nf++] = t;
		}
		if (dash && dash + 2 < nf)
			source = tok[dash + 2];
		if (!source)
			continue;
		unescape(source);
		dev = mount_dev(tok[2], source);
		if (!dev || !dev_on_disks(dev, disks, n, 0))
			continue;
		bool dup = false;

		for (unsigned int i = 0; i < *nout; i++)
			if (out[i].dev == dev)
				dup = true;
		if (dup || *nout >= FREEZE_MAX_MOUNTS)
			continue;
		unescape(tok[4]);
		out[*nout].dev = dev;
		out[*nout].path = strdup(tok[4]);
		if (!out[*nout].path)
			break;
		(*nout)++;
	}
	free(line);
	fclose(f);
	return 0;
}

static int do_freeze(const struct fz_req *req, struct fz_resp *resp)
{
	static struct candidate c[FREEZE_MAX_MOUNTS];
	unsigned int nc = 0, i;
	int fds[FREEZE_MAX_MOUNTS];
	int rc = -1;

	if (req->n > AGENT_MAX_DISKS) {
		set_err(resp->msg, sizeof(resp->msg), "too many disks (%u)",
			req->n);
		return -1;
	}
	if (find_mounts(req->disks, req->n, c, &nc, resp) < 0)
		return -1;

	/* Open every mount point first: no path lookup once any is frozen,
	 * and flush each one before its freeze so that writers are held
	 * only for the freeze's own short sync. */
	for (i = 0; i < nc; i++) {
		fds[i] = open(c[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] >= 0)
			syncfs(fds[i]);
	}
	for (i = 0; i < nc; i++) {
		if (fds[i] < 0)
			continue;
		if (ioctl(fds[i], FIFREEZE, 0) == 0) {
			frozen[n_frozen].fd = fds[i];
			frozen[n_frozen].dev = c[i].dev;
			n_frozen++;
			fds[i] = -1;
			continue;
		}
		/* EBUSY: frozen by someone else, not ours to thaw; EOPNOTSUPP:
		 * a filesystem without freeze.  The agent's write counters
		 * stay the judge of whether the point is consistent. */
		if (errno == EBUSY || errno == EOPNOTSUPP)
			continue;
		set_err(resp->msg, sizeof(resp->msg),
			"cannot freeze the filesystem on %s: %s", c[i].path,
			strerror(errno));
		thaw_all();
		goto out;
	}
	rc = (int)n_frozen;
out:
	for (i = 0; i < nc; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		free(c[i].path);
	}
	return rc;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void child_main(int fd)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	uint64_t deadline = 0;
	bool late = false;

	/* systemd stops the service with SIGTERM to every process of its
	 * cgroup: thaw first, then go. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct fz_req req;
		struct fz_resp resp;
		int timeout = -1;
		ssize_t r;

		if (stop_requested)
			break;
		if (n_frozen > 0) {
			uint64_t now = mono_ms();

			if (now >= deadline) {
				thaw_all();
				late = true;
				continue;
			}
			timeout = (int)(deadline - now);
		}
		if (poll(&p, 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = recv(fd, &req, sizeof(req), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;	/* the agent is gone */
		memset(&resp, 0, sizeof(resp));
		if ((size_t)r != sizeof(req)) {
			resp.rc = -1;
			set_err(resp.msg, sizeof(resp.msg), "bad request");
		} else if (req.op == FZ_FREEZE) {
			thaw_all();
			late = false;
			resp.rc = do_freeze(&req, &resp);
			deadline = mono_ms() + req.timeout_ms;
		} else if (req.op == FZ_THAW) {
			resp.rc = late && n_frozen == 0 ? 1 : 0;
			thaw_all();
			late = false;
		} else {
			resp.rc = -1;
			set_err(resp.msg, sizeof(resp.msg), "unknown op %u",
				req.op);
		}
		if (send(fd, &resp, sizeof(resp), MSG_NOSIGNAL) < 0)
			break;
	}
	thaw_all();
	_exit(0);
}

/* ---- the agent's side ---- */

int freezer_spawn(struct freezer *fz, char *err, size_t errlen)
{
	int sv[2];
	pid_t pid;

	fz->fd = -1;
	fz->pid = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		set_err(err, errlen, "freezer: socketpair: %s",
			strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		set_err(err, errlen, "freezer: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		child_main(sv[1]);
	}
	close(sv[1]);
	fz->fd = sv[0];
	fz->pid = pid;
	return 0;
}

static int call(struct freezer *fz, const struct fz_req *req,
		struct fz_resp *resp, char *err, size_t errlen)
{
	ssize_t r;

	if (fz->fd < 0) {
		set_err(err, errlen, "freezer: not running");
		return -1;
	}
	if (send(fz->fd, req, sizeof(*req), MSG_NOSIGNAL) < 0) {
		set_err(err, errlen, "freezer: cannot reach the child: %s",
			strerror(errno));
		return -1;
	}
	do {
		r = recv(fz->fd, resp, sizeof(*resp), 0);
	} while (r < 0 && errno == EINTR);
	if (r != (ssize_t)sizeof(*resp)) {
		set_err(err, errlen, "freezer: the child %s",
			r == 0 ? "exited" : "answered badly");
		return -1;
	}
	resp->msg[sizeof(resp->msg) - 1] = '\0';
	return 0;
}

int freezer_freeze(struct freezer *fz, const dev_t *disks, unsigned int n,
		   unsigned int timeout_ms, char *err, size_t errlen)
{
	struct fz_req req = { .op = FZ_FREEZE, .timeout_ms = timeout_ms };
	struct fz_resp resp;

	if (n > AGENT_MAX_DISKS) {
		set_err(err, errlen, "freezer: too many disks (%u)", n);
		return -1;
	}
	req.n = n;
	for (unsigned int i = 0; i < n; i++)
		req.disks[i] = disks[i];
	if (call(fz, &req, &resp, err, errlen) < 0)
		return -1;
	if (resp.rc < 0)
		set_err(err, errlen, "freezer: %s", resp.msg);
	return resp.rc;
}

int freezer_thaw(struct freezer *fz, char *err, size_t errlen)
{
	struct fz_req req = { .op = FZ_THAW };
	struct fz_resp resp;

	if (call(fz, &req, &resp, err, errlen) < 0)
		return -1;
	if (resp.rc < 0)
		set_err(err, errlen, "freezer: %s", resp.msg);
	return resp.rc;
}

void freezer_stop(struct freezer *fz)
{
	if (fz->fd >= 0) {
		close(fz->fd);	/* EOF: the child thaws and exits */
		fz->fd = -1;
	}
	if (fz->pid > 0) {
		while (waitpid(fz->pid, NULL, 0) < 0 && errno == EINTR)
			;
		fz->pid = -1;
	}
}
