#!/bin/bash
# debian-image.sh SUITE — make sure a bootable Debian root disk of SUITE is
# in the cache, then print shell-assignable lines:
#
#   IMAGE=/var/cache/ferry/images/bookworm/<kernel>/root.img   (raw ext4)
#   VMLINUZ=.../vmlinuz   INITRD=.../initrd.img   KVER=6.1.0-...-cloud-amd64
#   SSHKEY=/var/cache/ferry/images/ssh/id_ed25519  (root's key in the guest)
#
# Usage: eval "$(scripts/vm/debian-image.sh bookworm)"
#
# The busybox guests of the module's tests cannot show what an
# administrator meets: systemd, apt/dpkg, DKMS building against the
# installed headers.  This image is a real server: debootstrap of SUITE
# with systemd, openssh-server, the kernel of the harness (scripts/vm/
# kernel.sh, same package and version) and its headers, DKMS and the
# compiler, plus the shared libraries ferry's packages depend on, so that
# installing ferry inside needs no package mirror.  Guests boot a qcow2
# overlay on it (scripts/vm/debian-vm.sh) and never change it.
#
# Built once per kernel version (about 5 minutes), under a lock.
# shellcheck disable=SC2317 # functions run through with_lock look unreachable
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || {
	echo "usage: $0 SUITE   (e.g. bookworm)" >&2
	exit 2
}
SUITE=$1

# What a source server of ours has besides a minimal system: the kernel's
# build needs (DKMS, headers), the installer's tools (curl, ca-certificates,
# systemd), test tools (fio, e2fsprogs), and the agent's libraries.
PKGS="systemd systemd-sysv udev dbus openssh-server iproute2 kmod procps
ca-certificates curl dkms make gcc e2fsprogs fio
liburing2 libjansson4 libcurl4 libssl3 libzstd1 liblz4-1 libxxhash0"

KSH=$(dirname "$0")/kernel.sh

build_image() {
	local dir=$1 kver=$2 kpkg=$3 tmp root uri key
	tmp="$dir.tmp"
	root="$tmp/root"
	[ -f "$dir/env" ] && return 0
	need_root "building the $SUITE guest image"
	ensure_pkgs debootstrap e2fsprogs qemu-utils
	rm -rf "$tmp"
	mkdir -p "$tmp"
	uri=$(debian_uri)
	info "debootstrap $SUITE for the guest image (once; a few minutes)"
	http_proxy=$(host_http_proxy) debootstrap --variant=minbase "$SUITE" \
		"$root" "$uri" >"$tmp/debootstrap.log" 2>&1 ||
		die "debootstrap $SUITE failed (see $tmp/debootstrap.log): check the network/mirror"
	suite_sources "$SUITE" >"$root/etc/apt/sources.list"
	# No daemon may start inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	chroot_run "$root" apt-get -q update >"$tmp/install.log" 2>&1 ||
		die "apt-get update in the $SUITE image failed (see $tmp/install.log)"
	# shellcheck disable=SC2086 # a list of package names
	chroot_run "$root" apt-get -q install -y --no-install-recommends \
		$PKGS "$kpkg" "linux-headers-$kver" >>"$tmp/install.log" 2>&1 ||
		die "installing packages in the $SUITE image failed (see $tmp/install.log)"
	chroot_run "$root" apt-get -q clean
	rm -f "$root/usr/sbin/policy-rc.d"

	# The guest: serial console, DHCP on QEMU's user network, root by
	# SSH key only, no waiting for a network it will not get.
	echo "ferry-guest" >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tferry-guest\n' >"$root/etc/hosts"
	printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n' >"$root/etc/fstab"
	mkdir -p "$root/etc/systemd/network"
	printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' \
		>"$root/etc/systemd/network/50-dhcp.network"
	chroot_run "$root" systemctl enable systemd-networkd ssh >/dev/null 2>&1 ||
		die "enabling systemd-networkd and ssh in the $SUITE image failed"
	chroot_run "$root" systemctl mask systemd-networkd-wait-online \
		apt-daily.timer apt-daily-upgrade.timer man-db.timer \
		e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || :
	key="$FERRY_CACHE/images/ssh/id_ed25519"
	mkdir -p "$(dirname "$key")"
	[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C ferry-test -f "$key" ||
		die "ssh-keygen failed: install openssh-client (scripts/deps.sh vm)"
	install -d -m 700 "$root/root/.ssh"
	install -m 600 "$key.pub" "$root/root/.ssh/authorized_keys"
	printf 'PermitRootLogin prohibit-password\nUseDNS no\n' \
		>"$root/etc/ssh/sshd_config.d/test-guest.conf"
	# A quiet disk once the workload stops, so that a test can compare
	# it with its replica: the journal in memory, no background
	# initialisation of inode tables (mke2fs below).
	mkdir -p "$root/etc/systemd/journald.conf.d"
	printf '[Journal]\nStorage=volatile\n' \
		>"$root/etc/systemd/journald.conf.d/test-guest.conf"
	cp "$root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
	cp "$root/boot/initrd.img-$kver" "$tmp/initrd.img" ||
		die "the $SUITE image has no initrd for $kver (see $tmp/install.log)"
	# mke2fs -d copies the tree with owners and modes, without a mount.
	info "writing the $SUITE root disk image"
	mke2fs -q -t ext4 -L root -E lazy_itable_init=0,lazy_journal_init=0 \
		-d "$root" "$tmp/root.img" 4G ||
		die "mke2fs -d of the $SUITE image failed"
	rm -rf "$root"
	{
		echo "IMAGE=$dir/root.img"
		echo "VMLINUZ=$dir/vmlinuz"
		echo "INITRD=$dir/initrd.img"
		echo "KVER=$kver"
		echo "SSHKEY=$key"
	} >"$tmp/env"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	# Older images of this suite (another kernel or recipe) go.
	find "$(dirname "$dir")" -mindepth 1 -maxdepth 1 -type d \
		! -path "$dir" ! -name '*.tmp' -exec rm -rf {} +
}

eval "$("$KSH" "$SUITE")"
# One image per kernel and per version of this recipe.
rev=$(sha256sum "$0" | cut -c1-12)
# shellcheck disable=SC2153 # KVER and KPKG come from kernel.sh
dir="$FERRY_CACHE/images/$SUITE/${KPKG//=/_}-$rev"
# Only the env lines go to stdout, which callers eval: what the tools
# print (mke2fs says "Creating regular file" even with -q) goes to stderr.
# shellcheck disable=SC2153
with_lock "image-$SUITE" build_image "$dir" "$KVER" "$KPKG" >&2
cat "$dir/env"
