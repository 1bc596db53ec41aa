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
# Debian's python3, which has boto3 (a python3 earlier on PATH may not).
py=/usr/bin/python3

"$root/scripts/deps.sh" control >/dev/null || {
	echo "FAIL control: cannot install the test clients (scripts/deps.sh control)"
	echo "0 passed, 1 failed"
	exit 1
}

passed=0 failed=0
out=$(mktemp "${TMPDIR:-/tmp}/ferry-control-test.XXXXXX")
trap 'rm -f "$out"' EXIT

shopt -s nullglob
tests=("$root"/tests/control/t_*.py)
if [ ${#tests[@]} -eq 0 ]; then
	echo "FAIL control: no tests/control/t_*.py"
	failed=1
fi
for t in "${tests[@]}"; do
	name=$(basename "$t" .py)
	(cd "$root" && timeout 600 "$py" "$t") >"$out" 2>&1
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
