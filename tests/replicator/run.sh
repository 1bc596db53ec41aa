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
py=/usr/bin/python3

passed=0 failed=0
out=$(mktemp "${TMPDIR:-/tmp}/ferry-replicator-test.XXXXXX")
trap 'rm -f "$out"' EXIT

shopt -s nullglob
if [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$root/tests/replicator/t_$n.py"); done
else
	tests=("$root"/tests/replicator/t_*.py)
fi
if [ ${#tests[@]} -eq 0 ]; then
	echo "FAIL replicator: no tests/replicator/t_*.py"
	failed=1
fi
for t in "${tests[@]}"; do
	name=$(basename "$t" .py)
	(cd "$root/tests/replicator" && timeout 600 "$py" "$t") >"$out" 2>&1
	rc=$?
	p=$(grep -c '^PASS ' "$out")
	f=$(grep -c '^FAIL ' "$out")
	grep -E '^(PASS|FAIL) ' "$out" | sed "s/^\(PASS\|FAIL\) /\1 $name: /"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: exit code $rc$([ "$rc" -eq 124 ] && echo ' (timed out after 600 s)')"
		f=1
	fi
	if [ "$f" -ne 0 ]; then
		echo "    --- output of $name ---"
		grep -vE '^PASS ' "$out" | tail -n 40 | sed 's/^/    /'
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
