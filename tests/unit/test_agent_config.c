// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of agent/config.c: keys, aliases, values and their limits,
 * the file format, the secret's file mode, the final check, and the
 * rewrite that removes the installer's secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "wire.h"

static char tmpdir[] = "/tmp/ferry-test-agent-config.XXXXXX";

static struct agent_config cfg;
static char err[AGENT_MSG_MAX];

static int set(const char *k, const char *v)
{
	err[0] = '\0';
	return agent_config_set(&cfg, k, v, "--test", err, sizeof(err));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

static char *read_all(const char *path)
{
	static char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

static void test_defaults(void)
{
	agent_config_defaults(&cfg);
	CHECK_STR(cfg.state_dir, AGENT_STATE_DIR);
	CHECK_STR(cfg.region, "us-east-1");
	CHECK(cfg.codec == -1);
	CHECK(cfg.freeze);
	CHECK_U64(cfg.freeze_max_bytes, 16 << 20);
	CHECK_U64(cfg.freeze_timeout_ms, 2000);
	CHECK_U64(cfg.n_devices, 0);
	CHECK(!cfg.standalone);
	CHECK_STR(cfg.conf_file, "");
}

static void test_keys_and_aliases(void)
{
	agent_config_defaults(&cfg);
	CHECK(set("endpoint", "https://ctl.example:8443") == 0);
	CHECK_STR(cfg.endpoint, "https://ctl.example:8443");
	CHECK(set("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE") == 0);
	CHECK_STR(cfg.access_key_id, "AKIAEXAMPLE");
	CHECK(set("aws-secret-access-key", "s3cr3t") == 0);
	CHECK_STR(cfg.secret_access_key, "s3cr3t");
	CHECK(set("session_token", "tok") == 0);
	CHECK_STR(cfg.session_token, "tok");
	CHECK(set("s3-endpoint", "https://s3.example") == 0);
	CHECK(set("proxy", "http://127.0.0.1:3128") == 0);
	CHECK(set("proxy", "proxy.lan:8080") == 0);
	CHECK_STR(cfg.proxy, "proxy.lan:8080");
	CHECK(set("codec", "zstd") == 0);
	CHECK(cfg.codec == FERRY_CODEC_ZSTD);
	CHECK(set("compression", "none") == 0);
	CHECK(cfg.codec == FERRY_CODEC_RAW);
	CHECK(set("compression", "auto") == 0);
	CHECK(cfg.codec == -1);
	CHECK(set("granularity", "64K") == 0);
	CHECK_U64(cfg.granularity, 65536);
	CHECK(set("queue-depth", "64") == 0);
	CHECK_U64(cfg.queue_depth, 64);
	CHECK(set("read-chunk", "512K") == 0);
	CHECK_U64(cfg.read_chunk, 512 << 10);
	CHECK(set("bandwidth-mbps", "8") == 0);
	CHECK_U64(cfg.bandwidth_bps, 1000000);
	CHECK(set("bandwidth-mbps", "0.5") == 0);
	CHECK_U64(cfg.bandwidth_bps, 62500);
	CHECK(set("freeze", "off") == 0);
	CHECK(!cfg.freeze);
	CHECK(set("standalone", "YES") == 0);
	CHECK(cfg.standalone);
	CHECK(set("freeze-max-bytes", "1M") == 0);
	CHECK_U64(cfg.freeze_max_bytes, 1 << 20);
	CHECK(set("not-converging-seconds", "600") == 0);
	CHECK_U64(cfg.not_converging_s, 600);
	CHECK(set("state-dir", "/srv/ferry") == 0);
	CHECK_STR(cfg.state_dir, "/srv/ferry");
}

static void test_bad_values(void)
{
	agent_config_defaults(&cfg);
	CHECK(set("no-such-key", "1") == -1);
	CHECK_HAS(err, "--test: unknown key 'no-such-key'");
	CHECK(set("queue-depth", "8") == -1);
	CHECK_HAS(err, "queue-depth: 8 is out of range: 16 to 4096");
	CHECK(set("queue-depth", "32x") == -1);
	CHECK_HAS(err, "is not a number");
	CHECK(set("granularity", "3000") == -1);
	CHECK_HAS(err, "not a power of two");
	CHECK(set("read-chunk", "5000") == -1);
	CHECK_HAS(err, "not a multiple of 4096");
	CHECK(set("read-chunk", "4M") == -1);
	CHECK_HAS(err, "out of range");
	CHECK(set("compression", "gzip") == -1);
	CHECK_HAS(err, "not auto, zstd, lz4 or none");
	CHECK(set("bandwidth-mbps", "-1") == -1);
	CHECK(set("bandwidth-mbps", "fast") == -1);
	CHECK(set("endpoint", "http://ctl.example") == -1);
	CHECK_HAS(err, "is not an https:// URL");
	CHECK(set("proxy", "ftp://p:21") == -1);
	CHECK_HAS(err, "not a proxy scheme");
	CHECK(set("proxy", "nohostport") == -1);
	CHECK(set("state-dir", "relative/dir") == -1);
	CHECK_HAS(err, "not an absolute path");
	CHECK(set("freeze", "maybe") == -1);
	CHECK_HAS(err, "not yes or no");
	CHECK(set("region", "us\teast") == -1);
	CHECK_HAS(err, "control characters");
	/* A malformed secret is never echoed. */
	CHECK(set("secret-access-key", "abc\x01TOPSECRET") == -1);
	CHECK(strstr(err, "TOPSECRET") == NULL);
	CHECK_HAS(err, "secret-access-key: malformed value");
	/* Nothing changed by the refused values. */
	CHECK_U64(cfg.queue_depth, 0);
	CHECK_STR(cfg.endpoint, "");
	CHECK_STR(cfg.secret_access_key, "");
}

static void test_lists(void)
{
	agent_config_defaults(&cfg);
	CHECK(set("devices", "vda, /dev/vdb,,/dev/vda") == 0);
	CHECK_U64(cfg.n_devices, 2);
	CHECK_STR(cfg.devices[0], "/dev/vda");
	CHECK_STR(cfg.devices[1], "/dev/vdb");
	/* A later value replaces the list (flags override the file). */
	CHECK(set("devices", "/dev/nvme0n1") == 0);
	CHECK_U64(cfg.n_devices, 1);
	CHECK_STR(cfg.devices[0], "/dev/nvme0n1");
	CHECK(set("devices", "") == 0);
	CHECK_U64(cfg.n_devices, 0);

	CHECK(set("tags", "team=blue,env=test") == 0);
	CHECK_U64(cfg.n_tags, 2);
	CHECK_STR(cfg.tags[0].key, "team");
	CHECK_STR(cfg.tags[1].value, "test");
	CHECK(set("source-server-tags", "team=red empty=") == 0);
	CHECK_U64(cfg.n_tags, 3);
	CHECK_STR(cfg.tags[0].value, "red");
	CHECK_STR(cfg.tags[2].key, "empty");
	CHECK_STR(cfg.tags[2].value, "");
	CHECK(set("tags", "aws:owner=me") == -1);
	CHECK_HAS(err, "may not start with 'aws:'");
	CHECK(set("tags", "novalue") == -1);
	CHECK_HAS(err, "is not KEY=VALUE");
	CHECK(set("tags", "=v") == -1);
}

static void test_file(void)
{
	char path[256], msg[64];

	snprintf(path, sizeof(path), "%s/agent.conf", tmpdir);
	write_file(path,
		   "# ferry-agent\n"
		   "\n"
		   "  endpoint = https://127.0.0.1:8443  \n"
		   "region=eu-west-1\n"
		   "ca-bundle = \"/etc/ferry/ca.pem\"\n"
		   "; another comment\n"
		   "user-provided-id = 'web 1'\n", 0644);
	agent_config_defaults(&cfg);
	CHECK(agent_config_load(&cfg, path, err, sizeof(err)) == 0);
	CHECK_STR(cfg.endpoint, "https://127.0.0.1:8443");
	CHECK_STR(cfg.region, "eu-west-1");
	CHECK_STR(cfg.ca_bundle, "/etc/ferry/ca.pem");
	CHECK_STR(cfg.user_provided_id, "web 1");
	CHECK_STR(cfg.conf_file, path);

	write_file(path, "endpoint = https://x\nthis line has no equals\n",
		   0600);
	agent_config_defaults(&cfg);
	CHECK(agent_config_load(&cfg, path, err, sizeof(err)) == -1);
	snprintf(msg, sizeof(msg), "agent.conf:2: not a 'key = value'");
	CHECK_HAS(err, msg);
	CHECK_STR(cfg.conf_file, "");

	write_file(path, "endpoint = https://x\nqueue-depth = 1\n", 0600);
	CHECK(agent_config_load(&cfg, path, err, sizeof(err)) == -1);
	CHECK_HAS(err, "agent.conf:2: queue-depth:");

	/* The installer's secret in a file others can read: refused. */
	write_file(path, "access-key-id = AKIA1\nsecret-access-key = s1\n",
		   0644);
	agent_config_defaults(&cfg);
	CHECK(agent_config_load(&cfg, path, err, sizeof(err)) == -1);
	CHECK_HAS(err, "readable by group or others (mode 644)");
	CHECK_HAS(err, "chmod 600");
	CHECK(strstr(err, "s1\n") == NULL);
	CHECK(chmod(path, 0600) == 0);
	CHECK(agent_config_load(&cfg, path, err, sizeof(err)) == 0);
	CHECK_STR(cfg.secret_access_key, "s1");

	CHECK(agent_config_load(&cfg, "/nonexistent/agent.conf", err,
				sizeof(err)) == -1);
	CHECK_HAS(err, "cannot read the configuration /nonexistent/agent.conf");
}

static void test_check(void)
{
	agent_config_defaults(&cfg);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "no endpoint");
	CHECK(set("endpoint", "https://127.0.0.1:1") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == 0);
	CHECK_STR(cfg.proxy, "");

	setenv("https_proxy", "http://127.0.0.1:3128", 1);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == 0);
	CHECK_STR(cfg.proxy, "http://127.0.0.1:3128");
	/* A proxy setting wins over the environment. */
	CHECK(set("proxy", "http://10.0.0.1:8080") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == 0);
	CHECK_STR(cfg.proxy, "http://10.0.0.1:8080");
	unsetenv("https_proxy");

	CHECK(set("secret-access-key", "s") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "access-key-id is not");
	CHECK(set("access-key-id", "AKIA") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == 0);

	CHECK(set("ca-bundle", "/nonexistent/ca.pem") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "ca-bundle /nonexistent/ca.pem");
	CHECK(set("ca-bundle", "") == 0);

	CHECK(set("devices", "/dev/ferry-no-such-disk") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "/dev/ferry-no-such-disk");
	CHECK(set("devices", "/dev/null") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "/dev/null: not a block device");
	CHECK(set("devices", "") == 0);

	agent_config_defaults(&cfg);
	CHECK(set("standalone", "yes") == 0);
	CHECK(set("replicator", "127.0.0.1:1500") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "standalone mode needs");
}

/* replicator-id: an ID as ferry-control issues them, standalone only
 * (with ferry-control, the assignment names the replicator). */
static void test_replicator_id(void)
{
	agent_config_defaults(&cfg);
	CHECK_STR(cfg.replicator_id, "");
	CHECK(set("replicator-id", "stage-1") == 0);
	CHECK_STR(cfg.replicator_id, "stage-1");
	CHECK(set("replicator_id", "..") == -1);
	CHECK_HAS(err, "replicator-id: '..' is not an ID");
	CHECK(set("replicator-id", "a/b") == -1);
	/* 65 characters: one more than a certificate ID may have. */
	CHECK(set("replicator-id", "r1234567890123456789012345678901234567"
		  "890123456789012345678901234") == -1);
	CHECK_STR(cfg.replicator_id, "stage-1");
	CHECK(set("endpoint", "https://127.0.0.1:1") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "replicator-id applies to standalone mode only");
	CHECK(set("replicator-id", "") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == 0);

	agent_config_defaults(&cfg);
	CHECK(set("standalone", "yes") == 0);
	CHECK(set("replicator", "127.0.0.1:1500") == 0);
	CHECK(set("replicator-id", "stage-1") == 0);
	CHECK(set("source-server-id", "s-0123456789abcdef0") == 0);
	CHECK(set("cert", "/c.pem") == 0);
	CHECK(set("key", "/k.pem") == 0);
	CHECK(set("ca", "/ca.pem") == 0);
	CHECK(agent_config_check(&cfg, err, sizeof(err)) == 0);
}

static void test_forget_secret(void)
{
	static const char before[] =
		"# written by install.sh\n"
		"endpoint = https://127.0.0.1:8443\n"
		"access-key-id = AKIAINSTALLER\n"
		"  secret-access-key = VERYSECRET\n"
		"aws_session_token = \"SESSIONSECRET\"\n"
		"devices = /dev/vda\n"
		"# secret-access-key in a comment stays\n";
	static const char after[] =
		"# written by install.sh\n"
		"endpoint = https://127.0.0.1:8443\n"
		"access-key-id = AKIAINSTALLER\n"
		"devices = /dev/vda\n"
		"# secret-access-key in a comment stays\n";
	char path[256], tmp[300];
	struct stat st1, st2;

	snprintf(path, sizeof(path), "%s/forget.conf", tmpdir);
	write_file(path, before, 0640);
	CHECK(agent_config_forget_secret(path, err, sizeof(err)) == 0);
	CHECK_STR(read_all(path), after);
	CHECK(stat(path, &st1) == 0);
	CHECK_U64(st1.st_mode & 07777, 0640);
	snprintf(tmp, sizeof(tmp), "%s.ferry-tmp", path);
	CHECK(access(tmp, F_OK) == -1 && errno == ENOENT);

	/* Nothing left to forget: the file is not rewritten. */
	CHECK(agent_config_forget_secret(path, err, sizeof(err)) == 0);
	CHECK(stat(path, &st2) == 0);
	CHECK_U64(st2.st_ino, st1.st_ino);
	CHECK_STR(read_all(path), after);
	CHECK(access(tmp, F_OK) == -1 && errno == ENOENT);

	CHECK(agent_config_forget_secret("/nonexistent/x.conf", err,
					 sizeof(err)) == -1);
	CHECK_HAS(err, "cannot read /nonexistent/x.conf");
}

int main(void)
{
	char cmd[128];
	int rc;

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_defaults);
	RUN(test_keys_and_aliases);
	RUN(test_bad_values);
	RUN(test_lists);
	RUN(test_file);
	RUN(test_check);
	RUN(test_replicator_id);
	RUN(test_forget_secret);
	rc = check_exit();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd))
		rc = 1;
	return rc;
}
