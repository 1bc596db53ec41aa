# ferry-vm: disks=64M,64M,64M mem=1G smp=2 tcg=single timeout=600
# shellcheck shell=sh
# lifecycle: attach/detach cycles, module reload under load, a loop device
# detached while tracked, a disk hot-removed while tracked and written,
# and ferry-badargs.
#
#   vda  attach/detach/re-attach, then rmmod/insmod under write load
#   vdb  hot-removed at the end (its PCI function is removed)
#   vdc  scratch device of ferry-badargs
set -eu
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

T=lifecycle
CYCLES=200
ferry_begin "$T"

# Helpers for wait_for.
# shellcheck disable=SC2317 # called through wait_for
exited() {
	! kill -0 "$1" 2>/dev/null
}
# shellcheck disable=SC2317 # called through wait_for
loop_cleared() {
	[ "$(cat "/sys/block/$1/size")" -eq 0 ]
}

step "load ferry.ko"
load_ferry
VDA_SIZE=$(size64 /dev/vda)

# ------------------------------------------------------------------------
step "attach/detach /dev/vda $CYCLES times with writes in between"
: >"$WORK/generations"
cycle_fail=
i=0
while [ $i -lt $CYCLES ] && [ -z "$cycle_fail" ]; do
	i=$((i + 1))
	# Alternate granularities so re-attach really sets up a new tracker.
	g=4096
	[ $((i % 2)) -eq 0 ] || g=65536
	if ! gen=$(attach /dev/vda $g) || [ -z "$gen" ]; then
		cycle_fail="cycle $i: attach failed"
		break
	fi
	# "new at every attach": never seen before in this module load.
	if grep -qx "$gen" "$WORK/generations"; then
		cycle_fail="cycle $i: generation $gen was already used"
		break
	fi
	echo "$gen" >>"$WORK/generations"
	rm -f "$WORK/cycle.log"
	if ! ferry-writer --count 3 --seed "$i" --ops direct,buffered,zeroout \
		--log "$WORK/cycle.log" /dev/vda >"$WORK/cycle.out" 2>&1; then
		cycle_fail="cycle $i: $(tail -n 1 "$WORK/cycle.out")"
		break
	fi
	if ! ferryctl tracker drain /dev/vda >"$WORK/cycle.drain" 2>"$WORK/cycle.out" ||
		! ferry-verify --log "$WORK/cycle.log" --granularity $g \
			--size "$VDA_SIZE" --extents "$WORK/cycle.drain" \
			>>"$WORK/cycle.out" 2>&1; then
		cycle_fail="cycle $i (granularity $g): $(tail -n 1 "$WORK/cycle.out")"
		break
	fi
	if ! ferryctl tracker detach /dev/vda >"$WORK/cycle.out" 2>&1; then
		cycle_fail="cycle $i: $(tail -n 1 "$WORK/cycle.out")"
		break
	fi
done
if [ -n "$cycle_fail" ]; then
	fail "$T/attach-detach-cycles" "$cycle_fail"
	ferryctl tracker detach /dev/vda >/dev/null 2>&1 || :
else
	pass "$T/attach-detach-cycles"
fi

# ------------------------------------------------------------------------
step "rmmod while /dev/vda is tracked and written"
old_gen=$(attach /dev/vda)
echo "$old_gen" >>"$WORK/generations"
old_load=$(ferryctl version | sed -n 's/.*load id \([0-9a-f]*\).*/\1/p')
ferry-writer --count 0 --seed 99 --ops direct,buffered --log /dev/null \
	/dev/vda >"$WORK/load.out" 2>&1 &
wpid=$!
sleep 2
check "$T/rmmod-while-tracked" rmmod ferry
if [ "$CHECK_RC" -eq 0 ]; then
	check "$T/writes-continue-after-rmmod" kill -0 $wpid
	step "insmod again"
	load_ferry
	sleep 1
	check "$T/writes-continue-after-insmod" kill -0 $wpid
	expect_fail "$T/reload-forgets-devices" "not tracked" \
		ferryctl tracker stats /dev/vda
	new_load=$(ferryctl version | sed -n 's/.*load id \([0-9a-f]*\).*/\1/p')
	check "$T/reload-new-load-id" test -n "$new_load" -a "$new_load" != "$old_load"
	new_gen=$(attach /dev/vda)
	check "$T/reload-new-generation" sh -c "test -n '$new_gen' && ! grep -qx '$new_gen' '$WORK/generations'"
fi
kill $wpid 2>/dev/null || :
wrc=0
wait $wpid || wrc=$?
# Killed by our SIGTERM (143) is the only acceptable end: exit 1 would
# mean a write failed while the module went away and came back.
if [ $wrc -eq 143 ]; then
	pass "$T/writer-unharmed-by-reload"
else
	fail "$T/writer-unharmed-by-reload" "ferry-writer ended with $wrc: $(tail -n 1 "$WORK/load.out")"
fi
ferryctl tracker detach /dev/vda >/dev/null

# ------------------------------------------------------------------------
step "loop device detached while tracked"
modprobe loop 2>/dev/null || :
dd if=/dev/zero of="$WORK/loop.img" bs=1M count=32 2>/dev/null
LOOP=$(losetup -f)
LOOPNAME=$(basename "$LOOP")
ensure_node "$LOOPNAME" 2>/dev/null || :
if losetup "$LOOP" "$WORK/loop.img"; then
	check "$T/loop-attach" attach "$LOOP"
	ferry-writer --count 0 --seed 7 --ops direct --log /dev/null "$LOOP" \
		>"$WORK/loopw.out" 2>&1 &
	wpid=$!
	sleep 1
	check "$T/loop-losetup-d-while-tracked" losetup -d "$LOOP"
	sleep 1
	kill $wpid 2>/dev/null || :
	wait $wpid 2>/dev/null || :
	# A holder keeps a loop device alive (autoclear), so "ok" is as
	# right as "gone"/"resized"; the module may also have let go.
	lstat=$(ferryctl tracker stats "$LOOP" 2>&1 | sed -n 's/^status: //p;s/.*\(not tracked\).*/\1/p')
	info "stats of $LOOP after losetup -d: ${lstat:-?}"
	if [ "$lstat" = "not tracked" ]; then
		expect_fail "$T/loop-tracker-detach" "not tracked" \
			ferryctl tracker detach "$LOOP"
	else
		check "$T/loop-tracker-detach" ferryctl tracker detach "$LOOP"
	fi
	# Once nothing holds it, the deferred losetup -d must complete.
	check "$T/loop-released" wait_for 10 loop_cleared "$LOOPNAME"
	check "$T/loop-reattach" sh -c "losetup '$LOOP' '$WORK/loop.img' &&
		ferryctl tracker attach '$LOOP' &&
		ferryctl tracker detach '$LOOP' && losetup -d '$LOOP'"
	# The tracker keeps the disk's structure alive, whose release calls
	# into its driver: the driver must not unload under it.
	if grep -q '^loop ' /proc/modules; then
		losetup "$LOOP" "$WORK/loop.img"
		attach "$LOOP" >/dev/null
		losetup -d "$LOOP"
		expect_fail "$T/loop-driver-pinned" "loop" rmmod loop
		check "$T/loop-driver-detach" ferryctl tracker detach "$LOOP"
		check "$T/loop-driver-unloads" wait_for 10 rmmod loop
	fi
else
	fail "$T/loop-attach" "losetup $LOOP $WORK/loop.img failed"
fi

# ------------------------------------------------------------------------
step "ferry-badargs on /dev/vdc"
check "$T/badargs" ferry-badargs /dev/vdc

# ------------------------------------------------------------------------
# Zone resets change data without a data range: a zoned device is refused
# rather than tracked incompletely (EOPNOTSUPP and a kernel log line).
step "a zoned device is refused"
if modprobe null_blk nr_devices=1 zoned=1 gb=1 zone_size=64 bs=4096 2>/dev/null &&
	wait_for 5 test -b /dev/nullb0; then
	expect_fail "$T/zoned-refused" "cannot be tracked" \
		ferryctl tracker attach /dev/nullb0
	check "$T/zoned-refused-logged" sh -c \
		"dmesg | grep -q 'refused: zoned block devices are not supported'"
	rmmod null_blk
else
	fail "$T/zoned-refused" "cannot create a zoned null_blk device"
fi

# ------------------------------------------------------------------------
# Before 6.3 a driver's rw_page (brd, zram, btt) took swap and mpage writes
# without a bio: attach refuses such disks there, and tracks brd after.
step "a disk whose driver writes pages without bios is refused"
if modprobe brd rd_nr=1 rd_size=8192 2>/dev/null &&
	wait_for 5 test -b /dev/ram0; then
	case $(uname -r) in
	[1-5].* | 6.[0-2].*)
		expect_fail "$T/rw-page-refused" "cannot be tracked" \
			ferryctl tracker attach /dev/ram0
		check "$T/rw-page-refused-logged" sh -c \
			"dmesg | grep -q 'refused: its driver writes pages without bios'"
		;;
	*)
		check "$T/rw-page-gone-attach" ferryctl tracker attach /dev/ram0
		check "$T/rw-page-gone-detach" ferryctl tracker detach /dev/ram0
		;;
	esac
	rmmod brd
else
	fail "$T/rw-page-refused" "cannot create a brd device"
fi

# ------------------------------------------------------------------------
# blkdiscard splits a range into a chain of bios, one per discard_max_bytes;
# each completes through ferry's record, so a long chain must neither
# overflow the stack nor lose a link.
step "a discard chain of 16384 bios on /dev/vdc"
q=/sys/block/vdc/queue
if [ -w $q/discard_max_bytes ] && [ "$(cat $q/discard_max_bytes)" -gt 0 ]; then
	echo 4096 >$q/discard_max_bytes
	attach /dev/vdc >/dev/null
	check "$T/discard-chain" blkdiscard -o 0 -l 67108864 /dev/vdc
	check "$T/discard-chain-drained" sh -c \
		"ferryctl tracker drain /dev/vdc 2>/dev/null | grep -qx '0 67108864'"
	ferryctl tracker detach /dev/vdc >/dev/null
else
	info "vdc has no discard support: skipped"
fi

# ------------------------------------------------------------------------
step "hot-remove /dev/vdb while tracked and written"
VDB_MM=$(cat /sys/block/vdb/dev)
PCIDEV=$(readlink -f /sys/block/vdb/device/..)
check "$T/hot-remove-attach" attach /dev/vdb
ferry-writer --count 0 --seed 11 --ops direct,buffered --log /dev/null \
	/dev/vdb >"$WORK/hotw.out" 2>&1 &
wpid=$!
sleep 1
if [ -w "$PCIDEV/remove" ]; then
	info "removing PCI device $PCIDEV (vdb, $VDB_MM)"
	echo 1 >"$PCIDEV/remove"
	# The writer sees I/O errors and stops; do not wait for ever.
	if ! wait_for 30 exited $wpid; then
		kill -9 $wpid 2>/dev/null || :
	fi
	wait $wpid 2>/dev/null || :
	check "$T/hot-remove-disk-gone" test ! -e /sys/block/vdb
	ferryctl tracker stats "$VDB_MM" >"$WORK/hot.stats" 2>&1 || :
	sed 's/^/    | /' "$WORK/hot.stats"
	check "$T/hot-remove-status-gone" grep -q '^status: .*gone' "$WORK/hot.stats"
	check "$T/hot-remove-drain" drain_to "$WORK/hot.drain" "$VDB_MM"
	check "$T/hot-remove-detach" ferryctl tracker detach "$VDB_MM"
	expect_fail "$T/hot-remove-forgotten" "not tracked" \
		ferryctl tracker stats "$VDB_MM"
else
	kill $wpid 2>/dev/null || :
	wait $wpid 2>/dev/null || :
	fail "$T/hot-remove-status-gone" "no $PCIDEV/remove: vdb is not a removable PCI function"
	ferryctl tracker detach /dev/vdb >/dev/null 2>&1 || :
fi

step "nothing left tracked"
check "$T/list-empty" test -z "$(ferryctl tracker list)"
ferry_end
