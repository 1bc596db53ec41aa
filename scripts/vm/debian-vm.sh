#!/bin/bash
# debian-vm.sh — a real Debian server in QEMU, driven over SSH, for the
# tests and the demo that need what an administrator has: systemd, apt,
# DKMS (the busybox guests of scripts/vm/run.sh do not have them).
#
#   debian-vm.sh start DIR [--suite bookworm] [--disk SIZE|FILE]...
#                [--root FILE] [--append ARGS] [--mem 1G] [--smp 2]
#                [--timeout SECS]
#       boot a guest of the cached image (scripts/vm/debian-image.sh) on a
#       fresh qcow2 overlay in DIR, and wait until SSH answers.  --root
#       boots a raw root disk of that image instead (a test instance from
#       an exported snapshot), used as it is; --append adds kernel
#       parameters.  --disk
#       adds virtio disks after the root disk (vdb, vdc...): a size makes
#       an empty sparse file in DIR.  The host is 10.0.2.2 for the guest.
#   debian-vm.sh ssh DIR [CMD...]       run CMD as root in the guest (stdin
#                                       passed on); exit status is CMD's
#   debian-vm.sh copy DIR FILE... DEST  copy host files to DEST in the guest
#   debian-vm.sh stop DIR               power off (kill after 60 s), then
#                                       fail if the kernel log has a splat
#   debian-vm.sh check DIR              only the kernel-log check
#
# DIR holds console.log (the serial console: kernel and systemd), qmp.sock,
# pid, ssh-port and uuid: the guest's system UUID (QEMU's -uuid), made at
# its first start, as a hypervisor gives every machine its own; a test
# instance booted from a source's disks in another DIR is another machine
# (ferry-agent refuses to replicate there).  DIR is kept after stop, for
# the logs.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

ssh_opts() {
	local dir=$1
	# The guest's host key changes with every image: nothing to pin.
	echo "-i $(cat "$dir/ssh-key") -p $(cat "$dir/ssh-port")" \
		"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" \
		"-o LogLevel=ERROR -o ConnectTimeout=10 -o BatchMode=yes" \
		"-o ServerAliveInterval=15 -o ServerAliveCountMax=8"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_start() {
	local dir=$1 suite=bookworm mem=1G smp=2 limit=300 i=0 d file port t0
	local rootimg='' append=''
	local -a disks=()
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--suite) suite=$2 ;;
		--disk) disks+=("$2") ;;
		--root) rootimg=$2 ;;
		--append) append=$2 ;;
		--mem) mem=$2 ;;
		--smp) smp=$2 ;;
		--timeout) limit=$2 ;;
		*) usage ;;
		esac
		shift 2
	done
	ensure_pkgs qemu-system-x86 qemu-utils openssh-client
	local IMAGE VMLINUZ INITRD SSHKEY
	eval "$("$FERRY_VM_DIR/debian-image.sh" "$suite")"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ ! -f "$dir/pid" ] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null ||
		die "a guest already runs in $dir (pid $(cat "$dir/pid")): stop it first"
	rm -f "$dir/root.qcow2" "$dir/qmp.sock" "$dir/pid"
	local rootdrive="file=$dir/root.qcow2,format=qcow2"
	if [ -n "$rootimg" ]; then
		[ -f "$rootimg" ] || die "--root $rootimg: no such file"
		rootdrive="file=$(readlink -f "$rootimg"),format=raw"
	else
		qemu-img create -q -f qcow2 -b "$IMAGE" -F raw "$dir/root.qcow2" ||
			die "qemu-img could not make an overlay of $IMAGE in $dir"
	fi
	[ -s "$dir/uuid" ] || cat /proc/sys/kernel/random/uuid >"$dir/uuid"
	port=$(free_port)
	echo "$port" >"$dir/ssh-port"
	echo "$SSHKEY" >"$dir/ssh-key"
	# shellcheck disable=SC2054 # commas are QEMU's option syntax
	local -a q=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max
		-smp "$smp" -m "$mem" -uuid "$(cat "$dir/uuid")"
		-display none -nodefaults -no-user-config
		-monitor none
		-kernel "$VMLINUZ" -initrd "$INITRD"
		-append "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 panic=-1${append:+ $append}"
		-serial "file:$dir/console.log"
		-qmp "unix:$dir/qmp.sock,server=on,wait=off"
		-netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:22"
		-device virtio-net-pci,netdev=net0
		-drive "if=none,id=root,$rootdrive,cache=unsafe"
		-device virtio-blk-pci,drive=root,serial=ferry-root)
	for d in "${disks[@]}"; do
		i=$((i + 1))
		if [[ $d =~ ^[0-9]+[KMGT]?$ ]]; then
			file="$dir/disk$i.img"
			rm -f "$file"
			truncate -s "$d" "$file"
		else
			[ -f "$d" ] || die "--disk $d: neither a size (512M) nor a file"
			file=$(readlink -f "$d")
		fi
		q+=(-drive "if=none,id=disk$i,file=$file,format=raw,cache=writeback"
			-device "virtio-blk-pci,drive=disk$i,serial=ferry-disk$i")
	done
	t0=$(date +%s)
	"${q[@]}" >"$dir/qemu.out" 2>&1 &
	echo $! >"$dir/pid"
	info "booting a $suite guest in $dir (SSH on 127.0.0.1:$port)"
	# shellcheck disable=SC2046 # ssh_opts is a list of options
	until ssh $(ssh_opts "$dir") root@127.0.0.1 true 2>/dev/null; do
		kill -0 "$(cat "$dir/pid")" 2>/dev/null ||
			die "the guest in $dir stopped while booting: $(tail -n 3 "$dir/qemu.out" "$dir/console.log" | tr '\n' ' ')"
		if [ $(($(date +%s) - t0)) -ge "$limit" ]; then
			cmd_kill "$dir"
			die "the guest in $dir did not answer SSH within ${limit}s (see $dir/console.log)"
		fi
		sleep 2
	done
	info "the guest in $dir is up after $(($(date +%s) - t0))s"
}

cmd_ssh() {
	local dir=$1
	shift
	# shellcheck disable=SC2046 # ssh_opts is a list of options
	exec ssh $(ssh_opts "$dir") root@127.0.0.1 "$@"
}

cmd_copy() {
	local dir=$1 dest=${*: -1} f
	local -a files=()
	for f in "${@:2:$#-2}"; do
		[ -f "$f" ] || die "copy: no file $f"
		files+=("$(readlink -f "$f")")
	done
	# shellcheck disable=SC2046,SC2029 # options; DEST expands here
	tar -C / -cf - --transform 's|.*/||' "${files[@]/#\//}" |
		ssh $(ssh_opts "$dir") root@127.0.0.1 "mkdir -p '$dest' && tar -C '$dest' -xf -"
}

cmd_kill() {
	local dir=$1 pid
	pid=$(cat "$dir/pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || :
	rm -f "$dir/pid"
}

cmd_check() {
	local dir=$1 splat
	splat=$(grep -aE '^\[ *[0-9]+\.[0-9]+\] ' "$dir/console.log" |
		grep -av 'ommand line:' | grep -aE "$SPLAT_RE" | head -n 1 || :)
	if [ -n "$splat" ]; then
		echo "the guest's kernel log ($dir/console.log) has: $splat" >&2
		return 1
	fi
}

cmd_stop() {
	local dir=$1 pid n=0
	pid=$(cat "$dir/pid" 2>/dev/null) || {
		cmd_check "$dir"
		return
	}
	# shellcheck disable=SC2046 # ssh_opts is a list of options
	ssh $(ssh_opts "$dir") root@127.0.0.1 systemctl poweroff >/dev/null 2>&1 || :
	while kill -0 "$pid" 2>/dev/null && [ $n -lt 120 ]; do
		sleep 0.5
		n=$((n + 1))
	done
	cmd_kill "$dir"
	cmd_check "$dir"
}

[ $# -ge 2 ] || usage
cmd=$1
shift
case $cmd in
start) cmd_start "$@" ;;
ssh) cmd_ssh "$@" ;;
copy) [ $# -ge 3 ] || usage; cmd_copy "$@" ;;
stop) cmd_stop "$@" ;;
check) cmd_check "$@" ;;
*) usage ;;
esac
