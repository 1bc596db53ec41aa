# shellcheck shell=sh
# Helpers of the guest tests that run ferry-agent against the host's stack
# (tests/vm/agent_stack.py, reached at 10.0.2.2): agent_sync.sh, faults.sh.
# Sourced after lib.sh, with BASE set to the stack's base port.  No
# "ferry-vm:" header: not a test.
#
#   vda  the replicated disk, mounted on $MNT;
#   vdb  not replicated: the agent's configuration and state ($PERSIST),
#        which outlive a reset of the guest.

SVC=http://10.0.2.2:$((BASE + 2))
PERSIST=/persist
STATE=$PERSIST/state
CONF=$PERSIST/agent.conf
AGENT_LOG=/tmp/agent.log
MNT=/mnt/src

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

# disk_continuous DISK: the running agent says DISK is CONTINUOUS
# (ferryctl status, from its status.json).
disk_continuous() {
	ferryctl status --state-dir "$STATE" 2>/dev/null |
		grep -qE "^$1 +CONTINUOUS"
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

# make_source_fs: ext4 on /dev/vda with files, mounted on $MNT.
make_source_fs() {
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/vda
	mkdir -p "$MNT"
	mount /dev/vda "$MNT"
	dd if=/dev/urandom of="$MNT/random.bin" bs=1M count=24 2>/dev/null
	_i=0
	while [ $_i -lt 200 ]; do
		echo "file $_i of the source server" >"$MNT/f$_i.txt"
		_i=$((_i + 1))
	done
	sync
}

# configure_agent: $PERSIST on /dev/vdb, agent.conf for /dev/vda with the
# installer's keys from the stack, consistency points every 5 s.
configure_agent() {
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
}

# initial_copy: the agent, started, copies /dev/vda: CONTINUOUS at
# ferry-control, then the staging volume equals the disk.
initial_copy() {
	step "initial copy"
	if wait_for 600 state_is CONTINUOUS; then
		pass "$T/initial copy: CONTINUOUS at ferry-control"
	else
		fail "$T/initial copy: CONTINUOUS at ferry-control" "state $(svc state); $(tail -n 5 "$AGENT_LOG" | tr '\n' ' ')"
	fi
	wait_converged "$T/initial copy: staging volume equals /dev/vda" 300
}

# restart_after_reset: a later boot finds $PERSIST and /dev/vda as the
# reset left them: load the module, remount both (the journal replays
# before the tracker is attached, as on a real boot), start the agent.
restart_after_reset() {
	step "boot $FERRY_BOOT, after a hard reset: remount, restart the agent"
	load_ferry
	wait_for 120 svc setup >/dev/null
	mkdir -p "$PERSIST" "$MNT"
	mount /dev/vdb "$PERSIST"
	cp "$PERSIST/machine-id" /etc/machine-id
	mount /dev/vda "$MNT"
	start_agent
}

# hard_reset: reset the guest at once, as a power cut would (sysrq b);
# the next boot goes on (boots= in the test's header).
hard_reset() {
	info "resetting now (boot $((FERRY_BOOT + 1)) goes on)"
	echo 1 >/proc/sys/kernel/sysrq
	echo b >/proc/sysrq-trigger
	sleep 30
}
