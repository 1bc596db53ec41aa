#!/bin/sh
# /init of the test guest (busybox ash; bash is not in the initramfs).
#
# Kernel command line (written by scripts/vm/run.sh):
#   ferry.test=NAME       run /ferry/tests/NAME.sh
#   ferry.args="A B"      its arguments (also in $FERRY_ARGS)
#   ferry.timeout=SEC     kill it after SEC seconds (default 600)
#   ferry.boot=K          which boot this is, from 1 ($FERRY_BOOT): a test
#                         that resets the machine is booted again (run.sh
#                         --boots)
# The kernel ignores these (a dotted name is a module parameter of a module
# that is not built in), so they reach us only through /proc/cmdline.
# Load ferry.ko with insmod, not modprobe: busybox modprobe would hand
# ferry.test/args/timeout to it as module parameters.
#
# The test prints "FERRY-RESULT PASS <name>" / "FERRY-RESULT FAIL <name>: why".
# Everything it prints goes to the console (ttyS0, shared with the kernel's
# messages) and, when QEMU gives us a second serial port, also to ttyS1:
# the host reads results there, where no kernel message can cut a line.
# Then "FERRY-DONE" and power off; QEMU runs with -no-reboot, so a panic
# (panic=-1) also ends the run.
# set -u only: a failing command must not kill init (the kernel would panic).
set -u

PATH=/ferry/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH HOME=/root TERM=dumb
# No udev in the guest: dmsetup/lvm must not wait for it.
export DM_DISABLE_UDEV=1

RESULTS=
OUT=/tmp/ferry-test.out

# say LINE: to the console and the results port.
say() {
	echo "$*"
	[ -z "$RESULTS" ] || echo "$*" >"$RESULTS"
}

mount_all() {
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	exec </dev/console >/dev/console 2>&1
	mkdir -p /dev/pts /dev/shm
	mount -t devpts devpts /dev/pts
	mount -t tmpfs tmpfs /dev/shm
	mount -t tmpfs tmpfs /tmp
	mount -t tmpfs tmpfs /run
	[ ! -d /sys/kernel/debug ] || mount -t debugfs debugfs /sys/kernel/debug
	[ ! -d /sys/kernel/tracing ] || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
	[ ! -d /sys/kernel/config ] || mount -t configfs configfs /sys/kernel/config 2>/dev/null
	ln -sf /proc/self/fd /dev/fd
	ln -sf /proc/self/fd/0 /dev/stdin
	ln -sf /proc/self/fd/1 /dev/stdout
	ln -sf /proc/self/fd/2 /dev/stderr
	hostname ferry-guest
}

# Load a module unless it is built in or already loaded.
load() {
	for m in "$@"; do
		[ -d "/sys/module/$m" ] && continue
		modprobe "$m" 2>/dev/null || echo "ferry-init: cannot load module $m"
	done
}

# QEMU user networking: the host is 10.0.2.2.
setup_net() {
	ip link set lo up
	[ -d /sys/class/net/eth0 ] || return 0
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
}

# Value of NAME=... on the kernel command line, quotes removed.
cmdline_arg() {
	sed -n -e "s/.*\(^\| \)$1=\"\([^\"]*\)\".*/\2/p" \
		-e "t" -e "s/.*\(^\| \)$1=\([^ ]*\).*/\2/p" /proc/cmdline
}

# Results port: ttyS1 if QEMU connected one (an absent UART refuses stty).
setup_results() {
	if [ -c /dev/ttyS1 ] && stty -F /dev/ttyS1 raw -echo 2>/dev/null; then
		RESULTS=/dev/ttyS1
	fi
}

# Run the test in its own session with a watchdog; its output goes through
# a fifo to tee so we see it live and keep a copy. Children it leaves
# behind are killed with its process group so the fifo closes.
run_test() {
	name=$1 args=$2 limit=$3
	script=/ferry/tests/$name.sh
	: >"$OUT"
	if [ ! -f "$script" ]; then
		say "FERRY-RESULT FAIL $name: no test script $script in the initramfs"
		return
	fi
	export FERRY_TEST="$name" FERRY_ARGS="$args" FERRY_KO=/ferry/ferry.ko FERRY_HOST=10.0.2.2
	FERRY_BOOT=$(cmdline_arg ferry.boot)
	export FERRY_BOOT="${FERRY_BOOT:-1}"
	FERRY_DISKS=$(for d in /sys/block/vd*; do [ -e "$d" ] && echo "/dev/${d##*/}"; done | tr '\n' ' ')
	export FERRY_DISKS="${FERRY_DISKS% }"
	mkfifo /tmp/ferry.fifo
	if [ -n "$RESULTS" ]; then
		tee "$OUT" "$RESULTS" </tmp/ferry.fifo &
	else
		tee "$OUT" </tmp/ferry.fifo &
	fi
	tee_pid=$!
	cd /tmp || :
	# shellcheck disable=SC2086 # the arguments are split on purpose
	setsid sh "$script" $args >/tmp/ferry.fifo 2>&1 </dev/null &
	pid=$!
	(sleep "$limit" && touch /tmp/ferry.timeout && kill -KILL -"$pid" "$pid") 2>/dev/null &
	wd=$!
	wait "$pid"
	rc=$?
	kill "$wd" 2>/dev/null
	kill -KILL -"$pid" 2>/dev/null
	# Give tee a moment to drain, then stop it even if a daemon the test
	# started in another session still holds the fifo.
	i=0
	while kill -0 "$tee_pid" 2>/dev/null && [ $i -lt 20 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill "$tee_pid" 2>/dev/null
	cd / || :
	if [ -e /tmp/ferry.timeout ]; then
		say "FERRY-RESULT FAIL $name: timed out after ${limit}s"
	elif grep -q '^FERRY-RESULT FAIL' "$OUT"; then
		:
	elif [ "$rc" -ne 0 ]; then
		say "FERRY-RESULT FAIL $name: exit code $rc"
	elif ! grep -q '^FERRY-RESULT ' "$OUT"; then
		say "FERRY-RESULT FAIL $name: the test printed no FERRY-RESULT line"
	fi
}

main() {
	mount_all
	setup_results
	load virtio_pci virtio_blk virtio_net
	setup_net
	read -r up _ </proc/uptime
	say "FERRY-BOOTED $up $(uname -r)"
	name=$(cmdline_arg ferry.test)
	args=$(cmdline_arg ferry.args)
	limit=$(cmdline_arg ferry.timeout)
	if [ -z "$name" ]; then
		say "FERRY-RESULT FAIL init: no ferry.test=NAME on the kernel command line"
	else
		run_test "$name" "$args" "${limit:-600}"
	fi
	sync
	say "FERRY-DONE"
	poweroff -f
	# Not reached unless poweroff failed; returning would panic the kernel.
	sleep 5
	echo o >/proc/sysrq-trigger
}

main
