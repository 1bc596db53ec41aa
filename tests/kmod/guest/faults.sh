# ferry-vm: disks=256M,64M mem=1G smp=2 timeout=1500 suites=bookworm boots=2
# shellcheck shell=sh
# faults: the fault campaign.  ferry-agent replicates /dev/vda (ext4)
# to the host's stack (faults.host: agent_stack.py with its staging
# directory on a 1 GiB tmpfs) while fio writes with verify patterns, and
# faults are injected in random order:
#
#   agent-kill       kill -9 of the agent, restarted 2 s later (rescan)
#   replicator-kill  kill -9 of ferry-replicator, restarted 3 s later
#   net-cut          the guest's link down for 6 s (QMP set_link)
#   enospc           the staging filesystem full for 8 s, then freed
#   reset            a hard reset of the guest (sysrq b): tracking lost,
#                    the next boot rescans; ends every boot but the last
#
# Each round begins with the same load and no fault ("none"): what the
# agent sends anyway for what is written, against which the faults' bytes
# are compared ("vs no fault" in the report).
# After each fault, with no help, the agent must be back to CONTINUOUS at
# ferry-control and, once fio stops (its verify passing), the staging
# volume must equal the disk (sha256 of both on the host).  Snapshots
# taken at consistency points under that load must pass e2fsck -fn.
#
# Arguments (ferry.args, FERRY_VM_ARGS of tests/kmod/run.sh): rounds=N
# (default 1; each round injects the four faults above in a new random
# order) and seed=N (default: the time; printed, to replay an order).
# Every boot but the last runs the rounds and ends with a reset; the last
# judges the rescan after it.  With one boot, no reset.  `make soak`
# runs more rounds and boots.  The last boot prints, per fault
# kind: faults survived, mismatches, bytes the agent sent against bytes
# written to the disk while the fault lasted, and seconds from the end of
# the fault back to CONTINUOUS; for a reset, bytes sent against the size
# of the disk, which was unchanged since its last convergence.
set -eu
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

T=faults
BASE=18700			# faults.host: the same
# shellcheck source=SCRIPTDIR/agent_lib.sh
. "$(dirname "$0")/agent_lib.sh"
STATS=$PERSIST/faults.stats	# kind ok mismatch sent written back_s
DISK_BYTES=$((256 * 1048576))

ferry_begin "$T"

ROUNDS=1
SEED=$(date +%s)
for a in ${FERRY_ARGS:-}; do
	case $a in
	rounds=*) ROUNDS=${a#rounds=} ;;
	seed=*) SEED=${a#seed=} ;;
	esac
done
LAST_BOOT=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^ferry.boots=//p')
LAST_BOOT=${LAST_BOOT:-2}

# The disk's sectors written so far, in bytes (/sys/block/vda/stat).
disk_written() {
	awk '{ print $7 * 512 }' /sys/block/vda/stat
}

# The agent's bytes sent since it started (0 before its first status).
agent_sent() {
	_v=$(status_field sentBytes || :)
	echo "${_v:-0}"
}

# seconds: the guest's clock, in seconds.
seconds() {
	cut -d. -f1 /proc/uptime
}

# order SEED N: the four faults in a random order (awk's generator).
order() {
	echo "agent-kill replicator-kill net-cut enospc" |
		awk -v seed="$1" -v n="$2" '{
			srand(seed + n)
			for (i = NF; i > 1; i--) {
				j = int(rand() * i) + 1
				t = $i; $i = $j; $j = t
			}
			print
		}'
}

# A steady load the agent keeps up with under emulation (a faster one
# keeps it in BACKLOG, and the time back to CONTINUOUS would measure the
# load, not the fault).
start_fio() {
	fio --name=verify --directory="$MNT" --size=32M --bs=4k \
		--rw=randwrite --ioengine=psync --direct=1 --verify=crc32c \
		--rate_iops=200 \
		--do_verify=1 --time_based=1 --runtime="$1" \
		--verify_backlog=256 >"$WORK/fio.out" 2>&1 &
	FIO=$!
}

# inject KIND: the fault itself, up to its healing.  SENT_BEFORE_KILL
# keeps what a killed agent had sent, which its successor does not count.
inject() {
	SENT_BEFORE_KILL=0
	case $1 in
	none)
		# The same load without a fault: what the agent sends anyway.
		sleep 6
		;;
	agent-kill)
		SENT_BEFORE_KILL=$(agent_sent)
		kill -9 "$AGENT_PID"
		wait "$AGENT_PID" 2>/dev/null || :
		sleep 2
		start_agent
		;;
	replicator-kill)
		svc "kill-replicator?ms=3000" >/dev/null
		sleep 3
		;;
	net-cut)
		svc "cut?ms=6000" >/dev/null
		sleep 6
		;;
	enospc)
		_f=$(svc fill || :)
		case $_f in
		FILLED*) info "staging filesystem: $_f" ;;
		*) fail "$T/enospc: fill the staging filesystem" "${_f:-the stack failed (see the .host log)}" ;;
		esac
		sleep 8
		info "staging filesystem: $(svc free || :)"
		;;
	esac
}

# one_fault KIND: inject KIND under a verified fio load and judge.
one_fault() {
	_kind=$1
	step "fault: $_kind, under fio"
	start_fio 25
	sleep 5
	_w0=$(disk_written)
	_s0=$(agent_sent)
	inject "$_kind"
	_healed=$(seconds)
	_ok=1
	if wait_for 300 state_is CONTINUOUS; then
		_back=$(($(seconds) - _healed))
	else
		_back=-1
		_ok=0
		fail "$T/$_kind: back to CONTINUOUS" "state $(svc state); $(tail -n 3 "$AGENT_LOG" | tr '\n' ' ')"
	fi
	if wait "$FIO"; then
		pass "$T/$_kind: fio verify passed across the fault"
	else
		_ok=0
		fail "$T/$_kind: fio verify passed across the fault" "$(tail -n 3 "$WORK/fio.out" | tr '\n' ' ')"
	fi
	_mis=0
	_before=$FERRY_FAILED
	wait_converged "$T/$_kind: staging volume equals /dev/vda once writes stop" 300
	[ "$FERRY_FAILED" -eq "$_before" ] || { _mis=1; _ok=0; }
	_written=$(($(disk_written) - _w0))
	if [ "$_kind" = agent-kill ]; then
		_sent=$((SENT_BEFORE_KILL - _s0 + $(agent_sent)))
	else
		_sent=$(($(agent_sent) - _s0))
	fi
	[ "$_back" -lt 0 ] || pass "$T/$_kind: back to CONTINUOUS in $_back s"
	info "$_kind: sent $_sent bytes for $_written bytes written"
	echo "$_kind $_ok $_mis $_sent $_written $_back" >>"$STATS"
}

# report: the table of every fault of every boot.
report() {
	step "report"
	echo "    fault            survived  mismatches  sent/written  vs no fault  back to CONTINUOUS (s, max)"
	awk '{
		n[$1]++; ok[$1] += $2; mis[$1] += $3; s[$1] += $4; w[$1] += $5
		if ($6 > b[$1]) b[$1] = $6
	} END {
		base = w["none"] ? s["none"] / w["none"] : 0
		for (k in n) {
			r = w[k] ? s[k] / w[k] : 0
			printf "    %-16s %4d/%-4d %6d  %12.3f  %11.3f  %6d\n", k,
				ok[k], n[k], mis[k], r,
				(base && k != "reset") ? r / base : 0, b[k]
		}
	}' "$STATS"
	awk '$1 == "reset" { printf "    reset: rescans sent %.3f %% of the disk (goal < 1 %%)\n", $4 * 100 / '"$DISK_BYTES"' }' "$STATS"
}

# The snapshot of a consistency point made under load passes e2fsck -fn.
check_snapshots() {
	_cps=$(freeze_cps | awk -v k="$1" '$1 > k' | tr '\n' ',')
	if [ -z "$_cps" ]; then
		fail "$T/consistency points under load" "none after CP $1"
		return
	fi
	_r=$(svc "snapcheck?cps=${_cps%,}&name=/dev/vda" || :)
	case $_r in
	CLEAN*) pass "$T/a snapshot taken under load passes e2fsck -fn ($_r)" ;;
	*) fail "$T/a snapshot taken under load passes e2fsck -fn" "$_r" ;;
	esac
}

# Each boot but the last: the rounds of faults, then a reset.
campaign() {
	_cp0=$(cp_last)
	round=1
	while [ "$round" -le "$ROUNDS" ]; do
		_o=$(order "$SEED" "$((FERRY_BOOT * 1000 + round))")
		info "round $round of boot $FERRY_BOOT (seed $SEED): none, then $_o"
		# First the load alone: the ratio the faults are measured against.
		for k in none $_o; do
			one_fault "$k"
		done
		round=$((round + 1))
	done
	check_snapshots "$_cp0"
	if [ "$FERRY_BOOT" -lt "$LAST_BOOT" ]; then
		step "fault: reset, of a disk equal to its staging volume"
		# The rescan of the next boot must find nothing to send but
		# what mounting the disk again changes.
		wait_converged "$T/reset: converged before" 300
		seconds >"$PERSIST/reset.time"
		sync
		hard_reset
		fail "$T/reset" "the guest did not reset"
		ferry_end
	fi
}

if [ "$FERRY_BOOT" -ge 2 ]; then
	restart_after_reset
	t0=$(seconds)
	ok=1
	mis=0
	if wait_for 300 state_is CONTINUOUS; then
		back=$(($(seconds) - t0))
		pass "$T/reset: back to CONTINUOUS in $back s of this boot"
	else
		back=-1
		ok=0
		fail "$T/reset: back to CONTINUOUS" "state $(svc state)"
	fi
	before=$FERRY_FAILED
	wait_converged "$T/reset: staging volume equals /dev/vda after the rescan" 300
	[ "$FERRY_FAILED" -eq "$before" ] || { mis=1; ok=0; }
	sent=$(agent_sent)
	echo "reset $ok $mis $sent $DISK_BYTES $back" >>"$STATS"
	if [ "$sent" -lt $((DISK_BYTES / 100)) ]; then
		pass "$T/reset: the rescan sent $sent bytes, under 1 % of the disk"
	else
		fail "$T/reset: the rescan sent under 1 % of the disk" "$sent bytes"
	fi
	# The last boot judges the reset; the others ran the rounds.
	[ "$FERRY_BOOT" -ge "$LAST_BOOT" ] || campaign
	stop_agent
	report
	umount "$MNT"
	ferry_end
fi

step "load ferry.ko, wait for the host's stack"
load_ferry
wait_for 120 svc setup >/dev/null
make_source_fs
configure_agent
: >"$STATS"
start_agent
initial_copy
campaign
stop_agent
report
umount "$MNT"
ferry_end
