#!/bin/bash
# tests/agent/run.sh: ferry-agent's native tests (root, loop devices, and
# ferry-control / ferry-replicator on loopback).  Each tests/agent/t_*.py
# prints one PASS/FAIL line per check; this script runs them all, counts
# the lines, and ends with "N passed, N failed".  The agent's tests with
# the real module run in QEMU guests (tests/kmod/guest/agent_*.sh).
#   run.sh [NAME...]   only t_NAME.py (e.g. run.sh freeze)
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
export BUILD=$build
"$root/scripts/deps.sh" agent
shopt -s nullglob
if [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$root/tests/agent/t_$n.py"); done
else
	tests=("$root"/tests/agent/t_*.py)
fi
exec "$root/tests/lib/run-py-tests.sh" agent "$root/tests/agent" \
	"${tests[@]}"
