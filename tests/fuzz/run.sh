#!/bin/bash
# tests/fuzz/run.sh [--seconds N] [TARGET...]: the libFuzzer targets
# (make fuzz-bin): build/fuzz/fuzz_request, ferry-control's request path,
# and build/fuzz/fuzz_wire, the agent-replicator frame decoder.  TARGET is
# request or wire; all by default.
#
# Without --seconds (the test suite): run every file of each committed
# corpus, tests/fuzz/corpus/TARGET/, once; one PASS/FAIL line per file
# and "N passed, N failed".  A file fails if the target crashes on it or a
# sanitizer (ASan, LeakSanitizer, UBSan) reports; the files after it still
# run.
#
# --seconds N (make fuzz): fuzz each target for N seconds on
# build/fuzz/TARGET/corpus, a copy
# of the committed corpus that keeps what earlier runs found; prints one
# line: executions, executions/s, coverage, corpus size, and any crash,
# leak or timeout with the path of its reproducer (build/fuzz/artifacts/).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=
targets=()

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
	request | wire)
		targets+=("$1")
		shift
		;;
	*)
		echo "run.sh: unknown argument '$1' (see --help)" >&2
		exit 2
		;;
	esac
done
[ ${#targets[@]} -gt 0 ] || targets=(request wire)

log=$(mktemp "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX")
trap 'rm -f "$log"' EXIT
cd "$root" || exit 1
case $seconds in
'' | [0-9] | [0-9]*[0-9]) ;;
*)
	echo "run.sh: --seconds wants a whole number" >&2
	exit 2
	;;
esac

# fuzz_for TARGET: one bounded fuzzing run; 0 if nothing was found.
fuzz_for() {
	local t=$1 bin=$root/build/fuzz/fuzz_$1 corpus=$root/tests/fuzz/corpus/$1
	local dict=$root/tests/fuzz/$1.dict build=$root/build/fuzz/$1
	local rc execs rate cov artifact what
	if [ ! -x "$bin" ]; then
		echo "fuzz $t: FAIL: $bin is missing: run 'make fuzz-bin' first"
		return 1
	fi
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
		echo "fuzz $t: PASS ${seconds}s, ${execs:-?} runs (${rate:-?}/s), ${cov:-no coverage line}; log in $build/last.log"
		cp "$log" "$build/last.log"
		return 0
	fi
	cp "$log" "$build/last.log"
	echo "fuzz $t: FAIL after ${execs:-?} runs: ${what:-exit code $rc}; reproduce with $bin ${artifact:-(no artifact)}; log in $build/last.log"
	return 1
}

if [ -n "$seconds" ]; then
	rc=0
	for t in "${targets[@]}"; do
		fuzz_for "$t" || rc=1
	done
	exit $rc
fi

# Regression: each committed file once.  libFuzzer runs the files given
# in order and stops at the first failure, so start again after it.
pass=0 fail=0
regress() {
local t=$1 bin=$root/build/fuzz/fuzz_$1 corpus=$root/tests/fuzz/corpus/$1
local files i rc done_now what k
if [ ! -x "$bin" ]; then
	echo "FAIL fuzz $t: $bin is missing: run 'make fuzz-bin' first"
	fail=$((fail + 1))
	return
fi
mapfile -t files < <(find "$corpus" -maxdepth 1 -type f | sort)
i=0
while [ "$i" -lt "${#files[@]}" ]; do
	"$bin" -runs=1 -timeout=10 -rss_limit_mb=2048 \
		"${files[@]:$i}" >"$log" 2>&1
	rc=$?
	done_now=$(grep -c '^Executed ' "$log")
	for ((k = 0; k < done_now; k++)); do
		echo "PASS fuzz $t corpus $(basename "${files[$((i + k))]}")"
		pass=$((pass + 1))
	done
	i=$((i + done_now))
	[ "$rc" -eq 0 ] && [ "$i" -ge "${#files[@]}" ] && break
	if [ "$rc" -eq 0 ]; then
		echo "FAIL fuzz $t corpus: the target stopped after $i of ${#files[@]} files without an error"
		fail=$((fail + 1))
		break
	fi
	# The file being run when it died.
	what=$(grep -Eo 'ERROR: [A-Za-z]+: [a-z-]+|runtime error: .*|fuzz_[a-z]+: .*' "$log" | head -n 1)
	if [ "$i" -lt "${#files[@]}" ]; then
		echo "FAIL fuzz $t corpus $(basename "${files[$i]}"): ${what:-exit code $rc} (reproduce: $bin ${files[$i]})"
	else
		echo "FAIL fuzz $t corpus: exit code $rc after the last file: ${what:-see $bin}"
	fi
	fail=$((fail + 1))
	i=$((i + 1))
	sed -n '1,60p' "$log" | grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' | head -n 20 >&2
done
}
for t in "${targets[@]}"; do
	regress "$t"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
