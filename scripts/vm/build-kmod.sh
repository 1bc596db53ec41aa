#!/bin/bash
# build-kmod.sh (--suite SUITE | --kdir DIR) --out OUTDIR [--src DIR]
#
# Build ferry.ko out of tree and leave it in OUTDIR/ferry.ko.
#
# The sources are first copied to OUTDIR/src in the layout of the DKMS
# source tree: the files of kmod/ with include/ next to them
# (OUTDIR/src/include/ferry/...), so the harness builds exactly what DKMS
# will build. Then `make -C OUTDIR/src KDIR=<headers>` runs:
#   --kdir DIR     with this machine's compiler against the headers in DIR;
#   --suite SUITE  against the Debian cloud kernel of SUITE (kernel.sh):
#                  natively for this machine's own release, otherwise inside
#                  the suite's build chroot, with OUTDIR/src bind-mounted
#                  there for the duration of the build only.
# --src DIR replaces kmod/ (to try the harness on another module).
# The harness builds with -Werror (KCFLAGS); DKMS on a user's kernel does
# not, where a new compiler's warning must not stop the install.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: $0 (--suite SUITE | --kdir DIR) --out OUTDIR [--src DIR]" >&2
	exit 2
}

# Copy the module sources and the shared headers into the DKMS layout.
stage_sources() {
	local src=$1 dst=$2
	[ -f "$src/Makefile" ] || die "no $src/Makefile: nothing to build (pass --src DIR for another module)"
	rm -rf "$dst"
	mkdir -p "$dst"
	cp -a "$src/." "$dst/"
	# Leftovers of an in-tree build would be taken as up to date.
	find "$dst" \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
		-o -name '.*.cmd' -o -name modules.order -o -name Module.symvers \) -delete
	if [ -d "$FERRY_ROOT/include" ]; then
		rm -rf "$dst/include"
		cp -a "$FERRY_ROOT/include" "$dst/include"
	fi
}

# A digest of everything the module is built from: its sources, the shared
# headers, and the kernel (package version, or the headers' symbol table).
# Equal digests let a second run skip the build (FERRY_REBUILD=1 forces it).
source_stamp() {
	local src=$1 suite=$2 kdir=$3 chroot=$4
	{
		(cd "$src" && find . -type f ! -name '*.o' ! -name '*.ko' ! -name '.*.cmd' -print0 |
			LC_ALL=C sort -z | xargs -0 sha256sum)
		if [ -d "$FERRY_ROOT/include" ]; then
			(cd "$FERRY_ROOT/include" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
		fi
		echo "$suite $kdir $chroot ${KPKG:-}"
		sha256sum "$chroot$kdir/Module.symvers" 2>/dev/null || :
		sha256sum "$0" "$FERRY_VM_DIR/lib.sh"
	} | sha256sum | cut -c1-32
}

build_native() {
	local src=$1 kdir=$2 log=$3
	[ -d "$kdir" ] || die "no kernel headers in $kdir: install them or use --suite"
	make -C "$src" KDIR="$kdir" KCFLAGS=-Werror -j"$(nproc)" >"$log" 2>&1
}

# Build in CHROOT: OUTDIR/src appears at /build/<name> inside.
build_chroot() {
	local chroot=$1 src=$2 kdir=$3 log=$4 mnt rc=0
	mkdir -p "$chroot/build"
	mnt=$(mktemp -d "$chroot/build/ferry.XXXXXX")
	# The mountpoint is ours to remove; chroot_run unmounts what it mounted.
	trap 'rmdir "$mnt" 2>/dev/null || :' EXIT
	chroot_run "$chroot" --bind "$src" "/build/${mnt##*/}" \
		make -C "/build/${mnt##*/}" KDIR="$kdir" KCFLAGS=-Werror -j"$(nproc)" >"$log" 2>&1 || rc=$?
	rmdir "$mnt" 2>/dev/null || :
	trap - EXIT
	return "$rc"
}

main() {
	local suite='' kdir='' out='' src="$FERRY_ROOT/kmod" chroot='' kver='' log
	while [ $# -gt 0 ]; do
		case $1 in
		--suite) suite=${2:?}; shift 2 ;;
		--kdir) kdir=${2:?}; shift 2 ;;
		--out) out=${2:?}; shift 2 ;;
		--src) src=${2:?}; shift 2 ;;
		-h | --help) usage ;;
		*) echo "build-kmod.sh: unknown argument $1" >&2; usage ;;
		esac
	done
	[ -n "$out" ] || usage
	if [ -n "$suite" ] && [ -n "$kdir" ]; then usage; fi
	if [ -z "$suite" ] && [ -z "$kdir" ]; then usage; fi

	if [ -n "$suite" ]; then
		local KVER KDIR CHROOT KPKG env
		env=$("$FERRY_VM_DIR/kernel.sh" "$suite") ||
			die "cannot fetch the $suite kernel (see above)"
		eval "$env"
		kver=$KVER kdir=$KDIR chroot=$CHROOT
	fi
	[ -n "$chroot" ] || ensure_pkgs make gcc

	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	local stamp
	stamp=$(source_stamp "$src" "$suite" "$kdir" "$chroot")
	if [ -z "${FERRY_REBUILD:-}" ] && [ -f "$out/ferry.ko" ] &&
		[ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "$out/ferry.ko"
		return 0
	fi
	rm -f "$out/.stamp"
	stage_sources "$src" "$out/src"
	rm -f "$out/ferry.ko"
	log="$out/build.log"
	info "building ferry.ko for ${suite:-$kdir}"
	if [ -n "$chroot" ]; then
		build_chroot "$chroot" "$out/src" "$kdir" "$log" ||
			die "module build for $suite failed; last lines of $log:$(echo; tail -n 20 "$log")"
	else
		build_native "$out/src" "$kdir" "$log" ||
			die "module build against $kdir failed; last lines of $log:$(echo; tail -n 20 "$log")"
	fi
	local ko
	ko="$out/src/ferry.ko"
	[ -f "$ko" ] || ko=$(find "$out/src" -maxdepth 1 -name '*.ko' | head -n1)
	[ -n "$ko" ] || die "make succeeded but left no .ko in $out/src: check kmod/Makefile (see $log)"
	cp "$ko" "$out/ferry.ko"
	# A module built against the wrong headers would only fail at insmod.
	if [ -n "$kver" ]; then
		local magic
		magic=$(modinfo -F vermagic "$out/ferry.ko" | awk '{print $1}')
		[ "$magic" = "$kver" ] ||
			die "$out/ferry.ko has vermagic $magic, expected $kver: stale headers in the cache? rm -rf $FERRY_CACHE/kernels/$suite"
	fi
	echo "$stamp" >"$out/.stamp"
	echo "$out/ferry.ko"
}

# One compound command, parsed whole before it runs: bash reads a script
# as it goes, and an edit of this file during a run must not be read.
{
	main "$@"
	exit
}
