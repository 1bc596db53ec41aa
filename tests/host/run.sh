#!/bin/bash
# tests/host/run.sh: tests that run on this machine as root but outside the
# guests (packaging, DKMS, the guest harness).  Runs every tests/host/*.sh
# but itself; each
# prints PASS/FAIL lines.  Ends with "N passed, N failed".
set -u
dir=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0
for t in "$dir"/*.sh; do
	[ "$(basename "$t")" = run.sh ] && continue
	out=$(bash "$t" 2>&1)
	rc=$?
	echo "$out" | grep -E '^(PASS|FAIL) '
	p=$(echo "$out" | grep -c '^PASS ')
	f=$(echo "$out" | grep -c '^FAIL ')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $(basename "$t" .sh): exited with $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
		f=1
	fi
	pass=$((pass + p))
	fail=$((fail + f))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
