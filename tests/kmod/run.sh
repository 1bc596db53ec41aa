#!/bin/bash
# tests/kmod/run.sh [SUITE...] — the kernel module tests, in QEMU guests.
#
# For each suite (default: $KMOD_SUITES, or bookworm trixie
# trixie-backports):
#   1. build ferry.ko for the suite's Debian cloud kernel
#      (scripts/vm/build-kmod.sh -> $BUILD/kmod/SUITE/ferry.ko);
#   2. build one initramfs with it, the test binaries $BUILD/tests/kmod/bin/*
#      and $BUILD/bin/ferryctl (whatever of them exists: `make userspace`
#      builds them) and the guest tests tests/kmod/guest/;
#   3. boot one guest per tests/kmod/guest/NAME.sh (scripts/vm/run.sh),
#      every suite's guests in one pool, longest timeout first.
#
# A guest test has a header line in its first 20 lines (defaults shown;
# any key may be left out, a .sh file without the line is a helper such as
# lib.sh, not a test):
#   # ferry-vm: disks=256M,64M mem=1G smp=2 timeout=600
# and may add modules=name,name (kernel modules beyond the defaults),
# suites=bookworm,... (run only there) and tcg=single (QEMU runs the vCPUs
# in turn on one thread: docs/testing.md, "The lifecycle guest"). disks=none means no disk.
# boots=N boots the guest N times on the same disks (a test that resets
# the machine: see --boots in scripts/vm/run.sh).
# A file tests/kmod/guest/NAME.host next to it is run on the host (bash)
# while the guest runs, with $FERRY_QMP etc. (see scripts/vm/run.sh).
#
# Environment: FERRY_TESTS="name ..." selects tests; FERRY_VM_ARGS gives
# them arguments (ferry.args); FERRY_VM_BOOTS and FERRY_VM_TIMEOUT replace
# their headers' boots= and timeout= (make soak); FERRY_VM_JOBS (default
# 2) guests run at once: the agent's guests spend much of their time
# waiting on the host's daemons, so on 2 cores the bookworm suite takes
# 429 s at 2 against about 700 s at 1 (FERRY_VM_JOBS=1 for one at a time);
# FERRY_VERBOSE=1 streams the guests' consoles; BUILD (default build).
# Prints PASS/FAIL lines, then "N passed, N failed"; exits 1 if any failed.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/../../scripts/vm/lib.sh"
cd "$FERRY_ROOT"

# FERRY_GUEST_DIR: another directory of guest tests (to try the harness).
GUEST_DIR=${FERRY_GUEST_DIR:-tests/kmod/guest}
LOGS="$BUILD/vm-logs"
PASSED=0
FAILED=0

# Count and print the PASS/FAIL lines of a finished test's output file.
report() {
	local line
	while IFS= read -r line; do
		case $line in
		PASS\ *) PASSED=$((PASSED + 1)) ;;
		FAIL\ *) FAILED=$((FAILED + 1)) ;;
		esac
		echo "$line"
	done <"$1"
}

# Value of KEY in a test's "# ferry-vm:" header, or DEFAULT.
header_value() {
	local file=$1 key=$2 default=$3 v
	v=$(head -n 20 "$file" | sed -n 's/^# *ferry-vm://p' | head -n1 |
		tr -s '[:blank:]' '\n' | sed -n "s/^$key=//p" | head -n1)
	echo "${v:-$default}"
}

# The tests to run: the guest scripts with a "# ferry-vm:" header (others,
# like lib.sh, are helpers), or those of them named in FERRY_TESTS.
list_tests() {
	local f name
	for f in "$GUEST_DIR"/*.sh; do
		[ -f "$f" ] || continue
		name=$(basename "$f" .sh)
		if ! head -n 20 "$f" | grep -q '^# *ferry-vm:'; then
			[ -z "${FERRY_TESTS:-}" ] || ! [[ " $FERRY_TESTS " == *" $name "* ]] ||
				info "$name.sh has no '# ferry-vm:' header line: not a test"
			continue
		fi
		if [ -n "${FERRY_TESTS:-}" ] && ! [[ " $FERRY_TESTS " == *" $name "* ]]; then
			continue
		fi
		echo "$name"
	done
}

# Boot the guest of test NAME; its PASS/FAIL lines go to OUT.
run_one() {
	local suite=$1 name=$2 initrd=$3 out=$4 f d
	local -a opts=()
	f="$GUEST_DIR/$name.sh"
	opts+=(--mem "$(header_value "$f" mem 1G)")
	opts+=(--smp "$(header_value "$f" smp 2)")
	opts+=(--tcg-thread "$(header_value "$f" tcg multi)")
	opts+=(--timeout "${FERRY_VM_TIMEOUT:-$(header_value "$f" timeout 600)}")
	opts+=(--boots "${FERRY_VM_BOOTS:-$(header_value "$f" boots 1)}")
	[ -z "${FERRY_VM_ARGS:-}" ] || opts+=(--args "$FERRY_VM_ARGS")
	d=$(header_value "$f" disks 256M,64M)
	if [ "$d" != none ]; then
		for d in ${d//,/ }; do
			opts+=(--disk "$d")
		done
	fi
	[ ! -f "$GUEST_DIR/$name.host" ] || opts+=(--host "bash $(readlink -f "$GUEST_DIR/$name.host")")
	scripts/vm/run.sh --suite "$suite" --initrd "$initrd" --test "$name" \
		--log "$LOGS/$suite-$name.log" "${opts[@]}" >"$out" 2>&1 || :
}

# Prepare SUITE's initramfs and add its tests to TASKS ("timeout suite
# name initrd" lines), or count a FAIL if it cannot be built.
prepare_suite() {
	local suite=$1 name initrd only name_mods extra=''
	local -a tests=()
	mkdir -p "$LOGS"
	for name in $(list_tests); do
		only=$(header_value "$GUEST_DIR/$name.sh" suites '')
		if [ -n "$only" ] && ! [[ ",$only," == *",$suite,"* ]]; then
			continue
		fi
		tests+=("$name")
		name_mods=$(header_value "$GUEST_DIR/$name.sh" modules '')
		extra="$extra ${name_mods//,/ }"
	done
	if [ ${#tests[@]} -eq 0 ]; then
		info "$suite: no guest tests to run in $GUEST_DIR"
		return
	fi
	initrd="$BUILD/vm/$suite.cpio.gz"
	if ! guest_image "$suite" "$initrd" "$GUEST_DIR" "$LOGS/$suite-prepare.out" \
		"$extra" 2>"$LOGS/$suite-prepare.err"; then
		echo "FAIL $suite/prepare: $(cat "$LOGS/$suite-prepare.err") $(tail -n 25 "$LOGS/$suite-prepare.out")"
		FAILED=$((FAILED + 1))
		return
	fi
	for name in "${tests[@]}"; do
		TASKS+=("$(header_value "$GUEST_DIR/$name.sh" timeout 600) $suite $name $initrd")
	done
}

main() {
	local suite t name initrd out jobs=${FERRY_VM_JOBS:-2} running=0
	local -a suites=("$@") TASKS=() order=()
	[ ${#suites[@]} -gt 0 ] || read -r -a suites <<<"${KMOD_SUITES:-bookworm trixie trixie-backports}"
	scripts/deps.sh build vm
	for suite in "${suites[@]}"; do
		info "suite $suite"
		prepare_suite "$suite"
	done
	# One pool for every suite's guests, the longest (by their timeout)
	# first: a suite's last long test does not hold a slot idle while
	# the next suite waits.  Results are printed in suite order.
	mapfile -t order < <(printf '%s\n' "${TASKS[@]}" | sort -s -k1,1nr)
	for t in "${order[@]}"; do
		read -r _ suite name initrd <<<"$t"
		out="$LOGS/$suite-$name.out"
		if [ "$jobs" -le 1 ]; then
			run_one "$suite" "$name" "$initrd" "$out"
			report "$out"
			continue
		fi
		run_one "$suite" "$name" "$initrd" "$out" &
		running=$((running + 1))
		if [ "$running" -ge "$jobs" ]; then
			wait -n || :
			running=$((running - 1))
		fi
	done
	if [ "$jobs" -gt 1 ]; then
		wait || :
		for t in "${TASKS[@]}"; do
			read -r _ suite name _ <<<"$t"
			report "$LOGS/$suite-$name.out"
		done
	fi
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

{
	main "$@"
	exit
}
