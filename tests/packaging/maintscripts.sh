#!/bin/bash
# tests/packaging/maintscripts.sh deb|rpm PACKAGE STATE SCRIPT:ARGS...
#
# Runs the maintainer scripts of PACKAGE (a .deb or an .rpm of ferry-agent)
# in the order the package manager would, against a fake systemctl that
# keeps the unit's state, and prints that state at the end:
#
#   active|inactive enabled|disabled starts=N
#
# (N: the times the unit was started or restarted while the scripts ran).
# STATE is the state before, "active enabled" or "inactive disabled".
# Each SCRIPT:ARGS is one script with its arguments, comma-separated:
# postinst:configure,0.1.0-1 prerm:remove (deb); post:2 preun:1 postun:1
# (rpm: pre, post, preun, postun as the spec names them).  The deb scripts call debhelper's real
# deb-systemd-invoke, whose rule (start or restart only a unit that is
# enabled or running) is part of what is tested.
#
# Nothing on this machine changes: it runs in a private mount namespace
# with a tmpfs on /run holding /run/systemd/system (the scripts act only
# under systemd) and, when /usr/sbin/policy-rc.d exists (a container's
# "start nothing"), a policy-rc.d that allows everything bound over it.
# The callers never run the scripts that remove /var/lib/ferry-agent
# (a purge, rpm's postun 0).  Needs root (unshare, mount).
set -eu

fmt=$1 pkg=$2 state=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-maint.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/scripts"
# shellcheck disable=SC2086 # two words
set -- $state "$@"
printf '%s\n' "$1" >"$work/active"
printf '%s\n' "$2" >"$work/enabled"
echo 0 >"$work/starts"
shift 2

cat >"$work/bin/systemctl" <<'EOF'
#!/bin/sh
# A systemctl with one unit's state in $FAKE/active, $FAKE/enabled.
echo "systemctl $*" >>"$FAKE/calls"
act=
now=0
for a; do
	case $a in
	--now) now=1 ;;
	-*) ;;
	*) [ -n "$act" ] || act=$a ;;
	esac
done
started() {
	echo active >"$FAKE/active"
	echo $(($(cat "$FAKE/starts") + 1)) >"$FAKE/starts"
}
case $act in
is-enabled) cat "$FAKE/enabled"; exec grep -qx enabled "$FAKE/enabled" ;;
is-active) cat "$FAKE/active"; exec grep -qx active "$FAKE/active" ;;
start | restart) started ;;
try-restart) if grep -qx active "$FAKE/active"; then started; fi ;;
stop) echo inactive >"$FAKE/active" ;;
enable) echo enabled >"$FAKE/enabled"; [ $now = 0 ] || started ;;
disable) echo disabled >"$FAKE/enabled"
	[ $now = 0 ] || echo inactive >"$FAKE/active" ;;
esac
exit 0
EOF
cat >"$work/bin/deb-systemd-helper" <<'EOF'
#!/bin/sh
# Only what the agent's postinst asks: was it enabled, is it known.
echo "deb-systemd-helper $*" >>"$FAKE/calls"
for a; do
	case $a in
	was-enabled | debian-installed) grep -qx enabled "$FAKE/enabled"; exit ;;
	enable) echo enabled >"$FAKE/enabled" ;;
	esac
done
exit 0
EOF
printf '#!/bin/sh\nexit 0\n' >"$work/bin/policy-rc.d"
chmod 755 "$work/bin/"*

case $fmt in
deb) dpkg-deb -e "$pkg" "$work/scripts" ;;
rpm)
	# Named pre, post, preun, postun as in the spec.
	for tag in PREIN:pre POSTIN:post PREUN:preun POSTUN:postun; do
		rpm -qp --qf "%{${tag%:*}}" "$pkg" >"$work/scripts/${tag#*:}" ||
			exit 1
		tag=${tag#*:}
		# Empty, or "(none)", for a scriptlet the package has not.
		if [ ! -s "$work/scripts/$tag" ] ||
			[ "$(cat "$work/scripts/$tag")" = "(none)" ]; then
			rm -f "$work/scripts/$tag"
		fi
	done
	;;
esac

for step; do
	name=${step%%:*} args=${step#*:}
	f=$work/scripts/$name
	# A script the package does not have does nothing.
	[ -f "$f" ] || { echo "($name: none)" >>"$work/calls"; continue; }
	echo "-- $name ${args//,/ }" >>"$work/calls"
	# shellcheck disable=SC2016,SC2086 # the inner script's own $1;
	# the arguments, comma-separated
	FAKE=$work PATH="$work/bin:$PATH" unshare -m sh -c '
		set -e
		mount --make-rprivate /
		mount -t tmpfs ferry-run /run
		mkdir -p /run/systemd/system
		if [ -e /usr/sbin/policy-rc.d ]; then
			mount --bind "$FAKE/bin/policy-rc.d" /usr/sbin/policy-rc.d
		fi
		script=$1
		shift
		sh -e "$script" "$@"' sh "$f" ${args//,/ } >>"$work/calls" 2>&1
done
echo "$(cat "$work/active") $(cat "$work/enabled") starts=$(cat "$work/starts")"
sed 's/^/    /' "$work/calls" >&2
