#!/bin/bash
# deps.sh GROUP... — install the Debian packages a part of ferry needs.
#
#   build   compile the userspace programs and the module (gcc, make,
#           pkg-config, libc6-dev, liburing-dev, and the libraries of
#           ferry-control: libmicrohttpd and its GnuTLS, jansson, SQLite,
#           OpenSSL, curl;
#           of the wire codec: zstd, lz4, xxHash)
#   control ferry-control's tests (strace too: t_durable watches the
#           database's flushes): the AWS command line and boto3 as real
#           clients, curl, clang for the fuzz target, wrk
#   vm      the QEMU test harness: qemu, busybox-static, debootstrap, cpio,
#           compressors, e2fsprogs, dmsetup, mdadm, fio, util-linux, kmod,
#           socat (QMP from host hooks)
#   agent   the agent's tests: tinyproxy (a real proxy on loopback), fdisk
#           (partitioned loop devices), util-linux (losetup, lsblk,
#           findmnt), iproute2 (ip, ss), openssl (certificate checks),
#           and the AWS command line and boto3 that drive ferry-control
#   dkms    dkms, for the packaged module
#   pkg     make deb / make rpm: debhelper, dh-dkms, dpkg-dev, fakeroot,
#           lintian, rpm (rpmbuild), rpmlint, and man-db and groff-base
#           (the manual pages' checks)
#
# Idempotent and silent when everything is present: installed packages are
# checked with dpkg-query, and apt-get update runs only when something has
# to be installed. Needs root only in that case.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/vm/lib.sh"

group_packages() {
	case $1 in
	build) echo gcc make pkg-config libc6-dev liburing-dev \
		libmicrohttpd-dev libgnutls28-dev libjansson-dev libsqlite3-dev \
		libssl-dev libcurl4-openssl-dev libzstd-dev liblz4-dev libxxhash-dev ;;
	control) echo awscli python3-boto3 curl clang libclang-rt-dev openssl strace \
		sqlite3 ;;
	vm) echo qemu-system-x86 busybox-static debootstrap cpio gzip xz-utils zstd \
		e2fsprogs dmsetup mdadm fio util-linux kmod socat \
		qemu-utils xfsprogs ;;
	agent) echo tinyproxy fdisk util-linux iproute2 openssl awscli \
		python3-boto3 ;;
	dkms) echo dkms ;;
	pkg) echo debhelper dh-dkms dpkg-dev fakeroot lintian rpm rpmlint \
		man-db groff-base ;;
	*) return 1 ;;
	esac
}

main() {
	local g pkgs=''
	[ $# -gt 0 ] || {
		echo "usage: $0 GROUP...   (groups: build control vm agent dkms pkg)" >&2
		exit 2
	}
	for g in "$@"; do
		pkgs="$pkgs $(group_packages "$g")" ||
			die "deps.sh: unknown group '$g': use build, control, vm, agent, dkms or pkg"
	done
	# shellcheck disable=SC2086 # a list of package names
	ensure_pkgs $pkgs
}

# One compound command, parsed whole before it runs: bash reads a script
# as it goes, and an edit of this file during a run must not be read.
{
	main "$@"
	exit
}
