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
# rescan); a second disk (device-mapper over a loop device) that fails
# (unreadable) with ranges still to read: the first must go on; and an
# agent restart then replicates it, readable again and grown.  Under the fio load, the agent
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

step "a second disk, then it fails: the first goes on"
# The second disk: device-mapper over a loop device, so that its table can
# be swapped for one that fails every read, and later for a larger one.
# A disk that fails with ranges still to read must not hold up the drain
# rounds of the other disks.
modprobe loop 2>/dev/null || :
modprobe dm_mod 2>/dev/null || :
# dm-linear is bio-based: its attach cannot wait for the writes in flight,
# so the tracker reports OVERFLOW for overflow_hold_secs after it (120 s
# by default; 30 s is the least), and the agent compares the disk again.
echo 30 >/sys/module/ferry/parameters/overflow_hold_secs
dd if=/dev/urandom of="$WORK/second.img" bs=1M count=128 2>/dev/null
LOOP=$(losetup -f)
ensure_node "$(basename "$LOOP")" 2>/dev/null || :
losetup "$LOOP" "$WORK/second.img"
dmsetup create ferry-second --table "0 262144 linear $LOOP 0"
DM_MM=$(dmsetup info -c --noheadings -o major,minor ferry-second | tr -d ' ')
DM_NAME=$(basename "$(readlink -f "/sys/dev/block/$DM_MM")")
ensure_node "$DM_NAME"
DM=/dev/$DM_NAME
stop_agent
sed -i "s|^devices = .*|devices = /dev/vda,$DM|" "$CONF"
start_agent
# The agent's own view (status.json, rewritten every second): ferry-
# control's may still be the one agent's state before the restart.
if wait_for 300 disk_continuous "$DM" && wait_for 60 disk_continuous /dev/vda; then
	pass "$T/two disks: both CONTINUOUS"
else
	fail "$T/two disks: both CONTINUOUS" "$(ferryctl status --state-dir "$STATE" 2>&1 | tail -n 3 | tr '\n' ' '); $(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
fi
# During a cut, more than the agent may send unacknowledged (64 MiB) and
# read ahead (16 MiB) is written to it; then every read of it fails.
# Once the link is back, it fails with ranges still to read.
svc "cut?ms=30000" >/dev/null
sleep 1
dd if=/dev/urandom of="$DM" bs=1M count=112 oflag=direct 2>/dev/null
sleep 2
dmsetup suspend ferry-second
dmsetup reload ferry-second --table "0 262144 error"
dmsetup resume ferry-second
if wait_for 90 grep -q "$DM: read error at offset" "$AGENT_LOG"; then
	pass "$T/the unreadable disk fails"
else
	fail "$T/the unreadable disk fails" "$(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
fi
dd if=/dev/urandom of="$MNT/after-fail.bin" bs=1M count=2 2>/dev/null
wait_converged "$T/with the other disk failed: staging volume equals /dev/vda" 300

step "restart the agent: the grown disk is replicated again"
# Readable again and 16 MiB larger: the tracker left attached follows the
# old size, and must not fail the disk at the restart's first drain.
truncate -s 144M "$WORK/second.img"
losetup -c "$LOOP"
dmsetup suspend ferry-second
dmsetup reload ferry-second --table "0 294912 linear $LOOP 0"
dmsetup resume ferry-second
stop_agent
start_agent
sleep 2
if wait_for 300 disk_continuous "$DM" &&
	! grep -q "$DM changed size" "$AGENT_LOG"; then
	pass "$T/after a restart, the grown disk replicates: CONTINUOUS"
else
	fail "$T/after a restart, the grown disk replicates: CONTINUOUS" "$(grep -c "$DM changed size" "$AGENT_LOG") failures; $(ferryctl status --state-dir "$STATE" 2>&1 | tail -n 3 | tr '\n' ' '); $(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
fi
grep "$DM: the tracker left from before" "$AGENT_LOG" | while read -r l; do info "agent: $l"; done

step "stop"
stop_agent
umount "$MNT"
ferryctl tracker detach "$DM" 2>/dev/null || :
dmsetup remove ferry-second 2>/dev/null || :
losetup -d "$LOOP" 2>/dev/null || :
ferry_end
