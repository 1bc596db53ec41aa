# ferry-vm: disks=256M,64M,64M,64M mem=1G smp=2 timeout=600
# shellcheck shell=sh
# correctness: every write reaches a drained set, and (where nothing but
# our writer touches the disk) nothing else does.
#
#   vda 256M  MBR, partition 1 = [1M, 161M), raw area = [161M, 256M);
#             the whole disk is tracked at 4K.  Raw writes (O_DIRECT,
#             buffered, discard/zeroout/fallocate), writes through the
#             partition, then ext4 on the partition and file writes.
#   vdb 64M   tracked at 64K; then at 4K under a dm-linear device that is
#             itself tracked.
#   vdc,vdd   md raid1 members, both tracked; writes go to /dev/md0.
#
# Each phase runs ferry-writer in the background, drains while it runs and
# once after, and checks with ferry-verify: coverage (every logged range,
# rounded out to the granularity, is in a drained set) and exactness (no
# drained block outside them), or coverage only (--fs) under a filesystem.
set -eu
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

T=correctness
MiB=1048576
P_START=$MiB			# partition 1 at sector 2048
P_LEN=$((160 * MiB))
RAW_OFF=$((P_START + P_LEN))	# raw writes after the partition

ferry_begin "$T"

step "load ferry.ko"
load_ferry

# ---------------------------------------------------------------- vda --
step "partition /dev/vda"
write_mbr /dev/vda $((P_START / 512)) $((P_LEN / 512))
blockdev --rereadpt /dev/vda
ensure_node vda1
check "$T/partition" test "$(($(cat /sys/class/block/vda1/start) * 512))" -eq "$P_START"
# Nothing of the partitioning may still be in flight when we attach.
sync
blockdev --flushbufs /dev/vda

step "attach /dev/vda"
VDA_SIZE=$(size64 /dev/vda)
RAW_LEN=$((VDA_SIZE - RAW_OFF))
check "$T/attach" attach /dev/vda
ferryctl tracker drain /dev/vda >"$WORK/first.drain"
check "$T/attach-starts-clean" test ! -s "$WORK/first.drain"

# phase NAME OPS SEED COUNT: raw writes of the given kinds to vda's raw area
raw_phase() {
	step "raw $2 writes to /dev/vda"
	if drain_during "$WORK/$1" vda=/dev/vda -- \
		ferry-writer --count "$4" --seed "$3" --ops "$2" \
		--range "$RAW_OFF:$RAW_LEN" --log "$WORK/$1.log" /dev/vda; then
		check "$T/$1" ferry-verify --log "$WORK/$1.log" \
			--granularity 4096 --size "$VDA_SIZE" \
			--extents "$WORK/$1"/vda.*
	else
		fail "$T/$1" "$(tail -n 1 "$WORK/$1.out")"
	fi
}

raw_phase raw-direct direct 1 1500

# Negative controls: ferry-verify must notice what it is there to notice,
# or every PASS above would prove nothing.
step "ferry-verify catches a missing and an extra range"
: >"$WORK/empty"
echo "# nothing written" >"$WORK/empty.log"
expect_fail "$T/verify-detects-missing" "missing" ferry-verify \
	--log "$WORK/raw-direct.log" --granularity 4096 --size "$VDA_SIZE" \
	--extents "$WORK/empty"
expect_fail "$T/verify-detects-extra" "extra" ferry-verify \
	--log "$WORK/empty.log" --granularity 4096 --size "$VDA_SIZE" \
	--extents "$WORK/raw-direct"/vda.*
raw_phase raw-buffered buffered 2 1000
raw_phase raw-discard-zeroout discard,zeroout,punch,zerorange 3 1000
raw_phase raw-mixed direct,buffered,discard,zeroout,punch,zerorange 4 1500

step "writes through /dev/vda1"
if drain_during "$WORK/part" vda=/dev/vda -- \
	ferry-writer --count 1500 --seed 5 --base-offset "$P_START" \
	--log "$WORK/part.log" /dev/vda1; then
	check "$T/partition-writes" ferry-verify --log "$WORK/part.log" \
		--granularity 4096 --size "$VDA_SIZE" \
		--extents "$WORK/part"/vda.*
else
	fail "$T/partition-writes" "$(tail -n 1 "$WORK/part.out")"
fi

step "stats of /dev/vda"
ferryctl tracker stats /dev/vda | tee "$WORK/vda.stats" | sed 's/^/    | /'
check "$T/stats" sh -c "
	grep -qx 'granularity: 4096' $WORK/vda.stats &&
	grep -qx 'size: $VDA_SIZE' $WORK/vda.stats &&
	grep -qx 'overflows: 0' $WORK/vda.stats &&
	grep -qx 'status: ok' $WORK/vda.stats &&
	! grep -qx 'writes: 0' $WORK/vda.stats &&
	! grep -qx 'discards: 0' $WORK/vda.stats &&
	! grep -qx 'drains: 0' $WORK/vda.stats ||
	{ echo 'stats of /dev/vda: expected granularity 4096, size $VDA_SIZE, no overflow, status ok, and non-zero writes, discards, drains'; false; }"

step "ferryctl --json and --raw"
ferry-writer --count 20 --seed 12 --ops direct --range "$RAW_OFF:$RAW_LEN" \
	--log "$WORK/fmt.log" /dev/vda >/dev/null 2>&1
ferryctl tracker stats /dev/vda --json >"$WORK/stats.json"
ferryctl tracker drain /dev/vda --json >"$WORK/drain.json" 2>/dev/null
sed 's/^/    | /' "$WORK/stats.json"
check "$T/ferryctl-json" sh -c "
	grep -q '^{\"device\":\"/dev/vda\",\"major\":[0-9]*,.*\"granularity\":4096,.*\"status\":\[\],\"status_bits\":0}$' '$WORK/stats.json' &&
	grep -q '^{\"device\":\"/dev/vda\",.*\"extents\":\[\[[0-9]*,[0-9]*\]\(,\[[0-9]*,[0-9]*\]\)*\],\"generation\":\"[0-9a-f]\{16\}\",.*\"status\":\[\]}$' '$WORK/drain.json' ||
	{ echo 'ferryctl --json output is not the expected one-line object'; false; }"
ferry-writer --count 20 --seed 13 --ops direct --range "$RAW_OFF:$RAW_LEN" \
	--log "$WORK/fmt.log" /dev/vda >/dev/null 2>&1
ferryctl tracker drain /dev/vda --raw >"$WORK/drain.raw" 2>/dev/null
RAW_BYTES=$(wc -c <"$WORK/drain.raw")
check "$T/ferryctl-raw" test "$RAW_BYTES" -gt 0 -a $((RAW_BYTES % 16)) -eq 0

step "ext4 on /dev/vda1"
modprobe ext4 2>/dev/null || :
mkdir -p /mnt/ferry
if mkfs.ext4 -F -q -b 4096 /dev/vda1 >"$WORK/mkfs.out" 2>&1 &&
	mount -t ext4 /dev/vda1 /mnt/ferry; then
	# What mkfs and mount wrote is not what we check.
	ferryctl tracker drain /dev/vda >/dev/null
	if drain_during "$WORK/fs" vda=/dev/vda -- \
		ferry-writer --count 500 --seed 6 --dir /mnt/ferry \
		--backing /dev/vda1 --base-offset "$P_START" \
		--log "$WORK/fs.log"; then
		sync
		drain_to "$WORK/fs/vda.synced" /dev/vda
		check "$T/ext4-file-writes" ferry-verify --fs \
			--log "$WORK/fs.log" --granularity 4096 \
			--size "$VDA_SIZE" --extents "$WORK/fs"/vda.*
	else
		fail "$T/ext4-file-writes" "$(tail -n 1 "$WORK/fs.out")"
	fi
	umount /mnt/ferry
else
	fail "$T/ext4-file-writes" "mkfs.ext4 or mount of /dev/vda1 failed: $(tail -n 1 "$WORK/mkfs.out")"
fi
check "$T/detach" ferryctl tracker detach /dev/vda

# ---------------------------------------------------------------- vdb --
step "/dev/vdb at 64K granularity"
VDB_SIZE=$(size64 /dev/vdb)
check "$T/attach-64k" attach /dev/vdb 64K
check "$T/stats-64k" test "$(stat_field /dev/vdb granularity)" = 65536
if drain_during "$WORK/g64" vdb=/dev/vdb -- \
	ferry-writer --count 1000 --seed 7 --log "$WORK/g64.log" /dev/vdb; then
	check "$T/granularity-64k" ferry-verify --log "$WORK/g64.log" \
		--granularity 65536 --size "$VDB_SIZE" \
		--extents "$WORK/g64"/vdb.*
else
	fail "$T/granularity-64k" "$(tail -n 1 "$WORK/g64.out")"
fi
ferryctl tracker detach /dev/vdb

step "device-mapper linear on /dev/vdb"
DM_OFF=$((8 * MiB))
DM_LEN=$((32 * MiB))
modprobe dm_mod 2>/dev/null || :
attach /dev/vdb >/dev/null
if dmsetup create ferry-lin --table "0 $((DM_LEN / 512)) linear /dev/vdb $((DM_OFF / 512))" \
	>"$WORK/dm-create.out" 2>&1; then
	DM_MM=$(dmsetup info -c --noheadings -o major,minor ferry-lin | tr -d ' ')
	DM_NAME=$(basename "$(readlink -f "/sys/dev/block/$DM_MM")")
	ensure_node "$DM_NAME"
	DM=/dev/$DM_NAME
	info "ferry-lin is $DM ($DM_MM): vdb [$DM_OFF, $((DM_OFF + DM_LEN)))"
	check "$T/attach-dm" attach "$DM"
	if drain_during "$WORK/dm" vdb=/dev/vdb dm="$DM" -- \
		ferry-writer --count 1000 --seed 8 --log "$WORK/dm.log" "$DM"; then
		# The same writes, seen on the disk below at the mapped offset...
		check "$T/dm-linear-on-tracked-disk" ferry-verify \
			--log "$WORK/dm.log" --shift "$DM_OFF" \
			--granularity 4096 --size "$VDB_SIZE" \
			--extents "$WORK/dm"/vdb.*
		# ...and on the dm device itself.
		check "$T/dm-device-tracked" ferry-verify --log "$WORK/dm.log" \
			--granularity 4096 --size "$DM_LEN" \
			--extents "$WORK/dm"/dm.*
	else
		fail "$T/dm-linear-on-tracked-disk" "$(tail -n 1 "$WORK/dm.out")"
	fi
	ferryctl tracker detach "$DM" || :
	dmsetup remove ferry-lin
else
	fail "$T/dm-linear-on-tracked-disk" "dmsetup create failed: $(tail -n 1 "$WORK/dm-create.out")"
fi
ferryctl tracker detach /dev/vdb

# ----------------------------------------------------------- vdc, vdd --
step "md raid1 over /dev/vdc and /dev/vdd"
modprobe raid1 2>/dev/null || :
if mdadm --create /dev/md0 --run --metadata=1.2 --level=1 \
	--raid-devices=2 --assume-clean --bitmap=none /dev/vdc /dev/vdd \
	>"$WORK/md-create.out" 2>&1; then
	ensure_node md0
	# Member offset of the array's data: "Data Offset : 2048 sectors".
	MD_OFF=$(mdadm --examine /dev/vdc |
		sed -n 's/^ *Data Offset : \([0-9]*\) sectors.*/\1/p')
	MD_OFF=$((MD_OFF * 512))
	VDC_SIZE=$(size64 /dev/vdc)
	info "md0: data at $MD_OFF of each member, $(size64 /dev/md0) bytes"
	attach /dev/vdc >/dev/null
	attach /dev/vdd >/dev/null
	if [ "$MD_OFF" -gt 0 ] && drain_during "$WORK/md" vdc=/dev/vdc \
		vdd=/dev/vdd -- ferry-writer --count 1000 --seed 9 \
		--log "$WORK/md.log" /dev/md0; then
		# md rewrites its superblock (below the data): not extra.
		for m in vdc vdd; do
			check "$T/md-raid1-member-$m" ferry-verify \
				--log "$WORK/md.log" --shift "$MD_OFF" \
				--ignore "0:$MD_OFF" --granularity 4096 \
				--size "$VDC_SIZE" --extents "$WORK/md/$m".*
		done
	else
		fail "$T/md-raid1-member-vdc" "no data offset from mdadm --examine, or the writer failed: $(tail -n 1 "$WORK/md.out" 2>/dev/null)"
	fi
	mdadm --stop /dev/md0 >/dev/null 2>&1 || :
	ferryctl tracker detach /dev/vdc || :
	ferryctl tracker detach /dev/vdd || :
else
	fail "$T/md-raid1-member-vdc" "mdadm --create failed: $(tail -n 1 "$WORK/md-create.out")"
fi

step "nothing left tracked"
check "$T/list-empty" test -z "$(ferryctl tracker list)"
ferry_end
