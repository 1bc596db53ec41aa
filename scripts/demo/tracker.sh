# ferry-vm: disks=512M mem=1G smp=2 timeout=600
# shellcheck shell=sh
# The tracker demo, run inside the guest by scripts/demo.sh: a disk with
# ext4 on it is tracked live, written to, and its dirty set drained.
set -eu

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

DISK=/dev/vda
say "Load the change tracker"
run insmod /ferry/ferry.ko
run ferryctl version

say "Put ext4 on $DISK and mount it, as a server in use would have"
mkfs.ext4 -q -F -E nodiscard "$DISK"
mkdir -p /mnt/data
run mount "$DISK" /mnt/data
dd if=/dev/urandom of=/mnt/data/existing.bin bs=1M count=32 2>/dev/null
sync

say "Attach the tracker to the mounted disk: no unmount, no reboot"
run ferryctl tracker attach "$DISK"
run ferryctl tracker stats "$DISK"

say "A small workload: a 4 MiB file, then 16 KiB overwritten in place"
dd if=/dev/urandom of=/mnt/data/new.bin bs=1M count=4 conv=fsync 2>/dev/null
dd if=/dev/urandom of=/mnt/data/existing.bin bs=4k count=4 seek=1000 \
	conv=notrunc,fsync 2>/dev/null
run ferryctl tracker stats "$DISK"

say "Drain: the dirty extents (byte offset, length) the agent would send"
ferryctl tracker drain "$DISK" >/tmp/drain1
cat /tmp/drain1
echo "($(wc -l </tmp/drain1) extents: the new file, the 16 KiB overwrite,"
echo " and the inode, bitmap and journal blocks ext4 wrote for them)"

say "Right after a drain the set is empty again"
run ferryctl tracker drain "$DISK"
run ferryctl tracker stats "$DISK"

say "Detach; tracking stops and the memory is freed"
run ferryctl tracker detach "$DISK"
run umount /mnt/data
run rmmod ferry
dmesg | grep 'ferry:' | sed 's/^/    kernel: /'
echo "FERRY-RESULT PASS demo/tracker"
