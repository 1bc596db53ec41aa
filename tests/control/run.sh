#!/bin/bash
# tests/control/run.sh: ferry-control's integration tests.  Each
# tests/control/t_*.py starts its own ferry-control on loopback (through
# tests/control/ferrytest.py) and drives it with Debian's aws command
# line, boto3 and raw signed requests; it prints one PASS/FAIL line per
# check.  This script runs them all, counts the lines, and ends with
# "N passed, N failed".  A test file that exits non-zero without
# printing a FAIL line counts as one failure.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
export FERRY_CONTROL_BIN=${FERRY_CONTROL_BIN:-$build/bin/ferry-control}

"$root/scripts/deps.sh" control >/dev/null || {
	echo "FAIL control: cannot install the test clients (scripts/deps.sh control)"
	echo "0 passed, 1 failed"
	exit 1
}

shopt -s nullglob
# Two files at once: each runs its own ferry-control on a port the kernel
# picks, and most of their time is the aws CLI starting up.
export FERRY_PY_JOBS=${FERRY_PY_JOBS:-2}
exec "$root/tests/lib/run-py-tests.sh" control "$root" "$root"/tests/control/t_*.py
