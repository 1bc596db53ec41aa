#!/bin/bash
# tests/run-all.sh [SUITE...]: run the test suites (unit, control,
# replicator, agent, packaging, install, fuzz, host, kmod) and add up their
# counts.  Without an argument: all.
#   unit  tests/unit/run.sh   native unit tests, plain and sanitizer builds
#   control tests/control/run.sh  ferry-control against real AWS clients
#   replicator tests/replicator/run.sh  ferry-replicator on loopback, driven
#         by the test client on the same codec
#   agent tests/agent/run.sh  ferry-agent natively: loop devices, loopback
#   install tests/install/run.sh  scripts/install.sh against ferry-control,
#         and in a Debian guest
#   packaging tests/packaging/run.sh  make deb / make rpm, lintian, rpmlint
#   fuzz  tests/fuzz/run.sh   the fuzz targets over their committed corpus
#   host  tests/host/run.sh   root tests on this machine (DKMS)
#   kmod  tests/kmod/run.sh   the module's tests in QEMU guests
# Each suite prints PASS/FAIL lines and ends with "N passed, N failed";
# this script ends with one such line for everything and exits 1 if any
# test failed, a suite is missing, or a suite died without its count.
#
# kmod, and install's Debian guest (t_guest, `tests/install/run.sh
# guest`), run beside the others from the start (their output is printed
# after the others', each in one piece); install's native files run in
# the sequence (`run.sh --native`).  The guests and the native suites
# each leave much of the two cores idle, waiting on each other's daemons,
# timeouts and the network: kmod beside the rest took 10 min against
# 18 min one after the other.  kmod's guests then run one at a time
# (FERRY_VM_JOBS, default 1 here): with two of them, t_guest's and the
# native suites on two cores, a guest's vCPU was once left spinning on
# the ftrace call site the rmmod test was patching (a soft lockup, then
# rmmod hung; docs/testing.md).  FERRY_SUITES_SERIAL=1 runs every suite
# in the sequence, kmod last, alone, two guests at a time.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
suites=
for mode in "${@:-all}"; do
	case $mode in
	all) suites="$suites unit control replicator agent packaging install fuzz host kmod" ;;
	unit | control | replicator | agent | packaging | install | fuzz | host | kmod) suites="$suites $mode" ;;
	-h | --help)
		sed -n '2,/^set -u/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run-all.sh: unknown suite '$mode': use unit, control, replicator, agent, packaging, install, fuzz, host, kmod or nothing for all" >&2
		exit 2
		;;
	esac
done

total_pass=0 total_fail=0
log=$(mktemp "${TMPDIR:-/tmp}/ferry-run-all.XXXXXX")
bgdir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-run-all-bg.XXXXXX")
prefetch_pid=
bg_pids=
trap 'rm -rf "$log" "$bgdir"
	[ -z "$prefetch_pid" ] || kill -- -"$prefetch_pid" 2>/dev/null
	for p in $bg_pids; do kill -- -"$p" 2>/dev/null; done' EXIT

# Add the counts of SUITE, whose run.sh exited with RC and printed FILE.
count() {
	local suite=$1 rc=$2 file=$3 summary p f
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$file" | tail -n 1)
	if [ -z "$summary" ]; then
		echo "FAIL $suite: tests/$suite/run.sh ended (exit code $rc) without a 'N passed, N failed' line"
		total_fail=$((total_fail + 1))
		return
	fi
	p=$(echo "$summary" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$summary" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	# A suite that counted no failure but still exited non-zero broke.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $suite: tests/$suite/run.sh exited with $rc but counted no failure"
		total_fail=$((total_fail + 1))
	fi
}

# What the guests need (the Debian kernels, the trixie build chroot, the
# bookworm guest image: minutes on a fresh machine, mostly waiting on the
# network and dpkg) is made in the background from the start, so that it
# overlaps the native suites; a suite that needs it meanwhile waits on the
# same lock (with_lock in scripts/vm/lib.sh) rather than making it again.
# Every suite's packages are installed first, so that no two apt-get runs
# meet.
if [[ " $suites " == *" kmod "* || " $suites " == *" install "* ]] &&
	[ "$(id -u)" -eq 0 ]; then
	"$root/scripts/deps.sh" build control vm agent dkms pkg
	vmlogs=${BUILD:-build}/vm-logs
	case $vmlogs in /*) ;; *) vmlogs=$root/$vmlogs ;; esac
	mkdir -p "$vmlogs"
	# In the order the suites want them: kmod starts at once (the
	# kernels; trixie's module is built in a chroot), install later
	# (the bookworm kernel and image).  In a session of its own, so that
	# the EXIT trap stops all of it.
	# shellcheck disable=SC2016 # expanded by the inner bash
	ROOT=$root SUITES=$suites setsid bash -c '
		set -e
		step() {
			local t0=$SECONDS
			"$@" >/dev/null
			echo "prefetch: ${*#$ROOT/} done in $((SECONDS - t0)) s"
		}
		step "$ROOT/scripts/vm/kernel.sh" bookworm
		if [[ " $SUITES " == *" kmod "* ]]; then
			for s in ${KMOD_SUITES:-bookworm trixie trixie-backports}; do
				[ "$s" = bookworm ] ||
					step "$ROOT/scripts/vm/kernel.sh" "$s"
			done
		fi
		if [[ " $SUITES " == *" install "* ]]; then
			step "$ROOT/scripts/vm/debian-image.sh" bookworm
		fi' >"$vmlogs/prefetch.log" 2>&1 &
	prefetch_pid=$!
fi

# Run suite NAME ($1) in the background, in a session of its own (the
# EXIT trap stops its guests too): the command's output lands in
# $bgdir/NAME.out, its exit code and time in $bgdir/NAME.rc.
bg_names=
bg_start=$SECONDS
start_bg() {
	local name=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner bash
	OUT=$bgdir/$name setsid bash -c '"$@" >"$OUT.out" 2>&1
		echo "$? $SECONDS" >"$OUT.rc"' bash "$@" &
	bg_pids="$bg_pids $!"
	bg_names="$bg_names $name"
}

background=
if [ "${FERRY_SUITES_SERIAL:-}" != 1 ] &&
	echo "$suites" | tr ' ' '\n' | grep -qvx -e kmod -e install -e ''; then
	[[ " $suites " == *" kmod "* ]] && background="$background kmod"
	[[ " $suites " == *" install "* ]] && background="$background install"
fi
if [[ " $background " == *" kmod "* ]]; then
	suites=$(echo "$suites" | tr ' ' '\n' | grep -vx kmod | tr '\n' ' ')
	FERRY_VM_JOBS=${FERRY_VM_JOBS:-1} start_bg kmod \
		bash "$root/tests/kmod/run.sh"
fi
if [[ " $background " == *" install "* ]]; then
	# install's Debian guest (t_guest) beside the rest, its native files
	# in the sequence below.  Its packages are built once, here, and
	# copied, so that tests/packaging/run.sh may rebuild build/pkg
	# meanwhile.
	if make -C "$root" -s deb >/dev/null; then
		pkg=${BUILD:-build}/pkg/deb
		case $pkg in /*) ;; *) pkg=$root/$pkg ;; esac
		cp -a "$pkg" "$bgdir/debs"
	else
		echo "FAIL install: make deb failed"
		total_fail=$((total_fail + 1))
	fi
	FERRY_DEBS_BUILT=1 FERRY_TEST_DEBS=$bgdir/debs start_bg install-guest \
		bash "$root/tests/install/run.sh" guest
fi

for suite in $suites; do
	script=$root/tests/$suite/run.sh
	if [ ! -f "$script" ]; then
		echo "FAIL $suite: $script does not exist"
		total_fail=$((total_fail + 1))
		continue
	fi
	args=()
	if [ "$suite" = install ] && [[ " $background " == *" install "* ]]; then
		args=(--native)
		suite=install-native
		export FERRY_DEBS_BUILT=1
	fi
	echo "=== $suite: tests/${suite%-native}/run.sh ${args[*]}"
	start=$SECONDS
	bash "$script" "${args[@]}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# Where CI's time goes, to keep `make test` well under 30 minutes.
	echo "=== $suite: $((SECONDS - start)) s"
	count "$suite" "$rc" "$log"
done

# shellcheck disable=SC2086 # a list of PIDs
wait $bg_pids 2>/dev/null || :
bg_pids=
for name in $bg_names; do
	read -r bg_rc bg_secs <"$bgdir/$name.rc" 2>/dev/null ||
		bg_rc=1 bg_secs='?'
	echo "=== $name: tests/${name%-guest}/run.sh$([ "$name" = install-guest ] && echo ' guest') (beside the suites above, from the start)"
	cat "$bgdir/$name.out"
	echo "=== $name: $bg_secs s (all suites: $((SECONDS - bg_start)) s)"
	count "$name" "$bg_rc" "$bgdir/$name.out"
done

if [ -n "$prefetch_pid" ]; then
	wait "$prefetch_pid" 2>/dev/null || :
	prefetch_pid=
	grep '^prefetch:' "$vmlogs/prefetch.log" || :
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
