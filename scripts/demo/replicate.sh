# shellcheck shell=sh
# The migration demo, source side, run inside the guest by scripts/demo.sh
# (busybox sh).  The host runs ferry-control and ferry-replicator
# (tests/vm/agent_stack.py, reached at 10.0.2.2).  Not a test: no
# "ferry-vm:" header.
set -eu

BASE=${1:-18600}
SVC=http://10.0.2.2:$((BASE + 2))
CONF=/etc/ferry/agent.conf
STATE=/var/lib/ferry-agent
LOG=/var/log/ferry-agent.log
T0=$(cut -d' ' -f1 /proc/uptime)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
svc() { wget -q -O - "$SVC/$1"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }
die() {
	echo "FERRY-RESULT FAIL demo-source: $*"
	[ ! -f "$LOG" ] || tail -n 5 "$LOG"
	exit 1
}

# wait_for SECONDS CMD...
wait_for() {
	_n=$(($1 * 2))
	shift
	while ! "$@" >/dev/null 2>&1; do
		_n=$((_n - 1))
		[ "$_n" -gt 0 ] || return 1
		sleep 0.5
	done
}

is_continuous() {
	case $(svc state) in "CONTINUOUS "*) return 0 ;; esac
	return 1
}
equal() {
	case $(svc "compare?disk=$1&name=$2") in EQUAL*) return 0 ;; esac
	return 1
}
both_equal() { equal 0 /dev/vda && equal 1 /dev/vdb; }
cp_last() {
	sed -n 's/.*consistency point \([0-9]*\) acknowledged.*/\1/p' "$LOG" |
		tail -n 1 | grep . || echo 0
}
status_num() {
	ferryctl status --json 2>/dev/null |
		tr ',{}' '\n\n\n' |
		sed -n "s/^ *\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -n 1
}
# The sum of KEY over the status (sentBytes is per disk).
status_sum() {
	ferryctl status --json 2>/dev/null |
		tr ',{}' '\n\n\n' |
		sed -n "s/^ *\"$1\": *\([0-9][0-9]*\).*/\1/p" |
		awk '{ s += $1 } END { print s + 0 }'
}
fio_done() { ! kill -0 "$FIO" 2>/dev/null; }

# watch_until SECONDS CMD...: show progress every 10 s until CMD succeeds.
watch_until() {
	_limit=$1
	shift
	_start=$(now)
	while ! "$@" >/dev/null 2>&1; do
		[ "$(since "$_start")" -lt "$_limit" ] || return 1
		echo
		run ferryctl status || :
		svc describe || :
		sleep 10
	done
}

say "A source server: ferry.ko, a system disk (vda) and a data disk (vdb)"
insmod /ferry/ferry.ko
if ! wait_for 5 test -c /dev/ferry-ctl; then
	mm=$(cat /sys/class/misc/ferry-ctl/dev)
	mknod -m 600 /dev/ferry-ctl c "${mm%:*}" "${mm#*:}"
fi
wait_for 120 svc setup || die "ferry-control on the host is not reachable"
tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id
hostname demo-source
mkfs.ext4 -q -F -L system /dev/vda
mkfs.ext4 -q -F -L data /dev/vdb
mkdir -p /mnt/system /mnt/data
mount /dev/vda /mnt/system
mount /dev/vdb /mnt/data
mkdir -p /mnt/system/etc
echo demo-source >/mnt/system/etc/hostname
dd if=/dev/urandom of=/mnt/data/database.bin bs=1M count=96 2>/dev/null
i=0
while [ $i -lt 100 ]; do
	echo "order $i: shipped" >"/mnt/data/order-$i.txt"
	i=$((i + 1))
done
sync
run df -h /mnt/system /mnt/data

say "Install the agent: the installer's access keys, the disks to replicate"
mkdir -p /etc/ferry "$STATE" /var/log
svc ca.pem >/etc/ferry/control-ca.pem
{
	svc setup
	echo "ca-bundle = /etc/ferry/control-ca.pem"
	echo "devices = /dev/vda,/dev/vdb"
	echo "cp-interval-seconds = 10"
} >"$CONF"
chmod 600 "$CONF"
sed 's/^\(secret-access-key = \).*/\1****/' "$CONF"
ferry-agent --config "$CONF" >"$LOG" 2>&1 &
AGENT=$!
wait_for 60 test -s "$STATE/registration.json" ||
	die "the agent did not register"
if grep -q secret-access-key "$CONF"; then
	die "the installer's secret is still in $CONF"
fi
echo "registered; the installer's secret is gone from $CONF"

say "Initial sync, with the disks mounted and in use"
T_SYNC=$(now)
watch_until 900 is_continuous || die "no CONTINUOUS after 15 minutes"
SYNC_S=$(since "$T_SYNC")
echo "CONTINUOUS after $SYNC_S s"

say "A write workload while the agent replicates continuously"
T_LOAD=$(now)
fio --name=app --directory=/mnt/data --size=32M --bs=4k --rw=randwrite \
	--ioengine=psync --direct=1 --rate_iops=300 --time_based --runtime=30 \
	>/tmp/fio.out 2>&1 &
FIO=$!
watch_until 120 fio_done || :
wait "$FIO" || die "fio: $(tail -n 2 /tmp/fio.out)"
LAG=$(status_num lagMs || :)
sync
wait_for 300 both_equal || die "the staging volumes differ from the disks"
LOAD_S=$(since "$T_LOAD")
echo "writes stopped: both staging volumes equal the source disks" \
	"(sha256 of the whole devices)"

say "A snapshot: data written now is in it, data written after is not"
CP0=$(($(cp_last) + 1))
T_SNAP=$(now)
snap=
r=
n=0
while [ $n -lt 30 ]; do
	echo "written before the snapshot, at uptime $(now)" \
		>>/mnt/data/before-snapshot.txt
	sync
	sleep 3
	r=$(svc "export?after=$CP0&name=/dev/vdb&out=snapshot-vdb.img")
	case $r in EXPORTED*) snap=$(echo "$r" | cut -d' ' -f2); break ;; esac
	n=$((n + 1))
done
[ -n "$snap" ] || die "no snapshot after consistency point $CP0: $r"
r=$(svc "export?id=$snap&name=/dev/vda&out=snapshot-vda.img")
case $r in "EXPORTED $snap"*) ;; *) die "exporting vda of $snap: $r" ;; esac
echo "snapshot $snap exported for the test instance"
echo "written after the snapshot" >/mnt/data/after-snapshot.txt
sync
SNAP_S=$(since "$T_SNAP")
svc describe

say "Summary"
SENT=$(status_sum sentBytes || :)
echo "bytes sent by the agent:   ${SENT:-?} (payload, both disks)"
echo "initial sync:              $SYNC_S s"
echo "workload and convergence:  $LOAD_S s (lag at the end of the load: ${LAG:-?} ms)"
echo "snapshot and export:       $SNAP_S s"
echo "total in the guest:        $(since "$T0") s"
kill "$AGENT"
wait "$AGENT" 2>/dev/null || :
umount /mnt/system /mnt/data
echo "FERRY-RESULT PASS demo-source"
