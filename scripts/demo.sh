#!/bin/bash
# make demo: a live migration of a source server, on this machine.
#
#   1. ferry-control and ferry-replicator start on loopback with their
#      embedded defaults (tests/vm/agent_stack.py: SQLite, a local data
#      directory, access keys for the installer);
#   2. a Debian guest (QEMU) with a system disk and a data disk, both
#      ext4 and mounted, loads ferry.ko and runs ferry-agent with those
#      keys; the demo shows `ferryctl status` and `aws mgn
#      describe-source-servers` while the disks are copied, runs a write
#      workload during continuous replication, checks that the staging
#      volumes equal the disks, and takes a snapshot (exported raw);
#   3. a second guest, the test instance, boots with the snapshot as its
#      disks: fsck, the data written before the snapshot is there, the
#      data written after is not.
# Guest scripts: scripts/demo/replicate.sh and test-instance.sh.  The
# installer (issue 6) does not exist yet: the agent is configured by hand.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/vm/lib.sh"
cd "$FERRY_ROOT"

SUITE=${SUITE:-bookworm}
OUT="$BUILD/demo"
BASE=18600
T0=$(date +%s)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/snapshot-*.img

scripts/deps.sh build vm agent
info "building ferry.ko and the guest's initramfs for the $SUITE kernel"
guest_image "$SUITE" "$OUT/initrd.cpio.gz" scripts/demo "$OUT/prepare.out" ||
	die "the guest image could not be built (see above)"

# boot NAME TIMEOUT RUN_SH_ARGS...: run a guest, showing its output live.
boot() {
	local name=$1 limit=$2 log res qemu rc=0
	shift 2
	log="$OUT/$SUITE-$name.log"
	res="${log%.log}.results"
	rm -f "$res"
	scripts/vm/run.sh --suite "$SUITE" --initrd "$OUT/initrd.cpio.gz" \
		--test "$name" --mem 1G --smp 2 --timeout "$limit" --log "$log" \
		"$@" >"$OUT/$name.out" 2>&1 &
	qemu=$!
	while [ ! -e "$res" ] && kill -0 "$qemu" 2>/dev/null; do
		sleep 0.5
	done
	[ ! -e "$res" ] || tail -n +1 -f --pid="$qemu" "$res" |
		grep -av -e '^FERRY-DONE' -e '^FERRY-BOOTED' -e '^FERRY-RESULT'
	wait "$qemu" || rc=$?
	if [ "$rc" -ne 0 ] || ! grep -q '^PASS' "$OUT/$name.out"; then
		cat "$OUT/$name.out"
		die "the demo failed in the $name guest: see $log"
	fi
}

info "the source server: a guest replicating to ferry-replicator on this host"
T1=$(date +%s)
boot replicate 1500 --disk 256M --disk 512M --args "$BASE" \
	--host "FERRY_DEMO_OUT=$OUT exec /usr/bin/python3 $FERRY_ROOT/tests/vm/agent_stack.py --base $BASE"
T2=$(date +%s)
for d in vda vdb; do
	[ -s "$OUT/snapshot-$d.img" ] || die "no exported snapshot of $d in $OUT"
done

info "the test instance: a guest booted from the exported snapshot"
boot test-instance 600 --disk "$OUT/snapshot-vda.img" \
	--disk "$OUT/snapshot-vdb.img"
T3=$(date +%s)

echo
echo "demo finished in $((T3 - T0)) s: build $((T1 - T0)) s, source server" \
	"$((T2 - T1)) s, test instance $((T3 - T2)) s."
echo "Logs: $OUT/$SUITE-replicate.log, $OUT/$SUITE-test-instance.log"
rm -f "$OUT"/snapshot-*.img
