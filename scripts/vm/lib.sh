# shellcheck shell=bash
# Shared helpers of the VM harness (scripts/vm/*.sh, tests/kmod/*.sh).
# Source it; it defines functions and a few variables, and runs nothing else.
#
# Conventions:
#   - every download lives outside the repository in $FERRY_CACHE
#     (default /var/cache/ferry), so a second run needs no network;
#   - a package mirror is never written down: it is read from this machine's
#     apt sources and reused with another suite (see apt_host_uri);
#   - errors are one line "ferry-vm: <what failed>: <what to do>".

FERRY_CACHE=${FERRY_CACHE:-/var/cache/ferry}
# The repository root, whichever script sourced us.
FERRY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source us
FERRY_VM_DIR="$FERRY_ROOT/scripts/vm"
# Kernel flavour of the test matrix: small, virtio built for clouds.
FERRY_FLAVOUR=${FERRY_FLAVOUR:-cloud-amd64}
# Re-read a suite's package index when it is older than this (seconds);
# 0 forces a refresh, FERRY_OFFLINE=1 never refreshes a present index.
FERRY_APT_MAX_AGE=${FERRY_APT_MAX_AGE:-43200}
export DEBIAN_FRONTEND=noninteractive
# Build products, relative to the repository root unless absolute.
BUILD=${BUILD:-build}
export BUILD

die() {
	echo "ferry-vm: $*" >&2
	exit 1
}

# Progress messages go to stderr so stdout stays machine-readable
# (kernel.sh prints assignments there).
info() {
	[ -n "${FERRY_QUIET:-}" ] || echo "ferry-vm: $*" >&2
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "$1 needs root (loop devices, chroot, apt): run it as root or with sudo"
}

# ---------------------------------------------------------------------------
# Host packages

# Print the packages among "$@" that are not installed (one dpkg-query for
# all: it is called on every make).
missing_pkgs() {
	local -A have=()
	local p st
	# shellcheck disable=SC2016 # dpkg-query's format, not ours
	while read -r p st; do
		[ "$st" != installed ] || have[${p%%:*}]=1
	done < <(dpkg-query -W -f '${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || :)
	for p in "$@"; do
		[ -n "${have[$p]:-}" ] || echo "$p"
	done
}

# Install Debian packages unless present; silent when nothing is missing.
# apt-get update runs only when something must be installed, because the
# index of a fresh machine may be empty or stale.
ensure_pkgs() {
	local missing
	missing=$(missing_pkgs "$@")
	[ -n "$missing" ] || return 0
	need_root "installing $(echo "$missing" | tr '\n' ' ')"
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	echo "ferry-vm: installing" $missing >&2
	# Another apt-get may be at work (tests/run-all.sh): wait for it.
	apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null ||
		die "apt-get update failed: check the network and /etc/apt/sources.list*"
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=600 install -y -q \
		--no-install-recommends $missing >/dev/null ||
		die "apt-get install $(echo "$missing" | tr '\n' ' ')failed: run it by hand to see why"
}

# ---------------------------------------------------------------------------
# Mirrors: which URI serves which suite on this machine

# Print "URI SUITE" for every enabled "deb" source of this machine, in apt's
# order (sources.list first, then sources.list.d/ sorted), both the one-line
# format and deb822 .sources files.
apt_host_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		# deb [opt=val ...] URI SUITE COMPONENT...
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
			awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
		function flush() {
			if (types ~ /(^| )deb( |$)/ && enabled != "no")
				for (i = 1; i <= nu; i++)
					for (j = 1; j <= ns; j++)
						print u[i], s[j]
			types = ""; enabled = ""; nu = 0; ns = 0
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		{
			key = tolower($1); sub(/:$/, "", key)
			if (key == "types") { types = ""; for (i = 2; i <= NF; i++) types = types " " $i; types = substr(types, 2) }
			else if (key == "uris") for (i = 2; i <= NF; i++) u[++nu] = $i
			else if (key == "suites") for (i = 2; i <= NF; i++) s[++ns] = $i
			else if (key == "enabled") enabled = tolower($2)
		}
		END { flush() }' "$f"
	done
}

# The first URI of this machine's apt sources that serves SUITE exactly.
apt_host_uri() {
	apt_host_sources | awk -v s="$1" '$2 == s { sub(/\/+$/, "", $1); print $1; exit }'
}

# The URI serving the Debian archive: the one the machine uses for bookworm
# (FERRY_APT_URI overrides; the machine's own codename is the fall-back).
debian_uri() {
	local uri codename
	uri=${FERRY_APT_URI:-$(apt_host_uri bookworm)}
	if [ -z "$uri" ]; then
		codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
		[ -n "$codename" ] && uri=$(apt_host_uri "$codename")
	fi
	[ -n "$uri" ] || die "no apt source serves suite bookworm: add one to /etc/apt/sources.list or set FERRY_APT_URI"
	echo "$uri"
}

# The URI serving Debian's security archive, or nothing.
security_uri() {
	echo "${FERRY_APT_SECURITY_URI:-$(apt_host_uri bookworm-security)}"
}

# The codename of this machine's release (bookworm on CI).
host_codename() {
	(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
}

# The release a suite builds on: trixie for trixie-backports, else itself.
suite_base() {
	echo "${1%-backports}"
}

# Write a one-line-format sources.list for SUITE to stdout: the main archive
# with SUITE and SUITE-updates, the security archive with SUITE-security
# (unstable has neither); for X-backports, those of X and X-backports.
suite_sources() {
	local suite=$1 base uri sec
	base=$(suite_base "$suite")
	uri=$(debian_uri) || exit 1
	sec=$(security_uri)
	echo "deb $uri $base main"
	[ "$base" = "$suite" ] || echo "deb $uri $suite main"
	case $base in
	sid | unstable | experimental) return 0 ;;
	esac
	echo "deb $uri $base-updates main"
	[ -z "$sec" ] || echo "deb $sec $base-security main"
}

# apt preferences for SUITE: a backports archive is NotAutomatic (priority
# 100), so its newer kernel would never be the candidate; pinned as high
# as the release itself, the newest version wins.
suite_preferences() {
	case $1 in
	*-backports) printf 'Package: *\nPin: release n=%s\nPin-Priority: 500\n' "$1" ;;
	esac
}

# ---------------------------------------------------------------------------
# A private apt index per suite, so the host's sources stay untouched.

suite_apt_dir() {
	echo "$FERRY_CACHE/apt/$1"
}

# apt-get/apt-cache with SUITE's private state. Usage: suite_apt SUITE CMD ARGS...
# The binary caches are named explicitly because container images often
# disable them (docker-clean), which makes every apt-cache call re-parse
# the whole index.
suite_apt() {
	local suite=$1 cmd=$2 d
	shift 2
	d=$(suite_apt_dir "$suite")
	"$cmd" -q \
		-o Dir::State="$d/state" \
		-o Dir::State::status=/var/lib/dpkg/status \
		-o Dir::Cache="$d/cache" \
		-o Dir::Cache::pkgcache=pkgcache.bin \
		-o Dir::Cache::srcpkgcache= \
		-o Dir::Etc::SourceList="$d/sources.list" \
		-o Dir::Etc::SourceParts=- \
		-o Dir::Etc::Preferences="$d/preferences" \
		-o Dir::Etc::PreferencesParts="$d/preferences.d" \
		-o Acquire::Languages=none \
		"$@"
}

# Refresh SUITE's private index when missing, older than FERRY_APT_MAX_AGE,
# or when its sources changed (another mirror on this machine).
suite_apt_update() {
	local suite=$1 d stamp now age
	d=$(suite_apt_dir "$suite")
	mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/preferences.d"
	suite_sources "$suite" >"$d/sources.list.new" || exit 1
	suite_preferences "$suite" >"$d/preferences"
	stamp="$d/updated"
	if cmp -s "$d/sources.list.new" "$d/sources.list" && [ -f "$stamp" ]; then
		rm -f "$d/sources.list.new"
		[ -z "${FERRY_OFFLINE:-}" ] || return 0
		now=$(date +%s)
		age=$((now - $(stat -c %Y "$stamp")))
		[ "$age" -ge "$FERRY_APT_MAX_AGE" ] || return 0
	else
		mv "$d/sources.list.new" "$d/sources.list"
	fi
	info "refreshing the package index of $suite"
	if ! suite_apt "$suite" apt-get update >"$d/update.log" 2>&1; then
		# An old index still names a kernel we have: better than nothing
		# when the mirror is unreachable. Retried at the next run.
		if [ -f "$stamp" ]; then
			info "apt-get update for $suite failed (see $d/update.log); using the cached index"
			return 0
		fi
		die "apt-get update for $suite failed (see $d/update.log): check the network or set FERRY_APT_URI"
	fi
	touch "$stamp"
}

# ---------------------------------------------------------------------------
# Build chroots (for suites newer than this machine's compiler)

chroot_dir() {
	echo "$FERRY_CACHE/chroot-$1"
}

# Proxy settings of the host's apt, for tools that do not read apt.conf
# (debootstrap's wget, apt inside the chroot).
host_http_proxy() {
	local p=''
	eval "$(apt-config shell p Acquire::http::Proxy)"
	echo "${http_proxy:-$p}"
}

# Point the apt of chroot ROOT at SUITE's mirror, with the host's choice
# on Release files past their Valid-Until or dated ahead of the clock: a
# machine whose sources are a dated copy of the archive turns the checks
# off, and sid's Release is valid for a week only.
chroot_apt_sources() {
	local suite=$1 root=$2 opt v conf=$2/etc/apt/apt.conf.d/99ferry-host
	suite_sources "$suite" >"$root/etc/apt/sources.list" || exit 1
	suite_preferences "$suite" >"$root/etc/apt/preferences.d/ferry-suite"
	: >"$conf"
	for opt in Acquire::Check-Valid-Until Acquire::Check-Date; do
		v=''
		eval "$(apt-config shell v "$opt")"
		[ -z "$v" ] || echo "$opt \"$v\";" >>"$conf"
	done
}

# The body of chroot_run, executed by bash in a private mount namespace
# when unshare works: the mounts then vanish with the namespace even if we
# are killed with SIGKILL. The trap unmounts them in every other case
# (normal exit, error, ^C), and is the only guard when unshare is refused.
# shellcheck disable=SC2016 # expanded by the inner bash, not here
_FERRY_CHROOT_BODY='
set -euo pipefail
root=$1 src=$2 dst=$3
shift 3
cleanup() {
	if [ -n "$src" ] && mountpoint -q "$root$dst"; then
		umount "$root$dst" 2>/dev/null || umount -l "$root$dst"
	fi
	if [ -n "${proc_mounted:-}" ]; then
		umount "$root/proc" 2>/dev/null || umount -l "$root/proc"
	fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP
mount -t proc proc "$root/proc"
proc_mounted=1
[ -z "$src" ] || mount --bind "$src" "$root$dst"
# apt inside needs name resolution; never write through a symlink that
# would point back into the host.
cp -L --remove-destination /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || :
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
	${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
	"$@"
'

# chroot_run ROOT [--bind SRC DST] CMD...: run CMD inside ROOT with /proc
# mounted and SRC bind-mounted at DST (a path inside ROOT) for the
# duration of the command only.
chroot_run() {
	local root=$1 src='' dst='' proxy
	shift
	if [ "${1:-}" = --bind ]; then
		src=$2 dst=$3
		shift 3
	fi
	proxy=$(host_http_proxy)
	if unshare --mount --propagation private true 2>/dev/null; then
		http_proxy=$proxy unshare --mount --propagation private \
			bash -c "$_FERRY_CHROOT_BODY" chroot_run "$root" "$src" "$dst" "$@"
	else
		http_proxy=$proxy bash -c "$_FERRY_CHROOT_BODY" chroot_run "$root" "$src" "$dst" "$@"
	fi
}

# ---------------------------------------------------------------------------
# Host hooks (run.sh --host CMD): talk to the running guest

# qmp SOCK JSON...: send QMP commands to QEMU, print its replies; fails if
# any reply is an error. Example (hot-add a disk on a free root port):
#   qmp "$FERRY_QMP" \
#     '{"execute":"blockdev-add","arguments":{"node-name":"hot0","driver":"raw","file":{"driver":"file","filename":"/tmp/d.img"}}}' \
#     '{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","drive":"hot0","id":"hotdisk0","bus":"ferry-hp0"}}'
qmp() {
	local sock=$1 cmd out
	shift
	[ -S "$sock" ] || die "qmp: no QMP socket $sock: is the guest running?"
	command -v socat >/dev/null || ensure_pkgs socat
	# QEMU answers in order; the pauses let it answer before EOF closes
	# the connection.
	out=$( {
		echo '{"execute":"qmp_capabilities"}'
		for cmd in "$@"; do
			echo "$cmd"
			sleep 0.3
		done
		sleep 0.5
	} | socat -t 5 - "UNIX-CONNECT:$sock") || die "qmp: cannot talk to $sock"
	echo "$out"
	! grep -q '"error"' <<<"$out"
}

# vm_wait_for REGEX [SECONDS]: wait until the guest printed a line matching
# REGEX (the test's output, $FERRY_VM_RESULTS); fails after SECONDS (60).
vm_wait_for() {
	local re=$1 limit=${2:-60} end
	end=$(($(date +%s) + limit))
	while ! grep -aqE "$re" "${FERRY_VM_RESULTS:?run me from run.sh --host}" 2>/dev/null; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# ---------------------------------------------------------------------------
# Misc

# Kernel messages that mean the kernel is unwell, whatever the test says
# (run.sh, debian-vm.sh).  Only lines carrying the kernel's "[ seconds.micro]"
# stamp are matched, so a tool printing "WARNING:" is not taken for the
# kernel.
# shellcheck disable=SC2034 # used by the scripts that source this file
SPLAT_RE='BUG:|WARNING:|Oops|KASAN|UBSAN|possible circular locking|possible recursive locking|INFO: task .* blocked for more than|general protection fault|kernel BUG at|Call Trace:|refcount_t:|list_add corruption|list_del corruption|soft lockup|hard LOCKUP|rcu_sched self-detected stall|rcu: INFO|self-detected stall|Kernel panic'

# Run "$@" holding an exclusive lock named NAME in the cache, so parallel
# runs (two suites, two CI jobs) do not fill the same cache entry twice.
with_lock() {
	local name=$1
	shift
	mkdir -p "$FERRY_CACHE/locks"
	(
		flock 9 || die "cannot lock $FERRY_CACHE/locks/$name"
		"$@"
	) 9>"$FERRY_CACHE/locks/$name"
}

# Seconds since the epoch with a tenth, for timing reports.
now_s() {
	date +%s.%1N
}

# ---------------------------------------------------------------------------
# Guest images

# guest_image SUITE INITRD TESTS_DIR LOG [MODULES]: build ferry.ko for the
# SUITE kernel ($BUILD/kmod/SUITE) and the initramfs INITRD holding it,
# ferryctl, the guest test programs and TESTS_DIR (run from the repository
# root).  Both steps write to LOG; on failure, says which one on stderr and
# returns 1.
guest_image() {
	local suite=$1 initrd=$2 tests=$3 log=$4 want=${5:-} t
	local -a bins=() mods=()
	[ -z "${want// /}" ] || mods=(--modules "$want")
	[ -x "$BUILD/bin/ferryctl" ] || {
		echo "no $BUILD/bin/ferryctl: run make userspace first" >&2
		return 1
	}
	mkdir -p "$(dirname "$log")" "$(dirname "$initrd")"
	"$FERRY_VM_DIR/build-kmod.sh" --suite "$suite" \
		--out "$BUILD/kmod/$suite" >"$log" 2>&1 || {
		echo "ferry.ko does not build for $suite: see $log" >&2
		return 1
	}
	for t in "$BUILD/bin/ferryctl" "$BUILD/bin/ferry-agent" "$BUILD"/tests/kmod/bin/*; do
		[ -f "$t" ] && [ -x "$t" ] && bins+=(--bin "$t")
	done
	"$FERRY_VM_DIR/initramfs.sh" --suite "$suite" --out "$initrd" \
		--ko "$BUILD/kmod/$suite/ferry.ko" "${bins[@]}" \
		--tests "$tests" "${mods[@]}" >>"$log" 2>&1 || {
		echo "cannot build the initramfs for $suite: see $log" >&2
		return 1
	}
}
