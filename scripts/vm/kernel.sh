#!/bin/bash
# kernel.sh SUITE — make sure the Debian cloud kernel of SUITE (bookworm,
# trixie, sid...) is in the cache: its image, its modules tree (with
# modules.dep) and its headers, then print shell-assignable lines:
#
#   KVER=6.1.0-56-cloud-amd64
#   VMLINUZ=/var/cache/ferry/kernels/bookworm/.../boot/vmlinuz-...
#   MODROOT=/var/cache/ferry/kernels/bookworm/.../root   (has lib/modules/$KVER)
#   KDIR=/path/to/linux-headers-$KVER     (inside CHROOT when CHROOT is set)
#   CHROOT=/var/cache/ferry/chroot-trixie  (empty: build on this machine)
#   KPKG=linux-image-6.1.0-56-cloud-amd64=6.1.192-2
#
# Usage: eval "$(scripts/vm/kernel.sh bookworm)"
#
# Headers: the suite this machine runs (bookworm on CI) is built with the
# host's compiler against headers *extracted* into the cache (no host
# package is added or upgraded, so the kernel version follows the suite's
# index rather than the host's). Any other suite is built in a debootstrap
# chroot of that suite ($FERRY_CACHE/chroot-SUITE), where its own gcc and
# kbuild binaries are installed with apt.
#
# The suite's package index is private ($FERRY_CACHE/apt/SUITE) and is
# refreshed at most every FERRY_APT_MAX_AGE seconds; when the candidate
# kernel is already extracted nothing is downloaded.
# shellcheck disable=SC2317 # functions run through with_lock look unreachable
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: $0 SUITE   (e.g. bookworm, trixie)" >&2
	exit 2
}

# Print the first "linux-image-*" dependency of the flavour's metapackage
# at version VER: that is the versioned image package.
image_package() {
	local suite=$1 ver=$2
	suite_apt "$suite" apt-cache show "linux-image-$FERRY_FLAVOUR=$ver" |
		sed -n 's/^Depends: //p' | head -n1 | tr ',' '\n' |
		sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -n1
}

candidate() {
	suite_apt "$1" apt-cache policy "$2" | awk '$1 == "Candidate:" { print $2 }'
}

# Download PKG (at its candidate version) from SUITE into DIR.
download() {
	local suite=$1 pkg=$2 dir=$3 ver
	ver=$(candidate "$suite" "$pkg")
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		die "package $pkg is not in $suite's index: check FERRY_APT_URI / the mirror"
	fi
	(cd "$dir" && suite_apt "$suite" apt-get download "$pkg=$ver" >/dev/null 2>"$dir/download.err") ||
		die "apt-get download $pkg=$ver ($suite) failed: $(tail -n1 "$dir/download.err")"
	ls "$dir/${pkg}_"*.deb
}

# Names in a deb's Depends (first alternative, no version).
deb_depends() {
	dpkg-deb -f "$1" Depends | tr ',' '\n' |
		sed -e 's/|.*//' -e 's/(.*//' -e 's/:any//' -e 's/ //g' | grep -v '^$' || :
}

# Extract the headers of KVER and the linux-* packages they need (common
# headers, kbuild, compiler metapackage) under ROOT; install the rest of
# their dependencies (gcc-12, libelf1...) on this machine.
extract_headers() {
	local suite=$1 kver=$2 root=$3 debs=$3/../debs
	local -a todo=("linux-headers-$kver") host=()
	local -A seen=()
	local pkg deb dep
	mkdir -p "$debs"
	while [ ${#todo[@]} -gt 0 ]; do
		pkg=${todo[0]}
		todo=("${todo[@]:1}")
		[ -z "${seen[$pkg]:-}" ] || continue
		seen[$pkg]=1
		deb=$(download "$suite" "$pkg" "$debs")
		dpkg-deb -x "$deb" "$root"
		for dep in $(deb_depends "$deb"); do
			case $dep in
			linux-*) todo+=("$dep") ;;
			*) host+=("$dep") ;;
			esac
		done
	done
	[ ${#host[@]} -eq 0 ] || ensure_pkgs "${host[@]}"
	# The flavour's Makefile includes the common one by absolute path.
	sed -i "s|^include /usr/src/|include $root/usr/src/|" \
		"$root/usr/src/linux-headers-$kver/Makefile"
	[ -e "$root/usr/src/linux-headers-$kver/scripts/basic/fixdep" ] ||
		die "headers of $kver extracted without kbuild binaries: remove $root and retry"
}

# Extract image package IMG of KVER under ROOT.  From 7.x on (sid, late
# 2026) linux-image-KVER holds no files: it depends on linux-binary-KVER
# (the vmlinuz), linux-modules-KVER and linux-base-KVER, which are
# extracted with it.
extract_image() {
	local suite=$1 img=$2 kver=$3 root=$4 deb dep
	deb=$(download "$suite" "$img" "$root/../debs")
	dpkg-deb -x "$deb" "$root"
	for dep in $(deb_depends "$deb"); do
		case $dep in
		linux-*-"$kver")
			dpkg-deb -x "$(download "$suite" "$dep" "$root/../debs")" "$root"
			;;
		esac
	done
}

# Create the build chroot of SUITE once: minbase + build-essential.
ensure_chroot() {
	local suite=$1 root tmp uri
	root=$(chroot_dir "$suite")
	[ -f "$root/.ferry-ready" ] && return 0
	need_root "creating the $suite build chroot"
	ensure_pkgs debootstrap
	uri=$(debian_uri)
	tmp="$root.tmp"
	rm -rf "$tmp"
	info "debootstrap $suite into $root (once; a few minutes)"
	http_proxy=$(host_http_proxy) debootstrap --variant=minbase "$(suite_base "$suite")" "$tmp" "$uri" \
		>"$FERRY_CACHE/debootstrap-$suite.log" 2>&1 ||
		die "debootstrap $suite failed (see $FERRY_CACHE/debootstrap-$suite.log): check the network/mirror, then rm -rf $tmp"
	chroot_apt_sources "$suite" "$tmp"
	chroot_run "$tmp" apt-get -q update >/dev/null ||
		die "apt-get update in the $suite chroot failed: check the network, then rm -rf $tmp"
	chroot_run "$tmp" apt-get -q install -y --no-install-recommends build-essential make kmod \
		>"$FERRY_CACHE/chroot-$suite-install.log" 2>&1 ||
		die "installing build-essential in the $suite chroot failed (see $FERRY_CACHE/chroot-$suite-install.log)"
	touch "$tmp/.ferry-ready"
	mv "$tmp" "$root"
}

# Install linux-headers-KVER=VER (and so the suite's gcc and kbuild) in the
# chroot, dropping headers of older kernels.
chroot_headers() {
	local suite=$1 kver=$2 ver=$3 root old
	root=$(chroot_dir "$suite")
	[ -d "$root/usr/src/linux-headers-$kver" ] && return 0
	info "installing linux-headers-$kver in the $suite chroot"
	chroot_apt_sources "$suite" "$root"
	chroot_run "$root" apt-get -q update >/dev/null ||
		die "apt-get update in the $suite chroot failed: check the network"
	chroot_run "$root" apt-get -q install -y --no-install-recommends \
		"linux-headers-$kver=$ver" >"$FERRY_CACHE/chroot-$suite-install.log" 2>&1 ||
		die "installing linux-headers-$kver in the $suite chroot failed (see $FERRY_CACHE/chroot-$suite-install.log)"
	# shellcheck disable=SC2016 # ${Package} is dpkg-query's, not ours
	old=$(chroot_run "$root" dpkg-query -W -f '${Package}\n' 'linux-headers-*' |
		grep -v -e "^linux-headers-$kver\$" -e "^linux-headers-${kver%-"$FERRY_FLAVOUR"}-common" || :)
	# shellcheck disable=SC2086 # a list of package names
	[ -z "$old" ] || chroot_run "$root" apt-get -q purge -y $old >/dev/null 2>&1 || :
	chroot_run "$root" apt-get -q clean
}

# Make sure SUITE's current kernel is cached; print its assignments.
prepare() {
	local suite=$1 meta_ver img ver kver dir tmp root modroot env vmlinuz
	suite_apt_update "$suite"
	meta_ver=$(candidate "$suite" "linux-image-$FERRY_FLAVOUR")
	if [ -z "$meta_ver" ] || [ "$meta_ver" = "(none)" ]; then
		die "no linux-image-$FERRY_FLAVOUR in $suite's index: is '$suite' a Debian suite served by $(debian_uri)?"
	fi
	img=$(image_package "$suite" "$meta_ver")
	[ -n "$img" ] || die "cannot find the image package of linux-image-$FERRY_FLAVOUR=$meta_ver ($suite)"
	ver=$(candidate "$suite" "$img")
	kver=${img#linux-image-}
	kver=${kver%-unsigned}
	dir="$FERRY_CACHE/kernels/$suite/${img}_$ver"
	env="$dir/env"

	if [ ! -f "$env" ]; then
		info "fetching $img $ver ($suite)"
		tmp="$dir.tmp"
		rm -rf "$tmp"
		root="$tmp/root"
		mkdir -p "$tmp/debs" "$root"
		extract_image "$suite" "$img" "$kver" "$root"
		# trixie ships modules in /usr/lib/modules; one path for everyone.
		if [ ! -d "$root/lib/modules/$kver" ] && [ -d "$root/usr/lib/modules/$kver" ]; then
			ln -s usr/lib "$root/lib"
		fi
		# 7.x keeps the image beside its modules.
		vmlinuz=boot/vmlinuz-$kver
		[ -f "$root/$vmlinuz" ] || vmlinuz=lib/modules/$kver/vmlinuz
		if [ ! -f "$root/$vmlinuz" ] || [ ! -d "$root/lib/modules/$kver/kernel" ]; then
			die "$img has no boot/vmlinuz-$kver, lib/modules/$kver/vmlinuz or modules: unexpected package layout"
		fi
		ensure_pkgs kmod
		depmod -b "$root" "$kver" ||
			die "depmod of $kver failed: install kmod (scripts/deps.sh vm)"
		if [ "$suite" = "$(host_codename)" ]; then
			extract_headers "$suite" "$kver" "$root"
		fi
		rm -rf "$tmp/debs"
		{
			echo "KVER=$kver"
			echo "VMLINUZ=$dir/root/$vmlinuz"
			echo "MODROOT=$dir/root"
			if [ "$suite" = "$(host_codename)" ]; then
				echo "KDIR=$dir/root/usr/src/linux-headers-$kver"
				echo "CHROOT="
			else
				echo "KDIR=/usr/src/linux-headers-$kver"
				echo "CHROOT=$(chroot_dir "$suite")"
			fi
			echo "KPKG=$img=$ver"
		} >"$tmp/env"
		# The headers Makefile names its own directory; fix it for the
		# final location before the move.
		if [ -f "$root/usr/src/linux-headers-$kver/Makefile" ]; then
			sed -i "s|$tmp/root|$dir/root|" "$root/usr/src/linux-headers-$kver/Makefile"
		fi
		rm -rf "$dir"
		mv "$tmp" "$dir"
		prune_old "$suite" "$dir"
	fi
	if [ "$suite" != "$(host_codename)" ]; then
		ensure_chroot "$suite"
		chroot_headers "$suite" "$kver" "$ver"
	fi
	modroot=$(sed -n 's/^MODROOT=//p' "$env")
	[ -f "$modroot/lib/modules/$kver/modules.dep" ] ||
		die "cache entry $dir is incomplete: rm -rf $dir and retry"
	cat "$env"
}

# Keep one kernel per suite: drop the versions the suite no longer ships.
prune_old() {
	local suite=$1 keep=$2 d
	for d in "$FERRY_CACHE/kernels/$suite"/*; do
		[ "$d" = "$keep" ] || rm -rf "$d"
	done
}

main() {
	[ $# -eq 1 ] || usage
	case $1 in -h | --help) usage ;; esac
	mkdir -p "$FERRY_CACHE"
	with_lock "kernel-$1" prepare "$1"
}

# One compound command, parsed whole before it runs: bash reads a script
# as it goes, and an edit of this file during a run must not be read.
{
	main "$@"
	exit
}
