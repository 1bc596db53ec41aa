#!/bin/bash
# run.sh --suite SUITE --initrd FILE --test NAME [options] — boot one test
# guest under QEMU (TCG) and judge it from its serial output.
#
# Options:
#   --disk SIZE|FILE   a virtio-blk disk (/dev/vda, vdb... in order): SIZE
#                      (256M, 1G) is a fresh sparse raw file, FILE is used
#                      as is (raw). Repeatable.
#   --mem 1G --smp 2   guest memory and CPUs
#   --tcg-thread single|multi
#                      QEMU's TCG threading (default multi: one host
#                      thread per vCPU); single runs the vCPUs in turn on
#                      one thread (docs/testing.md: ftrace's live code
#                      patching under write load)
#   --timeout SEC      the test's own limit (default 600); QEMU is killed
#                      FERRY_BOOT_ALLOWANCE (120) seconds later
#   --log FILE         console log (default $BUILD/vm-logs/SUITE-NAME.log)
#   --args "..."       arguments of the guest test (ferry.args=)
#   --append "..."     more kernel command line
#   --boots N          boot N times on the same disks (default 1): boot K
#                      gets ferry.boot=K ($FERRY_BOOT in the test) and
#                      ferry.boots=N; a boot before the last ends when the
#                      guest resets itself
#                      (QEMU exits, -no-reboot), the next starts at once;
#                      consoles append to the same log, the host hook runs
#                      across all boots, the timeout is per boot
#   --host CMD         run CMD (bash) on the host while the guest runs, with
#                      FERRY_QMP (QMP socket), FERRY_VM_LOG, FERRY_VM_RESULTS,
#                      FERRY_VM_DISKS in its environment; non-zero is a FAIL
#   -v | --verbose     also copy the console to stdout (FERRY_VERBOSE=1)
#
# A guest whose kernel crashes before the test begins (no FERRY-BOOTED:
# ferry.ko is not loaded yet) is booted once more, its first console kept
# as LOG.boot-crash.  FERRY_VM_FIRST_APPEND adds kernel command line to
# that first try only (tests/host/vm_retry.sh makes it crash so).
#
# The console (ttyS0: kernel messages and the test's output) goes to the
# log; the test's output also goes to a second port (ttyS1) saved as
# SUITE-NAME.results next to it, which is where results are read, so that
# no kernel message can split a FERRY-RESULT line.
#
# Output: "PASS SUITE/NAME" or "FAIL SUITE/NAME: reason" per result; a
# kernel splat is "FAIL SUITE/NAME/kernel-log: <first such line>"; exit 0
# iff nothing failed.
#
# Machine: q35 with four hotplug-capable PCIe root ports (ids ferry-hp0..3)
# for QMP device_add of virtio-blk-pci disks:
#   {"execute":"blockdev-add","arguments":{"node-name":"hot0","driver":"raw",
#     "file":{"driver":"file","filename":"/path/disk.img"}}}
#   {"execute":"device_add","arguments":{"driver":"virtio-blk-pci",
#     "drive":"hot0","id":"hotdisk0","bus":"ferry-hp0"}}
# (see qmp() in lib.sh).
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/lib.sh"

HOTPLUG_PORTS=4

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

# Absolute path of the build dir (BUILD is relative to the repository).
build_dir() {
	local b=${BUILD:-build}
	case $b in
	/*) echo "$b" ;;
	*) echo "$FERRY_ROOT/$b" ;;
	esac
}

# Kill QEMU: politely first so it flushes the log, then for good.
stop_qemu() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || :
	for i in 1 2 3 4 5 6 7 8 9 10; do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.5
	done
	kill -KILL "$pid" 2>/dev/null || :
}

# Seconds from $1 to $2 (date +%s.%1N stamps), "?" when $2 is empty.
elapsed() {
	[ -n "$2" ] || { echo '?'; return; }
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

# Judge the run: print PASS/FAIL lines, return 1 on any FAIL.
judge() {
	local suite=$1 name=$2 log=$3 res=$4 why=$5 line fail=0 splat
	local src=$res
	# Results normally come from ttyS1; the console is the fall-back (a
	# guest without a second port, a test that wrote to /dev/console).
	grep -q 'FERRY-' "$res" 2>/dev/null || src=$log
	while IFS= read -r line; do
		line=${line%$'\r'}
		line=${line#*FERRY-RESULT }
		case $line in
		PASS\ *) echo "PASS $suite/${line#PASS }" ;;
		FAIL\ *) echo "FAIL $suite/${line#FAIL }"; fail=1 ;;
		esac
	done < <(grep -a 'FERRY-RESULT \(PASS\|FAIL\) ' "$src" || :)
	if ! grep -aq 'FERRY-DONE' "$src"; then
		echo "FAIL $suite/$name: no FERRY-DONE from the guest ($why)"
		fail=1
	elif ! grep -aq 'FERRY-RESULT \(PASS\|FAIL\) ' "$src"; then
		echo "FAIL $suite/$name: the guest printed no FERRY-RESULT line"
		fail=1
	fi
	# The echoed command line carries test names and arguments, not splats.
	splat=$(grep -aE '^\[ *[0-9]+\.[0-9]+\] ' "$log" | grep -av 'ommand line:' |
		grep -aE -m1 "$SPLAT_RE" | tr -d '\r' || :)
	if [ -n "$splat" ]; then
		echo "FAIL $suite/$name/kernel-log: $splat"
		fail=1
	fi
	return "$fail"
}

main() {
	local suite='' initrd='' name='' mem=1G smp=2 limit=600 log='' args='' append='' host='' boots=1
	local tcg_thread=multi
	local verbose=${FERRY_VERBOSE:-}
	local -a disks=()
	while [ $# -gt 0 ]; do
		case $1 in
		--suite) suite=${2:?}; shift 2 ;;
		--initrd) initrd=${2:?}; shift 2 ;;
		--test) name=${2:?}; shift 2 ;;
		--disk) disks+=("${2:?}"); shift 2 ;;
		--mem) mem=${2:?}; shift 2 ;;
		--smp) smp=${2:?}; shift 2 ;;
		--tcg-thread) tcg_thread=${2:?}; shift 2 ;;
		--timeout) limit=${2:?}; shift 2 ;;
		--log) log=${2:?}; shift 2 ;;
		--args) args=$2; shift 2 ;;
		--append) append=$2; shift 2 ;;
		--host) host=${2:?}; shift 2 ;;
		--boots) boots=${2:?}; shift 2 ;;
		-v | --verbose) verbose=1; shift ;;
		-h | --help) usage ;;
		*) echo "run.sh: unknown argument $1" >&2; usage ;;
		esac
	done
	if [ -z "$suite" ] || [ -z "$initrd" ] || [ -z "$name" ]; then usage; fi
	[ -f "$initrd" ] || die "--initrd $initrd: no such file (build it with scripts/vm/initramfs.sh)"
	case $limit in '' | *[!0-9]*) die "--timeout $limit: not a number of seconds" ;; esac
	case $boots in '' | 0 | *[!0-9]*) die "--boots $boots: not a number of boots" ;; esac
	ensure_pkgs qemu-system-x86

	local VMLINUZ
	eval "$("$FERRY_VM_DIR/kernel.sh" "$suite")"
	[ -n "$log" ] || log="$(build_dir)/vm-logs/$suite-$name.log"
	mkdir -p "$(dirname "$log")"
	local res="${log%.log}.results"
	# Globals: the EXIT trap runs after main's locals are gone.
	vmdir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-vm.XXXXXX")
	qpid='' tpid='' hpid=''
	trap 'for p in $qpid $tpid; do kill "$p" 2>/dev/null || :; done
		[ -z "$hpid" ] || kill -TERM -- "-$hpid" 2>/dev/null || :
		rm -rf "$vmdir"' EXIT

	# shellcheck disable=SC2054 # commas are QEMU's option syntax
	case $tcg_thread in single | multi) ;; *) die "--tcg-thread: single or multi, not $tcg_thread" ;; esac
	local -a q=(qemu-system-x86_64 -machine q35 -accel "tcg,thread=$tcg_thread" -cpu max
		-smp "$smp" -m "$mem" -display none -nodefaults -no-user-config
		-monitor none -no-reboot
		-kernel "$VMLINUZ" -initrd "$initrd"
		-chardev "file,id=con,path=$log,append=on" -serial chardev:con
		-chardev "file,id=res,path=$res,append=on" -serial chardev:res
		-qmp "unix:$vmdir/qmp.sock,server=on,wait=off"
		-netdev user,id=net0 -device virtio-net-pci,netdev=net0)
	local i d file disklist=''
	for ((i = 0; i < HOTPLUG_PORTS; i++)); do
		q+=(-device "pcie-root-port,id=ferry-hp$i,bus=pcie.0,chassis=$((i + 1)),slot=$((i + 1))")
	done
	i=0
	for d in "${disks[@]}"; do
		if [[ $d =~ ^[0-9]+[KMGT]?$ ]]; then
			file="$vmdir/disk$i.img"
			truncate -s "$d" "$file"
		else
			[ -f "$d" ] || [ -b "$d" ] || die "--disk $d: neither a size (256M) nor an existing file"
			file=$(readlink -f "$d")
		fi
		q+=(-drive "if=none,id=disk$i,file=$file,format=raw,cache=writeback"
			-device "virtio-blk-pci,drive=disk$i,serial=ferry-disk$i")
		disklist="$disklist $file"
		i=$((i + 1))
	done
	local cmdline="console=ttyS0,115200 panic=-1 loglevel=7 net.ifnames=0 ferry.test=$name ferry.timeout=$limit"
	[ -z "$args" ] || cmdline="$cmdline ferry.args=\"$args\""
	[ -z "$append" ] || cmdline="$cmdline $append"

	: >"$log"
	: >"$res"
	rm -f "$log.boot-crash"	# an earlier run's
	local t0 deadline why='killed after the timeout' boot=1
	t0=$(date +%s.%1N)
	if [ -n "$verbose" ]; then
		tail -n +1 -F "$log" 2>/dev/null &
		tpid=$!
	fi
	start_hook() {
		[ -n "$host" ] || return 0
		FERRY_QMP="$vmdir/qmp.sock" FERRY_VM_LOG="$log" FERRY_VM_RESULTS="$res" \
			FERRY_VM_DISKS="${disklist# }" FERRY_SUITE="$suite" \
			setsid bash -c "$host" >"${log%.log}.host.log" 2>&1 &
		# Its own process group, so stopping it stops what it started.
		hpid=$!
	}
	start_hook
	local done_at='' booted_at='' qrc=0 retried=''
	while :; do
		deadline=$(($(date +%s) + limit + ${FERRY_BOOT_ALLOWANCE:-120}))
		local first=''
		[ -n "$retried" ] || [ "$boot" -ne 1 ] || first=${FERRY_VM_FIRST_APPEND:-}
		"${q[@]}" -append "$cmdline ferry.boot=$boot ferry.boots=$boots${first:+ $first}" >"$vmdir/qemu.out" 2>&1 &
		qpid=$!
		while kill -0 "$qpid" 2>/dev/null; do
			if [ -z "$booted_at" ] && grep -aq FERRY-BOOTED "$res" "$log" 2>/dev/null; then
				booted_at=$(date +%s.%1N)
			fi
			if [ "$(date +%s)" -ge "$deadline" ]; then
				stop_qemu "$qpid"
				break
			fi
			# A guest that said FERRY-DONE but does not power off.
			if [ -z "$done_at" ] && grep -aq FERRY-DONE "$res" "$log" 2>/dev/null; then
				done_at=$(date +%s)
			fi
			if [ -n "$done_at" ] && [ "$(date +%s)" -ge $((done_at + 30)) ]; then
				stop_qemu "$qpid"
				break
			fi
			# Poll fast until boot, to time it.
			if [ -n "$booted_at" ]; then sleep 0.5; else sleep 0.1; fi
		done
		qrc=0
		wait "$qpid" 2>/dev/null || qrc=$?
		qpid=''
		# The guest reset itself before its last boot: boot it again.
		if [ "$boot" -lt "$boots" ] && [ "$qrc" -eq 0 ] && [ -z "$done_at" ] &&
			[ "$(date +%s)" -lt "$deadline" ]; then
			boot=$((boot + 1))
			info "$suite/$name: the guest reset; boot $boot of $boots"
			continue
		fi
		# The guest's own kernel died before the test began (before
		# FERRY-BOOTED, so before ferry.ko was loaded): under load,
		# TCG's threads can run a stale translation of code the
		# kernel patches at boot (docs/testing.md).  Boot it once
		# more, keeping the first console.
		if [ -z "$booted_at" ] && [ -z "$retried" ] && [ "$boot" -eq 1 ] &&
			[ "$(date +%s)" -lt "$deadline" ] && grep -aqE "$SPLAT_RE" "$log"; then
			retried=1
			cp "$log" "$log.boot-crash"
			info "$suite/$name: the guest's kernel crashed before the test began ($(grep -aE -m1 "$SPLAT_RE" "$log" | tr -d '\r')); booting it again (first console: $log.boot-crash)"
			if [ -n "$hpid" ]; then
				kill -TERM -- "-$hpid" 2>/dev/null || :
				wait "$hpid" 2>/dev/null || :
				hpid=''
			fi
			: >"$log"
			: >"$res"
			start_hook
			continue
		fi
		break
	done
	if [ "$qrc" -ne 0 ] && [ "$(date +%s)" -lt "$deadline" ]; then
		why="qemu exited with $qrc: $(tail -n1 "$vmdir/qemu.out")"
	elif grep -aq 'Kernel panic' "$log"; then
		why="kernel panic"
	fi
	[ -z "$tpid" ] || { sleep 0.3; kill "$tpid" 2>/dev/null || :; tpid=''; }
	local hostfail=''
	if [ -n "$hpid" ]; then
		local hrc=0
		# The hook had its chance while the guest ran.
		kill -TERM -- "-$hpid" 2>/dev/null || kill "$hpid" 2>/dev/null || :
		wait "$hpid" 2>/dev/null || hrc=$?
		hpid=''
		# 143: we stopped it ourselves after the guest finished.
		if [ "$hrc" -ne 0 ] && [ "$hrc" -ne 143 ]; then
			hostfail="FAIL $suite/$name/host: host hook exited with $hrc: $(tail -n1 "${log%.log}.host.log")"
		fi
	fi
	local booted
	booted=$(grep -ah -m1 FERRY-BOOTED "$res" "$log" 2>/dev/null | head -n1 | awk '{print $2}' || :)
	info "$suite/$name: booted in $(elapsed "$t0" "$booted_at")s (guest clock ${booted:-?}s), run took $(elapsed "$t0" "$(date +%s.%1N)")s"
	local rc=0
	judge "$suite" "$name" "$log" "$res" "$why" || rc=1
	if [ -n "$hostfail" ]; then
		echo "$hostfail"
		rc=1
	fi
	if [ "$rc" -ne 0 ]; then
		# A splat's first lines say where it hit (its RIP, the task);
		# CI keeps only this output, not the log.
		local first
		first=$(grep -anE "$SPLAT_RE" "$log" | grep -av 'ommand line:' |
			head -n1 | cut -d: -f1 || :)
		if [ -n "$first" ]; then
			echo "--- $log (from line $((first > 5 ? first - 5 : 1)), the first splat) ---"
			tail -n +"$((first > 5 ? first - 5 : 1))" "$log" | head -n 80 | tr -d '\r'
		fi
		echo "--- $log (last 40 lines) ---"
		tail -n 40 "$log" | tr -d '\r'
		echo "--- end of $log ---"
	fi
	return "$rc"
}

# One compound command, parsed whole before it runs: bash reads a script
# as it goes, and an edit of this file during a run must not be read.
{
	main "$@"
	exit
}
