#!/bin/sh
# Guest side of tests/kmod/bench.sh (busybox sh). Not a test: it lives
# outside tests/kmod/guest/ so tests/kmod/run.sh does not pick it up.
#
# Arguments (ferry.args): RUNTIME ROUNDS NULLB_GB BIG_GB
#   RUNTIME    seconds per fio run (20)
#   ROUNDS     off/on pairs per device, alternating the order (3)
#   NULLB_GB   size of the memory-backed null_blk device (1)
#   BIG_GB     size of the data-less null_blk disk for the memory figures
#              (1024: a 1 TiB disk)
# Prints "FERRY-BENCH key value" lines, then FERRY-RESULT PASS/FAIL bench.
set -u

RUNTIME=${1:-20}
ROUNDS=${2:-3}
GB=${3:-1}
BIG_GB=${4:-1024}
ENGINE=io_uring

fail() {
	echo "FERRY-RESULT FAIL bench: $*"
	exit 1
}

figure() {
	echo "FERRY-BENCH $*"
}

# Seconds since boot, to report where the time goes.
now() {
	cut -d' ' -f1 /proc/uptime
}

# Write IOPS of fio 4 KiB random writes on $1: iodepth 32, O_DIRECT.
fio_iops() {
	fio --name=bench --filename="$1" --rw=randwrite --bs=4k --iodepth=32 \
		--ioengine="$ENGINE" --direct=1 --time_based --runtime="$RUNTIME" \
		--norandommap --randrepeat=0 --output-format=terse 2>/tmp/fio.err |
		cut -d';' -f49 | cut -d. -f1
}

attach() {
	ferryctl tracker attach "$1" >/dev/null || fail "ferryctl tracker attach $1 failed"
}

# Detach; a ferryctl without detach gets the module reloaded instead.
detach() {
	ferryctl tracker detach "$1" >/dev/null 2>&1 && return 0
	if ! rmmod ferry || ! insmod /ferry/ferry.ko; then
		fail "cannot detach $1 (ferryctl detach and module reload failed)"
	fi
}

# Rounds of off/on runs on device $1 labelled $2; ABBA order cancels a
# drift (page cache warming, host load) between the two modes.
measure() {
	dev=$1 label=$2 r=1
	while [ "$r" -le "$ROUNDS" ]; do
		if [ $((r % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
		for mode in $order; do
			[ "$mode" = off ] || attach "$dev"
			iops=$(fio_iops "$dev")
			[ "$mode" = off ] || detach "$dev"
			[ -n "$iops" ] || fail "fio on $dev failed: $(tail -n 3 /tmp/fio.err)"
			figure "$label.$mode.$r $iops"
		done
		r=$((r + 1))
	done
}

# Value of KEY in `ferryctl tracker stats` output ("key: value" lines).
stat_of() {
	sed -n "s/^$2: *//p" "$1" | head -n1
}

# A 1 TiB disk that stores nothing (null_blk without memory backing, made
# through configfs): the memory figures are for a big server disk, not for
# the small devices a guest can afford to hold.
big_device() {
	mount -t configfs none /sys/kernel/config 2>/dev/null || :
	d=/sys/kernel/config/nullb/ferrybig
	[ -d /sys/kernel/config/nullb ] || fail "null_blk has no configfs directory"
	mkdir "$d" || fail "cannot create a null_blk device through configfs"
	echo $((BIG_GB * 1024)) >"$d/size"
	echo 4096 >"$d/blocksize"
	echo 0 >"$d/memory_backed"
	echo 2 >"$d/queue_mode"
	echo 1 >"$d/power"
	# Newer kernels name the disk after the configfs directory.
	BIG=/dev/nullb$(cat "$d/index")
	[ -b "$BIG" ] || BIG=/dev/${d##*/}
	[ -b "$BIG" ] || fail "no block device after powering the configfs null_blk on"
}

# memory_case NAME FIO-ARGS...: attach BIG, run fio with the arguments (none:
# nothing written), report memory_bytes and dirty_blocks, detach.
memory_case() {
	name=$1
	shift
	attach "$BIG"
	if [ $# -gt 0 ]; then
		fio --name="$name" --filename="$BIG" --ioengine="$ENGINE" \
			--iodepth=32 --direct=1 --output-format=terse "$@" \
			>/dev/null 2>/tmp/fio.err ||
			fail "fio for memory case $name failed: $(tail -n 3 /tmp/fio.err)"
	fi
	ferryctl tracker stats "$BIG" >/tmp/stats || fail "ferryctl tracker stats $BIG failed"
	mem=$(stat_of /tmp/stats memory_bytes)
	[ -n "$mem" ] || fail "no memory_bytes in ferryctl tracker stats: $(cat /tmp/stats)"
	figure "memory.$name.memory_bytes $mem"
	figure "memory.$name.dirty_blocks $(stat_of /tmp/stats dirty_blocks)"
	detach "$BIG"
}

memory_cases() {
	big_device
	figure "memory.disk_bytes $((BIG_GB * 1073741824))"
	# A flat bitmap at 4 KiB would cost one bit per block, always.
	figure "memory.flat_bytes $((BIG_GB * 1073741824 / 4096 / 8))"
	memory_case clean
	# 1 % of the disk written in one sequential region, 1 MiB requests.
	memory_case seq1pct --rw=write --bs=1M --size=$((BIG_GB * 1024 / 100))M
	# 0.1 % of 4 KiB blocks at random over the whole disk.
	memory_case rand01pct --rw=randwrite --bs=4k --norandommap \
		--number_ios=$((BIG_GB * 262144 / 1000)) --size="${BIG_GB}G"
	# One 4 KiB block in every 64 MiB: every bitmap chunk of the disk is
	# touched, the worst case for the sparse bitmap.
	memory_case scatter64m --rw=write:65532k --bs=4k --size="${BIG_GB}G" \
		--number_ios=$((BIG_GB * 16))
}

main() {
	command -v ferryctl >/dev/null || fail "no ferryctl in the initramfs: run make userspace first"
	insmod /ferry/ferry.ko || fail "insmod /ferry/ferry.ko failed"
	modprobe null_blk nr_devices=1 gb="$GB" bs=4096 memory_backed=1 \
		queue_mode=2 irqmode=0 hw_queue_depth=64 ||
		fail "modprobe null_blk failed"
	[ -b /dev/nullb0 ] || fail "no /dev/nullb0 after modprobe null_blk"
	vd=${FERRY_DISKS%% *}
	[ -b "$vd" ] || fail "no virtio disk (run with --disk)"
	# Fill both devices first, so no run pays for first-touch allocation
	# (null_blk pages, host file blocks).
	t=$(now)
	dd if=/dev/zero of=/dev/nullb0 bs=1M count=$((GB * 1024)) oflag=direct 2>/dev/null
	dd if=/dev/zero of="$vd" bs=1M oflag=direct 2>/dev/null
	figure "seconds.fill $(echo "$(now) $t" | awk '{ print $1 - $2 }')"
	if ! fio --name=probe --filename=/dev/nullb0 --rw=randwrite --bs=4k --ioengine=io_uring \
		--direct=1 --runtime=1 --time_based >/dev/null 2>&1; then
		ENGINE=libaio
	fi
	figure "engine $ENGINE"
	figure "cpus $(nproc)"
	t=$(now)
	measure /dev/nullb0 null_blk
	measure "$vd" virtio
	figure "seconds.iops $(echo "$(now) $t" | awk '{ print $1 - $2 }')"
	t=$(now)
	memory_cases
	figure "seconds.memory $(echo "$(now) $t" | awk '{ print $1 - $2 }')"
	echo "FERRY-RESULT PASS bench"
}

main
