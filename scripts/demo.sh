#!/bin/bash
# make demo: boots a Debian guest under QEMU, tracks a disk carrying a
# mounted ext4 with ferry.ko, runs a small workload and shows the drained
# extents and the tracker's statistics.  (The full migration demo comes with
# the agent, replicator and control plane.)
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/vm/lib.sh"
cd "$FERRY_ROOT"

SUITE=${SUITE:-bookworm}
OUT="$BUILD/demo"
mkdir -p "$OUT"

scripts/deps.sh build vm
info "building ferry.ko and the guest's initramfs for the $SUITE kernel"
guest_image "$SUITE" "$OUT/initrd.cpio.gz" scripts/demo "$OUT/prepare.out" ||
	die "the guest image could not be built (see above)"

info "booting the guest (QEMU, software emulation: about a minute)"
log="$OUT/$SUITE-tracker.log"
res="${log%.log}.results"
rm -f "$res"
scripts/vm/run.sh --suite "$SUITE" --initrd "$OUT/initrd.cpio.gz" \
	--test tracker --disk 512M --mem 1G --timeout 600 --log "$log" \
	>"$OUT/run.out" 2>&1 &
qemu=$!
# Show the guest's own output as it happens.
while [ ! -e "$res" ] && kill -0 "$qemu" 2>/dev/null; do
	sleep 0.5
done
[ -e "$res" ] && tail -n +1 -f --pid="$qemu" "$res" |
	grep -v -e '^FERRY-DONE' -e '^FERRY-BOOTED'
rc=0
wait "$qemu" || rc=$?
echo
if [ "$rc" -eq 0 ] && grep -q '^PASS' "$OUT/run.out"; then
	echo "demo finished: the guest's console log is $log"
else
	cat "$OUT/run.out"
	die "the demo failed: see $log"
fi
