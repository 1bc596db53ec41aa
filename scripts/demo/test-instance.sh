# shellcheck shell=sh
# The migration demo, test instance, run inside a second guest by
# scripts/demo.sh: its disks are the snapshot exported from the staging
# area.  Not a test: no "ferry-vm:" header.
set -eu

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
die() { echo "FERRY-RESULT FAIL demo-test-instance: $*"; exit 1; }

say "A test instance booted from the snapshot"
run uname -r
for d in vda vdb; do
	echo "\$ e2fsck -fn /dev/$d"
	e2fsck -fn "/dev/$d" >"/tmp/fsck.$d" 2>&1 ||
		die "fsck of /dev/$d: $(tail -n 3 "/tmp/fsck.$d")"
	echo "/dev/$d: clean"
done
mkdir -p /mnt/system /mnt/data
mount -o ro /dev/vda /mnt/system
mount -o ro /dev/vdb /mnt/data
run cat /mnt/system/etc/hostname
run ls /mnt/data | head -n 5
run tail -n 1 /mnt/data/before-snapshot.txt
[ -s /mnt/data/before-snapshot.txt ] || die "before-snapshot.txt is missing"
if [ -e /mnt/data/after-snapshot.txt ]; then
	die "after-snapshot.txt is there: the snapshot is not a point in time"
fi
echo "after-snapshot.txt is absent, as it must be"
umount /mnt/system /mnt/data
echo "FERRY-RESULT PASS demo-test-instance"
