# ferry-vm: disks=64M mem=1G smp=2 timeout=600
# shellcheck shell=sh
# race: ferry-race replicates /dev/vda into a file by draining the tracker
# while four writer threads hammer 64 blocks, for 1000 drain-and-copy
# cycles, then compares the copy with the disk byte for byte.  A write
# racing with the copy of its block must show up in a later drain, so the
# copy converges (DESIGN.md invariant 1).  Run at 4K, and at 64K (where
# most writes are smaller than a block) with fewer cycles because each
# one copies sixteen times as much under software emulation.
set -eu
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

T=race
ferry_begin "$T"

step "load ferry.ko"
load_ferry

for run in 4096:1000 65536:300; do
	g=${run%:*}
	step "ferry-race at granularity $g"
	check "$T/replica-converges-$g" ferry-race --device /dev/vda \
		--replica "$WORK/replica" --cycles "${run#*:}" --writers 4 \
		--blocks 64 --granularity "$g" --seed "$g"
	rm -f "$WORK/replica"
done

# Negative control: without the drains after the writers stop, the
# replica must miss their last writes, or the comparison proves nothing.
step "ferry-race notices a stale replica"
expect_fail "$T/detects-stale-replica" "replica differs" ferry-race \
	--device /dev/vda --replica "$WORK/replica" --cycles 50 --writers 4 \
	--blocks 64 --no-final-drain
rm -f "$WORK/replica"

step "nothing left tracked"
check "$T/detached" test -z "$(ferryctl tracker list)"
ferry_end
