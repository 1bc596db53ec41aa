#!/bin/bash
# tests/unit/run.sh: run every native unit test twice, as built normally
# ($BUILD/tests/unit/NAME) and with ASan+UBSan ($BUILD/tests/unit/san/NAME).
# Prints "PASS NAME" / "FAIL NAME: reason" per binary (NAME[san] for the
# sanitizer build), the output of each failing one, and finally
# "N passed, N failed".  Exits 1 if anything failed.
#
# The test list comes from tests/unit/test_*.c, so a test that was not
# built is reported as a failure rather than silently skipped.  Build
# first: make userspace (or make unit-tests).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
# Leaks are bugs too; one UBSan report fails the test.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0 failed=0
out=$(mktemp "${TMPDIR:-/tmp}/ferry-unit.XXXXXX")
trap 'rm -f "$out"' EXIT

run_one() {
	local label=$1 bin=$2 rc
	if [ ! -x "$bin" ]; then
		echo "FAIL $label: $bin is not built (run: make userspace)"
		failed=$((failed + 1))
		return
	fi
	# Run from the repository root, bounded in time.
	(cd "$root" && timeout 300 "$bin") >"$out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "PASS $label"
		passed=$((passed + 1))
	else
		local why="exit code $rc"
		[ "$rc" -eq 124 ] && why="timed out after 300s"
		echo "FAIL $label: $why"
		sed 's/^/    /' "$out"
		failed=$((failed + 1))
	fi
}

shopt -s nullglob
srcs=("$root"/tests/unit/test_*.c)
if [ ${#srcs[@]} -eq 0 ]; then
	echo "FAIL unit: no tests/unit/test_*.c found"
	failed=1
fi
for src in "${srcs[@]}"; do
	name=$(basename "$src" .c)
	run_one "$name" "$build/tests/unit/$name"
	run_one "$name[san]" "$build/tests/unit/san/$name"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
