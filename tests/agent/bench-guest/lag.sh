#!/bin/sh
# Guest side of tests/agent/bench-lag.sh (busybox sh).  Not a test: it
# lives outside tests/kmod/guest/ so tests/kmod/run.sh does not pick it up.
#
# Arguments (ferry.args): RUNTIME RATE BASE
#   RUNTIME  seconds of the steady write load (60)
#   RATE     its fixed rate: 4 KiB random writes per second on /dev/vda
#   BASE     the host's agent_stack.py ports (ferry-control on BASE)
# ferry-agent replicates /dev/vda (ferry.ko attached) to ferry-replicator
# on the host; once CONTINUOUS, fio writes at RATE while `ferryctl status
# --json` is read every second: its lagMs (the age of the oldest change
# not yet acknowledged, counted from the drain that found it).
# Prints "FERRY-BENCH key value" lines, then FERRY-RESULT PASS/FAIL bench.
set -u

RUNTIME=${1:-60}
RATE=${2:-200}
BASE=${3:-18500}
SVC=http://10.0.2.2:$((BASE + 2))
CONF=/etc/ferry/agent.conf
STATE=/tmp/ferry-agent-state

fail() {
	echo "FERRY-RESULT FAIL bench: $*"
	[ ! -f /tmp/agent.log ] || tail -n 5 /tmp/agent.log
	exit 1
}

svc() {
	wget -q -O - "$SVC/$1"
}

# wait_for SECONDS CMD...: until CMD succeeds.
wait_for() {
	_n=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		_n=$((_n - 1))
		[ "$_n" -gt 0 ] || return 1
		sleep 0.1
	done
}

continuous() {
	case $(svc state) in "CONTINUOUS "*) return 0 ;; esac
	return 1
}

insmod /ferry/ferry.ko || fail "insmod ferry.ko"
if ! wait_for 5 test -c /dev/ferry-ctl; then
	mm=$(cat /sys/class/misc/ferry-ctl/dev) || fail "no ferry-ctl"
	mknod -m 600 /dev/ferry-ctl c "${mm%:*}" "${mm#*:}"
fi
wait_for 120 svc setup || fail "the host's stack is not reachable"
tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id
mkdir -p /etc/ferry "$STATE"
svc ca.pem >/etc/ferry/control-ca.pem
{
	svc setup
	echo "ca-bundle = /etc/ferry/control-ca.pem"
	echo "devices = /dev/vda"
	echo "state-dir = $STATE"
} >"$CONF"
chmod 600 "$CONF"
ferry-agent --config "$CONF" >/tmp/agent.log 2>&1 &
wait_for 900 continuous || fail "not CONTINUOUS after the initial copy"

fio --name=lag --filename=/dev/vda --rw=randwrite --bs=4k --direct=1 \
	--ioengine=psync --rate_iops="$RATE" --time_based --runtime="$RUNTIME" \
	--randrepeat=0 >/tmp/fio.out 2>&1 &
fio=$!
sleep 2
: >/tmp/lag
while kill -0 "$fio" 2>/dev/null; do
	ferryctl status --json --state-dir "$STATE" 2>/dev/null |
		tr ',{}' '\n\n\n' |
		sed -n 's/^ *"lagMs": *\([0-9][0-9]*\).*/\1/p' | head -n 1 >>/tmp/lag
	sleep 1
done
wait "$fio" || fail "fio: $(tail -n 2 /tmp/fio.out)"
n=$(grep -c . /tmp/lag)
[ "$n" -ge 10 ] || fail "only $n lag samples"
sort -n /tmp/lag >/tmp/lag.sorted
p50=$(sed -n "$(((n * 50 + 99) / 100))p" /tmp/lag.sorted)
p99=$(sed -n "$(((n * 99 + 99) / 100))p" /tmp/lag.sorted)
iops=$(sed -n 's/.*IOPS=\([0-9.k]*\).*/\1/p' /tmp/fio.out | head -n 1)
echo "FERRY-BENCH lag.samples $n"
echo "FERRY-BENCH lag.p50_ms $p50"
echo "FERRY-BENCH lag.p99_ms $p99"
echo "FERRY-BENCH lag.max_ms $(tail -n 1 /tmp/lag.sorted)"
echo "FERRY-BENCH fio.iops ${iops:-?}"
kill "$(pidof ferry-agent)" 2>/dev/null
echo "FERRY-RESULT PASS bench"
