#!/bin/bash
# tests/kmod/bench.sh [SUITE...] — cost of change tracking (make bench-kmod).
#
# In a QEMU guest of each suite (default: $FERRY_BENCH_SUITES or bookworm;
# one suite takes about 2 x ROUNDS x 2 x RUNTIME seconds plus ~2 minutes):
#   - fio 4 KiB random writes, iodepth 32, O_DIRECT, io_uring (libaio if
#     io_uring fails), time-based, on a memory-backed null_blk device and
#     on a virtio disk, alternating tracking off / on (ferryctl tracker
#     attach) in ABBA order: IOPS off, on (means) and the ratio on/off
#     (median of the per-round ratios; goal >= 0.97);
#   - the module's memory (`ferryctl tracker stats` memory_bytes) on a
#     1 TiB data-less null_blk disk: clean, 1 % written sequentially, 0.1 %
#     of blocks written at random, one block in every 64 MiB (every bitmap
#     chunk touched: the worst case), against a flat bitmap's 32 MiB.
# Prints one line per figure and writes $BUILD/bench/kmod.md; the same
# figures as BENCH lines (tests/lib/bench.sh, component tracker) in
# $BUILD/bench/kmod.figures for make bench's report.
#
# Environment: FERRY_BENCH_RUNTIME (12 s), FERRY_BENCH_ROUNDS (5),
# FERRY_BENCH_GB (null_blk size, 1), FERRY_BENCH_BIG_GB (memory disk, 1024),
# FERRY_BENCH_DISK (virtio disk, 1G), FERRY_BENCH_STRICT=1 (exit 1 when a
# ratio misses the goal), FERRY_BENCH_REPORT_ONLY=1 (boot nothing: report
# the figures of the last run, $BUILD/vm-logs/SUITE-bench.results). TCG
# emulation makes absolute IOPS meaningless; the ratio is what to read.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/../../scripts/vm/lib.sh"
cd "$FERRY_ROOT"
# shellcheck source=tests/lib/bench.sh
. tests/lib/bench.sh

RUNTIME=${FERRY_BENCH_RUNTIME:-12}
ROUNDS=${FERRY_BENCH_ROUNDS:-5}
GB=${FERRY_BENCH_GB:-1}
BIG_GB=${FERRY_BENCH_BIG_GB:-1024}
DISK=${FERRY_BENCH_DISK:-1G}
GOAL=0.97
MD="$BUILD/bench/kmod.md"

# Value of a FERRY-BENCH figure in results file $1.
fig() {
	awk -v k="$2" '$1 == "FERRY-BENCH" && $2 == k { print $3; exit }' "$1" | tr -d '\r'
}

# Mean of the figures LABEL.MODE.* in results file $1.
mean_of() {
	tr -d '\r' <"$1" | awk -v p="$2.$3." '
		$1 == "FERRY-BENCH" && index($2, p) == 1 { s += $3; n++ }
		END { if (n) printf "%.0f", s / n }'
}

# Median over the rounds of on/off within each round: host load under TCG
# drifts between rounds, and the two runs of one round are adjacent in time
# (ABBA order), so the per-round ratio is the stable quantity.
median_ratio() {
	local res=$1 label=$2 r off on
	for ((r = 1; r <= ROUNDS; r++)); do
		off=$(fig "$res" "$label.off.$r")
		on=$(fig "$res" "$label.on.$r")
		awk -v a="$on" -v b="$off" 'BEGIN { if (b > 0) printf "%.4f\n", a / b }'
	done | sort -n | awk '{ v[NR] = $1 }
		END { if (!NR) print "nan"
		      else if (NR % 2) printf "%.3f", v[(NR + 1) / 2]
		      else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The per-round figures, for the report: "off/on off/on ...".
rounds_of() {
	local res=$1 label=$2 r out=''
	for ((r = 1; r <= ROUNDS; r++)); do
		out="$out $(fig "$res" "$label.off.$r")/$(fig "$res" "$label.on.$r")"
	done
	echo "${out# }"
}

case_text() {
	case $1 in
	clean) echo "clean" ;;
	seq1pct) echo "1 % written sequentially" ;;
	rand01pct) echo "0.1 % of 4 KiB blocks written at random" ;;
	scatter64m) echo "one 4 KiB block in every 64 MiB (worst case)" ;;
	esac
}

# Print and record the figures of one suite; return 1 if a goal is missed.
report_suite() {
	local suite=$1 res=$2 label off on ratio met rc=0 pct mem dirty
	echo "| $suite | engine $(fig "$res" engine), $(fig "$res" cpus) vCPU, ${RUNTIME}s x $ROUNDS rounds | | | |" >>"$MD"
	for label in null_blk virtio; do
		off=$(mean_of "$res" "$label" off)
		on=$(mean_of "$res" "$label" on)
		ratio=$(median_ratio "$res" "$label")
		met=$(awk -v r="$ratio" -v g="$GOAL" 'BEGIN { print (r + 0 >= g) ? "met" : "MISSED" }')
		[ "$met" = met ] || rc=1
		echo "$suite $label IOPS tracking off: $off"
		echo "$suite $label IOPS tracking on: $on"
		echo "$suite $label ratio on/off (median of $ROUNDS rounds): $ratio (goal >= $GOAL: $met)"
		echo "| | $label (off/on per round: $(rounds_of "$res" "$label")) | $off | $on | $ratio ($met) |" >>"$MD"
		# The ratio is the median of the rounds', not on / off.
		bench_figure tracker "$suite.$label.iops" "$on" IOPS "$off" \
			"$ratio" "ratio >= $GOAL" "$([ "$met" = met ] && echo yes || echo no)" \
			"$suite: fio 4 KiB random writes on $label, tracking on (baseline: off; ratio: median of $ROUNDS rounds)"
	done
	local flat case
	flat=$(fig "$res" memory.flat_bytes)
	for case in clean seq1pct rand01pct scatter64m; do
		mem=$(fig "$res" "memory.$case.memory_bytes")
		dirty=$(fig "$res" "memory.$case.dirty_blocks")
		pct=$(awk -v m="$mem" -v f="$flat" 'BEGIN { if (f > 0) printf "%.2f", 100 * m / f }')
		echo "$suite module memory on a ${BIG_GB} GiB disk, $(case_text "$case"): $mem bytes ($pct % of a flat bitmap's $flat; dirty_blocks $dirty)"
		echo "| | memory, ${BIG_GB} GiB disk, $(case_text "$case") | | | $mem bytes = $pct % of flat ($dirty blocks dirty) |" >>"$MD"
		bench_figure tracker "$suite.memory.$case" "$mem" bytes "$flat" \
			"$(awk -v m="$mem" -v f="$flat" 'BEGIN { if (f > 0) printf "%.4f", m / f }')" - - \
			"$suite: module memory, ${BIG_GB} GiB disk, $(case_text "$case") (baseline: a flat bitmap)"
	done
	echo "| | guest time: fill $(fig "$res" seconds.fill)s, IOPS runs $(fig "$res" seconds.iops)s, memory runs $(fig "$res" seconds.memory)s | | | |" >>"$MD"
	return "$rc"
}

bench_suite() {
	local suite=$1 initrd res limit
	res="$BUILD/vm-logs/$suite-bench.results"
	if [ -n "${FERRY_BENCH_REPORT_ONLY:-}" ]; then
		[ -f "$res" ] || die "no $res to report"
		report_suite "$suite" "$res"
		return
	fi
	initrd="$BUILD/vm/$suite-bench.cpio.gz"
	guest_image "$suite" "$initrd" tests/kmod/bench-guest \
		"$BUILD/vm-logs/$suite-bench-prepare.out" ||
		die "the benchmark guest for $suite could not be built (see above)"
	# Two devices x rounds x two modes x runtime, fills, memory runs.
	limit=$((2 * ROUNDS * 2 * (RUNTIME + 10) + 300))
	info "$suite: benchmark guest, up to $((limit / 60)) minutes"
	if ! scripts/vm/run.sh --suite "$suite" --initrd "$initrd" --test bench \
		--disk "$DISK" --mem "$((GB + 2))G" --smp 2 --timeout "$limit" \
		--args "$RUNTIME $ROUNDS $GB $BIG_GB" \
		--log "$BUILD/vm-logs/$suite-bench.log"; then
		echo "FAIL $suite/bench: the benchmark guest failed (see above)"
		return 2
	fi
	report_suite "$suite" "$res"
}

main() {
	local suite rc=0 r
	local -a suites=("$@")
	[ ${#suites[@]} -gt 0 ] || read -r -a suites <<<"${FERRY_BENCH_SUITES:-bookworm}"
	[ -n "${FERRY_BENCH_REPORT_ONLY:-}" ] || scripts/deps.sh build vm
	bench_init kmod
	{
		echo "# ferry.ko tracking overhead ($(date -u +%Y-%m-%d))"
		echo
		echo "fio randwrite 4 KiB, iodepth 32, direct, ${RUNTIME}s per run; QEMU TCG"
		echo "guests (software emulation: compare the columns, not the absolute IOPS)."
		echo "Goal: IOPS with tracking >= $GOAL x without."
		echo
		echo "| kernel | device | IOPS off | IOPS on | on/off |"
		echo "|---|---|---:|---:|---|"
	} >"$MD"
	for suite in "${suites[@]}"; do
		r=0
		bench_suite "$suite" || r=$?
		case $r in
		0) ;;
		1) [ -z "${FERRY_BENCH_STRICT:-}" ] || rc=1 ;; # goal missed
		*) rc=1 ;;                                      # no figures
		esac
	done
	echo "report: $MD"
	return "$rc"
}

# One compound command, parsed whole before it runs: bash reads a script
# as it goes, and an edit of this file during a run must not be read.
{
	main "$@"
	exit
}
