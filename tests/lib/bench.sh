# shellcheck shell=bash
# tests/lib/bench.sh: the machine-readable figures of the benchmarks,
# sourced by tests/*/bench*.sh (tests/lib/benchfig.py is the same for the
# Python ones).  Each figure is one line
#   BENCH component=C name=N value=V unit="U" baseline=B ratio=R goal="G" met=M label="L"
# printed to stdout and appended to $BUILD/bench/STEP.figures, which
# tests/bench/report.py turns into build/bench/report.md.  value and
# baseline are measured in the same run; ratio is value / baseline; goal
# says what it applies to ("ratio >= 0.9", "< 50 ms"); met is yes, no, or
# - (no goal: reported only).  Empty fields are written as "-".

# bench_init STEP: start STEP's figures file afresh (no figure of an
# earlier run may be read as this run's).
bench_init() {
	BENCH_FIGURES="${BUILD:-build}/bench/$1.figures"
	mkdir -p "$(dirname "$BENCH_FIGURES")"
	: >"$BENCH_FIGURES"
}

# bench_figure COMPONENT NAME VALUE UNIT BASELINE RATIO GOAL MET LABEL
bench_figure() {
	local line
	line=$(printf 'BENCH component=%s name=%s value=%s unit="%s" baseline=%s ratio=%s goal="%s" met=%s label="%s"' \
		"${1:--}" "${2:--}" "${3:--}" "${4:--}" "${5:--}" "${6:--}" \
		"${7:--}" "${8:--}" "${9:--}")
	echo "$line"
	[ -z "${BENCH_FIGURES:-}" ] || echo "$line" >>"$BENCH_FIGURES"
}
