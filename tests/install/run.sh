#!/bin/bash
# tests/install/run.sh: scripts/install.sh's tests, run as root on this
# machine against a real ferry-control (and tinyproxy) on loopback.  Each
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
# tinyproxy, the AWS command line and boto3 (agent), curl (control), dkms.
"$root/scripts/deps.sh" agent control dkms
shopt -s nullglob
if [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$root/tests/install/t_$n.py"); done
else
	tests=("$root"/tests/install/t_*.py)
fi
exec "$root/tests/lib/run-py-tests.sh" install "$root/tests/install" \
	"${tests[@]}"
