#!/bin/bash
# tests/replicator/run.sh: ferry-replicator's integration tests.  Each
# tests/replicator/t_*.py starts its own ferry-replicator on loopback
# (through tests/replicator/repltest.py) with a fresh data directory and
# certificates from `ferry-control certs issue`, and drives it with
# build/tests/replicator/ferry-wire-client, the test client on the agent's
# codec; it prints one PASS/FAIL line per check.  This script runs them
# all, counts the lines, and ends with "N passed, N failed".  A test file
# that exits non-zero without printing a FAIL line counts as one failure.
#   run.sh [NAME...]   only t_NAME.py (e.g. run.sh sync refuse)
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
export BUILD=$build
shopt -s nullglob
if [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$root/tests/replicator/t_$n.py"); done
else
	tests=("$root"/tests/replicator/t_*.py)
fi
exec "$root/tests/lib/run-py-tests.sh" replicator "$root/tests/replicator" \
	"${tests[@]}"
