#!/bin/bash
# The guest harness boots once more a guest whose kernel crashed before
# its test began (scripts/vm/run.sh): the first boot is given rdinit= of a
# file that does not exist, so the kernel panics before FERRY-BOOTED; the
# test must still run and pass, its first console kept beside the log.
# And a guest whose test itself crashes the kernel is not booted again.
# One bookworm guest of a few seconds, twice, then once.  Prints PASS/FAIL
# lines and "N passed, N failed".
set -uo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/../../scripts/vm/lib.sh"

pass=0 fail=0
check() {	# check NAME CONDITION-RESULT(0/1) REASON
	if [ "$2" -eq 0 ]; then
		pass=$((pass + 1)); echo "PASS vm_retry/$1"
	else
		fail=$((fail + 1)); echo "FAIL vm_retry/$1: $3"
	fi
}

need_root "the guest harness test"
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-vm-retry.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/tests"
cat >"$work/tests/boots.sh" <<'GUEST'
# ferry-vm: disks=none timeout=60
echo "FERRY-RESULT PASS boots/ran"
GUEST
cat >"$work/tests/crashes.sh" <<'GUEST'
# ferry-vm: disks=none timeout=60
echo "FERRY-RESULT PASS crashes/ran"
echo c >/proc/sysrq-trigger
GUEST
BUILD=$FERRY_ROOT/build guest_image bookworm "$work/guest.cpio.gz" "$work/tests" \
	"$work/prepare.log" "" || { echo "FAIL vm_retry/prepare: see above"; exit 1; }

rc=0
FERRY_VM_FIRST_APPEND="rdinit=/ferry-no-such-init" "$FERRY_VM_DIR/run.sh" \
	--suite bookworm --initrd "$work/guest.cpio.gz" --test boots \
	--timeout 60 --log "$work/boots.log" >"$work/boots.out" 2>&1 || rc=$?
check retried-and-passed "$rc" "$(grep -m3 '^FAIL' "$work/boots.out" | tr '\n' ' ')"
grep -q 'crashed before the test began' "$work/boots.out"
check says-so $? "no 'crashed before the test began' line in $work/boots.out"
grep -aq 'Kernel panic' "$work/boots.log.boot-crash" 2>/dev/null
check first-console-kept $? "$work/boots.log.boot-crash lacks the first boot's panic"
! grep -aq 'Kernel panic' "$work/boots.log"
check log-is-the-second-boot $? "$work/boots.log still holds the first boot's panic"

rc=0
"$FERRY_VM_DIR/run.sh" --suite bookworm --initrd "$work/guest.cpio.gz" \
	--test crashes --timeout 60 --log "$work/crashes.log" \
	>"$work/crashes.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q '^FAIL bookworm/crashes' "$work/crashes.out"
check test-crash-fails $? "a kernel crash during the test did not fail it: $(head -n3 "$work/crashes.out" | tr '\n' ' ')"
! grep -q 'crashed before the test began' "$work/crashes.out"
check test-crash-not-retried $? "a crash during the test was booted again"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
