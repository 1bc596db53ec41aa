#!/bin/bash
# tests/packaging/run.sh: make deb and make rpm, checked as a distribution
# would: lintian and rpmlint without errors, each package's exact file
# list, a manual page for every command that man and groff format without
# a warning, one version (VERSION) everywhere, the agent's dependency on the
# module package of its version, the agent's maintainer scripts run against
# a fake systemctl (a new installation starts nothing: install.sh does; an
# upgrade restarts the running agent; a removal stops it), SHA512SUMS that
# match, and the
# packaged DKMS source building ferry.ko against the bookworm test kernel's
# headers.  Nothing is installed on this machine (the real installation is
# tests/install/t_guest.py, in a Debian guest).  Ends with
# "N passed, N failed".
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
# shellcheck source=scripts/vm/lib.sh
. scripts/vm/lib.sh
scripts/deps.sh build pkg vm
pass=0 fail=0
check() {		# NAME COMMAND...: PASS if COMMAND succeeds
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		echo "PASS $name"
		pass=$((pass + 1))
	else
		echo "FAIL $name: $(printf '%s' "$out" | tail -n 12 | tr '\n' ' ' | cut -c1-900)"
		fail=$((fail + 1))
	fi
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
V=$(cat VERSION)
DEB=$BUILD/pkg/deb
RPM=$BUILD/pkg/rpm

check "make deb" make -s deb
check "make rpm" make -s rpm

# The files of each package, docs and licenses aside (they vary by tool).
deb_files() { dpkg-deb -c "$1" | awk '{ print $6 }' | sed 's|^\./|/|' |
	grep -v -e '/$' -e '^/usr/share/doc/' | sort; }
rpm_files() { rpm -qlp "$1" 2>/dev/null | grep -v -e '^/usr/share/doc/' \
	-e '^/usr/share/licenses/' -e '^/usr/lib/.build-id' | sort; }
dkms_tree() {		# PREFIX: the module source as packaged
	for f in Kbuild Makefile detect-features.sh dkms.conf; do echo "$1/$f"; done
	for f in kmod/*.c kmod/*.h; do echo "$1/${f#kmod/}"; done
	for f in kmod/features/*.c; do echo "$1/features/${f#kmod/features/}"; done
	for f in include/ferry/*.h; do echo "$1/include/ferry/${f#include/ferry/}"; done
}
expect() {		# PKG FORMAT -> the expected file list
	local unit=/lib/systemd/system
	[ "$2" = rpm ] && unit=/usr/lib/systemd/system
	case $1 in
	dkms) dkms_tree "/usr/src/ferry-$V"
		# An RPM lists the directories it owns.
		[ "$2" = deb ] || printf '%s\n' "/usr/src/ferry-$V" \
			"/usr/src/ferry-$V/features" "/usr/src/ferry-$V/include" \
			"/usr/src/ferry-$V/include/ferry" ;;
	agent) printf '%s\n' /usr/bin/ferry-agent /usr/bin/ferryctl \
		/usr/share/ferry/uninstall.sh "$unit/ferry-agent.service" \
		/usr/share/man/man8/ferry-agent.8.gz \
		/usr/share/man/man8/ferryctl.8.gz
		[ "$2" = deb ] || echo /usr/share/ferry ;;
	replicator) printf '%s\n' /usr/bin/ferry-replicator \
		"$unit/ferry-replicator.service" \
		/usr/share/man/man8/ferry-replicator.8.gz
		[ "$2" = rpm ] || echo /usr/lib/sysusers.d/ferry-replicator.conf ;;
	control) printf '%s\n' /usr/bin/ferry-control "$unit/ferry-control.service" \
		/usr/share/man/man8/ferry-control.8.gz
		if [ "$2" = rpm ]; then echo /etc/sysconfig/ferry-control; else
			echo /etc/default/ferry-control
			echo /usr/lib/sysusers.d/ferry-control.conf; fi ;;
	esac | sort
}
# The manual pages of a package unpacked in ROOT: one for every command in
# /usr/bin and /usr/sbin (lintian's no-manual-page), and each formatted by
# man as lintian does and by groff with every warning on, silently.
pages_cover_commands() {	# ROOT
	local c missing=''
	for c in "$1"/usr/bin/* "$1"/usr/sbin/*; do
		[ -e "$c" ] || continue
		compgen -G "$1/usr/share/man/man[1-8]/${c##*/}.[1-8]*" >/dev/null ||
			missing="$missing ${c##*/}"
	done
	[ -z "$missing" ] || { echo "no manual page for:$missing"; return 1; }
}
pages_format_cleanly() {	# ROOT
	local page out bad=0
	for page in "$1"/usr/share/man/man*/*; do
		[ -f "$page" ] || continue
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null
			zcat -f "$page" | groff -man -ww -z 2>&1)
		[ -z "$out" ] || { echo "${page#"$1"}: $out"; bad=1; }
	done
	return $bad
}
for p in dkms agent replicator control; do
	arch=amd64 rarch=x86_64
	[ "$p" = dkms ] && arch=all rarch=noarch
	d=$DEB/ferry-${p}_$V-1_$arch.deb r=$RPM/ferry-$p-$V-1.$rarch.rpm
	check "deb ferry-$p: $(basename "$d") exists, version $V-1" \
		test "$(dpkg-deb -f "$d" Version 2>&1)" = "$V-1"
	check "deb ferry-$p: exactly the expected files" \
		diff <(expect "$p" deb) <(deb_files "$d")
	check "rpm ferry-$p: $(basename "$r") exists, version $V-1" \
		test "$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$r" 2>/dev/null)" = "$V-1"
	check "rpm ferry-$p: exactly the expected files" \
		diff <(expect "$p" rpm) <(rpm_files "$r")
	mkdir -p "$tmp/root-deb-$p" "$tmp/root-rpm-$p"
	dpkg-deb -x "$d" "$tmp/root-deb-$p"
	(cd "$tmp/root-rpm-$p" && rpm2cpio "$r" | cpio -idm --quiet) 2>/dev/null
	for f in deb rpm; do
		check "$f ferry-$p: a manual page for every command" \
			pages_cover_commands "$tmp/root-$f-$p"
		check "$f ferry-$p: its manual pages format without a warning" \
			pages_format_cleanly "$tmp/root-$f-$p"
	done
done
check "deb ferry-agent depends on ferry-dkms (= $V-1) and its libraries" \
	bash -c "dpkg-deb -f '$DEB/ferry-agent_${V}-1_amd64.deb' Depends |
		grep -F 'ferry-dkms (= $V-1)' | grep -q 'liburing2'"
check "rpm ferry-agent requires ferry-dkms = $V-1 and its libraries" \
	bash -c "rpm -qp --requires '$RPM/ferry-agent-$V-1.x86_64.rpm' 2>/dev/null |
		grep -qx 'ferry-dkms = $V-1' && rpm -qp --requires \
		'$RPM/ferry-agent-$V-1.x86_64.rpm' 2>/dev/null | grep -q '^liburing.so.2'"
# The agent's maintainer scripts run against a fake systemctl
# (tests/packaging/maintscripts.sh): a new installation neither enables
# nor starts the service (install.sh does, once agent.conf exists); an
# upgrade or a reinstall restarts the running agent, so that the new
# program runs, and starts nothing the administrator stopped; a removal
# stops it.
maint() {		# FORMAT STATE-BEFORE WANT SCRIPT:ARGS...
	local fmt=$1 before=$2 want=$3 pkg got
	shift 3
	pkg=$DEB/ferry-agent_${V}-1_amd64.deb
	[ "$fmt" = deb ] || pkg=$RPM/ferry-agent-$V-1.x86_64.rpm
	got=$(tests/packaging/maintscripts.sh "$fmt" "$pkg" "$before" "$@") ||
		return 1
	[ "$got" = "$want" ] || { echo "want '$want', got '$got'"; return 1; }
}
up="$V-1"
check "deb ferry-agent, a new installation: the service neither enabled nor started" \
	maint deb "inactive disabled" "inactive disabled starts=0" \
	preinst:install postinst:configure
check "deb ferry-agent, an upgrade or a reinstall: the running agent restarted" \
	maint deb "active enabled" "active enabled starts=1" \
	"prerm:upgrade,$up" "preinst:upgrade,$up" "postinst:configure,$up"
check "deb ferry-agent, an upgrade: an agent stopped and disabled stays so" \
	maint deb "inactive disabled" "inactive disabled starts=0" \
	"prerm:upgrade,$up" "preinst:upgrade,$up" "postinst:configure,$up"
check "deb ferry-agent, a removal: the service stopped" \
	maint deb "active enabled" "inactive enabled starts=0" \
	prerm:remove postrm:remove
dpkg-deb -e "$DEB/ferry-agent_${V}-1_amd64.deb" "$tmp/agent.ctl"
check "deb ferry-agent: a purge forgets the service" \
	grep -q "deb-systemd-helper purge 'ferry-agent.service'" "$tmp/agent.ctl/postrm"
# rpm -U: the new %pre and %post, then the old %preun and %postun with 1.
check "rpm ferry-agent, a new installation: the service neither enabled nor started" \
	maint rpm "inactive disabled" "inactive disabled starts=0" pre:1 post:1
check "rpm ferry-agent, an upgrade or a reinstall: the running agent restarted" \
	maint rpm "active enabled" "active enabled starts=1" \
	pre:2 post:2 preun:1 postun:1
check "rpm ferry-agent, an upgrade: an agent stopped and disabled stays so" \
	maint rpm "inactive disabled" "inactive disabled starts=0" \
	pre:2 post:2 preun:1 postun:1
check "rpm ferry-agent, a removal: the service stopped and disabled" \
	maint rpm "active enabled" "inactive disabled starts=0" preun:0
check "rpm ferry-agent's scripts never enable nor start its service" \
	bash -c "! rpm -qp --scripts '$RPM/ferry-agent-$V-1.x86_64.rpm' 2>/dev/null |
		grep -E 'systemctl (enable|start|restart|preset)'"
dpkg-deb -e "$DEB/ferry-dkms_${V}-1_all.deb" "$tmp/dkms.ctl"
check "deb ferry-dkms: its scripts add, build and install the module with DKMS, and remove it" \
	bash -c "grep -q 'DKMS_NAME=ferry' $tmp/dkms.ctl/postinst &&
		grep -q 'DKMS_VERSION=$V' $tmp/dkms.ctl/postinst &&
		grep -q 'dkms remove' $tmp/dkms.ctl/prerm"
check "rpm ferry-dkms: its scripts build and install the module, and remove it" \
	bash -c "rpm -qp --scripts '$RPM/ferry-dkms-$V-1.noarch.rpm' 2>/dev/null |
		grep -q 'dkms install -m ferry -v $V' && rpm -qp --scripts \
		'$RPM/ferry-dkms-$V-1.noarch.rpm' 2>/dev/null | grep -q 'dkms remove'"
# %post of ferry-dkms, run in a mount namespace over a /lib/modules of
# four kernels (the running one, two more with headers, one without), with
# a dkms that logs its calls and cannot build for the third.
dkms_post() {
	local d=$tmp/dkms-post
	rm -rf "$d" && mkdir -p "$d/bin" "$d/modules"
	for k in 6.1.0-1-run 6.1.0-2-next 6.1.0-3-bad 6.1.0-4-nohdr; do
		mkdir -p "$d/modules/$k"
	done
	for k in 6.1.0-1-run 6.1.0-2-next 6.1.0-3-bad; do
		mkdir -p "$d/modules/$k/build" && : >"$d/modules/$k/build/Makefile"
	done
	printf '#!/bin/sh\necho 6.1.0-1-run\n' >"$d/bin/uname"
	printf '#!/bin/sh\necho "$*" >>%s/calls\ncase "$*" in *"-k 6.1.0-3-bad"*) exit 1 ;; esac\n' \
		"$d" >"$d/bin/dkms"
	chmod +x "$d/bin/uname" "$d/bin/dkms"
	rpm -qp --queryformat '%{POSTIN}' "$RPM/ferry-dkms-$V-1.noarch.rpm" >"$d/post.sh"
	unshare -m sh -c "mount --bind '$d/modules' /lib/modules &&
		PATH='$d/bin':\$PATH sh '$d/post.sh'" >"$d/out" 2>&1 || return 1
	grep -qx "build -m ferry -v $V" "$d/calls" &&
		grep -qx "install -m ferry -v $V" "$d/calls" &&
		grep -qx "install -m ferry -v $V -k 6.1.0-2-next" "$d/calls" &&
		grep -qx "build -m ferry -v $V -k 6.1.0-3-bad" "$d/calls" &&
		! grep -q "install -m ferry -v $V -k 6.1.0-3-bad" "$d/calls" &&
		! grep -q "6.1.0-4-nohdr\|-k 6.1.0-1-run" "$d/calls" &&
		grep -q "does not build for kernel 6.1.0-3-bad" "$d/out" ||
		{ cat "$d/calls" "$d/out"; return 1; }
}
check "rpm ferry-dkms: %post builds for the running kernel, then for every other kernel with headers (best effort)" \
	dkms_post
check "dkms.conf keeps RHEL's weak-modules from reusing a ferry.ko built for another kernel" \
	grep -qx 'NO_WEAK_MODULES="yes"' kmod/dkms.conf
# Each linter runs once; its report is checked twice.
lint() {		# REPORT COMMAND...: run it, keep and print its report
	local report=$1 rc=0
	shift
	"$@" >"$report" 2>&1 || rc=$?
	cat "$report"
	return "$rc"
}
check "lintian: no error" lint "$tmp/lintian.txt" \
	lintian -I --fail-on error "$DEB"/ferry-*_"$V"-1_*.deb
check "lintian: nothing to say about manual pages" \
	bash -c "! grep -E 'no-manual-page|manpage' '$tmp/lintian.txt'"
check "rpmlint: no error (packaging/rpm/rpmlint.toml)" lint "$tmp/rpmlint.txt" \
	rpmlint -c packaging/rpm/rpmlint.toml "$RPM"/ferry-*-"$V"-1.*.rpm
check "rpmlint: nothing to say about manual pages" \
	bash -c "! grep -E 'manual-page|manpage' '$tmp/rpmlint.txt'"
check "deb SHA512SUMS match" bash -c "cd '$DEB' && sha512sum -c --quiet SHA512SUMS"
check "rpm SHA512SUMS match" bash -c "cd '$RPM' && sha512sum -c --quiet SHA512SUMS"

# The packaged DKMS tree, as DKMS builds it, against a real kernel's
# headers (the bookworm test kernel; scripts/vm/kernel.sh caches them).
dpkg-deb -x "$DEB/ferry-dkms_${V}-1_all.deb" "$tmp/dkms"
src=$tmp/dkms/usr/src/ferry-$V
check "the packaged dkms.conf names version $V (VERSION)" \
	grep -qx "PACKAGE_VERSION=\"$V\"" "$src/dkms.conf"
eval "$(scripts/vm/kernel.sh bookworm)"
# shellcheck disable=SC2153 # KVER and KDIR come from kernel.sh
check "the packaged source builds ferry.ko for $KVER" \
	bash -c "make -C '$src' KVER='$KVER' KDIR='$KDIR' >'$tmp/build.log' 2>&1 &&
		modinfo -F vermagic '$src/ferry.ko' | grep -q '^$KVER '"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
