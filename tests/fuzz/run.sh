#!/bin/bash
# tests/fuzz/run.sh [--seconds N]: the libFuzzer target of ferry-control's
# request path, build/fuzz/fuzz_request (make fuzz-bin).
#
# Without arguments (the test suite): run every file of the committed
# corpus, tests/fuzz/corpus/request/, once; one PASS/FAIL line per file
# and "N passed, N failed".  A file fails if the target crashes on it or a
# sanitizer (ASan, LeakSanitizer, UBSan) reports; the files after it still
# run.
#
# --seconds N (make fuzz): fuzz for N seconds on build/fuzz/corpus, a copy
# of the committed corpus that keeps what earlier runs found; prints one
# line: executions, executions/s, coverage, corpus size, and any crash,
# leak or timeout with the path of its reproducer (build/fuzz/artifacts/).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/build/fuzz/fuzz_request
corpus=$root/tests/fuzz/corpus/request
dict=$root/tests/fuzz/request.dict
build=$root/build/fuzz
seconds=

while [ $# -gt 0 ]; do
	case $1 in
	--seconds)
		seconds=${2:-}
		shift 2 || break
		;;
	-h | --help)
		sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument '$1' (see --help)" >&2
		exit 2
		;;
	esac
done

if [ ! -x "$bin" ]; then
	echo "FAIL fuzz: $bin is missing: run 'make fuzz-bin' first"
	echo "0 passed, 1 failed"
	exit 1
fi
log=$(mktemp "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX")
trap 'rm -f "$log"' EXIT
cd "$root" || exit 1

if [ -n "$seconds" ]; then
	case $seconds in
	'' | *[!0-9]*)
		echo "run.sh: --seconds wants a whole number" >&2
		exit 2
		;;
	esac
	mkdir -p "$build/corpus" "$build/artifacts"
	cp -n "$corpus"/* "$build/corpus/"
	# -timeout: an input slower than 10 s is a bug; -rss_limit_mb: as
	# libFuzzer's default, said here so the result line can name it.
	"$bin" -max_len=65536 -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -dict="$dict" -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/" "$build/corpus" \
		>"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1)
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
		tail -n 1)
	what=$(grep -Eo 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+[^(]*|runtime error: .*' "$log" |
		head -n 1)
	if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
		echo "fuzz: PASS ${seconds}s, ${execs:-?} runs (${rate:-?}/s), ${cov:-no coverage line}; log in $build/last.log"
		cp "$log" "$build/last.log"
		exit 0
	fi
	cp "$log" "$build/last.log"
	echo "fuzz: FAIL after ${execs:-?} runs: ${what:-exit code $rc}; reproduce with $bin ${artifact:-(no artifact)}; log in $build/last.log"
	exit 1
fi

# Regression: each committed file once.  libFuzzer runs the files given
# in order and stops at the first failure, so start again after it.
mapfile -t files < <(find "$corpus" -maxdepth 1 -type f | sort)
pass=0 fail=0 i=0
while [ "$i" -lt "${#files[@]}" ]; do
	"$bin" -runs=1 -timeout=10 -rss_limit_mb=2048 \
		"${files[@]:$i}" >"$log" 2>&1
	rc=$?
	done_now=$(grep -c '^Executed ' "$log")
	for ((k = 0; k < done_now; k++)); do
		echo "PASS fuzz corpus $(basename "${files[$((i + k))]}")"
		pass=$((pass + 1))
	done
	i=$((i + done_now))
	[ "$rc" -eq 0 ] && [ "$i" -ge "${#files[@]}" ] && break
	if [ "$rc" -eq 0 ]; then
		echo "FAIL fuzz corpus: the target stopped after $i of ${#files[@]} files without an error"
		fail=$((fail + 1))
		break
	fi
	# The file being run when it died.
	what=$(grep -Eo 'ERROR: [A-Za-z]+: [a-z-]+|runtime error: .*|fuzz_request: .*' "$log" | head -n 1)
	if [ "$i" -lt "${#files[@]}" ]; then
		echo "FAIL fuzz corpus $(basename "${files[$i]}"): ${what:-exit code $rc} (reproduce: $bin ${files[$i]})"
	else
		echo "FAIL fuzz corpus: exit code $rc after the last file: ${what:-see $bin}"
	fi
	fail=$((fail + 1))
	i=$((i + 1))
	sed -n '1,60p' "$log" | grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' | head -n 20 >&2
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
