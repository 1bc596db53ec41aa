#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# uninstall.sh - remove ferry's replication agent from this source server,
# everything install.sh put there (docs/install.md, "Uninstall"):
#
#   1. the ferry-agent service stopped and disabled (in-flight
#      acknowledgements first: the agent stops cleanly on SIGTERM);
#   2. the source server disconnected from ferry-control
#      (DisconnectFromService with the agent's own credentials, which
#      ferry-control then revokes: `ferry-agent --disconnect`);
#   3. the trackers detached and ferry.ko unloaded;
#   4. the packages purged (ferry-agent, then ferry-dkms, whose removal
#      takes the module out of DKMS for every kernel);
#   5. the configuration (/etc/ferry/agent.conf, ca.pem), the state
#      (/var/lib/ferry-agent, /run/ferry-agent) and the install log
#      removed.
#
# A step that has nothing to do is skipped, so it can run again after an
# interrupted run, and on a machine where the install failed half-way.
#
# Exit status: 0 everything removed; 1 removed, but something could not be
# done (said on the last line: the disconnect, typically, when
# ferry-control is unreachable); 2 a usage error.

# Run by sh (dash, busybox) the bash in it would fail on its first line
# (set -o pipefail) with a message that says nothing: say what to do.
# POSIX on purpose, and first, before anything bash-only is read.
if [ -z "${BASH_VERSION:-}" ]; then
	echo "uninstall.sh: run it with bash (sudo bash uninstall.sh ...)" >&2
	exit 2
fi

set -u -o pipefail
umask 022
export LC_ALL=C

PROG=uninstall.sh
CONF_FILE=/etc/ferry/agent.conf
CA_FILE=/etc/ferry/ca.pem	# install.sh's copy of --ca-bundle
STATE_DIR=/var/lib/ferry-agent
INSTALL_LOG=/var/log/ferry-install.log
PKGS="ferry-agent ferry-dkms"
KEEP_REGISTRATION=0
KEEP_LOG=0
PROBLEMS=()

usage() {
	cat <<'EOF'
usage: uninstall.sh [-h] [--keep-registration] [--keep-log]

Remove ferry's replication agent from this server: stop the service,
disconnect the source server from ferry-control, unload ferry.ko, purge
the packages (and the module from DKMS), remove the configuration, the
state and the install log.

options:
  -h, --help            show this help message and exit
  --keep-registration   do not disconnect the source server from
                        ferry-control (install.sh --force-delete-existing
                        uses it: the reinstalled agent registers again as
                        the same server)
  --keep-log            keep /var/log/ferry-install.log

Exit status: 0 everything removed, 1 removed but a step failed (said on
the last line), 2 wrong flags.
EOF
}

say() {
	printf '%s\n' "$*"
}

problem() {
	say "  WARNING: $*"
	PROBLEMS+=("$*")
}

while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--keep-registration) KEEP_REGISTRATION=1 ;;
	--keep-log) KEEP_LOG=1 ;;
	*)
		printf '%s: unknown flag %s\n' "$PROG" "$1" >&2
		printf "Run '%s --help' for the flags.\n" "$PROG" >&2
		exit 2
		;;
	esac
	shift
done

if [ "$(id -u)" -ne 0 ]; then
	printf '%s: not running as root (uid %s): run it as root: sudo bash %s\n' \
		"$PROG" "$(id -u)" "$0" >&2
	exit 2
fi

have() {
	command -v "$1" >/dev/null 2>&1
}

pkg_installed() {
	local st
	if have dpkg-query; then
		# Any state but not-installed: an install cut short leaves
		# unpacked or half-configured packages, which are ours too.
		st=$(dpkg-query -W -f '${Status}' "$1" 2>/dev/null) || return 1
		[ -n "$st" ] && [ "${st##* }" != not-installed ]
	elif have rpm; then
		rpm -q "$1" >/dev/null 2>&1
	else
		return 1
	fi
}

say "Removing ferry's replication agent from $(hostname)"

# 1. The service.
if have systemctl && systemctl cat ferry-agent.service >/dev/null 2>&1; then
	say "Stopping the ferry-agent service"
	systemctl disable --now ferry-agent >/dev/null 2>&1 ||
		problem "systemctl disable --now ferry-agent failed: $(systemctl status ferry-agent 2>&1 | tail -n 2 | tr '\n' ' ')"
fi
# An agent started by hand, or the service's stop timed out.
if have pkill && pkill -x ferry-agent 2>/dev/null; then
	sleep 2
	pkill -9 -x ferry-agent 2>/dev/null || :
fi

# 2. ferry-control.
if [ "$KEEP_REGISTRATION" = 1 ]; then
	say "Keeping the source server's registration with ferry-control (--keep-registration)"
elif [ -f "$STATE_DIR/registration.json" ]; then
	say "Disconnecting the source server from ferry-control"
	if ! have ferry-agent; then
		problem "ferry-agent is missing, so the source server cannot be disconnected from here: disconnect it from ferry-control (aws mgn disconnect-from-service --source-server-id ID)"
	elif out=$(ferry-agent --config "$CONF_FILE" --disconnect 2>&1); then
		say "  $out"
	else
		problem "${out#ferry-agent: }; disconnect it from ferry-control instead (aws mgn disconnect-from-service --source-server-id ID)"
	fi
fi

# 3. The module.
if [ -e /sys/module/ferry ]; then
	say "Detaching the trackers and unloading ferry.ko"
	if have ferryctl; then
		ferryctl tracker list 2>/dev/null | awk '$1 ~ /^[0-9]+:[0-9]+$/ { print $1 }' |
			while read -r dev; do
				ferryctl tracker detach "$dev" >/dev/null 2>&1 ||
					say "  (could not detach $dev; unloading detaches it)"
			done
	fi
	modprobe -r ferry 2>/dev/null || rmmod ferry 2>/dev/null ||
		problem "ferry.ko could not be unloaded (in use?): it goes at the next reboot"
fi

# 4. The packages (ferry-dkms's removal takes the module out of DKMS).
todo=()
for p in $PKGS; do
	pkg_installed "$p" && todo+=("$p")
done
if [ ${#todo[@]} -gt 0 ]; then
	say "Removing the packages: ${todo[*]}"
	if have apt-get; then
		# Another apt (apt-daily, unattended-upgrades) may hold the
		# lock on a fresh server: wait for it rather than fail.
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
			purge -y -q "${todo[@]}" >/dev/null 2>&1
	elif have dnf; then
		dnf remove -y "${todo[@]}" >/dev/null 2>&1
	elif have yum; then
		yum remove -y "${todo[@]}" >/dev/null 2>&1
	elif have zypper; then
		ZYPP_LOCK_TIMEOUT=600 zypper --non-interactive remove "${todo[@]}" >/dev/null 2>&1
	fi || problem "removing ${todo[*]} failed: remove them with the package manager"
fi
# DKMS trees the package scripts did not remove (an interrupted install).
if have dkms && dkms status ferry 2>/dev/null | grep -q .; then
	for v in $(dkms status ferry 2>/dev/null | sed -n 's|^ferry[/,] *\([^,:]*\).*|\1|p' | sort -u); do
		dkms remove "ferry/$v" --all >/dev/null 2>&1 ||
			problem "dkms remove ferry/$v --all failed"
	done
fi
rm -rf /var/lib/dkms/ferry /usr/src/ferry-[0-9]*

# 5. What install.sh and the agent wrote.
say "Removing the configuration, the state and the logs"
rm -rf -- "$STATE_DIR" /run/ferry-agent
rm -f -- "$CONF_FILE" "$CONF_FILE".ferry-old.* "$CONF_FILE".ferry-new.* \
	"$CA_FILE" "$CA_FILE".ferry-old.* "$CA_FILE".ferry-new.*
rmdir /etc/ferry 2>/dev/null || :
[ "$KEEP_LOG" = 1 ] || rm -f -- "$INSTALL_LOG"

if [ ${#PROBLEMS[@]} -gt 0 ]; then
	say "ferry's agent is removed, but: ${PROBLEMS[*]}"
	exit 1
fi
say "ferry's agent is removed; nothing of it is left."
