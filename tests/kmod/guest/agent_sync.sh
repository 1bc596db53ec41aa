# ferry-vm: disks=256M,64M mem=1G smp=2 timeout=1500 suites=bookworm
# shellcheck shell=sh
# agent_sync: ferry-agent in a guest with the real module, against
# ferry-control and ferry-replicator on the host (agent_sync.host starts
# them through tests/vm/agent_stack.py; the host is 10.0.2.2).
#
#   vda 256M  the replicated disk: ext4 with files, mounted while the agent
#             copies it, then fio writes with verify patterns while it
#             replicates continuously;
#   vdb 64M   not replicated (devices = /dev/vda): the agent's
#             configuration and state directory, which outlive a reset.
#
# After each phase, once writes stop, the staging volume must equal the
# disk (sha256 of the whole device, computed on the host from the disk
# image QEMU writes and from the staging file).  Phases: initial copy;
# continuous replication under fio with a network cut in the middle; a
# drain by another process (ferryctl); a module reload (tracking lost: a
# rescan).  Under the fio load, the agent
# must make consistency points by freezing the filesystem
# (cp-interval-seconds = 5 here), and a snapshot taken at one of them
# must pass e2fsck -fn.  Agent and replicator kill -9, a full staging
# disk and a hard reset of the guest are faults.sh's, the fault campaign.
set -eu
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

T=agent_sync
BASE=18400			# agent_sync.host: the same
# shellcheck source=SCRIPTDIR/agent_lib.sh
. "$(dirname "$0")/agent_lib.sh"

ferry_begin "$T"

step "load ferry.ko, wait for the host's stack"
load_ferry
wait_for 120 svc setup >/dev/null
check "$T/stack reachable" svc setup

step "a filesystem with files on /dev/vda"
make_source_fs

step "configure and start the agent"
configure_agent
start_agent
if wait_for 120 registered; then
	pass "$T/agent registered and forgot the installer's secret"
else
	fail "$T/agent registered and forgot the installer's secret" "$(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
fi

initial_copy

step "continuous replication under fio, with a network cut"
cp_before=$(cp_last)
fio --name=verify --directory="$MNT" --size=32M --bs=4k --rw=randwrite \
	--ioengine=psync --direct=1 --verify=crc32c --do_verify=1 \
	--time_based=1 --runtime=40 --verify_backlog=256 \
	>"$WORK/fio.out" 2>&1 &
FIO=$!
sleep 10
svc "cut?ms=5000" >/dev/null
wait "$FIO" && pass "$T/fio verify during replication" ||
	fail "$T/fio verify during replication" "$(tail -n 3 "$WORK/fio.out")"
wait_converged "$T/continuous: staging volume equals /dev/vda after fio and a cut" 300
grep -i 'consistency point\|freez' "$AGENT_LOG" | tail -n 8 |
	while read -r l; do info "agent: $l"; done
n_frozen=$(freeze_cps | awk -v k="$cp_before" '$1 > k' | wc -l)
cps=$(freeze_cps | awk -v k="$cp_before" '$1 > k' | tr '\n' ',')
if [ "$n_frozen" -gt 0 ]; then
	pass "$T/consistency points under load, from freezes ($n_frozen after CP $cp_before)"
	# pit_policy 5s and a freeze only when the last CP is 5 s old: each
	# of these CPs has its snapshot.
	r=$(svc "snapcheck?cps=${cps%,}&name=/dev/vda" || :)
	case $r in
	CLEAN*) pass "$T/the snapshot of a freeze's CP passes e2fsck -fn ($r)" ;;
	*) fail "$T/the snapshot of a freeze's CP passes e2fsck -fn" "$r" ;;
	esac
else
	fail "$T/consistency points under load, from freezes" "none after CP $cp_before: $(grep -i 'freez\|consistency' "$AGENT_LOG" | tail -n 4 | tr '\n' ' ')"
fi

step "another process drains the tracker: the agent rescans"
# What that drain takes is in no set the agent sees: it must notice the
# gap in the tracker's set numbers and compare the disk again.
dd if=/dev/urandom of="$MNT/drained-elsewhere.bin" bs=1M count=2 \
	conv=fsync 2>/dev/null
ferryctl tracker drain /dev/vda >/dev/null
if wait_for 60 grep -q 'drained by another process' "$AGENT_LOG"; then
	pass "$T/a drain by another process is noticed"
else
	fail "$T/a drain by another process is noticed" "$(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
fi
wait_converged "$T/after a drain by another process: staging volume equals /dev/vda" 300

step "module reload: tracking lost, rescan"
stop_agent
ferryctl tracker detach /dev/vda 2>/dev/null || :
rmmod ferry
load_ferry
dd if=/dev/urandom of="$MNT/after-reload.bin" bs=1M count=2 2>/dev/null
sync
start_agent
wait_converged "$T/after a module reload: staging volume equals /dev/vda" 300

step "stop"
stop_agent
umount "$MNT"
ferry_end
