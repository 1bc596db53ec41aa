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
# FERRY_PY_JOBS=N (default 1) runs N files at once, for suites whose files
# share nothing (their own daemons on ports the kernel picks, their own
# temporary directories); results are still printed in file order.
set -u

suite=$1 dir=$2
shift 2
py=/usr/bin/python3
passed=0 failed=0
jobs=${FERRY_PY_JOBS:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-$suite-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ $# -eq 0 ]; then
	echo "FAIL $suite: no test files"
	failed=1
fi

# Run file number I ($1) in the background; its output and exit code
# land in $work/I.out and $work/I.rc.
start() {
	local t=$2 limit
	# A file may ask for more time with a line "# ferry-timeout: SECS".
	limit=$(sed -n 's/^# ferry-timeout: \([0-9][0-9]*\).*/\1/p' "$t" | head -n 1)
	limit=${limit:-600}
	echo "$limit" >"$work/$1.limit"
	( (cd "$dir" && timeout "$limit" "$py" "$t") >"$work/$1.out" 2>&1
	  echo $? >"$work/$1.rc.new" && mv "$work/$1.rc.new" "$work/$1.rc" ) &
}

# Count and print the results of file number I ($1), named $2.
report() {
	local out=$work/$1.out name=$2 rc p f limit
	rc=$(cat "$work/$1.rc")
	limit=$(cat "$work/$1.limit")
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
}

files=("$@")
next=0 shown=0 running=0
while [ "$shown" -lt ${#files[@]} ]; do
	while [ "$next" -lt ${#files[@]} ] && [ "$running" -lt "$jobs" ]; do
		start "$next" "${files[$next]}"
		next=$((next + 1))
		running=$((running + 1))
	done
	wait -n 2>/dev/null || :
	running=0
	for ((i = shown; i < next; i++)); do
		[ -f "$work/$i.rc" ] || running=$((running + 1))
	done
	while [ "$shown" -lt "$next" ] && [ -f "$work/$shown.rc" ]; do
		report "$shown" "$(basename "${files[$shown]}" .py)"
		shown=$((shown + 1))
	done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
