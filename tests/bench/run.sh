#!/bin/bash
# tests/bench/run.sh — make bench: every component benchmark, then the
# report.
#
# Runs the steps one after the other (two at once would measure each
# other), each as its own make target so that one failing does not stop
# the rest:
#   kmod        make bench-kmod        ferry.ko's overhead, QEMU guest
#   control     make bench-control     ferry-control heartbeats
#   replicator  make bench-replicator  ferry-replicator ingest
#   agent       make bench-agent-sync  ferry-agent initial sync, RSS
#   agent-lag   make bench-agent-lag   ferry-agent lag, QEMU guest
#   baseline    make bench-baseline    ferry against dd | openssl
# Each step's output goes to stderr and to $BUILD/bench/logs/STEP.log;
# its figures (BENCH lines, tests/lib/bench.sh) to $BUILD/bench/
# STEP.figures.  Then tests/bench/report.py writes $BUILD/bench/report.md
# and prints one line per figure on stdout (so `make bench 2>/dev/null`
# shows only those).  Exit 1 if a step failed or gave no figures; a
# missed goal is reported, not an error (FERRY_BENCH_STRICT=1 makes the
# steps themselves fail on one).
#
# Environment: FERRY_BENCH_STEPS (the steps above, in that order),
# FERRY_BENCH_SKIP (steps to leave out, reported as skipped), and each
# step's own FERRY_BENCH_* variables.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
OUT="$BUILD/bench"
STEPS=${FERRY_BENCH_STEPS:-kmod control replicator agent agent-lag baseline}
SKIP=" $(tr ',' ' ' <<<"${FERRY_BENCH_SKIP:-}") "

target_of() {
	case $1 in
	kmod | control | replicator | baseline) echo "bench-$1" ;;
	agent) echo bench-agent-sync ;;
	agent-lag) echo bench-agent-lag ;;
	*) return 1 ;;
	esac
}

# make -n bench still runs this script (its recipe names $(MAKE)): list
# the steps and leave the last run's figures alone.
flags=${MAKEFLAGS:-}
flags=${flags%% *}
case $flags in -* | *=*) flags= ;; esac
if [[ $flags == *n* ]]; then
	for step in $(tr ',' ' ' <<<"$STEPS"); do
		echo "bench: $step: $MAKE $(target_of "$step" || echo '?')"
	done
	exit 0
fi

mkdir -p "$OUT/logs"
# Only this run's figures may reach the report.
rm -f "$OUT"/*.figures "$OUT/status"
{
	echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "loadavg_start $(cut -d' ' -f1-3 /proc/loadavg)"
	# What ran: the tree may change while the steps run.
	echo "git_start $(git rev-parse --short HEAD 2>/dev/null)$(
		git status --porcelain --untracked-files=no 2>/dev/null |
			grep -q . && echo +changes)"
} >"$OUT/facts"

for step in $(tr ',' ' ' <<<"$STEPS"); do
	if ! target=$(target_of "$step"); then
		echo "bench: unknown step '$step' in FERRY_BENCH_STEPS" >&2
		echo "$step failed 2 0 unknown" >>"$OUT/status"
		continue
	fi
	if [[ $SKIP == *" $step "* ]]; then
		echo "bench: $step skipped (FERRY_BENCH_SKIP)" >&2
		echo "$step skipped - 0 FERRY_BENCH_SKIP" >>"$OUT/status"
		continue
	fi
	echo "bench: == $step ($MAKE $target) ==" >&2
	t0=$(date +%s)
	"$MAKE" --no-print-directory "$target" BUILD="$BUILD" 2>&1 |
		tee "$OUT/logs/$step.log" >&2
	rc=${PIPESTATUS[0]}
	secs=$(($(date +%s) - t0))
	if [ "$rc" -eq 0 ]; then
		echo "$step ok 0 $secs" >>"$OUT/status"
	else
		echo "bench: $step failed (exit $rc), the others go on" >&2
		echo "$step failed $rc $secs" >>"$OUT/status"
	fi
done
echo "loadavg_end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/facts"

BUILD=$BUILD /usr/bin/python3 tests/bench/report.py
