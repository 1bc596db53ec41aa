#!/bin/bash
# initramfs.sh --suite SUITE --out FILE.cpio.gz [--ko PATH]... [--bin PATH]...
#              [--tests DIR] [--modules "name ..."]
#
# Build the test guest's initramfs, one gzip'd newc cpio:
#   /init              scripts/vm/guest-init.sh
#   /bin/busybox       static, with a symlink for every applet
#   /usr/sbin/...      host tools with their libraries at the same paths:
#                      mkfs.ext4 mke2fs e2fsck tune2fs dumpe2fs dmsetup
#                      mdadm fio blkdiscard (sha256sum etc. are busybox's)
#   /lib/modules/KVER  the default modules (virtio_pci virtio_blk virtio_net
#                      loop null_blk dm_mod raid1 md_mod ext4 brd), those of
#                      --modules, and all their dependencies, decompressed
#                      (busybox cannot load .ko.xz), with a modules.dep for
#                      busybox modprobe
#   /ferry/NAME.ko     each --ko (so --ko build/kmod/x/ferry.ko -> /ferry/ferry.ko)
#   /ferry/bin/NAME    each --bin, with its libraries at their host paths
#   /ferry/tests/      the contents of --tests DIR
#
# A module that is built into the kernel (modules.builtin) is skipped
# silently; one that is neither a module nor built in is an error.
# The busybox + host tools part is cached in $FERRY_CACHE/initramfs, keyed
# by the versions of the packages it is copied from.
# shellcheck disable=SC2317 # functions run through with_lock look unreachable
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/lib.sh"

DEFAULT_MODULES="virtio_pci virtio_blk virtio_net loop null_blk dm_mod raid1 md_mod ext4 brd"
# Host tools copied with their libraries; the packages they come from key
# the cache of the base layer.
HOST_TOOLS="mkfs.ext4 mke2fs e2fsck tune2fs dumpe2fs dmsetup mdadm fio blkdiscard"
HOST_PKGS="busybox-static e2fsprogs dmsetup mdadm fio util-linux libc6"

usage() {
	echo "usage: $0 --suite SUITE --out FILE.cpio.gz [--ko PATH]... [--bin PATH]... [--tests DIR] [--modules \"name ...\"]" >&2
	exit 2
}

# Copy the shared libraries of the ELF file $1 (and the dynamic loader)
# into $2 at the paths ldd reports, so the guest's loader finds them where
# the host's does. Static binaries and scripts need nothing.
copy_libs() {
	local bin=$1 root=$2 lib
	ldd "$bin" >/dev/null 2>&1 || return 0
	ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
		while read -r lib; do
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
}

# Copy binary $1 to $root$2 with its libraries.
copy_bin() {
	local bin=$1 root=$2 dest=$3
	mkdir -p "$root$(dirname "$dest")"
	rm -f "$root$dest"
	cp -L "$bin" "$root$dest"
	chmod 755 "$root$dest"
	copy_libs "$bin" "$root"
}

# The cached base layer: busybox, host tools, their libraries, /etc bits.
build_base() {
	local base=$1 tmp=$1.tmp app tool path
	rm -rf "$tmp"
	mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt,root,var/tmp}
	cp /bin/busybox "$tmp/bin/busybox"
	for app in $(/bin/busybox --list-full); do
		[ "$app" = bin/busybox ] && continue
		mkdir -p "$tmp/$(dirname "$app")"
		ln -sf /bin/busybox "$tmp/$app"
	done
	for tool in $HOST_TOOLS; do
		path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$tool") ||
			die "host tool $tool is missing: run scripts/deps.sh vm"
		# Drop busybox's applet of the same name wherever it sits, so
		# the real tool wins whatever the PATH order.
		rm -f "$tmp/bin/$tool" "$tmp/sbin/$tool" "$tmp/usr/bin/$tool" "$tmp/usr/sbin/$tool"
		copy_bin "$path" "$tmp" "/usr/sbin/$tool"
	done
	[ ! -f /etc/mke2fs.conf ] || cp /etc/mke2fs.conf "$tmp/etc/"
	echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/etc/passwd"
	echo 'root:x:0:' >"$tmp/etc/group"
	: >"$tmp/etc/fstab"
	# The kernel opens /dev/console for init before devtmpfs is mounted.
	mknod -m 600 "$tmp/dev/console" c 5 1
	mknod -m 666 "$tmp/dev/null" c 1 3
	rm -rf "$base"
	mv "$tmp" "$base"
}

# Print the path of the base layer for the installed package versions,
# building it when absent.
ensure_base() {
	local key base
	key=$( (
		# shellcheck disable=SC2086 # a list of package names
		dpkg-query -W $HOST_PKGS 2>/dev/null
		echo "$HOST_TOOLS"
		sha256sum "$0" | cut -c1-16
	) | sha256sum | cut -c1-16)
	base="$FERRY_CACHE/initramfs/base-$key"
	if [ ! -d "$base" ]; then
		info "building the initramfs base layer (busybox, e2fsprogs, dmsetup, mdadm, fio)"
		mkdir -p "$FERRY_CACHE/initramfs"
		# Old layers are of no further use.
		rm -rf "$FERRY_CACHE"/initramfs/base-*
		build_base "$base"
	fi
	echo "$base"
}

# Kernel modules: resolve names through modules.dep, skip built-ins.
declare -A MOD_PATH=() MOD_DEPS=() BUILTIN=() WANT=()

load_module_index() {
	local moddir=$1 line path name
	[ -f "$moddir/modules.dep" ] || die "no $moddir/modules.dep: rerun scripts/vm/kernel.sh"
	while IFS= read -r line; do
		path=${line%%:*}
		name=${path##*/}
		name=${name%%.ko*}
		name=${name//-/_}
		MOD_PATH[$name]=$path
		MOD_DEPS[$name]=${line#*:}
	done <"$moddir/modules.dep"
	if [ -f "$moddir/modules.builtin" ]; then
		while IFS= read -r path; do
			name=${path##*/}
			name=${name%%.ko*}
			BUILTIN[${name//-/_}]=1
		done <"$moddir/modules.builtin"
	fi
}

# Mark module $1 and everything it depends on.
want_module() {
	local name=${1//-/_} dep depname
	[ -z "${WANT[$name]:-}" ] || return 0
	if [ -z "${MOD_PATH[$name]:-}" ]; then
		[ -n "${BUILTIN[$name]:-}" ] && return 0
		die "kernel module '$1' is neither a module nor built into $KVER: fix the module name (--modules / test header)"
	fi
	WANT[$name]=1
	for dep in ${MOD_DEPS[$name]}; do
		depname=${dep##*/}
		depname=${depname%%.ko*}
		want_module "$depname"
	done
}

# Strip a compression suffix: kernel/x.ko.xz -> kernel/x.ko
plain_ko() {
	local p=$1
	echo "${p%.ko*}.ko"
}

install_modules() {
	local moddir=$1 root=$2 name src dst dep deps
	local out="$root/lib/modules/$KVER"
	mkdir -p "$out"
	: >"$out/modules.dep"
	for name in "${!WANT[@]}"; do
		src="$moddir/${MOD_PATH[$name]}"
		dst="$out/$(plain_ko "${MOD_PATH[$name]}")"
		mkdir -p "$(dirname "$dst")"
		case $src in
		*.ko.xz) xz -dc "$src" >"$dst" ;;
		*.ko.zst) zstd -qdc "$src" >"$dst" ;;
		*.ko.gz) gzip -dc "$src" >"$dst" ;;
		*) cp "$src" "$dst" ;;
		esac
		deps=
		for dep in ${MOD_DEPS[$name]}; do
			deps="$deps $(plain_ko "$dep")"
		done
		echo "$(plain_ko "${MOD_PATH[$name]}"):$deps" >>"$out/modules.dep"
	done
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[ ! -f "$moddir/$f" ] || cp "$moddir/$f" "$out/"
	done
}

main() {
	local suite='' out='' tests='' modules='' ko bin base
	local -a kos=() bins=()
	while [ $# -gt 0 ]; do
		case $1 in
		--suite) suite=${2:?}; shift 2 ;;
		--out) out=${2:?}; shift 2 ;;
		--ko) kos+=("${2:?}"); shift 2 ;;
		--bin) bins+=("${2:?}"); shift 2 ;;
		--tests) tests=${2:?}; shift 2 ;;
		--modules) modules="$modules ${2:?}"; shift 2 ;;
		-h | --help) usage ;;
		*) echo "initramfs.sh: unknown argument $1" >&2; usage ;;
		esac
	done
	if [ -z "$suite" ] || [ -z "$out" ]; then usage; fi
	need_root "initramfs.sh (device nodes in the image)"
	ensure_pkgs busybox-static cpio xz-utils zstd e2fsprogs dmsetup mdadm fio util-linux kmod

	local KVER MODROOT
	eval "$("$FERRY_VM_DIR/kernel.sh" "$suite")"
	local moddir="$MODROOT/lib/modules/$KVER"

	base=$(with_lock initramfs-base ensure_base)
	# Global: the EXIT trap runs after main's locals are gone.
	stage=$(mktemp -d "${TMPDIR:-/tmp}/ferry-initramfs.XXXXXX")
	trap 'rm -rf "$stage"' EXIT
	cp -a "$base/." "$stage/"

	load_module_index "$moddir"
	for name in $DEFAULT_MODULES $modules; do
		want_module "$name"
	done
	install_modules "$moddir" "$stage"

	install -m 755 "$FERRY_VM_DIR/guest-init.sh" "$stage/init"
	mkdir -p "$stage/ferry/bin" "$stage/ferry/tests"
	for ko in "${kos[@]}"; do
		[ -f "$ko" ] || die "--ko $ko: no such file (build it with scripts/vm/build-kmod.sh)"
		cp "$ko" "$stage/ferry/"
	done
	for bin in "${bins[@]}"; do
		[ -f "$bin" ] || die "--bin $bin: no such file"
		copy_bin "$bin" "$stage" "/ferry/bin/${bin##*/}"
	done
	if [ -n "$tests" ]; then
		[ -d "$tests" ] || die "--tests $tests: no such directory"
		cp -a "$tests/." "$stage/ferry/tests/"
	fi
	echo "$suite $KVER" >"$stage/ferry/kernel"

	mkdir -p "$(dirname "$out")"
	# Sorted names give a stable order; -1 because the guest's decompression
	# time hardly depends on the level, ours does. Written aside and renamed
	# so a guest never boots a half-written file.
	(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet | gzip -1) >"$out.tmp.$$"
	mv "$out.tmp.$$" "$out"
	echo "$out"
}

# One compound command, parsed whole before it runs: bash reads a script
# as it goes, and an edit of this file during a run must not be read.
{
	main "$@"
	exit
}
