#!/bin/bash
# make demo: a live migration of a source server, on this machine.
#
#   1. ferry-control and ferry-replicator start on loopback with their
#      embedded defaults (SQLite, a local data directory), with an
#      installer access key, and the packages of `make deb` as their
#      installation assets;
#   2. a Debian bookworm guest (QEMU) with an ext4 system disk and an ext4
#      data disk in use installs the agent with install.sh --no-prompt and
#      the keys as flags; the demo shows `ferryctl status` and `aws mgn
#      describe-source-servers` until CONTINUOUS, runs a write workload,
#      checks that the staging volumes equal the disks once the writes
#      pause, waits for a snapshot and runs `aws mgn start-test`: the
#      server goes to TESTING and the replicator launches the newest
#      snapshot as image files;
#   3. a second guest, the test instance, boots from those images: the
#      data written before the snapshot is there, the data written after
#      is not.
# The host side is scripts/demo/demo.py; the guests, scripts/vm/debian-vm.sh.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/vm/lib.sh"
cd "$FERRY_ROOT"

need_root "the demo (QEMU guests, loop devices, DKMS in the guest)"
scripts/deps.sh build vm agent control
info "building the packages (make deb)"
make -s deb >/dev/null || die "make deb failed"
info "the guest image (built once, cached in $FERRY_CACHE/images)"
scripts/vm/debian-image.sh bookworm >/dev/null ||
	die "the Debian guest image could not be built (see above)"
exec /usr/bin/python3 scripts/demo/demo.py
