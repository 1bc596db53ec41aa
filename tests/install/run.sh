#!/bin/bash
# tests/install/run.sh: scripts/install.sh's tests, run as root on this
# machine against a real ferry-control (and tinyproxy) on loopback, and
# install.sh with uninstall.sh in a Debian guest (t_guest.py).  Each
# tests/install/t_*.py prints one PASS/FAIL line per check; this script runs
# them all, counts the lines, and ends with "N passed, N failed".  Nothing
# touches this machine's /etc/ferry or /var/log: the tests point install.sh
# at their own files (docs/install.md, "Testing").
#   run.sh [NAME...]   only t_NAME.py (e.g. run.sh checks)
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
make -C "$root" -s deb >/dev/null || echo "FAIL install: make deb failed"
shopt -s nullglob
if [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$root/tests/install/t_$n.py"); done
else
	tests=("$root"/tests/install/t_*.py)
fi
exec "$root/tests/lib/run-py-tests.sh" install "$root/tests/install" \
	"${tests[@]}"
