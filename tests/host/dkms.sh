#!/bin/bash
# DKMS packaging of ferry.ko, on this machine: `dkms add`, `dkms build` and
# `dkms install` for the bookworm test kernel (its headers installed from
# Debian), then the built module's vermagic is checked and everything is
# removed again.  Prints PASS/FAIL lines and "N passed, N failed".
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/../../scripts/vm/lib.sh"

pass=0 fail=0
result() {	# result PASS|FAIL name [reason]
	if [ "$1" = PASS ]; then
		pass=$((pass + 1)); echo "PASS dkms/$2"
	else
		fail=$((fail + 1)); echo "FAIL dkms/$2: $3"
	fi
}

need_root "the DKMS test"
eval "$(FERRY_QUIET=1 "$FERRY_VM_DIR/kernel.sh" bookworm | grep '^KVER=')"
ensure_pkgs dkms "linux-headers-$KVER"

name=ferry
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$FERRY_ROOT/kmod/dkms.conf")
src=/usr/src/$name-$ver
log=$(mktemp)
cleanup() {
	dkms remove -m "$name" -v "$ver" --all >/dev/null 2>&1 || :
	rm -rf "$src" "$log"
}
trap cleanup EXIT
cleanup

# The DKMS source tree: the module sources with include/ next to them,
# exactly what the ferry-dkms package installs.
mkdir -p "$src"
cp -a "$FERRY_ROOT/kmod/." "$src/"
cp -a "$FERRY_ROOT/include" "$src/include"

if dkms add -m "$name" -v "$ver" >"$log" 2>&1; then
	result PASS add
else
	result FAIL add "$(tail -n 3 "$log" | tr '\n' ' ')"
fi
if dkms build -m "$name" -v "$ver" -k "$KVER" >"$log" 2>&1; then
	result PASS build
else
	result FAIL build "$(grep -i -m 3 error "$log" "/var/lib/dkms/$name/$ver/build/make.log" 2>/dev/null | tr '\n' ' ')"
fi
if dkms install -m "$name" -v "$ver" -k "$KVER" >"$log" 2>&1; then
	result PASS install
else
	result FAIL install "$(tail -n 3 "$log" | tr '\n' ' ')"
fi
ko=$(find "/lib/modules/$KVER/updates" -name 'ferry.ko*' 2>/dev/null | head -n 1)
if [ -n "$ko" ] && modinfo -F vermagic "$ko" | grep -q "^$KVER "; then
	result PASS vermagic
else
	result FAIL vermagic "no ferry.ko built for $KVER under /lib/modules/$KVER/updates"
fi
if dkms status -m "$name" -v "$ver" -k "$KVER" | grep -q installed; then
	result PASS status
else
	result FAIL status "dkms status does not show ferry installed for $KVER"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
