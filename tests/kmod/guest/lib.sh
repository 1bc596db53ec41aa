# shellcheck shell=sh
# Helpers of the guest tests (tests/kmod/guest/*.sh), sourced, busybox ash.
#
# This file has no "ferry-vm:" header on purpose: it is not a test.  The
# guest runs each test as `sh /ferry/tests/NAME.sh` with the programs of
# /ferry/bin on PATH and ferry.ko at $FERRY_KO (default /ferry/ferry.ko).
#
# A test calls ferry_begin, then check/pass/fail for each result, then
# ferry_end.  Every result is one line on stdout:
#   FERRY-RESULT PASS <name>
#   FERRY-RESULT FAIL <name>: <reason>
# A test that dies half-way (set -e) still reports: the EXIT trap prints a
# FAIL naming the step it was in.

FERRY_KO=${FERRY_KO:-/ferry/ferry.ko}
FERRY_CTL=/dev/ferry-ctl
FERRY_STEP=setup
FERRY_PASSED=0
FERRY_FAILED=0
# Scratch space: /tmp is a tmpfs in the guest, never a tracked disk.
WORK=${WORK:-/tmp/ferry-work}
# mdadm and dmsetup must not wait for a udev that the guest does not run.
MDADM_NO_UDEV=1
DM_DISABLE_UDEV=1
export MDADM_NO_UDEV DM_DISABLE_UDEV

pass() {
	echo "FERRY-RESULT PASS $1"
	FERRY_PASSED=$((FERRY_PASSED + 1))
}

# fail NAME REASON...
fail() {
	_n=$1
	shift
	echo "FERRY-RESULT FAIL $_n: $*"
	FERRY_FAILED=$((FERRY_FAILED + 1))
}

# step TEXT: say what the test does next (also named by an abort).
step() {
	FERRY_STEP=$*
	echo "--- $*"
}

# Say something for the log without a result.
info() {
	echo "    $*"
}

# check NAME CMD [ARG...]: run CMD; PASS if it exits 0, else FAIL with the
# last line it printed.  Its output is shown indented.  Never fails itself
# (set -e stays out of the way); CHECK_RC holds CMD's exit code.
check() {
	_name=$1
	shift
	CHECK_RC=0
	"$@" >"$WORK/check.out" 2>&1 || CHECK_RC=$?
	sed 's/^/    | /' "$WORK/check.out"
	if [ "$CHECK_RC" -eq 0 ]; then
		pass "$_name"
	else
		fail "$_name" "$(tail -n 1 "$WORK/check.out") (exit $CHECK_RC)"
	fi
	return 0
}

# expect_fail NAME PATTERN CMD [ARG...]: CMD must fail and print PATTERN
# (a grep -E expression), e.g. an error that must be reported.
expect_fail() {
	_name=$1
	_pat=$2
	shift 2
	CHECK_RC=0
	"$@" >"$WORK/check.out" 2>&1 || CHECK_RC=$?
	sed 's/^/    | /' "$WORK/check.out"
	if [ "$CHECK_RC" -eq 0 ]; then
		fail "$_name" "'$*' succeeded, it should have failed"
	elif ! grep -Eq "$_pat" "$WORK/check.out"; then
		fail "$_name" "'$*' failed without saying '$_pat': $(tail -n 1 "$WORK/check.out")"
	else
		pass "$_name"
	fi
	return 0
}

ferry_on_exit() {
	_rc=$?
	if [ "$_rc" -ne 0 ] && [ -z "${FERRY_ENDED:-}" ]; then
		echo "FERRY-RESULT FAIL $FERRY_NAME: the script stopped (exit $_rc) during: $FERRY_STEP"
	fi
}

# ferry_begin NAME: set up the work directory and the abort report.
ferry_begin() {
	FERRY_NAME=$1
	rm -rf "$WORK"
	mkdir -p "$WORK"
	trap ferry_on_exit EXIT
	echo "=== $FERRY_NAME on $(uname -r), disks: ${FERRY_DISKS:-?}"
}

# ferry_end: summary line, exit status 1 if anything failed.
ferry_end() {
	FERRY_ENDED=1
	echo "=== $FERRY_NAME: $FERRY_PASSED passed, $FERRY_FAILED failed"
	[ "$FERRY_FAILED" -eq 0 ] || exit 1
	exit 0
}

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds, for
# SECONDS by the clock (a CMD that asks the host takes a second under
# emulation: counting tries made "300" last 50 minutes).
wait_for() {
	_until=$(($(cut -d. -f1 /proc/uptime) + $1))
	shift
	while ! "$@" 2>/dev/null; do
		[ "$(cut -d. -f1 /proc/uptime)" -lt "$_until" ] || return 1
		sleep 0.1
	done
}

# ensure_node NAME: /dev/NAME for the block device /sys/class/block/NAME,
# made by hand if devtmpfs has not (yet) created it.
ensure_node() {
	wait_for 5 test -e "/sys/class/block/$1/dev" ||
		{ echo "no block device $1 in /sys/class/block" >&2; return 1; }
	wait_for 2 test -b "/dev/$1" && return 0
	_mm=$(cat "/sys/class/block/$1/dev")
	mknod "/dev/$1" b "${_mm%:*}" "${_mm#*:}"
}

# load_ferry: insmod ferry.ko and wait for its control node.
load_ferry() {
	insmod "$FERRY_KO" || return 1
	wait_for 5 test -c "$FERRY_CTL" && return 0
	# devtmpfs should make it; make it ourselves if it did not.
	_mm=$(cat /sys/class/misc/ferry-ctl/dev) || return 1
	mknod -m 600 "$FERRY_CTL" c "${_mm%:*}" "${_mm#*:}"
}

# devnum DEV: "MAJ:MIN" in decimal.
devnum() {
	_hex=$(stat -L -c '%t %T' "$1") || return 1
	# shellcheck disable=SC2086 # two words on purpose
	set -- $_hex
	echo "$((0x$1)):$((0x$2))"
}

# size64 DEV: size in bytes.
size64() {
	blockdev --getsize64 "$1"
}

# stat_field DEV KEY: one value of `ferryctl tracker stats DEV`.
stat_field() {
	ferryctl tracker stats "$1" | sed -n "s/^$2: //p"
}

# attach DEV [GRANULARITY]: attach and print the generation.  (No pipe:
# busybox ash may lack pipefail, and ferryctl's status must count.)
attach() {
	_out=$(ferryctl tracker attach "$1" ${2:+--granularity "$2"}) || return 1
	echo "$_out" | sed -n 's/.*generation \([0-9a-f][0-9a-f]*\)$/\1/p'
}

# drain_to FILE DEV: drain DEV into FILE; ferryctl's summary line is
# appended to drain.log in FILE's directory (so FILE's siblings are all
# extent files, for globs like DIR/vda.*).
# shellcheck disable=SC2094 # FILE and DIR/drain.log differ
drain_to() {
	ferryctl tracker drain "$2" >"$1" 2>>"$(dirname "$1")/drain.log"
}

# drain_during DIR TAG=DEV... -- CMD [ARG...]
# Run CMD in the background and drain each DEV over and over while it
# runs, into DIR/TAG.1, DIR/TAG.2, ...; once CMD has exited, drain each
# once more into DIR/TAG.final (everything written after the last loop
# drain began).  CMD's output goes to DIR.out (shown afterwards), the
# drain summaries to DIR/drain.log.  Returns CMD's exit code, or 100 if a
# drain failed (the reason is the last line of DIR.out).
drain_during() {
	_dir=$1
	shift
	_pairs=
	while [ "$1" != "--" ]; do
		_pairs="$_pairs $1"
		shift
	done
	shift
	mkdir -p "$_dir"
	# Outside $_dir: only extent files live there.
	"$@" >"$_dir.out" 2>&1 &
	_pid=$!
	_n=0
	_drain_failed=
	while kill -0 "$_pid" 2>/dev/null; do
		_n=$((_n + 1))
		for _p in $_pairs; do
			drain_to "$_dir/${_p%%=*}.$_n" "${_p#*=}" ||
				_drain_failed="drain of ${_p#*=} failed: $(tail -n 1 "$_dir/drain.log")"
		done
		[ -z "$_drain_failed" ] || break
		sleep 0.2
	done
	_rc=0
	wait "$_pid" || _rc=$?
	for _p in $_pairs; do
		drain_to "$_dir/${_p%%=*}.final" "${_p#*=}" ||
			_drain_failed="final drain of ${_p#*=} failed: $(tail -n 1 "$_dir/drain.log")"
	done
	sed 's/^/    | /' "$_dir.out"
	info "$_n drain rounds while '$1' ran"
	if [ -n "$_drain_failed" ]; then
		echo "$_drain_failed" >>"$_dir.out"
		return 100
	fi
	return "$_rc"
}

# le32 N: N as 4 little-endian bytes.
le32() {
	_v=$1
	for _i in 1 2 3 4; do
		# shellcheck disable=SC2059 # the octal escape is the format
		printf "\\$(printf %03o $((_v & 255)))"
		_v=$((_v >> 8))
	done
}

# write_mbr DISK START_SECTOR NR_SECTORS: a DOS partition table with one
# Linux partition (type 0x83).  Busybox fdisk is interactive and sfdisk is
# not in the guest, so the 66 bytes at offset 446 are written by hand:
# entry 1 = status, CHS (ignored by Linux), type, CHS, LBA start, sectors;
# entries 2-4 zero; then the 0x55 0xAA signature.
write_mbr() {
	_mbr=$WORK/mbr.bin
	{
		printf '\000\376\377\377\203\376\377\377'
		le32 "$2"
		le32 "$3"
		dd if=/dev/zero bs=48 count=1 2>/dev/null
		printf '\125\252'
	} >"$_mbr"
	dd if=/dev/zero of="$1" bs=512 count=1 conv=notrunc,fsync 2>/dev/null &&
		dd if="$_mbr" of="$1" bs=1 seek=446 conv=notrunc,fsync 2>/dev/null
}
