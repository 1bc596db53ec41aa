// SPDX-License-Identifier: GPL-2.0
/*
 * test_volume: the replicator's staging volumes (replicator/volume.c) and
 * its configuration parser (replicator/config.c), on a temporary
 * directory.
 *
 * Linked with -Wl,--wrap=fsync: the fsync()s of one descriptor are
 * counted, and the next one can be made to fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "../../replicator/config.h"
#include "../../replicator/volume.h"
#include "wire.h"

static char dir[] = "/tmp/test_volume.XXXXXX";
static int fsync_fd = -1;	/* whose fsync()s are counted; -1: none */
static int fsyncs;
static bool fail_fsync;		/* the next fsync() of any file fails */

int __real_fsync(int fd);
int __wrap_fsync(int fd);

int __wrap_fsync(int fd)
{
	if (fail_fsync) {
		fail_fsync = false;
		errno = EIO;
		return -1;
	}
	if (fd == fsync_fd)
		fsyncs++;
	return __real_fsync(fd);
}

static char *path_of(const char *rel)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s/%s", dir, rel);
	return buf;
}

static void test_file_name(void)
{
	char out[64];

	CHECK(volume_file_name("/dev/vda", out, sizeof(out)) == 0);
	CHECK_STR(out, "dev_vda");
	CHECK(volume_file_name("/dev/mapper/vg-root", out, sizeof(out)) == 0);
	CHECK_STR(out, "dev_mapper_vg-root");
	CHECK(volume_file_name("C:\\disk 1", out, sizeof(out)) == 0);
	CHECK_STR(out, "C%3A%5Cdisk%201");
	/* No name may climb out of the source's directory or hide. */
	CHECK(volume_file_name("/..", out, sizeof(out)) == 0);
	CHECK_STR(out, "%2E.");
	CHECK(volume_file_name("", out, sizeof(out)) == -1);
	CHECK(volume_file_name("///", out, sizeof(out)) == -1);
	CHECK(volume_file_name("/dev/vda", out, 7) == -1);
	CHECK(volume_file_name("/dev/vda", out, 8) == 0);
}

static void test_create_write_reopen(void)
{
	struct volume v;
	char err[512];
	uint8_t buf[8192], back[8192], zero_id[16] = { 0 }, id[16];
	struct stat st;
	int fd;

	CHECK(volume_open(&v, dir, "s-1", "/dev/vda", 1 << 20, err,
			  sizeof(err)) == 0);
	CHECK(v.created);
	CHECK_U64(v.size, 1 << 20);
	CHECK_U64(v.sync_mark, 0);
	CHECK_U64(v.last_cp, 0);
	CHECK(memcmp(v.id, zero_id, 16) != 0);
	memcpy(id, v.id, 16);
	CHECK(stat(path_of("s-1/dev_vda.img"), &st) == 0);
	CHECK_U64(st.st_size, 1 << 20);
	CHECK_U64(st.st_blocks, 0);	/* sparse */
	CHECK(stat(path_of("s-1/dev_vda.meta"), &st) == 0);
	CHECK_U64(st.st_mode & 0777, 0600);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	CHECK(volume_write(&v, 4096, buf, sizeof(buf), err, sizeof(err)) == 0);
	CHECK(v.dirty);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	CHECK(!v.dirty);
	v.sync_mark = 12288;
	v.last_cp = 7;
	v.last_cp_time_ms = 1700000000000ull;
	CHECK(volume_store_meta(&v, err, sizeof(err)) == 0);
	CHECK(access(path_of("s-1/dev_vda.meta.tmp"), F_OK) == -1);
	volume_close(&v);
	volume_close(&v);	/* twice is harmless */

	CHECK(volume_open(&v, dir, "s-1", "/dev/vda", 1 << 20, err,
			  sizeof(err)) == 0);
	CHECK(!v.created);
	CHECK(memcmp(v.id, id, 16) == 0);
	CHECK_U64(v.sync_mark, 12288);
	CHECK_U64(v.last_cp, 7);
	CHECK_U64(v.last_cp_time_ms, 1700000000000ull);
	volume_close(&v);

	fd = open(path_of("s-1/dev_vda.img"), O_RDONLY);
	CHECK(fd >= 0);
	CHECK(pread(fd, back, sizeof(back), 4096) == (ssize_t)sizeof(back));
	CHECK(memcmp(back, buf, sizeof(buf)) == 0);
	close(fd);

	/* The volume follows the disk's size, both ways. */
	CHECK(volume_open(&v, dir, "s-1", "/dev/vda", 2 << 20, err,
			  sizeof(err)) == 0);
	CHECK_U64(v.size, 2 << 20);
	CHECK(memcmp(v.id, id, 16) == 0);
	CHECK_U64(v.sync_mark, 12288);
	volume_close(&v);
	CHECK(stat(path_of("s-1/dev_vda.img"), &st) == 0);
	CHECK_U64(st.st_size, 2 << 20);
	CHECK(volume_open(&v, dir, "s-1", "/dev/vda", 8192, err,
			  sizeof(err)) == 0);
	CHECK_U64(v.size, 8192);
	CHECK_U64(v.sync_mark, 8192);	/* lowered to the size */
	volume_close(&v);
	CHECK(volume_open(&v, dir, "s-1", "/dev/vda", 8192, err,
			  sizeof(err)) == 0);
	CHECK_U64(v.size, 8192);
	CHECK_U64(v.sync_mark, 8192);
	CHECK(memcmp(v.id, id, 16) == 0);
	volume_close(&v);
}

static void test_zero_and_hash(void)
{
	static uint8_t data[3 << 16], scratch[1 << 16];
	uint8_t hashes[4 * FERRY_WIRE_HASH_LEN], want[FERRY_WIRE_HASH_LEN];
	struct volume v;
	char err[512];
	uint32_t count = 0;
	struct stat st;
	blkcnt_t before;

	/* A size that leaves a short last chunk: 2.5 chunks of 64 KiB. */
	CHECK(volume_open(&v, dir, "s-2", "/dev/sdb", 5 << 15, err,
			  sizeof(err)) == 0);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ (i >> 9));
	CHECK(volume_write(&v, 0, data, 5 << 15, err, sizeof(err)) == 0);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	CHECK(volume_hash(&v, 0, 5 << 15, 1 << 16, scratch, hashes, &count,
			  err, sizeof(err)) == 0);
	CHECK_U64(count, 3);
	ferry_hash128(data, 1 << 16, want);
	CHECK(memcmp(hashes, want, 16) == 0);
	ferry_hash128(data + (1 << 16), 1 << 16, want);
	CHECK(memcmp(hashes + 16, want, 16) == 0);
	ferry_hash128(data + (2 << 16), 1 << 15, want);	/* short */
	CHECK(memcmp(hashes + 32, want, 16) == 0);

	CHECK(fstat(v.fd, &st) == 0);
	before = st.st_blocks;
	CHECK(volume_zero(&v, 1 << 16, 1 << 16, err, sizeof(err)) == 0);
	CHECK(v.punched);
	CHECK(volume_sync(&v, err, sizeof(err)) == 0);
	CHECK(!v.punched);
	CHECK(fstat(v.fd, &st) == 0);
	CHECK(st.st_blocks < before);
	CHECK_U64(st.st_size, 5 << 15);
	memset(data + (1 << 16), 0, 1 << 16);
	CHECK(volume_hash(&v, 1 << 16, 1 << 16, 1 << 16, scratch, hashes,
			  &count, err, sizeof(err)) == 0);
	CHECK_U64(count, 1);
	ferry_hash128(data + (1 << 16), 1 << 16, want);
	CHECK(memcmp(hashes, want, 16) == 0);
	volume_close(&v);
}

static void write_file(const char *rel, const char *text)
{
	int fd = open(path_of(rel), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

/*
 * A volume opened again is flushed first: an earlier connection may have
 * been cut after writing and before its commit, and this one hashes and
 * acknowledges on top of that (its own commits flush only what it
 * writes).  A flush that fails refuses the volume, naming it.
 */
static void test_reopen_flushes(void)
{
	struct volume v;
	char err[512];
	uint8_t b[4096];
	int fd;

	memset(b, 0x6b, sizeof(b));
	CHECK(volume_open(&v, dir, "s-flush", "/dev/vda", 1 << 20, err,
			  sizeof(err)) == 0);
	CHECK(volume_write(&v, 8192, b, sizeof(b), err, sizeof(err)) == 0);
	volume_close(&v);	/* cut: no volume_sync() */

	/* The descriptor volume_open() will get: the lowest free one. */
	fd = dup(0);
	CHECK(fd >= 0);
	close(fd);
	fsync_fd = fd;
	fsyncs = 0;
	CHECK(volume_open(&v, dir, "s-flush", "/dev/vda", 1 << 20, err,
			  sizeof(err)) == 0);
	CHECK(v.fd == fd);
	CHECK(!v.created);
	CHECK(fsyncs == 1);
	fsync_fd = -1;
	volume_close(&v);

	fail_fsync = true;
	CHECK(volume_open(&v, dir, "s-flush", "/dev/vda", 1 << 20, err,
			  sizeof(err)) == FERRY_E_IO);
	CHECK_HAS(err, "cannot flush");
	CHECK_HAS(err, "s-flush/dev_vda.img");
	CHECK(v.fd == -1);
	fail_fsync = false;
}

static void test_refusals(void)
{
	struct volume v;
	char err[512];
	struct stat st;
	uint8_t b[512];
	int fd;

	/* Two names, one file: the second is refused, by name. */
	CHECK(volume_open(&v, dir, "s-3", "/dev/a_b", 1 << 20, err,
			  sizeof(err)) == 0);
	volume_close(&v);
	CHECK_U64(volume_open(&v, dir, "s-3", "/dev/a/b", 1 << 20,
			      err, sizeof(err)), FERRY_E_IO);
	CHECK_HAS(err, "belongs to disk /dev/a_b");

	CHECK_U64(volume_open(&v, dir, "../x", "/dev/vda", 1 << 20,
			      err, sizeof(err)), FERRY_E_UNKNOWN_DISK);
	/* Names of directories, not of source servers. */
	CHECK_U64(volume_open(&v, dir, "..", "/dev/vda", 1 << 20,
			      err, sizeof(err)), FERRY_E_UNKNOWN_DISK);
	CHECK_U64(volume_open(&v, dir, ".", "/dev/vda", 1 << 20,
			      err, sizeof(err)), FERRY_E_UNKNOWN_DISK);
	CHECK_U64(volume_open(&v, dir, ".hidden", "/dev/vda", 1 << 20,
			      err, sizeof(err)), FERRY_E_UNKNOWN_DISK);
	CHECK_U64(volume_open(&v, dir, "s-3", "/dev/c", 1000, err,
			      sizeof(err)), FERRY_E_RANGE);

	/* Damaged metadata is an error, never a silent fresh volume. */
	write_file("s-3/dev_a_b.meta", "format = 1\nsize = what\n");
	CHECK_U64(volume_open(&v, dir, "s-3", "/dev/a_b", 1 << 20,
			      err, sizeof(err)), FERRY_E_IO);
	CHECK_HAS(err, "damaged");

	/* An image cut shorter than its metadata says. */
	CHECK(volume_open(&v, dir, "s-3", "/dev/t", 1 << 20, err,
			  sizeof(err)) == 0);
	volume_close(&v);
	CHECK(truncate(path_of("s-3/dev_t.img"), 4096) == 0);
	CHECK_U64(volume_open(&v, dir, "s-3", "/dev/t", 1 << 20, err,
			      sizeof(err)), FERRY_E_IO);
	CHECK_HAS(err, "truncated");

	/* An image without metadata (creation cut short) starts afresh. */
	fd = open(path_of("s-3/dev_n.img"), O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	memset(b, 0xAB, sizeof(b));
	CHECK(pwrite(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b));
	close(fd);
	CHECK(volume_open(&v, dir, "s-3", "/dev/n", 1 << 20, err,
			  sizeof(err)) == 0);
	CHECK(v.created);
	CHECK(pread(v.fd, b, sizeof(b), 0) == (ssize_t)sizeof(b));
	CHECK(b[0] == 0 && b[511] == 0);
	CHECK(fstat(v.fd, &st) == 0);
	CHECK_U64(st.st_size, 1 << 20);
	volume_close(&v);
}

static void test_config(void)
{
	struct rep_config c;
	const struct rep_allow *a;
	char err[512], host[64], port[16];
	int known;

	rep_config_init(&c);
	CHECK_STR(c.listen, "0.0.0.0:1500");
	CHECK_STR(c.data_dir, "/var/lib/ferry-replicator");
	CHECK(rep_config_check(&c, err, sizeof(err)) == -1);
	CHECK_HAS(err, "--cert");
	write_file("r.conf",
		   "# comment\n"
		   "listen = 127.0.0.1:0   # trailing comment\n"
		   "cert = /c.pem\nkey = /k.pem\nca = /ca.pem\n"
		   "allow = s-1 /dev/vda 10G\n"
		   "allow = s-1 /dev/vdb 1048576\n"
		   "allow = s-2 *\n");
	CHECK(rep_config_load(&c, path_of("r.conf"), err, sizeof(err)) == 0);
	CHECK(rep_config_check(&c, err, sizeof(err)) == 0);
	CHECK_STR(c.listen, "127.0.0.1:0");
	CHECK_U64(c.n_allow, 3);
	a = rep_config_find(&c, "s-1", "/dev/vda", &known);
	CHECK(a && a->size == 10ull << 30);
	a = rep_config_find(&c, "s-1", "/dev/vdc", &known);
	CHECK(!a && known);
	a = rep_config_find(&c, "s-3", "/dev/vda", &known);
	CHECK(!a && !known);
	a = rep_config_find(&c, "s-2", "/dev/anything", &known);
	CHECK(a && a->size == 0 && a->disk[0] == '\0');

	CHECK(rep_config_set(&c, "allow", "s-1 /dev/vda 1G", err,
			     sizeof(err)) == -1);
	CHECK_HAS(err, "twice");
	CHECK(rep_config_set(&c, "allow", "s-1 /dev/x 1000", err,
			     sizeof(err)) == -1);
	CHECK_HAS(err, "multiple of 512");
	CHECK(rep_config_set(&c, "allow", "bad/id *", err, sizeof(err)) == -1);
	CHECK(rep_config_set(&c, "allow", "s-1 /dev/x", err, sizeof(err)) ==
	      -1);
	CHECK(rep_config_set(&c, "allow", "s-1 * 5G", err, sizeof(err)) == -1);
	CHECK(rep_config_set(&c, "idle-timeout", "0", err, sizeof(err)) == -1);
	CHECK_U64(c.cert_renew_days, 30);
	CHECK(rep_config_set(&c, "cert_renew_days", "3650", err,
			     sizeof(err)) == 0);
	CHECK_U64(c.cert_renew_days, 3650);
	CHECK(rep_config_set(&c, "cert-renew-days", "0", err, sizeof(err)) ==
	      -1);
	CHECK(rep_config_set(&c, "cert-renew-days", "3651", err,
			     sizeof(err)) == -1);
	CHECK(rep_config_set(&c, "listen-port", "1", err, sizeof(err)) == -1);
	CHECK_HAS(err, "unknown setting");
	/* A secret in a file others can read: refused, and how to fix. */
	write_file("key.conf", "access-key-id = AKIAEXAMPLE\n"
		   "secret-access_key = s3cr3t\n");
	CHECK(chmod(path_of("key.conf"), 0644) == 0);
	CHECK(rep_config_load(&c, path_of("key.conf"), err, sizeof(err)) ==
	      -1);
	CHECK_HAS(err, "chmod 600");
	CHECK(chmod(path_of("key.conf"), 0600) == 0);
	CHECK(rep_config_load(&c, path_of("key.conf"), err, sizeof(err)) ==
	      0);
	write_file("bad.conf", "cert = /c.pem\nno equals sign here\n");
	CHECK(rep_config_load(&c, path_of("bad.conf"), err, sizeof(err)) ==
	      -1);
	CHECK_HAS(err, "bad.conf:2:");
	rep_config_free(&c);

	CHECK(rep_split_hostport("[::1]:1500", host, sizeof(host), port,
				 sizeof(port), err, sizeof(err)) == 0);
	CHECK_STR(host, "::1");
	CHECK_STR(port, "1500");
	CHECK(rep_split_hostport("::1:1500", host, sizeof(host), port,
				 sizeof(port), err, sizeof(err)) == -1);
	CHECK(rep_split_hostport("host:99999", host, sizeof(host), port,
				 sizeof(port), err, sizeof(err)) == -1);
	CHECK(rep_split_hostport("host:", host, sizeof(host), port,
				 sizeof(port), err, sizeof(err)) == -1);
}

/* pit_policy: INTERVAL:RETENTION rules (replicator/snap_policy.c). */
static void test_pit_policy(void)
{
	struct snap_policy p;
	struct rep_config c;
	char err[256];

	rep_config_init(&c);
	CHECK(c.pit.n == 3);
	CHECK(c.pit.rule[0].interval_ms == 600000);
	CHECK(c.pit.rule[2].retention_ms == 7ull * 86400000);
	CHECK(rep_config_set(&c, "pit_policy", "1s:3s,2h:1w", err,
			     sizeof(err)) == 0);
	CHECK(c.pit.n == 2 && c.pit.rule[0].interval_ms == 1000 &&
	      c.pit.rule[0].retention_ms == 3000 &&
	      c.pit.rule[1].retention_ms == 604800000ull);
	/* Bounded: every snapshot kept is read through all later ones. */
	CHECK(snap_policy_parse(&p, "1s:1h", err, sizeof(err)) == 0);
	CHECK_U64(snap_policy_kept(&p), 3601);
	CHECK(snap_policy_parse(&p, "1m:1w", err, sizeof(err)) == -1);
	CHECK_HAS(err, "keeps up to 10081 snapshots, more than 4000");
	CHECK(rep_config_set(&c, "pit_policy", "10m:1h, 1m:1w", err,
			     sizeof(err)) == -1);
	CHECK(c.pit.n == 2);	/* unchanged */
	rep_config_free(&c);
	CHECK(snap_policy_parse(&p, "1h:10m", err, sizeof(err)) == -1);
	CHECK_HAS(err, "retention >= interval");
	CHECK(snap_policy_parse(&p, "10m", err, sizeof(err)) == -1);
	CHECK(snap_policy_parse(&p, "0s:1h", err, sizeof(err)) == -1);
	CHECK(snap_policy_parse(&p, "10x:1h", err, sizeof(err)) == -1);
	CHECK(snap_policy_parse(&p, " , ", err, sizeof(err)) == -1);
	CHECK_HAS(err, "no rule");
}

int main(void)
{
	char cmd[600];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_file_name);
	RUN(test_create_write_reopen);
	RUN(test_zero_and_hash);
	RUN(test_reopen_flushes);
	RUN(test_refusals);
	RUN(test_config);
	RUN(test_pit_policy);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
	return check_exit();
}
