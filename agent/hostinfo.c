// SPDX-License-Identifier: GPL-2.0
/*
 * hostinfo.c - the source server's facts and its disks (hostinfo.h).
 *
 * Everything comes from the kernel's own views: /sys/block and
 * /sys/dev/block for disks, /proc/self/mountinfo for the root and boot
 * filesystems, getifaddrs() and /proc/net/route for the network,
 * /proc/cpuinfo, sysinfo(), /etc/os-release and uname().
 */
#include "hostinfo.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "errmsg.h"

#define FILE_MAX (1u << 20)	/* /proc/cpuinfo of a large machine */

/*
 * ferry's application ID for machine-id(5)'s rule: applications send an
 * ID derived from the machine ID, never the ID itself.
 */
static const char app_id[] = "ferry-agent:7c0e2b1a5d3f4e6a9b8c1d2e3f405162";

/* The whole of a small file (procfs, sysfs, /etc) as a string; NULL if
 * it cannot be read. */
static char *slurp(const char *path)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	FILE *f = fopen(path, "re");

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len - 1, f);

		len += n;
		if (n == 0 || len >= FILE_MAX)
			break;
		if (len + 1 == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* One line of a sysfs attribute, trailing newline removed; -1 if none. */
static int read_attr(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	if (!fgets(out, (int)len, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

/* SRC into DST[LEN], cut to fit. */
static void copy(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memmove(dst, src, n);
	dst[n] = '\0';
}

/* ---- parsers ---------------------------------------------------------- */

/* VALUE of an os-release line: quotes removed, backslash escapes. */
static void unquote(const char *v, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	char q = 0;

	if (n && (v[0] == '"' || v[0] == '\'')) {
		q = v[0];
		v++;
		n--;
		if (n && v[n - 1] == q)
			n--;
	}
	for (size_t i = 0; i < n && o + 1 < outlen; i++) {
		if (q == '"' && v[i] == '\\' && i + 1 < n)
			i++;
		out[o++] = v[i];
	}
	out[o] = '\0';
}

static bool os_value(const char *text, const char *key, char *out,
		     size_t outlen)
{
	size_t kl = strlen(key);
	bool found = false;

	for (const char *p = text, *end; p && *p; p = end ? end + 1 : NULL) {
		size_t n;

		end = strchr(p, '\n');
		n = end ? (size_t)(end - p) : strlen(p);

		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		if (n > kl && !strncmp(p, key, kl) && p[kl] == '=') {
			while (n > kl + 1 && isspace((unsigned char)p[n - 1]))
				n--;
			unquote(p + kl + 1, n - kl - 1, out, outlen);
			found = out[0] != '\0';	/* the last one wins */
		}
	}
	return found;
}

int hostinfo_parse_os_release(const char *text, char *out, size_t outlen)
{
	char name[HOST_TEXT_MAX], version[HOST_TEXT_MAX];

	if (os_value(text, "PRETTY_NAME", out, outlen))
		return 0;
	if (!os_value(text, "NAME", name, sizeof(name)))
		return -1;
	if (os_value(text, "VERSION", version, sizeof(version)))
		snprintf(out, outlen, "%s %s", name, version);
	else
		copy(out, outlen, name);
	return 0;
}

/* "key<tabs>: value" of a cpuinfo line into KEY and VALUE. */
static bool cpu_field(const char *line, size_t n, char *key, size_t kl,
		      char *val, size_t vl)
{
	const char *colon = memchr(line, ':', n);
	size_t k, v;

	if (!colon)
		return false;
	k = (size_t)(colon - line);
	while (k && isspace((unsigned char)line[k - 1]))
		k--;
	snprintf(key, kl, "%.*s", (int)k, line);
	colon++;
	v = n - (size_t)(colon - line);
	while (v && isspace((unsigned char)*colon)) {
		colon++;
		v--;
	}
	while (v && isspace((unsigned char)colon[v - 1]))
		v--;
	snprintf(val, vl, "%.*s", (int)v, colon);
	return true;
}

unsigned int hostinfo_parse_cpuinfo(const char *text, struct host_cpu *out,
				    unsigned int max)
{
	/* Per processor block: its socket and model. */
	long ids[HOST_MAX_CPUS];
	unsigned int n = 0;
	char model[HOST_TEXT_MAX] = "";
	long phys = -1;
	bool in_cpu = false;
	const char *p = text;

	if (max > HOST_MAX_CPUS)
		max = HOST_MAX_CPUS;
	for (;;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char key[64], val[HOST_TEXT_MAX];
		bool blank = true;

		for (size_t i = 0; i < len; i++)
			if (!isspace((unsigned char)p[i]))
				blank = false;
		if (blank && in_cpu) {
			/* The end of one processor's block. */
			unsigned int i;

			for (i = 0; i < n; i++)
				if (ids[i] == phys)
					break;
			if (i == n && n < max) {
				ids[n] = phys;
				out[n].cores = 0;
				copy(out[n].model, sizeof(out[n].model),
				     model);
				n++;
			}
			if (i < n)
				out[i].cores++;
			in_cpu = false;
			phys = -1;
			model[0] = '\0';
		} else if (!blank && cpu_field(p, len, key, sizeof(key), val,
					       sizeof(val))) {
			if (!strcmp(key, "processor"))
				in_cpu = true;
			else if (!strcmp(key, "physical id"))
				phys = strtol(val, NULL, 10);
			else if (!strcmp(key, "model name") ||
				 (!model[0] && (!strcmp(key, "cpu model") ||
						!strcmp(key, "Model"))))
				copy(model, sizeof(model), val);
		}
		if (!end) {
			if (!in_cpu)
				break;
			/* The last block without a blank line after it. */
			p = "";
			continue;
		}
		p = end + 1;
	}
	return n;
}

int hostinfo_parse_mountinfo(const char *text, const char *mount_point,
			     unsigned int *major, unsigned int *minor,
			     char *source, size_t sourcelen)
{
	int found = -1;

	for (const char *p = text; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char line[8192], tail[8192] = "", *f[16], *save = NULL, *sep;
		unsigned int nf = 0, ma, mi;

		if (len < sizeof(line)) {
			memcpy(line, p, len);
			line[len] = '\0';
			/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - TYPE
			 * SOURCE SUPEROPTS; the part after " - " is kept
			 * before strtok_r() cuts the line up. */
			sep = strstr(line, " - ");
			if (sep)
				copy(tail, sizeof(tail), sep + 3);
			for (char *t = strtok_r(line, " ", &save);
			     t && nf < 16; t = strtok_r(NULL, " ", &save))
				f[nf++] = t;
			if (nf >= 5 && sep && !strcmp(f[4], mount_point) &&
			    sscanf(f[2], "%u:%u", &ma, &mi) == 2) {
				char typ[64], src[4096];

				*major = ma;
				*minor = mi;
				if (sscanf(tail, "%63s %4095s", typ, src) ==
				    2)
					copy(source, sourcelen, src);
				else
					copy(source, sourcelen, "none");
				found = 0;
			}
		}
		p = end ? end + 1 : NULL;
	}
	return found;
}

bool hostinfo_virtual_name(const char *name)
{
	static const char *const prefixes[] = {
		"loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd", "zd",
		"drbd", "rbd",
	};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

int hostinfo_parse_route(const char *text, char *out, size_t outlen)
{
	unsigned long best = ULONG_MAX;
	const char *p = strchr(text, '\n');	/* skip the header */
	int rc = -1;

	while (p && *++p) {
		char ifn[64];
		unsigned long dest, gw, flags, metric, mask;
		int refcnt, use;

		if (sscanf(p, "%63s %lx %lx %lx %d %d %lu %lx", ifn, &dest,
			   &gw, &flags, &refcnt, &use, &metric, &mask) == 8 &&
		    dest == 0 && mask == 0 && (flags & 1) && metric < best) {
			best = metric;
			copy(out, outlen, ifn);
			rc = 0;
		}
		p = strchr(p, '\n');
	}
	return rc;
}

/* ---- disks ------------------------------------------------------------ */

/* /sys/dev/block/MAJ:MIN resolved, into OUT; -1 if it does not exist. */
static int sys_dev(unsigned int ma, unsigned int mi, char *out)
{
	char link[64];

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", ma, mi);
	return realpath(link, out) ? 0 : -1;
}

/* Sysfs directory SYS of a block device -> its whole disk's name. */
static void disk_of(const char *sys, char *name, size_t len)
{
	char attr[PATH_MAX + 16], dir[PATH_MAX];
	struct stat st;
	const char *base;

	snprintf(attr, sizeof(attr), "%s/partition", sys);
	copy(dir, sizeof(dir), sys);
	if (stat(attr, &st) == 0) {
		char *slash = strrchr(dir, '/');

		if (slash)
			*slash = '\0';
	}
	base = strrchr(dir, '/');
	copy(name, len, base ? base + 1 : dir);
}

/* /dev/NAME of sysfs name NAME ("cciss!c0d0" is /dev/cciss/c0d0). */
static void dev_node(const char *name, char *out, size_t len)
{
	snprintf(out, len, "/dev/%s", name);
	for (char *p = out; *p; p++)
		if (*p == '!')
			*p = '/';
}

int hostinfo_whole_disk(const char *dev, char *out, size_t outlen, char *err,
			size_t errlen)
{
	char sys[PATH_MAX], name[NAME_MAX + 1];
	struct stat st;

	if (stat(dev, &st)) {
		set_err(err, errlen, "device %s: %s", dev, strerror(errno));
		return -1;
	}
	if (!S_ISBLK(st.st_mode)) {
		set_err(err, errlen, "device %s: not a block device", dev);
		return -1;
	}
	if (sys_dev(major(st.st_rdev), minor(st.st_rdev), sys)) {
		set_err(err, errlen, "device %s (%u:%u): not in "
			"/sys/dev/block: %s", dev, major(st.st_rdev),
			minor(st.st_rdev), strerror(errno));
		return -1;
	}
	disk_of(sys, name, sizeof(name));
	dev_node(name, out, outlen);
	return 0;
}

/* Bytes of disk NAME (sysfs size is in 512-byte sectors). */
static uint64_t disk_bytes(const char *name)
{
	char path[PATH_MAX], v[64];

	snprintf(path, sizeof(path), "/sys/block/%s/size", name);
	if (read_attr(path, v, sizeof(v)))
		return 0;
	return strtoull(v, NULL, 10) * 512;
}

struct disk_set {
	char names[AGENT_MAX_DISKS][NAME_MAX + 1];	/* sysfs names */
	unsigned int n;
	bool full;
};

static void set_add(struct disk_set *s, const char *name)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (!strcmp(s->names[i], name))
			return;
	if (s->n == AGENT_MAX_DISKS) {
		s->full = true;
		return;
	}
	copy(s->names[s->n++], sizeof(s->names[0]), name);
}

/*
 * The disks under block device directory SYS: itself (or, for a
 * partition, its disk), or for a stacked device (dm, md: it has slaves)
 * the disks under each slave.
 */
static void add_under(struct disk_set *s, const char *sys, int depth)
{
	char path[PATH_MAX + 16], name[NAME_MAX + 1], whole[PATH_MAX];
	struct dirent *de;
	bool any = false;
	DIR *d;

	if (depth > 8)
		return;
	disk_of(sys, name, sizeof(name));
	snprintf(whole, sizeof(whole), "/sys/block/%s", name);
	snprintf(path, sizeof(path), "%s/slaves", whole);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		char sub[PATH_MAX + 300], real[PATH_MAX];

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (!realpath(sub, real))
			continue;
		add_under(s, real, depth + 1);
		any = true;
	}
	if (d)
		closedir(d);
	if (!any)
		set_add(s, name);
}

/* The disks holding the filesystem mounted on MNT (none for a
 * filesystem on no block device: tmpfs, overlay, NFS). */
static void add_mount(struct disk_set *s, const char *mountinfo,
		      const char *mnt)
{
	char src[4096], sys[PATH_MAX];
	unsigned int ma, mi;
	struct stat st;

	if (!mountinfo ||
	    hostinfo_parse_mountinfo(mountinfo, mnt, &ma, &mi, src,
				     sizeof(src)))
		return;
	/* btrfs and some others show an anonymous device number: the
	 * source names the device then. */
	if (ma == 0) {
		if (strncmp(src, "/dev/", 5) || stat(src, &st) ||
		    !S_ISBLK(st.st_mode))
			return;
		ma = major(st.st_rdev);
		mi = minor(st.st_rdev);
	}
	if (sys_dev(ma, mi, sys) == 0)
		add_under(s, sys, 0);
}

static bool physical(const char *name)
{
	char path[PATH_MAX], v[16];
	struct stat st;

	if (hostinfo_virtual_name(name))
		return false;
	snprintf(path, sizeof(path), "/sys/block/%s/device", name);
	if (stat(path, &st))
		return false;
	snprintf(path, sizeof(path), "/sys/block/%s/removable", name);
	if (read_attr(path, v, sizeof(v)) == 0 && !strcmp(v, "1"))
		return false;
	/* NVMe multipath: the per-path nodes are hidden. */
	snprintf(path, sizeof(path), "/sys/block/%s/hidden", name);
	if (read_attr(path, v, sizeof(v)) == 0 && !strcmp(v, "1"))
		return false;
	return disk_bytes(name) > 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

int hostinfo_disks(const char (*devices)[AGENT_PATH_MAX], unsigned int n,
		   struct host_disk *out, unsigned int *n_out, char *err,
		   size_t errlen)
{
	static __thread struct disk_set set, boot;
	char *mountinfo = slurp("/proc/self/mountinfo");
	const char *boot_mnt = "/boot";
	unsigned int ma, mi;
	char src[4096];
	int rc = -1;

	memset(&set, 0, sizeof(set));
	memset(&boot, 0, sizeof(boot));
	if (n) {
		for (unsigned int i = 0; i < n; i++) {
			char whole[AGENT_NAME_MAX];

			if (hostinfo_whole_disk(devices[i], whole,
						sizeof(whole), err, errlen))
				goto out;
			set_add(&set, whole + 5);	/* after "/dev/" */
		}
	} else {
		DIR *d = opendir("/sys/block");
		struct dirent *de;

		if (!d) {
			set_err(err, errlen, "cannot list /sys/block: %s",
				strerror(errno));
			goto out;
		}
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && physical(de->d_name))
				set_add(&set, de->d_name);
		closedir(d);
		qsort(set.names, set.n, sizeof(set.names[0]), cmp_names);
		/* The root disk always, whatever it looks like. */
		add_mount(&set, mountinfo, "/");
	}
	if (set.full) {
		set_err(err, errlen, "more than %d disks: name the ones to "
			"replicate with devices = ...", AGENT_MAX_DISKS);
		goto out;
	}
	/* The boot disk: the one holding /boot, else the root's. */
	if (!mountinfo || hostinfo_parse_mountinfo(mountinfo, boot_mnt, &ma,
						   &mi, src, sizeof(src)))
		boot_mnt = "/";
	add_mount(&boot, mountinfo, boot_mnt);
	for (unsigned int i = 0; i < set.n; i++) {
		struct host_disk *d = &out[i];

		/* "/dev/" and a sysfs name fit AGENT_NAME_MAX. */
		dev_node(set.names[i], d->name, sizeof(d->name));
		d->bytes = disk_bytes(set.names[i]);
		/* One boot disk: the first under /boot (md: its first
		 * member). */
		d->boot = boot.n && !strcmp(boot.names[0], set.names[i]);
	}
	*n_out = set.n;
	rc = 0;
out:
	free(mountinfo);
	return rc;
}

/* ---- the rest of the facts ------------------------------------------- */

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

bool hostinfo_real_uuid(const char *uuid)
{
	/* What firmware writes when nobody set a UUID: all zeros, all
	 * ones, or the sequence some boards ship with; a hypervisor without
	 * one (QEMU with no -uuid) gives zeros. */
	static const char *const dummies[] = {
		"03000200-0400-0500-0006-000700080009",
	};
	size_t n = 0;
	char first = 0;
	bool varied = false;

	for (const char *p = uuid; *p; p++) {
		if (*p == '-')
			continue;
		if (!isxdigit((unsigned char)*p))
			return false;
		if (!first)
			first = (char)tolower((unsigned char)*p);
		else if (tolower((unsigned char)*p) != first)
			varied = true;
		n++;
	}
	if (n != 32 || !varied)
		return false;
	for (size_t i = 0; i < sizeof(dummies) / sizeof(dummies[0]); i++)
		if (!strcasecmp(uuid, dummies[i]))
			return false;
	return true;
}

/*
 * The machine ID ferry-control sees: HMAC-SHA256 keyed with
 * /etc/machine-id over ferry's application ID, as machine-id(5) asks
 * (stable per machine, not the ID itself), and over the firmware's
 * system UUID when it has a real one.  machine-id alone travels with a
 * copy of the disks: a test or cutover instance launched from them has
 * the source's; the system UUID is the hypervisor's or the cloud's, one
 * per machine (docs/agent.md, "A launched copy").
 */
static int machine_id(char out[65], char *err, size_t errlen)
{
	static const char *const files[] = {
		"/etc/machine-id", "/var/lib/dbus/machine-id",
		"/sys/class/dmi/id/product_uuid",
	};
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char id[128], uuid[64] = "", msg[sizeof(app_id) + sizeof(uuid)];

	if (read_attr("/sys/class/dmi/id/product_uuid", uuid, sizeof(uuid)) ||
	    !hostinfo_real_uuid(uuid))
		uuid[0] = '\0';
	for (size_t i = 0; uuid[i]; i++)
		uuid[i] = (char)tolower((unsigned char)uuid[i]);
	/* Without a UUID, the ID of earlier versions. */
	snprintf(msg, sizeof(msg), "%s%s%s", app_id, uuid[0] ? "\n" : "",
		 uuid);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (read_attr(files[i], id, sizeof(id)) || strlen(id) < 8)
			continue;
		if (!HMAC(EVP_sha256(), id, (int)strlen(id),
			  (const unsigned char *)msg, strlen(msg),
			  mac, &maclen) || maclen != 32)
			break;
		hex(mac, 32, out);
		explicit_bzero(id, sizeof(id));
		return 0;
	}
	explicit_bzero(id, sizeof(id));
	set_err(err, errlen, "no machine identity: /etc/machine-id is missing "
		"or empty (systemd-machine-id-setup creates it)");
	return -1;
}

int hostinfo_machine_id(char out[65], char *err, size_t errlen)
{
	return machine_id(out, err, errlen);
}

static void names(struct host_info *h)
{
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;
	struct utsname u;

	if (gethostname(h->hostname, sizeof(h->hostname) - 1) ||
	    !h->hostname[0]) {
		uname(&u);
		copy(h->hostname, sizeof(h->hostname), u.nodename);
	}
	h->hostname[sizeof(h->hostname) - 1] = '\0';
	h->fqdn[0] = '\0';
	if (strchr(h->hostname, '.'))
		copy(h->fqdn, sizeof(h->fqdn), h->hostname);
	else if (getaddrinfo(h->hostname, NULL, &hints, &ai) == 0 && ai &&
		 ai->ai_canonname && strchr(ai->ai_canonname, '.'))
		copy(h->fqdn, sizeof(h->fqdn), ai->ai_canonname);
	if (ai)
		freeaddrinfo(ai);
}

static void os_string(struct host_info *h)
{
	char *text = slurp("/etc/os-release");
	char name[HOST_TEXT_MAX] = "";
	struct utsname u;

	if (!text)
		text = slurp("/usr/lib/os-release");
	if (!text || hostinfo_parse_os_release(text, name, sizeof(name)))
		copy(name, sizeof(name), "Linux");
	free(text);
	uname(&u);
	snprintf(h->os, sizeof(h->os), "%.100s, %.20s %.64s %.20s", name,
		 u.sysname, u.release, u.machine);
}

static void cpus(struct host_info *h)
{
	char *text = slurp("/proc/cpuinfo");
	long n;

	h->n_cpus = text ? hostinfo_parse_cpuinfo(text, h->cpus,
						  HOST_MAX_CPUS) : 0;
	free(text);
	if (h->n_cpus)
		return;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	h->cpus[0].cores = n > 0 ? (unsigned int)n : 1;
	h->cpus[0].model[0] = '\0';
	h->n_cpus = 1;
}

static struct host_nic *nic_by_name(struct host_info *h, const char *name)
{
	for (unsigned int i = 0; i < h->n_nics; i++)
		if (!strcmp(h->nics[i].name, name))
			return &h->nics[i];
	return NULL;
}

static bool has_device(const char *ifname)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/class/net/%s/device", ifname);
	return stat(path, &st) == 0;
}

/*
 * The network interfaces with a MAC address: physical ones (a device
 * behind them in sysfs) and any other with an address (bridges, bonds).
 * Link-local IPv6 addresses are left out; interfaces sharing a MAC (bond
 * members, VLANs) are reported once, addresses merged.
 */
static void nics(struct host_info *h)
{
	struct ifaddrs *ifa = NULL, *i;
	char *route = slurp("/proc/net/route"), def[64] = "";
	unsigned int keep = 0;

	h->n_nics = 0;
	if (route && hostinfo_parse_route(route, def, sizeof(def)))
		def[0] = '\0';
	free(route);
	if (getifaddrs(&ifa))
		return;
	for (i = ifa; i; i = i->ifa_next) {
		const struct sockaddr_ll *ll = (const void *)i->ifa_addr;
		struct host_nic *n;
		static const unsigned char zero[6];

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_PACKET ||
		    (i->ifa_flags & IFF_LOOPBACK) || ll->sll_halen != 6 ||
		    !memcmp(ll->sll_addr, zero, 6) ||
		    h->n_nics == HOST_MAX_NICS)
			continue;
		n = &h->nics[h->n_nics++];
		memset(n, 0, sizeof(*n));
		copy(n->name, sizeof(n->name), i->ifa_name);
		snprintf(n->mac, sizeof(n->mac),
			 "%02x:%02x:%02x:%02x:%02x:%02x", ll->sll_addr[0],
			 ll->sll_addr[1], ll->sll_addr[2], ll->sll_addr[3],
			 ll->sll_addr[4], ll->sll_addr[5]);
		n->primary = def[0] && !strcmp(def, n->name);
	}
	for (i = ifa; i; i = i->ifa_next) {
		struct host_nic *n;
		const void *a;
		int fam;

		if (!i->ifa_addr)
			continue;
		fam = i->ifa_addr->sa_family;
		if (fam == AF_INET) {
			a = &((const struct sockaddr_in *)(const void *)
			      i->ifa_addr)->sin_addr;
		} else if (fam == AF_INET6) {
			const struct in6_addr *a6 =
				&((const struct sockaddr_in6 *)(const void *)
				  i->ifa_addr)->sin6_addr;

			if (IN6_IS_ADDR_LINKLOCAL(a6))
				continue;
			a = a6;
		} else {
			continue;
		}
		n = nic_by_name(h, i->ifa_name);
		if (!n || n->n_ips == HOST_MAX_IPS)
			continue;
		if (inet_ntop(fam, a, n->ips[n->n_ips], sizeof(n->ips[0])))
			n->n_ips++;
	}
	freeifaddrs(ifa);
	/* Keep physical or addressed ones, one per MAC. */
	for (unsigned int k = 0; k < h->n_nics; k++) {
		struct host_nic *n = &h->nics[k];
		unsigned int j;

		if (!n->n_ips && !has_device(n->name))
			continue;
		for (j = 0; j < keep; j++)
			if (!strcmp(h->nics[j].mac, n->mac))
				break;
		if (j < keep) {
			struct host_nic *m = &h->nics[j];

			for (unsigned int a = 0; a < n->n_ips &&
			     m->n_ips < HOST_MAX_IPS; a++)
				copy(m->ips[m->n_ips++], sizeof(m->ips[0]),
				     n->ips[a]);
			m->primary = m->primary || n->primary;
			continue;
		}
		if (keep != k)
			h->nics[keep] = *n;
		keep++;
	}
	h->n_nics = keep;
}

int hostinfo_collect(struct host_info *h,
		     const char (*devices)[AGENT_PATH_MAX], unsigned int n,
		     char *err, size_t errlen)
{
	struct sysinfo si;

	memset(h, 0, sizeof(*h));
	if (machine_id(h->machine_id, err, errlen))
		return -1;
	names(h);
	os_string(h);
	cpus(h);
	if (sysinfo(&si) == 0)
		h->ram_bytes = (uint64_t)si.totalram * si.mem_unit;
	nics(h);
	return hostinfo_disks(devices, n, h->disks, &h->n_disks, err, errlen);
}
