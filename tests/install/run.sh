#!/bin/bash
# tests/install/run.sh: scripts/install.sh's tests, run as root on this
# machine against a real ferry-control (and tinyproxy) on loopback, and
# install.sh with uninstall.sh in a Debian guest (t_guest.py).  Each
# tests/install/t_*.py prints one PASS/FAIL line per check; this script runs
# them all, counts the lines, and ends with "N passed, N failed".  Nothing
# touches this machine's /etc/ferry or /var/log: the tests point install.sh
# at their own files (docs/install.md, "Testing").
#   run.sh [NAME...]   only t_NAME.py (e.g. run.sh checks)
#   run.sh --native    all but t_guest.py (tests/run-all.sh runs that one
#                      beside the other suites, as `run.sh guest`)
# FERRY_DEBS_BUILT=1: build/pkg/deb is current (run-all.sh made it once,
# before starting both halves), so `make deb` is not run again.
# Needs build/bin/ferry-control and ferry-agent (make userspace).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
export BUILD=$build
# tinyproxy, the AWS command line and boto3 (agent), curl (control), dkms;
# QEMU and debootstrap for the Debian guest of t_guest.py, which installs
# the packages of make deb.
"$root/scripts/deps.sh" agent control dkms vm
[ "${FERRY_DEBS_BUILT:-}" = 1 ] ||
	make -C "$root" -s deb >/dev/null || echo "FAIL install: make deb failed"
shopt -s nullglob
if [ "${1:-}" = --native ]; then
	tests=()
	for f in "$root"/tests/install/t_*.py; do
		[ "$f" = "$root/tests/install/t_guest.py" ] || tests+=("$f")
	done
elif [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$root/tests/install/t_$n.py"); done
else
	# t_guest (a Debian guest: boot, install.sh, DKMS under emulation)
	# first, so that the native files run beside it.
	tests=("$root/tests/install/t_guest.py")
	for f in "$root"/tests/install/t_*.py; do
		[ "$f" = "$root/tests/install/t_guest.py" ] || tests+=("$f")
	done
fi
# Two files at once: each has its own ferry-control on a port the kernel
# picks and its own files; the guest's daemons are on fixed ports no
# other file uses (docs/testing.md).
export FERRY_PY_JOBS=${FERRY_PY_JOBS:-2}
exec "$root/tests/lib/run-py-tests.sh" install "$root/tests/install" \
	"${tests[@]}"
