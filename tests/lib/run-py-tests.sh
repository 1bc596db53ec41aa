#!/bin/bash
# tests/lib/run-py-tests.sh SUITE DIR TEST.py...: run Python integration
# test files with Debian's /usr/bin/python3 (it has boto3), each from DIR
# and bounded to 600 s (or its "# ferry-timeout: SECS" line).  Each file
# prints one "PASS name" / "FAIL name: why" line per check; this script
# prefixes them with the file's name,
# shows the tail of a failing file's output, counts a file that exits
# non-zero without a FAIL line as one failure, and ends with "N passed,
# N failed" (exit 1 if any failed).  Shared by tests/control/run.sh and
# tests/replicator/run.sh.
set -u

suite=$1 dir=$2
shift 2
py=/usr/bin/python3
passed=0 failed=0
out=$(mktemp "${TMPDIR:-/tmp}/ferry-$suite-test.XXXXXX")
trap 'rm -f "$out"' EXIT

if [ $# -eq 0 ]; then
	echo "FAIL $suite: no test files"
	failed=1
fi
for t in "$@"; do
	name=$(basename "$t" .py)
	# A file may ask for more time with a line "# ferry-timeout: SECS".
	limit=$(sed -n 's/^# ferry-timeout: \([0-9][0-9]*\).*/\1/p' "$t" | head -n 1)
	limit=${limit:-600}
	(cd "$dir" && timeout "$limit" "$py" "$t") >"$out" 2>&1
	rc=$?
	p=$(grep -c '^PASS ' "$out")
	f=$(grep -c '^FAIL ' "$out")
	grep -E '^(PASS|FAIL) ' "$out" | sed "s/^\(PASS\|FAIL\) /\1 $name: /"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: exit code $rc$([ "$rc" -eq 124 ] && echo " (timed out after $limit s)")"
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
