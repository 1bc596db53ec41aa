// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of agent/hostinfo.c: the parsers of os-release, cpuinfo,
 * mountinfo and the routing table on odd inputs, the names never taken
 * for physical disks, and the facts of this machine (whatever it is:
 * only what must hold everywhere).
 */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "hostinfo.h"

static void test_os_release(void)
{
	char out[HOST_TEXT_MAX];

	CHECK(hostinfo_parse_os_release(
		"NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n"
		"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", out,
		sizeof(out)) == 0);
	CHECK_STR(out, "Debian GNU/Linux 12 (bookworm)");
	/* Escapes in double quotes; single quotes; spaces around. */
	CHECK(hostinfo_parse_os_release("PRETTY_NAME=\"A \\\"quoted\\\" "
					"\\$name\"\n", out, sizeof(out)) == 0);
	CHECK_STR(out, "A \"quoted\" $name");
	CHECK(hostinfo_parse_os_release("  PRETTY_NAME='Alpine Linux v3.19'"
					"  \n", out, sizeof(out)) == 0);
	CHECK_STR(out, "Alpine Linux v3.19");
	/* Without PRETTY_NAME: NAME and VERSION. */
	CHECK(hostinfo_parse_os_release("NAME=CentOS\nVERSION=\"7 (Core)\"",
					out, sizeof(out)) == 0);
	CHECK_STR(out, "CentOS 7 (Core)");
	CHECK(hostinfo_parse_os_release("NAME=Gentoo\n", out, sizeof(out)) ==
	      0);
	CHECK_STR(out, "Gentoo");
	/* An empty PRETTY_NAME does not count; the last one wins. */
	CHECK(hostinfo_parse_os_release("PRETTY_NAME=\"\"\nNAME=X\n", out,
					sizeof(out)) == 0);
	CHECK_STR(out, "X");
	CHECK(hostinfo_parse_os_release("PRETTY_NAME=a\nPRETTY_NAME=b\n", out,
					sizeof(out)) == 0);
	CHECK_STR(out, "b");
	CHECK(hostinfo_parse_os_release("ID=debian\n# NAME=x\n", out,
					sizeof(out)) == -1);
	CHECK(hostinfo_parse_os_release("", out, sizeof(out)) == -1);
	/* Cut to the buffer. */
	CHECK(hostinfo_parse_os_release("PRETTY_NAME=abcdefgh", out, 4) == 0);
	CHECK_STR(out, "abc");
}

static void test_cpuinfo(void)
{
	struct host_cpu c[4];

	/* Two sockets of two processors. */
	CHECK_U64(hostinfo_parse_cpuinfo(
		"processor\t: 0\nmodel name\t: Xeon A\nphysical id\t: 0\n\n"
		"processor\t: 1\nmodel name\t: Xeon A\nphysical id\t: 0\n\n"
		"processor\t: 2\nmodel name\t: Xeon B\nphysical id\t: 1\n\n"
		"processor\t: 3\nmodel name\t: Xeon B\nphysical id\t: 1\n\n",
		c, 4), 2);
	CHECK_U64(c[0].cores, 2);
	CHECK_STR(c[0].model, "Xeon A");
	CHECK_U64(c[1].cores, 2);
	CHECK_STR(c[1].model, "Xeon B");
	/* No physical id (many VMs, ARM), no blank line at the end. */
	CHECK_U64(hostinfo_parse_cpuinfo(
		"processor : 0\nModel : Raspberry Pi\n\nprocessor : 1\n"
		"Model : Raspberry Pi", c, 4), 1);
	CHECK_U64(c[0].cores, 2);
	CHECK_STR(c[0].model, "Raspberry Pi");
	/* Lines outside a processor block (s390's header) are ignored. */
	CHECK_U64(hostinfo_parse_cpuinfo("vendor_id : IBM/S390\n\n", c, 4), 0);
	CHECK_U64(hostinfo_parse_cpuinfo("", c, 4), 0);
	/* More sockets than room: the first ones. */
	CHECK_U64(hostinfo_parse_cpuinfo(
		"processor: 0\nphysical id: 0\n\nprocessor: 1\nphysical id: 1"
		"\n\nprocessor: 2\nphysical id: 2\n", c, 2), 2);
}

static void test_mountinfo(void)
{
	static const char mi[] =
		"21 26 0:20 / /proc rw,relatime - proc proc rw\n"
		"26 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
		"30 26 254:2 / /boot rw,relatime shared:5 master:1 - ext4 "
		"/dev/vda2 rw\n"
		"31 26 0:45 / /data rw - btrfs /dev/sdb rw,space_cache\n"
		"40 26 0:50 / / rw - overlay overlay rw,lowerdir=/a\n";
	unsigned int ma = 0, mi_ = 0;
	char src[64];

	CHECK(hostinfo_parse_mountinfo(mi, "/boot", &ma, &mi_, src,
				       sizeof(src)) == 0);
	CHECK_U64(ma, 254);
	CHECK_U64(mi_, 2);
	CHECK_STR(src, "/dev/vda2");
	CHECK(hostinfo_parse_mountinfo(mi, "/data", &ma, &mi_, src,
				       sizeof(src)) == 0);
	CHECK_U64(ma, 0);
	CHECK_STR(src, "/dev/sdb");
	/* The last mount on a point is the visible one. */
	CHECK(hostinfo_parse_mountinfo(mi, "/", &ma, &mi_, src,
				       sizeof(src)) == 0);
	CHECK_U64(ma, 0);
	CHECK_U64(mi_, 50);
	CHECK_STR(src, "overlay");
	CHECK(hostinfo_parse_mountinfo(mi, "/home", &ma, &mi_, src,
				       sizeof(src)) == -1);
	CHECK(hostinfo_parse_mountinfo("garbage\n\n", "/", &ma, &mi_, src,
				       sizeof(src)) == -1);
}

static void test_virtual_names(void)
{
	static const char *const virt[] = { "loop0", "ram1", "zram0", "dm-3",
					    "md127", "nbd0", "sr0", "fd0" };
	static const char *const phys[] = { "vda", "sda", "nvme0n1", "xvda",
					    "hda", "mmcblk0" };

	for (size_t i = 0; i < sizeof(virt) / sizeof(virt[0]); i++)
		CHECK(hostinfo_virtual_name(virt[i]));
	for (size_t i = 0; i < sizeof(phys) / sizeof(phys[0]); i++)
		CHECK(!hostinfo_virtual_name(phys[i]));
}

static void test_route(void)
{
	char ifn[32];

	CHECK(hostinfo_parse_route(
		"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask"
		"\t\tMTU\tWindow\tIRTT\n"
		"eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
		"eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
		"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
		ifn, sizeof(ifn)) == 0);
	CHECK_STR(ifn, "eth0");
	/* A down default route (flag RTF_UP clear) is no route. */
	CHECK(hostinfo_parse_route(
		"Iface\tDestination\n"
		"eth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n",
		ifn, sizeof(ifn)) == -1);
	CHECK(hostinfo_parse_route("Iface\tDestination\n", ifn,
				   sizeof(ifn)) == -1);
	CHECK(hostinfo_parse_route("", ifn, sizeof(ifn)) == -1);
}

static void test_whole_disk_errors(void)
{
	char out[AGENT_NAME_MAX], err[256];

	CHECK(hostinfo_whole_disk("/dev/null", out, sizeof(out), err,
				  sizeof(err)) == -1);
	CHECK_STR(err, "device /dev/null: not a block device");
	CHECK(hostinfo_whole_disk("/dev/ferry-nonexistent", out, sizeof(out),
				  err, sizeof(err)) == -1);
	CHECK_HAS(err, "device /dev/ferry-nonexistent: No such file");
}

/* Firmware UUIDs that name no machine are not part of the identity. */
static void test_real_uuid(void)
{
	CHECK(hostinfo_real_uuid("4c4c4544-0042-3510-8052-b4c04f4e3232"));
	CHECK(hostinfo_real_uuid("EC2A1B2C-3D4E-5F60-7182-93A4B5C6D7E8"));
	CHECK(!hostinfo_real_uuid("00000000-0000-0000-0000-000000000000"));
	CHECK(!hostinfo_real_uuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"));
	CHECK(!hostinfo_real_uuid("ffffffff-FFFF-ffff-FFFF-ffffffffffff"));
	CHECK(!hostinfo_real_uuid("03000200-0400-0500-0006-000700080009"));
	CHECK(!hostinfo_real_uuid(""));
	CHECK(!hostinfo_real_uuid("4c4c4544-0042-3510-8052"));
	CHECK(!hostinfo_real_uuid("4c4c4544-0042-3510-8052-b4c04f4e3232aa"));
	CHECK(!hostinfo_real_uuid("4c4c4544-0042-3510-8052-b4c04f4e323g"));
}

/* This machine's facts: what holds on any Linux machine. */
static void test_this_machine(void)
{
	static struct host_info h;
	char err[256], mid[128] = "";
	unsigned int cores = 0, boots = 0;
	FILE *f;

	if (hostinfo_collect(&h, NULL, 0, err, sizeof(err))) {
		/* Only a machine without any machine identity may fail. */
		CHECK_HAS(err, "no machine identity");
		return;
	}
	CHECK(h.hostname[0] != '\0');
	CHECK_U64(strlen(h.machine_id), 64);
	CHECK_U64(strspn(h.machine_id, "0123456789abcdef"), 64);
	CHECK(!hostinfo_machine_id(mid, err, sizeof(err)));
	CHECK_STR(mid, h.machine_id);
	mid[0] = '\0';
	f = fopen("/etc/machine-id", "r");
	if (f) {
		if (fgets(mid, sizeof(mid), f))
			mid[strcspn(mid, "\n")] = '\0';
		fclose(f);
		/* Derived, never the ID itself (machine-id(5)). */
		CHECK(!mid[0] || !strstr(h.machine_id, mid));
	}
	CHECK(h.n_cpus >= 1);
	for (unsigned int i = 0; i < h.n_cpus; i++)
		cores += h.cpus[i].cores;
	CHECK_U64(cores, sysconf(_SC_NPROCESSORS_ONLN));
	CHECK(h.ram_bytes > 0);
	CHECK(h.os[0] != '\0');
	for (unsigned int i = 0; i < h.n_nics; i++) {
		CHECK_U64(strlen(h.nics[i].mac), 17);
		for (unsigned int k = 0; k < i; k++)
			CHECK(strcmp(h.nics[i].mac, h.nics[k].mac));
	}
	for (unsigned int i = 0; i < h.n_disks; i++) {
		CHECK(!strncmp(h.disks[i].name, "/dev/", 5));
		CHECK(h.disks[i].bytes > 0);
		boots += h.disks[i].boot;
	}
	CHECK(boots <= 1);
}

int main(void)
{
	RUN(test_os_release);
	RUN(test_cpuinfo);
	RUN(test_mountinfo);
	RUN(test_virtual_names);
	RUN(test_route);
	RUN(test_whole_disk_errors);
	RUN(test_this_machine);
	RUN(test_real_uuid);
	return check_exit();
}
