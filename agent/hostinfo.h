/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hostinfo.h - the source server's facts for RegisterAgentForMgn
 * (hostname, FQDN, machine identity, CPUs, RAM, OS, network interfaces,
 * disks) and the choice of the disks to replicate.
 *
 * Disk discovery: every physical disk (one with a device behind it in
 * sysfs: virtio, SCSI/SATA, NVMe, Xen, ...; not loop, ram, zram, nbd,
 * device-mapper or md, not removable, not empty) and the disks the root
 * filesystem lives on, always.  A `devices` list replaces that: exactly the
 * disks named, where a partition means its whole disk and any block
 * device (loop, dm, md) may be named.  Disks are named by their device
 * node, "/dev/vda", as ferry-control and the replicator know them.
 *
 * The parsers of /proc and /etc texts are separate functions so that the
 * unit tests can feed them odd inputs.
 */
#ifndef FERRY_AGENT_HOSTINFO_H
#define FERRY_AGENT_HOSTINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "config.h"

#define HOST_MAX_CPUS 256	/* docs/api.md limits */
#define HOST_MAX_NICS 32
#define HOST_MAX_IPS 64
#define HOST_TEXT_MAX 257	/* 256 characters and the NUL */

struct host_cpu {
	unsigned int cores;		/* logical processors of the socket */
	char model[HOST_TEXT_MAX];
};

struct host_nic {
	char name[32];
	char mac[18];			/* aa:bb:cc:dd:ee:ff */
	bool primary;			/* carries the default route */
	unsigned int n_ips;
	char ips[HOST_MAX_IPS][46];	/* INET6_ADDRSTRLEN */
};

struct host_disk {
	char name[AGENT_NAME_MAX];	/* /dev/vda */
	uint64_t bytes;
	bool boot;			/* holds /boot, or / without one */
};

struct host_info {
	char hostname[HOST_TEXT_MAX];
	char fqdn[HOST_TEXT_MAX];	/* "" when unknown */
	char machine_id[65];		/* hostinfo_machine_id() */
	uint64_t ram_bytes;
	char os[HOST_TEXT_MAX];
	unsigned int n_cpus;
	struct host_cpu cpus[HOST_MAX_CPUS];
	unsigned int n_nics;
	struct host_nic nics[HOST_MAX_NICS];
	unsigned int n_disks;
	struct host_disk disks[AGENT_MAX_DISKS];
};

/*
 * Everything above, disks from DEVICES[N] (N 0: discovery).  0, or -1 with
 * a reason in ERR (no machine ID, a named device that is missing, more
 * than AGENT_MAX_DISKS disks).
 */
int hostinfo_collect(struct host_info *h, const char (*devices)[AGENT_PATH_MAX],
		     unsigned int n, char *err, size_t errlen);

/*
 * This machine's identity as hostinfo_collect() puts it in machine_id:
 * derived from /etc/machine-id and the firmware's system UUID, so that a
 * machine booted from a copy of the disks has another.  0 or -1 with ERR.
 */
int hostinfo_machine_id(char out[65], char *err, size_t errlen);

/* Only the disks, as hostinfo_collect() chooses them.  0 or -1 with ERR. */
int hostinfo_disks(const char (*devices)[AGENT_PATH_MAX], unsigned int n,
		   struct host_disk *out, unsigned int *n_out, char *err,
		   size_t errlen);

/*
 * The whole disk of block device DEV ("/dev/vda1" -> "/dev/vda"; a whole
 * disk, a loop or dm device is itself) into OUT.  0, or -1 with ERR
 * ("/dev/x: not a block device").
 */
int hostinfo_whole_disk(const char *dev, char *out, size_t outlen, char *err,
			size_t errlen);

/* ---- parsers (unit-tested) ------------------------------------------- */

/* PRETTY_NAME of an os-release(5) text (else NAME VERSION), unquoted,
 * into OUT; 0, or -1 if it names neither. */
int hostinfo_parse_os_release(const char *text, char *out, size_t outlen);

/* /proc/cpuinfo: one entry per "physical id" (one in all without), with
 * its processors counted.  Returns the number of entries. */
unsigned int hostinfo_parse_cpuinfo(const char *text, struct host_cpu *out,
				    unsigned int max);

/*
 * /proc/self/mountinfo: the last mount on MOUNT_POINT: its device
 * number and its source ("/dev/vda1", or "none").  0, or -1 if
 * MOUNT_POINT is not mounted.
 */
int hostinfo_parse_mountinfo(const char *text, const char *mount_point,
			     unsigned int *major, unsigned int *minor,
			     char *source, size_t sourcelen);

/* Names in /sys/block that are never physical disks (loop0, dm-1, md0,
 * zram0, ram0, nbd0, sr0, fd0). */
bool hostinfo_virtual_name(const char *name);

/* Whether UUID (/sys/class/dmi/id/product_uuid) names one machine: not
 * a placeholder firmware writes when none was set (all zeros, all ones,
 * 03000200-0400-0500-0006-000700080009). */
bool hostinfo_real_uuid(const char *uuid);

/* Interface of the default IPv4 route in a /proc/net/route text (lowest
 * metric) into OUT; 0, or -1 if there is none. */
int hostinfo_parse_route(const char *text, char *out, size_t outlen);

#endif
