# ferry-vm: disks=256M,64M mem=1G smp=2 timeout=1500 suites=bookworm boots=2
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
# continuous replication under fio with a network cut in the middle; an
# agent kill -9 and restart (a rescan that sends only what differs); a
# module reload (tracking lost: a rescan).  Under the fio load, the agent
# must make consistency points by freezing the filesystem
# (cp-interval-seconds = 5 here), and a snapshot taken at one of them
# must pass e2fsck -fn.  Last, a hard reset of the guest while the agent
# replicates (sysrq b): the second boot remounts the disk (its journal
# replayed before the tracker is attached, as on a real boot) and the
# agent's rescan must bring the volume back to equal, sending little.
set -eu
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

T=agent_sync
BASE=18400			# agent_sync.host: the same
SVC=http://10.0.2.2:$((BASE + 2))
PERSIST=/persist		# /dev/vdb
STATE=$PERSIST/state
CONF=$PERSIST/agent.conf
AGENT_LOG=/tmp/agent.log
MNT=/mnt/src

ferry_begin "$T"

svc() {
	wget -q -O - "$SVC/$1"
}

# converged: the staging volume of /dev/vda equals the disk (host's view).
converged() {
	_r=$(svc "compare?disk=0&name=/dev/vda") || return 1
	echo "$_r" >"$WORK/compare"
	case $_r in EQUAL*) return 0 ;; esac
	return 1
}

# wait_converged NAME SECONDS: PASS when the volume equals the disk.
wait_converged() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	if wait_for "$2" converged; then
		pass "$1"
	else
		fail "$1" "not equal after $2 s: $(cat "$WORK/compare" 2>/dev/null); agent log: $(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
	fi
}

state_is() {
	_s=$(svc state) || return 1
	case $_s in "$1 "*) return 0 ;; esac
	return 1
}

start_agent() {
	ferry-agent --config "$CONF" >>"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
}

stop_agent() {
	kill "$AGENT_PID" 2>/dev/null || :
	wait "$AGENT_PID" 2>/dev/null || :
}

# The last consistency point the replicator acknowledged, 0 if none.
cp_last() {
	sed -n 's/.*consistency point \([0-9]*\) acknowledged.*/\1/p' \
		"$AGENT_LOG" | tail -n 1 | grep . || echo 0
}

# Consistency points made by a round under a freeze, one per line.
freeze_cps() {
	sed -n 's/.*consistency point \([0-9]*\) sent, from a round under a freeze.*/\1/p' \
		"$AGENT_LOG"
}

registered() {
	! grep -q secret-access-key "$CONF"
}

# status_field KEY: a number from `ferryctl status --json` (first match).
status_field() {
	ferryctl status --json --state-dir "$STATE" 2>/dev/null |
		tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\": *\([0-9][0-9]*\).*/\1/p" |
		head -n 1
}

# rescan_sent_small NAME: the agent sent little since it started.
rescan_sent_small() {
	sent=$(status_field sentBytes || :)
	info "bytes sent since the agent started: ${sent:-?}"
	if [ -n "$sent" ] && [ "$sent" -lt $((64 * 1048576)) ]; then
		pass "$1 ($sent bytes of a 256 MiB disk)"
	else
		fail "$1" "sent ${sent:-unknown} bytes"
	fi
}

if [ "$FERRY_BOOT" -ge 2 ]; then
	step "boot $FERRY_BOOT, after a hard reset: remount, restart the agent"
	load_ferry
	wait_for 120 svc setup >/dev/null
	mkdir -p "$PERSIST" "$MNT"
	mount /dev/vdb "$PERSIST"
	cp "$PERSIST/machine-id" /etc/machine-id
	mount /dev/vda "$MNT"
	start_agent
	wait_converged "$T/after a guest reset: staging volume equals /dev/vda" 300
	rescan_sent_small "$T/after a guest reset: the rescan sent only what differed"
	stop_agent
	umount "$MNT"
	ferry_end
fi

step "load ferry.ko, wait for the host's stack"
load_ferry
wait_for 120 svc setup >/dev/null
check "$T/stack reachable" svc setup

step "a filesystem with files on /dev/vda"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/vda
mkdir -p "$MNT"
mount /dev/vda "$MNT"
dd if=/dev/urandom of="$MNT/random.bin" bs=1M count=24 2>/dev/null
i=0
while [ $i -lt 200 ]; do
	echo "file $i of the source server" >"$MNT/f$i.txt"
	i=$((i + 1))
done
sync

step "configure and start the agent"
# What every Debian system has and the initramfs lacks.
hostname ferry-guest
tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id
mkfs.ext4 -q -F /dev/vdb
mkdir -p "$PERSIST"
mount /dev/vdb "$PERSIST"
cp /etc/machine-id "$PERSIST/machine-id"
mkdir -p "$STATE"
svc ca.pem >"$PERSIST/control-ca.pem"
{
	svc setup
	echo "ca-bundle = $PERSIST/control-ca.pem"
	echo "devices = /dev/vda"
	echo "state-dir = $STATE"
	echo "cp-interval-seconds = 5"
} >"$CONF"
chmod 600 "$CONF"
start_agent
if wait_for 120 registered; then
	pass "$T/agent registered and forgot the installer's secret"
else
	fail "$T/agent registered and forgot the installer's secret" "$(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
fi

step "initial copy"
if wait_for 600 state_is CONTINUOUS; then
	pass "$T/initial copy: CONTINUOUS at ferry-control"
else
	fail "$T/initial copy: CONTINUOUS at ferry-control" "state $(svc state); $(tail -n 5 "$AGENT_LOG" | tr '\n' ' ')"
fi
wait_converged "$T/initial copy: staging volume equals /dev/vda" 300

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

step "agent kill -9 and restart: rescan"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || :
dd if=/dev/urandom of="$MNT/after-kill.bin" bs=1M count=2 2>/dev/null
sync
start_agent
wait_converged "$T/after kill -9: staging volume equals /dev/vda" 300
rescan_sent_small "$T/rescan sent only what differed"

step "module reload: tracking lost, rescan"
stop_agent
ferryctl tracker detach /dev/vda 2>/dev/null || :
rmmod ferry
load_ferry
dd if=/dev/urandom of="$MNT/after-reload.bin" bs=1M count=2 2>/dev/null
sync
start_agent
wait_converged "$T/after a module reload: staging volume equals /dev/vda" 300

step "a hard reset of the guest while the agent replicates"
dd if=/dev/urandom of="$MNT/before-reset.bin" bs=1M count=2 2>/dev/null
sync
# Written and not synced: the reset may keep any part of it.
dd if=/dev/urandom of="$MNT/at-reset.bin" bs=1M count=1 2>/dev/null
info "resetting now (boot 2 goes on)"
echo 1 >/proc/sys/kernel/sysrq
echo b >/proc/sysrq-trigger
sleep 30
fail "$T/hard reset" "the guest did not reset"
ferry_end
