#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# install.sh - install ferry's replication agent on this source server, the
# way AWS MGN's Linux installer does: one command, unattended with access
# keys as flags.  docs/install.md describes it; `install.sh --help` lists
# the flags.
#
# The steps, in order:
#   1. the flags (and AWS_* / https_proxy from the environment); on a
#      terminal, prompts for what is missing;
#   2. the checks, before anything is changed: root, kernel headers, the
#      compiler, DKMS, free space and memory, /tmp, systemd, Secure Boot,
#      the disks, an existing installation, and one signed call to
#      ferry-control that proves the endpoint reachable and the keys
#      accepted;
#   3. /etc/ferry/agent.conf (0600), and /etc/ferry/ca.pem (--ca-bundle);
#   4. the packages, the module through DKMS and the ferry-agent service:
#      the next step of issue 6, not written yet.
# Every step is logged to /var/log/ferry-install.log; a step that fails
# rolls back what this run did (the `undo` stack below).
#
# Self-contained on purpose: administrators download this one file.
# Bash 4.2 or later (RHEL 7, Amazon Linux 2); curl; coreutils.
#
# Exit status: 0 done (or, with --check-only, every check passed);
# 1 a check failed and nothing was changed; 2 a usage error (flags);
# 3 a step failed and what the run did was rolled back; 4 the configuration
# is written but the packages are not installed (not written yet).

# Run by sh (dash, busybox) the bash in it would fail on its first line
# (set -o pipefail) with a message that says nothing: say what to do.
# POSIX on purpose, and first, before anything bash-only is read.
if [ -z "${BASH_VERSION:-}" ]; then
	echo "install.sh: run it with bash (sudo bash install.sh ...)" >&2
	exit 2
fi

set -u -o pipefail
umask 022
export LC_ALL=C

PROG=install.sh

# Where things are.  The FERRY_INSTALL_* variables exist for the tests
# (tests/install/) and are documented in docs/install.md.
CONF_FILE=/etc/ferry/agent.conf
LOG_FILE=${FERRY_INSTALL_LOG:-/var/log/ferry-install.log}
OS_RELEASE=${FERRY_INSTALL_OS_RELEASE:-/etc/os-release}
MODULES_DIR=${FERRY_INSTALL_MODULES_DIR:-/lib/modules}
TMP_DIR=${FERRY_INSTALL_TMP:-/tmp}
DKMS_FRAMEWORK=${FERRY_INSTALL_DKMS_FRAMEWORK:-/etc/dkms/framework.conf}
# Present while systemd is the running service manager (sd_booted(3)).
SYSTEMD_DIR=${FERRY_INSTALL_SYSTEMD_DIR:-/run/systemd/system}
STATE_DIR=/var/lib/ferry-agent
# What the installation needs (MiB): the module's DKMS tree and build, the
# packages and the agent's state on /; unpacking in /tmp; the build's and
# the agent's memory.
MIN_ROOT_MB=${FERRY_INSTALL_MIN_ROOT_MB:-500}
MIN_TMP_MB=${FERRY_INSTALL_MIN_TMP_MB:-100}
MIN_MEM_MB=${FERRY_INSTALL_MIN_MEM_MB:-300}
CURL_TIMEOUT=${FERRY_INSTALL_CURL_TIMEOUT:-30}

usage() {
	cat <<'EOF'
usage: install.sh [-h] [--region REGION] [--aws-access-key-id ID]
                  [--aws-secret-access-key SECRET] [--aws-session-token TOKEN]
                  [--endpoint URL] [--s3-endpoint URL] [--no-prompt]
                  [--devices DEVS] [--force-volumes] [--tags KEY=VALUE ...]
                  [--user-provided-id ID] [--no-replication]
                  [--proxy-address URL] [--ca-bundle FILE]
                  [--force-delete-existing] [--check-only] [--config-out FILE]

Install ferry's replication agent on this server: check the machine and the
keys, write /etc/ferry/agent.conf, install the packages, build the ferry
module with DKMS and start the ferry-agent service.

options:
  -h, --help            show this help message and exit
  --region REGION       the region of ferry-control (its --region), used in
                        the signatures; default: $AWS_REGION
  --aws-access-key-id ID
                        an installer key of ferry-control (`ferry-control keys
                        create --role installer`); default: $AWS_ACCESS_KEY_ID
  --aws-secret-access-key SECRET
                        its secret; default: $AWS_SECRET_ACCESS_KEY.  Asked
                        without echo on a terminal; the command line of a
                        process is visible to every user, the environment is
                        not: prefer the variable or the prompt
  --aws-session-token TOKEN
                        the session token of temporary keys; default:
                        $AWS_SESSION_TOKEN (when the key also comes from the
                        environment)
  --endpoint URL        ferry-control: https://HOST[:PORT], or a private
                        endpoint; default: $FERRY_ENDPOINT,
                        $AWS_ENDPOINT_URL_MGN, $AWS_ENDPOINT_URL
  --s3-endpoint URL     where the installation assets are downloaded from
                        (a private S3 endpoint); default: ferry-control's
                        own assets
  --no-prompt           unattended: ask nothing; fail at once, naming every
                        missing flag
  --devices DEVS        the disks to replicate, comma-separated
                        (/dev/sda,/dev/sdb); default: every disk
  --force-volumes       replicate exactly --devices, any block device (LVM,
                        md, loop), without detecting the disks; needs
                        --no-prompt and --devices
  --tags KEY=VALUE [KEY=VALUE ...]
                        tags of the source server (at most 50; keys without
                        aws:)
  --user-provided-id ID
                        your own identifier of this server (1-256 characters)
  --no-replication      install and register, but start no replication until
                        it is started from ferry-control
  --proxy-address URL   the proxy to reach ferry-control
                        (http://PROXY:PORT/); default: $https_proxy
  --ca-bundle FILE      the CA certificates (PEM) to trust for the endpoint:
                        ferry-control's CA (its DATA_DIR/ca.pem), copied to
                        /etc/ferry/ca.pem for the agent; default: the
                        system's CAs
  --force-delete-existing
                        reinstall over an agent already installed here
  --check-only          run the checks and stop; change nothing, write nothing
  --config-out FILE     write the configuration to FILE instead of
                        /etc/ferry/agent.conf (tests, staging)

Each step is logged to /var/log/ferry-install.log.  Exit status: 0 done,
1 a check failed (nothing changed), 2 wrong flags, 3 a step failed (what this
run did was rolled back).  docs/install.md has the details.
EOF
}

# ---- output and the log --------------------------------------------------

LOG_OK=0		# 1 once the log file is open for appending

log() {
	[ "$LOG_OK" = 1 ] || return 0
	printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$LOG_FILE" 2>/dev/null
}

say() {
	printf '%s\n' "$*"
	log "$*"
}

usage_error() {
	printf '%s: %s\n' "$PROG" "$1" >&2
	printf "Run '%s --help' for the flags.\n" "$PROG" >&2
	exit 2
}

open_log() {
	local dir
	dir=$(dirname "$LOG_FILE")
	[ -d "$dir" ] || return 0
	if (umask 077 && : >>"$LOG_FILE") 2>/dev/null; then
		chmod 600 "$LOG_FILE" 2>/dev/null
		LOG_OK=1
	fi
}

# An access key ID as it is shown and logged: its kind and its end.
mask_key() {
	local k=$1
	if [ ${#k} -le 8 ]; then
		printf '****'
	else
		printf '%s****%s' "${k:0:4}" "${k: -4}"
	fi
}

# A URL as it is shown and logged: the password of its user info masked
# (a proxy's http://user:password@host:port becomes http://user:***@...,
# a bare user http://***@...).  The user info is what comes before the
# last @ after the scheme.
mask_url() {
	local u=$1 pre='' rest auth
	case $u in
	*://*)
		pre=${u%%://*}://
		rest=${u#*://}
		;;
	*) rest=$u ;;
	esac
	case $rest in
	*@*)
		auth=${rest%@*}
		case $auth in
		*:*) printf '%s%s:***@%s' "$pre" "${auth%%:*}" "${rest##*@}" ;;
		*) printf '%s***@%s' "$pre" "${rest##*@}" ;;
		esac
		;;
	*) printf '%s' "$u" ;;
	esac
}

# ---- rollback -------------------------------------------------------------
#
# Each step that changes the machine pushes the command that undoes it;
# a failure (or a signal) after the first change runs them, newest first.
# On success the stack is dropped.

UNDO=()
UNDO_WHAT=()
KEEP_UNTIL_END=()	# files to delete once the whole run succeeded

undo_push() {		# DESCRIPTION COMMAND [ARG...]
	local what=$1 cmd
	shift
	printf -v cmd '%q ' "$@"
	UNDO+=("$cmd")
	UNDO_WHAT+=("$what")
}

# shellcheck disable=SC2317 # rollback, log_target, on_exit: from the EXIT trap
rollback() {
	local i
	if [ ${#UNDO[@]} -eq 0 ]; then
		removed_existing_note
		return 0
	fi
	say "rolling back what this run did:"
	for ((i = ${#UNDO[@]} - 1; i >= 0; i--)); do
		if eval "${UNDO[i]}" >>"$(log_target)" 2>&1; then
			say "  undone: ${UNDO_WHAT[i]}"
		else
			say "  could not undo: ${UNDO_WHAT[i]} (${UNDO[i]})"
		fi
	done
	UNDO=()
	UNDO_WHAT=()
	removed_existing_note
}

# After --force-delete-existing removed the agent installed here: that is
# not undone, and the server is left without an agent.  Say so, and what
# to do.
# shellcheck disable=SC2317
removed_existing_note() {
	local sid=${OLD_SOURCE_SERVER_ID:-}
	[ -n "$REMOVED_EXISTING" ] || return 0
	say ""
	if [ "$REMOVED_EXISTING" = yes ]; then
		say "NOTE: the agent that was installed here was removed before this failure (--force-delete-existing) and cannot be restored: this server has no ferry agent now, and replicates nothing."
	else
		say "NOTE: removing the agent that was installed here (--force-delete-existing) failed half-way: what is left of it is in $LOG_FILE; run /usr/share/ferry/uninstall.sh --keep-registration (or uninstall.sh next to install.sh) to finish."
	fi
	say "ferry-control still has this server registered${sid:+ as source server $sid}."
	say "Fix the failure above and run install.sh again (nothing needs --force-delete-existing any more): the new agent registers as the same source server${sid:+ ($sid)}, and its replication starts again."
	say "Or, to give the server up: aws mgn disconnect-from-service --source-server-id ${sid:-ID} --endpoint-url ${ENDPOINT%/}"
	REMOVED_EXISTING=
}

# shellcheck disable=SC2317
log_target() {
	if [ "$LOG_OK" = 1 ]; then printf '%s' "$LOG_FILE"; else printf /dev/null; fi
}

WORK_DIR=		# downloads, removed at exit

# shellcheck disable=SC2317
on_exit() {
	local rc=$?
	trap - EXIT
	# The rollback runs to its end with no terminal or reader left.
	trap '' HUP PIPE
	[ -z "$WORK_DIR" ] || rm -rf -- "$WORK_DIR"
	if [ "$rc" -ne 0 ]; then
		rollback
		log "exit status $rc"
	fi
	exit "$rc"
}

step_failed() {		# MESSAGE: a step failed: roll back, exit 3
	say "FAILED: $1"
	exit 3
}

# ---- the distribution ------------------------------------------------------

OS_ID=
OS_LIKE=
OS_VERSION=
OS_NAME=
PM=			# apt, dnf, yum, zypper or unknown

osr_get() {		# KEY: its value in os-release, quotes removed
	[ -r "$OS_RELEASE" ] || return 0
	sed -n "s/^$1=//p" "$OS_RELEASE" | head -n 1 |
		sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/"
}

detect_os() {
	local w major
	OS_ID=$(osr_get ID)
	OS_LIKE=$(osr_get ID_LIKE)
	OS_VERSION=$(osr_get VERSION_ID)
	OS_NAME=$(osr_get PRETTY_NAME)
	[ -n "$OS_NAME" ] || OS_NAME=${OS_ID:-unknown}
	major=${OS_VERSION%%.*}
	case $major in '' | *[!0-9]*) major=0 ;; esac
	PM=unknown
	for w in $OS_ID $OS_LIKE; do
		case $w in
		debian | ubuntu | raspbian | linuxmint | pop | kali)
			PM=apt
			break
			;;
		fedora)
			PM=dnf
			break
			;;
		amzn)
			if [ "$major" -ge 2022 ]; then PM=dnf; else PM=yum; fi
			break
			;;
		rhel | centos | rocky | almalinux | ol | scientific)
			if [ "$major" -ge 8 ]; then PM=dnf; else PM=yum; fi
			break
			;;
		sles | sled | suse | opensuse | opensuse-leap | opensuse-tumbleweed)
			PM=zypper
			break
			;;
		esac
	done
}

# The command that installs packages on this distribution family: one
# list of names per family (dnf's serves yum too).
pkg_fix() {		# APT_PKGS DNF_PKGS ZYPPER_PKGS
	case $PM in
	apt) printf 'apt-get update && apt-get install -y %s' "$1" ;;
	dnf) printf 'dnf install -y %s' "$2" ;;
	yum) printf 'yum install -y %s' "$2" ;;
	zypper) printf 'zypper install -y %s' "$3" ;;
	*) printf "install %s with this distribution's package manager (apt: %s, dnf/yum: %s, zypper: %s)" "$1" "$1" "$2" "$3" ;;
	esac
}

# ---- the flags ---------------------------------------------------------------

REGION=
ACCESS_KEY_ID=
SECRET_ACCESS_KEY=
SESSION_TOKEN=
ENDPOINT=
S3_ENDPOINT=
DEVICES=
TAGS=()
USER_PROVIDED_ID=
PROXY=
CA_BUNDLE=
NO_PROMPT=0
FORCE_VOLUMES=0
NO_REPLICATION=0
FORCE_DELETE=0
CHECK_ONLY=0
CONFIG_OUT=
FROM_ENV=()		# the settings that came from the environment

parse_args() {
	local arg val has
	while [ $# -gt 0 ]; do
		arg=$1 val='' has=0
		case $arg in
		--*=*)
			val=${arg#*=}
			arg=${arg%%=*}
			has=1
			;;
		esac
		case $arg in
		-h | --help)
			usage
			exit 0
			;;
		--no-prompt | --force-volumes | --no-replication | --force-delete-existing | --check-only)
			[ "$has" = 0 ] || usage_error "$arg takes no value"
			case $arg in
			--no-prompt) NO_PROMPT=1 ;;
			--force-volumes) FORCE_VOLUMES=1 ;;
			--no-replication) NO_REPLICATION=1 ;;
			--force-delete-existing) FORCE_DELETE=1 ;;
			--check-only) CHECK_ONLY=1 ;;
			esac
			;;
		--tags)
			if [ "$has" = 1 ]; then
				TAGS+=("$val")
			elif [ $# -lt 2 ] || [ "${2:0:1}" = - ]; then
				usage_error "--tags needs KEY=VALUE [KEY=VALUE ...]"
			fi
			while [ $# -ge 2 ] && [ "${2:0:1}" != - ]; do
				TAGS+=("$2")
				shift
			done
			;;
		--region | --aws-access-key-id | --aws-secret-access-key | \
			--aws-session-token | --endpoint | --s3-endpoint | \
			--devices | --user-provided-id | --proxy-address | \
			--ca-bundle | --config-out)
			if [ "$has" = 0 ]; then
				[ $# -ge 2 ] || usage_error "$arg needs a value"
				val=$2
				shift
			fi
			case $arg in
			--region) REGION=$val ;;
			--aws-access-key-id) ACCESS_KEY_ID=$val ;;
			--aws-secret-access-key) SECRET_ACCESS_KEY=$val ;;
			--aws-session-token) SESSION_TOKEN=$val ;;
			--endpoint) ENDPOINT=$val ;;
			--s3-endpoint) S3_ENDPOINT=$val ;;
			--devices) DEVICES=$val ;;
			--user-provided-id) USER_PROVIDED_ID=$val ;;
			--proxy-address) PROXY=$val ;;
			--ca-bundle) CA_BUNDLE=$val ;;
			--config-out) CONFIG_OUT=$val ;;
			esac
			;;
		*)
			usage_error "unknown option '$arg'"
			;;
		esac
		shift
	done
}

# The environment fills what the flags left empty.
env_fallbacks() {
	if [ -z "$REGION" ]; then
		if [ -n "${AWS_REGION:-}" ]; then
			REGION=$AWS_REGION
			FROM_ENV+=(AWS_REGION)
		elif [ -n "${AWS_DEFAULT_REGION:-}" ]; then
			REGION=$AWS_DEFAULT_REGION
			FROM_ENV+=(AWS_DEFAULT_REGION)
		fi
	fi
	if [ -z "$ACCESS_KEY_ID" ] && [ -n "${AWS_ACCESS_KEY_ID:-}" ]; then
		ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
		FROM_ENV+=(AWS_ACCESS_KEY_ID)
		# A token goes with its key: not with a key given as a flag.
		if [ -z "$SESSION_TOKEN" ] && [ -n "${AWS_SESSION_TOKEN:-}" ]; then
			SESSION_TOKEN=$AWS_SESSION_TOKEN
			FROM_ENV+=(AWS_SESSION_TOKEN)
		fi
	fi
	if [ -z "$SECRET_ACCESS_KEY" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ]; then
		SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
		FROM_ENV+=(AWS_SECRET_ACCESS_KEY)
	fi
	if [ -z "$ENDPOINT" ]; then
		local v
		for v in FERRY_ENDPOINT AWS_ENDPOINT_URL_MGN AWS_ENDPOINT_URL; do
			if [ -n "${!v:-}" ]; then
				ENDPOINT=${!v}
				FROM_ENV+=("$v")
				break
			fi
		done
	fi
	if [ -z "$PROXY" ]; then
		if [ -n "${https_proxy:-}" ]; then
			PROXY=$https_proxy
			FROM_ENV+=(https_proxy)
		elif [ -n "${HTTPS_PROXY:-}" ]; then
			PROXY=$HTTPS_PROXY
			FROM_ENV+=(HTTPS_PROXY)
		fi
	fi
}

# ---- prompts (on a terminal, without --no-prompt) -------------------------

can_prompt() {
	[ "$NO_PROMPT" = 0 ] && [ -t 0 ]
}

ask() {			# VAR PROMPT [-s]
	local __v
	if [ "${3:-}" = -s ]; then
		IFS= read -r -s -p "$2" __v || __v=
		printf '\n' >&2
	else
		IFS= read -r -p "$2" __v || __v=
	fi
	printf -v "$1" '%s' "$__v"
}

# The physical disks (lsblk's TYPE disk), as /dev/NAME.
physical_disks() {
	lsblk -dnpo NAME,TYPE 2>/dev/null | awk '$2 == "disk" { print $1 }'
}

prompt_missing() {
	can_prompt || return 0
	if [ -z "$REGION" ]; then
		ask REGION "AWS Region Name (ferry-control's region, e.g. us-east-1): "
	fi
	if [ -z "$ACCESS_KEY_ID" ]; then
		ask ACCESS_KEY_ID "AWS Access Key ID: "
	fi
	if [ -z "$SECRET_ACCESS_KEY" ]; then
		ask SECRET_ACCESS_KEY "AWS Secret Access Key: " -s
	fi
	if [ -z "$ENDPOINT" ]; then
		ask ENDPOINT "ferry-control endpoint (https://HOST[:PORT]): "
	fi
	if [ -z "$DEVICES" ]; then
		local disks
		disks=$(physical_disks | paste -sd, -)
		printf 'Choose the disks you want to replicate. Your disks are: %s\n' "${disks:-(none found)}" >&2
		ask DEVICES "To replicate some of the disks, type the path of the disks, separated with a comma (for example, /dev/sda,/dev/sdb). To replicate all disks, press Enter: "
	fi
	if [ "$FORCE_DELETE" = 0 ] && existing_installation >/dev/null; then
		local yn
		printf 'An agent is already installed here (%s).\n' "$(existing_installation)" >&2
		ask yn "Delete it and install again? [y/N] "
		case $yn in [yY] | [yY][eE][sS]) FORCE_DELETE=1 ;; esac
	fi
}

# ---- validation of the values ----------------------------------------------

ERRORS=()

bad() {
	ERRORS+=("$1")
}

has_ctl() {		# a control character (a newline would forge config lines)
	case $1 in *[[:cntrl:]]*) return 0 ;; esac
	return 1
}

# URL as the agent takes it: https://HOST[:PORT][/PATH]; a bare host gets
# https:// (MGN's --endpoint takes a private endpoint's DNS name).
norm_url() {		# VAR FLAG
	local u=${!1}
	[ -n "$u" ] || return 0
	case $u in
	https://?* | HTTPS://?*) ;;
	*://*)
		bad "$2 '$u': ferry-control is reached over https:// only"
		return 0
		;;
	*) u=https://$u ;;
	esac
	case $u in
	*[[:space:]]* | *[[:cntrl:]]*) bad "$2: blanks or control characters in the URL" ;;
	esac
	u=${u%/}
	printf -v "$1" '%s' "$u"
}

# The proxy as the agent's `proxy` key takes it (agent/config.c).
check_proxy() {
	local p=$PROXY rest shown
	[ -n "$p" ] || return 0
	shown=$(mask_url "$p")
	case $p in
	*[[:space:]]* | *[[:cntrl:]]*)
		bad "--proxy-address '$shown': blanks or control characters"
		return 0
		;;
	esac
	case $p in
	http://* | https://* | socks4://* | socks4a://* | socks5://* | socks5h://*) rest=${p#*://} ;;
	*://*)
		bad "--proxy-address '$shown': the scheme must be http, https or socks5"
		return 0
		;;
	*) rest=$p ;;
	esac
	case $rest in
	*:*) ;;
	*) bad "--proxy-address '$shown': want http://PROXY:PORT/" ;;
	esac
}

# Tags, MGN's rules; the agent's file keeps them as KEY=VALUE,KEY=VALUE.
TAG_LIST=
check_tags() {
	local t k v item n=0 seen=,
	TAG_LIST=
	for item in ${TAGS[@]+"${TAGS[@]}"}; do
		# --tags a=1,b=2 is accepted as well as --tags a=1 b=2
		local IFS=,
		for t in $item; do
			[ -n "$t" ] || continue
			case $t in
			?*=*) ;;
			*)
				bad "--tags '$t': not KEY=VALUE"
				continue
				;;
			esac
			k=${t%%=*} v=${t#*=}
			if has_ctl "$t" || [[ $t == *[[:space:]]* ]]; then
				bad "--tags '$k': blanks and control characters are not allowed"
			elif [ ${#k} -gt 128 ] || [ ${#v} -gt 256 ]; then
				bad "--tags '$k': keys have at most 128 characters, values 256"
			elif [[ ${k,,} == aws:* ]]; then
				bad "--tags '$k': keys may not start with aws:"
			else
				case $seen in *",$k,"*) ;; *) n=$((n + 1)) ;; esac
				seen=$seen$k,
				TAG_LIST=${TAG_LIST:+$TAG_LIST,}$t
			fi
		done
	done
	[ "$n" -le 50 ] || bad "--tags: $n tags, at most 50"
}

# --devices a,b or "a b"; sda means /dev/sda.
DEVICE_LIST=()
split_devices() {
	local d
	DEVICE_LIST=()
	for d in ${DEVICES//,/ }; do
		case $d in /*) ;; *) d=/dev/$d ;; esac
		DEVICE_LIST+=("$d")
	done
}

validate() {
	local missing=() f
	[ -n "$REGION" ] || missing+=("--region (or AWS_REGION)")
	[ -n "$ACCESS_KEY_ID" ] || missing+=("--aws-access-key-id (or AWS_ACCESS_KEY_ID)")
	[ -n "$SECRET_ACCESS_KEY" ] || missing+=("--aws-secret-access-key (or AWS_SECRET_ACCESS_KEY)")
	[ -n "$ENDPOINT" ] || missing+=("--endpoint (or FERRY_ENDPOINT)")
	if [ ${#missing[@]} -gt 0 ]; then
		local why="--no-prompt"
		if [ "$NO_PROMPT" = 0 ]; then
			if [ -t 0 ]; then why="left empty"; else why="no terminal to ask on"; fi
		fi
		f=$(printf '%s, ' "${missing[@]}")
		usage_error "missing ${f%, } ($why): nothing was changed"
	fi

	has_ctl "$REGION$ACCESS_KEY_ID$SECRET_ACCESS_KEY$SESSION_TOKEN$USER_PROVIDED_ID$DEVICES$CA_BUNDLE$CONFIG_OUT" &&
		bad "a value holds a control character (a newline?)"
	[[ $REGION =~ ^[A-Za-z0-9-]{1,64}$ ]] ||
		bad "--region '$REGION': want a region name such as us-east-1"
	[[ $ACCESS_KEY_ID =~ ^[A-Za-z0-9]{16,128}$ ]] ||
		bad "--aws-access-key-id: not an access key ID (16-128 letters and digits, such as AKIA...)"
	# Never echo a secret back, even a malformed one.
	[[ $SECRET_ACCESS_KEY =~ ^[[:graph:]]{1,256}$ ]] ||
		bad "--aws-secret-access-key: malformed (blanks or other characters)"
	[ -z "$SESSION_TOKEN" ] || [[ $SESSION_TOKEN =~ ^[[:graph:]]{1,4096}$ ]] ||
		bad "--aws-session-token: malformed"
	norm_url ENDPOINT --endpoint
	norm_url S3_ENDPOINT --s3-endpoint
	check_proxy
	check_tags
	if [ -n "$USER_PROVIDED_ID" ] && [ ${#USER_PROVIDED_ID} -gt 256 ]; then
		bad "--user-provided-id: at most 256 characters"
	fi
	if [ -n "$CA_BUNDLE" ]; then
		case $CA_BUNDLE in /*) ;; *) CA_BUNDLE=$(pwd)/$CA_BUNDLE ;; esac
		if [ ! -r "$CA_BUNDLE" ] || [ ! -f "$CA_BUNDLE" ]; then
			bad "--ca-bundle $CA_BUNDLE: not a readable file"
		elif ! grep -q -- '-----BEGIN CERTIFICATE-----' "$CA_BUNDLE"; then
			bad "--ca-bundle $CA_BUNDLE: holds no PEM certificate"
		fi
	fi
	if [ "$FORCE_VOLUMES" = 1 ]; then
		local need=()
		[ "$NO_PROMPT" = 1 ] || need+=(--no-prompt)
		[ -n "$DEVICES" ] || need+=("--devices")
		[ ${#need[@]} -eq 0 ] ||
			bad "--force-volumes needs $(printf '%s and ' "${need[@]}" | sed 's/ and $//'): it replicates exactly the devices named, without asking"
	fi
	split_devices
	if [ -n "$DEVICES" ] && [ ${#DEVICE_LIST[@]} -eq 0 ]; then
		bad "--devices '$DEVICES': no device named"
	fi
	if [ ${#ERRORS[@]} -gt 0 ]; then
		local e
		for e in "${ERRORS[@]}"; do
			printf '%s: %s\n' "$PROG" "$e" >&2
		done
		printf "Nothing was changed. Run '%s --help' for the flags.\n" "$PROG" >&2
		exit 2
	fi
}

# ---- the checks --------------------------------------------------------------

N_FAILED=0

ok() {
	say "  ok      $*"
}

failed() {		# WHAT FIX...: one failed check and how to fix it
	local what=$1 l
	shift
	N_FAILED=$((N_FAILED + 1))
	say "  FAILED  $what"
	for l in "$@"; do
		say "          $l"
	done
}

KVER=
KBUILD=

check_root() {
	if [ "$(id -u)" -eq 0 ]; then
		ok "running as root"
	else
		failed "not running as root (uid $(id -u)): the installer loads a kernel module and installs a service" \
			"fix: run it as root: sudo bash $0 ... (or su -c 'bash $0 ...')"
	fi
}

# The flavour of a SUSE kernel release: 5.14.21-150500.55.39-default.
kernel_flavor() {
	local f=${KVER##*-}
	case $f in
	default | azure | rt | 64kb | preempt | kvmsmall | vanilla | pae | lpae | zfcpdump) ;;
	*) f=default ;;
	esac
	printf '%s' "$f"
}

headers_fix() {
	local meta
	meta=$(headers_meta)
	pkg_fix "linux-headers-$KVER${meta:+ $meta}" "kernel-devel-$KVER" "kernel-$(kernel_flavor)-devel"
}

# The Debian or Ubuntu package whose dependency follows kernel upgrades
# with their headers: linux-headers-cloud-amd64 for 6.1.0-18-cloud-amd64
# or 6.12.57+deb13-cloud-amd64, linux-headers-aws for 6.8.0-1015-aws; or
# nothing for a release of another form.  Without it a new kernel has no
# headers, DKMS builds no ferry.ko for it, and replication stops at the
# reboot into it.
headers_meta() {
	[ "$PM" = apt ] || return 0
	if [[ $KVER =~ ^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-([a-z][a-z0-9-]*)$ ]] ||
		[[ $KVER =~ ^[0-9]+\.[0-9]+\.[0-9]+\+deb[0-9]+-([a-z][a-z0-9-]*)$ ]]; then
		printf 'linux-headers-%s' "${BASH_REMATCH[1]}"
	fi
}

check_headers() {
	local uts meta
	KVER=${FERRY_INSTALL_KERNEL:-$(uname -r)}
	KBUILD=$MODULES_DIR/$KVER/build
	if [ ! -f "$KBUILD/Makefile" ]; then
		failed "no headers for the running kernel $KVER ($KBUILD is missing): DKMS cannot build the module" \
			"fix: $(headers_fix)"
		[ "$PM" != zypper ] ||
			say "          (zypper installs the newest headers: if they are newer than $KVER, update the kernel and reboot into it first)"
		KBUILD=
		return
	fi
	uts=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$KBUILD/include/generated/utsrelease.h" 2>/dev/null)
	if [ -z "$uts" ]; then
		failed "the headers in $KBUILD are incomplete (no include/generated/utsrelease.h)" \
			"fix: reinstall them: $(headers_fix)"
	elif [ "$uts" != "$KVER" ]; then
		failed "the headers in $KBUILD are for kernel $uts, not the running kernel $KVER" \
			"fix: install the headers of the running kernel: $(headers_fix)" \
			"     or reboot into kernel $uts"
	else
		ok "kernel headers for $KVER ($KBUILD)"
		meta=$(headers_meta)
		if [ -n "$meta" ] && ! dpkg-query -W -f '${Status}' "$meta" 2>/dev/null |
			grep -q 'ok installed'; then
			say "  note    $meta is not installed: the headers of the next kernel an upgrade brings will be missing, DKMS will build no ferry.ko for it, and replication stops at the reboot into it"
			say "          to avoid it: apt-get install -y $meta"
		fi
	fi
}

# The compiler the kernel was built with (CONFIG_CC_VERSION_TEXT, e.g.
# "gcc-12 (Debian 12.2.0-14) 12.2.0"): modules must be built with it.
check_compiler() {
	local want='' text='' pkg missing=()
	if [ -n "$KBUILD" ] && [ -f "$KBUILD/.config" ]; then
		text=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"$/\1/p' "$KBUILD/.config")
		want=${text%% *}
		grep -q '^CONFIG_CC_IS_CLANG=y' "$KBUILD/.config" && want=${want:-clang}
	fi
	case $want in
	'' | *[!A-Za-z0-9._+-]*) want=gcc ;;
	esac
	if ! command -v "$want" >/dev/null 2>&1; then
		missing+=("$want")
	fi
	command -v make >/dev/null 2>&1 || missing+=(make)
	if [ ${#missing[@]} -eq 0 ]; then
		ok "compiler ($want) and make"
		return
	fi
	# x86_64-linux-gnu-gcc-12 is in the gcc-12 package.
	pkg=${want##*-linux-gnu-}
	case $pkg in clang*) ;; gcc* | cc) ;; *) pkg=gcc ;; esac
	[ "$pkg" != cc ] || pkg=gcc
	local apt=$pkg dnf=gcc zyp=gcc
	case $pkg in clang*) dnf=clang zyp=clang ;; esac
	apt="$apt make" dnf="$dnf make" zyp="$zyp make"
	local fix
	fix=$(pkg_fix "$apt" "$dnf" "$zyp")
	case $OS_ID in
	amzn) fix="$fix (or all the tools: yum groupinstall -y \"Development Tools\")" ;;
	esac
	failed "missing $(printf '%s, ' "${missing[@]}" | sed 's/, $//'): the module is built on this machine${text:+ (the kernel was built with $text)}" \
		"fix: $fix"
}

dkms_fix() {
	local major=${OS_VERSION%%.*}
	case $PM in
	dnf | yum)
		case $OS_ID in
		fedora) pkg_fix dkms dkms dkms ;;
		amzn) printf 'amazon-linux-extras install -y epel && yum install -y dkms' ;;
		rhel) printf '%s install -y https://dl.fedoraproject.org/pub/epel/epel-release-latest-%s.noarch.rpm && %s install -y dkms' "$PM" "$major" "$PM" ;;
		*) printf '%s install -y epel-release && %s install -y dkms   (DKMS comes from EPEL)' "$PM" "$PM" ;;
		esac
		;;
	zypper)
		case $OS_ID in
		sles | sled) printf 'SUSEConnect -p PackageHub/%s/%s && zypper install -y dkms' "$OS_VERSION" "$(uname -m)" ;;
		*) pkg_fix dkms dkms dkms ;;
		esac
		;;
	*) pkg_fix dkms dkms dkms ;;
	esac
}

check_dkms() {
	if command -v dkms >/dev/null 2>&1; then
		ok "DKMS ($(dkms --version 2>/dev/null | head -n 1))"
	else
		failed "DKMS is not installed: it builds ferry.ko for this kernel and again after each kernel upgrade" \
			"fix: $(dkms_fix)"
	fi
}

free_mb() {		# DIR: MiB available to root there
	df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print int($4 / 1024) }'
}

clean_fix() {
	case $PM in
	apt) printf 'apt-get clean; apt-get autoremove --purge -y' ;;
	dnf | yum) printf '%s clean all; %s autoremove -y' "$PM" "$PM" ;;
	zypper) printf 'zypper clean --all' ;;
	*) printf "clean the package manager's cache" ;;
	esac
}

check_space() {
	local root tmp mem
	root=$(free_mb /)
	if [ -z "$root" ]; then
		failed "cannot read the free space of / (df)"
	elif [ "$root" -lt "$MIN_ROOT_MB" ]; then
		failed "only $root MiB free on /: the installation needs $MIN_ROOT_MB MiB (packages, the DKMS build, the agent's state)" \
			"fix: free space on / (for example: $(clean_fix); remove old kernels and logs)"
	else
		ok "$root MiB free on / (needs $MIN_ROOT_MB)"
	fi
	if [ -d "$TMP_DIR" ]; then
		tmp=$(free_mb "$TMP_DIR")
		if [ -n "$tmp" ] && [ "$tmp" -lt "$MIN_TMP_MB" ]; then
			failed "only $tmp MiB free in $TMP_DIR: the installation needs $MIN_TMP_MB MiB there" \
				"fix: free space in $TMP_DIR, or enlarge it (a tmpfs: mount -o remount,size=512M $TMP_DIR)"
		elif [ -n "$tmp" ]; then
			ok "$tmp MiB free in $TMP_DIR (needs $MIN_TMP_MB)"
		fi
	fi
	mem=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null)
	if [ -z "$mem" ]; then
		mem=$(awk '/^(MemFree|Buffers|Cached):/ { s += $2 } END { print int(s / 1024) }' /proc/meminfo 2>/dev/null)
	fi
	if [ -n "$mem" ] && [ "$mem" -lt "$MIN_MEM_MB" ]; then
		failed "only $mem MiB of memory available: the module's build and the agent need $MIN_MEM_MB MiB" \
			"fix: stop services this server can spare, or give it more memory"
	elif [ -n "$mem" ]; then
		ok "$mem MiB of memory available (needs $MIN_MEM_MB)"
	fi
}

# The mount options of the filesystem holding DIR, without findmnt if need be.
mount_of() {		# DIR -> "MOUNTPOINT OPTIONS"
	local d
	d=$(cd "$1" 2>/dev/null && pwd -P) || return 1
	if command -v findmnt >/dev/null 2>&1; then
		findmnt -n -o TARGET,OPTIONS --target "$d" | tail -n 1
		return
	fi
	awk -v d="$d" '
		function unesc(s) { gsub(/\\040/, " ", s); return s }
		{ m = unesc($2)
		  if (d == m || m == "/" || index(d, m "/") == 1)
			if (length(m) >= length(best)) { best = m; opts = $4 } }
		END { if (best != "") print best, opts }' /proc/self/mounts
}

check_tmp() {
	local mo mnt opts
	if [ ! -d "$TMP_DIR" ]; then
		failed "$TMP_DIR does not exist" "fix: mkdir -m 1777 $TMP_DIR"
		return
	fi
	mo=$(mount_of "$TMP_DIR")
	mnt=${mo%% *} opts=${mo#* }
	# noexec (hardened servers, CIS) is fine: the installer only keeps
	# its downloads there; DKMS builds in /var/lib/dkms, and the
	# module's feature probes only compile in /tmp (t_guest installs
	# with /tmp mounted noexec).  Said, so that nobody remounts it.
	case ,$opts, in
	*,noexec,*)
		ok "$TMP_DIR is mounted noexec (on $mnt): fine, nothing of the installation runs from it"
		;;
	*)
		ok "$TMP_DIR exists"
		;;
	esac
}

# DKMS's MOK certificate: framework.conf's mok_certificate, else DKMS's
# default (Ubuntu: shim-signed's key).
dkms_mok_cert() {
	local f c=
	for f in "$DKMS_FRAMEWORK" "${DKMS_FRAMEWORK%.conf}.conf.d"/*.conf; do
		[ -r "$f" ] || continue
		c=$(sed -n 's/^[[:space:]]*mok_certificate=["'\'']\{0,1\}\([^"'\'']*\).*/\1/p' "$f" | tail -n 1)
		[ -z "$c" ] || break
	done
	if [ -z "$c" ]; then
		case $OS_ID in
		ubuntu) c=/var/lib/shim-signed/mok/MOK.der ;;
		*) c=/var/lib/dkms/mok.pub ;;
		esac
	fi
	printf '%s' "$c"
}

check_secure_boot() {
	local state cert enrolled mokfix
	if command -v mokutil >/dev/null 2>&1; then
		state=$(mokutil --sb-state 2>&1)
	elif [ -d /sys/firmware/efi ]; then
		failed "cannot tell whether Secure Boot is on: mokutil is missing" \
			"fix: $(pkg_fix mokutil mokutil mokutil)"
		return
	else
		ok "Secure Boot: not a UEFI machine"
		return
	fi
	case $state in
	*"SecureBoot enabled"*) ;;
	*)
		ok "Secure Boot: disabled (${state%%$'\n'*})"
		return
		;;
	esac
	cert=$(dkms_mok_cert)
	mokfix="mokutil --import $cert   (choose a one-time password), reboot, and in the blue MOK manager screen choose Enroll MOK > Continue > Yes, type the password, reboot; then run install.sh again"
	if [ ! -f "$cert" ]; then
		local gen
		case $OS_ID in
		ubuntu) gen="update-secureboot-policy --new-key" ;;
		*) gen="openssl req -new -x509 -nodes -days 36500 -subj '/CN=DKMS module signing key' -newkey rsa:2048 -keyout ${cert%.*}.key -outform DER -out $cert" ;;
		esac
		failed "Secure Boot is enabled: the kernel loads only signed modules, and DKMS's signing key (MOK) is not there yet ($cert)" \
			"DKMS signs the modules it builds with this key; the firmware must trust it (enrolled as a Machine Owner Key)." \
			"fix: 1. create the key: $gen" \
			"     2. enroll it: $mokfix"
		return
	fi
	enrolled=$(mokutil --test-key "$cert" 2>&1)
	case $enrolled in
	*"already enrolled"*)
		ok "Secure Boot: enabled; DKMS signs the module with $cert, which is enrolled"
		;;
	*"enrollment request"* | *"already in the enrollment"*)
		failed "Secure Boot is enabled and DKMS's key $cert waits for its enrollment" \
			"fix: reboot, and in the blue MOK manager screen choose Enroll MOK > Continue > Yes and type the password chosen at mokutil --import; then run install.sh again"
		;;
	*)
		failed "Secure Boot is enabled and DKMS's signing key $cert is not enrolled: the kernel would refuse ferry.ko" \
			"DKMS signs the modules it builds with this key; the firmware must trust it (enrolled as a Machine Owner Key)." \
			"fix: $mokfix"
		;;
	esac
}

check_devices() {
	local d type bad_types=()
	[ ${#DEVICE_LIST[@]} -gt 0 ] || {
		ok "disks: every disk of this server (none named with --devices)"
		return
	}
	for d in "${DEVICE_LIST[@]}"; do
		if [ ! -b "$d" ]; then
			failed "--devices: $d is not a block device" \
				"fix: name the disks lsblk lists: $(physical_disks | paste -sd, -)"
			continue
		fi
		[ "$FORCE_VOLUMES" = 0 ] || continue
		type=$(lsblk -dno TYPE "$d" 2>/dev/null | head -n 1)
		case $type in
		disk | part) ;;
		*) bad_types+=("$d (${type:-unknown})") ;;
		esac
	done
	if [ ${#bad_types[@]} -gt 0 ]; then
		failed "--devices: not a disk or a partition: $(printf '%s, ' "${bad_types[@]}" | sed 's/, $//')" \
			"fix: name physical disks, or replicate exactly these devices with --force-volumes --no-prompt --devices $DEVICES"
	elif [ "$FORCE_VOLUMES" = 1 ]; then
		ok "devices (exactly, --force-volumes): ${DEVICE_LIST[*]}"
	else
		ok "disks: ${DEVICE_LIST[*]}"
	fi
}

# What shows an agent installed already (empty: none).
existing_installation() {
	if [ -e "$CONF_FILE" ]; then
		printf '%s exists' "$CONF_FILE"
	elif command -v dpkg-query >/dev/null 2>&1 &&
		dpkg-query -W -f '${Status}' ferry-agent 2>/dev/null | grep -q 'ok installed'; then
		printf 'the ferry-agent package is installed'
	elif command -v rpm >/dev/null 2>&1 && [ ! -e /var/lib/dpkg/status ] &&
		rpm -q ferry-agent >/dev/null 2>&1; then
		printf 'the ferry-agent package is installed'
	elif [ -z "$CONFIG_OUT" ] && [ -e "$STATE_DIR/registration.json" ]; then
		printf '%s/registration.json exists' "$STATE_DIR"
	else
		return 1
	fi
}

check_existing() {
	local what
	if ! what=$(existing_installation); then
		ok "no agent installed yet"
	elif [ "$FORCE_DELETE" = 1 ]; then
		ok "an agent is installed ($what): --force-delete-existing replaces it"
	else
		failed "an agent is already installed here: $what" \
			"fix: to install again over it, add --force-delete-existing"
	fi
}

# The agent is a systemd service: without systemd running (a container,
# another init) everything else would be installed, the module built, and
# the last step fail.
check_systemd() {
	local pid1
	pid1=$(cat /proc/1/comm 2>/dev/null) || pid1=unknown
	if [ ! -d "$SYSTEMD_DIR" ]; then
		failed "systemd is not running on this machine ($SYSTEMD_DIR is missing; PID 1 is ${pid1:-unknown}): ferry-agent runs as a systemd service" \
			"fix: install it on the server itself, booted with systemd (not in a container or chroot, nor under another init system)"
	elif ! command -v systemctl >/dev/null 2>&1; then
		failed "systemctl is missing, though systemd runs: ferry-agent is started and enabled with it" \
			"fix: $(pkg_fix systemd systemd systemd)"
	else
		ok "systemd runs the services"
	fi
}

# ---- the signed call ---------------------------------------------------------
#
# One POST /RegisterAgentForMgn signed with the keys, whose body holds a
# member ferry-control does not know: ferry-control authenticates the
# request, checks that the key may register agents, then refuses the body
# (ValidationException) and changes nothing (docs/api.md: authentication
# and the role come before the body; a failed operation changes nothing).
# So: reachable, the keys and the region right, the key an installer's.
#
# curl 7.75+ signs it (--aws-sigv4); older curls (RHEL 8's) get the
# signature computed here from sha256sum.  The secret reaches curl on its
# standard input, never on a command line.

PROBE_OP=RegisterAgentForMgn
REQ_BODY=
# A nonce in the body: ferry-control accepts a signed request that changes
# state once, and servers installed in the same second with the same key
# would otherwise send identical signatures.
probe_body() {
	local n
	n=$(cat /proc/sys/kernel/random/uuid 2>/dev/null) || n=
	[ -n "$n" ] || n=$$-$RANDOM$RANDOM-$(date +%s%N)
	REQ_BODY=$(printf '{"ferryInstallerProbe":"%s"}' "$n")
}

curl_version_ok() {	# curl >= 7.75 (--aws-sigv4)
	local v maj min
	v=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
	maj=${v%%.*} min=${v#*.}
	min=${min%%.*}
	case $maj$min in '' | *[!0-9]*) return 1 ;; esac
	[ "$maj" -gt 7 ] || { [ "$maj" -eq 7 ] && [ "$min" -ge 75 ]; }
}

# A curl config value: "..." with \ and " escaped.
cq() {
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}

sha256_hex() {		# stdin -> hex
	sha256sum | cut -c1-64
}

hex_esc() {		# HEX -> \xHH... for printf %b
	local h=$1 i out=
	for ((i = 0; i < ${#h}; i += 2)); do
		out+="\\x${h:i:2}"
	done
	printf '%s' "$out"
}

hmac_hex() {		# KEYHEX MESSAGE -> HMAC-SHA256 in hex
	local key=$1 msg=$2 i b x ipad='' opad='' inner
	if [ ${#key} -gt 128 ]; then
		key=$(printf '%b' "$(hex_esc "$key")" | sha256_hex)
	fi
	while [ ${#key} -lt 128 ]; do key+=0; done
	for ((i = 0; i < 128; i += 2)); do
		b=$((16#${key:i:2}))
		printf -v x '\\x%02x' $((b ^ 0x36))
		ipad+=$x
		printf -v x '\\x%02x' $((b ^ 0x5c))
		opad+=$x
	done
	inner=$({ printf '%b' "$ipad"; printf '%s' "$msg"; } | sha256_hex)
	{ printf '%b' "$opad"; printf '%b' "$(hex_esc "$inner")"; } | sha256_hex
}

# The Authorization header of SigV4 for the probe, computed here.
SIGNED_DATE=
shell_sigv4() {		# HOSTPORT PATH -> "AUTHORIZATION" (for SIGNED_DATE)
	local hostport=$1 path=$2 day scope signed creq sts k
	day=${SIGNED_DATE:0:8}
	scope=$day/$REGION/mgn/aws4_request
	signed="content-type;host;x-amz-date"
	creq=$(printf 'POST\n%s\n\ncontent-type:application/json\nhost:%s\nx-amz-date:%s\n' \
		"$path" "$hostport" "$SIGNED_DATE")
	if [ -n "$SESSION_TOKEN" ]; then
		creq+=$(printf '\nx-amz-security-token:%s' "$SESSION_TOKEN")
		signed+=";x-amz-security-token"
	fi
	creq+=$(printf '\n\n%s\n%s' "$signed" "$(printf '%s' "$REQ_BODY" | sha256_hex)")
	sts=$(printf 'AWS4-HMAC-SHA256\n%s\n%s\n%s' "$SIGNED_DATE" "$scope" \
		"$(printf '%s' "$creq" | sha256_hex)")
	k=$(printf '%s' "AWS4$SECRET_ACCESS_KEY" | od -An -v -tx1 | tr -d ' \n')
	k=$(hmac_hex "$k" "$day")
	k=$(hmac_hex "$k" "$REGION")
	k=$(hmac_hex "$k" mgn)
	k=$(hmac_hex "$k" aws4_request)
	printf 'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' \
		"$ACCESS_KEY_ID" "$scope" "$signed" "$(hmac_hex "$k" "$sts")"
}

SIGNER=

# The curl config (stdin) of the probe.
probe_config() {
	local hostport=$1 path=$2
	printf 'header = %s\n' "$(cq 'Content-Type: application/json')"
	if [ "$SIGNER" = curl ]; then
		printf 'aws-sigv4 = %s\n' "$(cq "aws:amz:$REGION:mgn")"
		printf 'user = %s\n' "$(cq "$ACCESS_KEY_ID:$SECRET_ACCESS_KEY")"
		[ -z "$SESSION_TOKEN" ] ||
			printf 'header = %s\n' "$(cq "x-amz-security-token: $SESSION_TOKEN")"
	else
		local auth
		SIGNED_DATE=$(date -u +%Y%m%dT%H%M%SZ)
		auth=$(shell_sigv4 "$hostport" "$path")
		printf 'header = %s\n' "$(cq "Host: $hostport")"
		printf 'header = %s\n' "$(cq "X-Amz-Date: $SIGNED_DATE")"
		[ -z "$SESSION_TOKEN" ] ||
			printf 'header = %s\n' "$(cq "X-Amz-Security-Token: $SESSION_TOKEN")"
		printf 'header = %s\n' "$(cq "Authorization: $auth")"
	fi
	net_config
}

# The curl config (stdin) of every call and download: the proxy (its
# password would be visible to every user in a command line) and the CA
# bundle.
net_config() {
	if [ -n "$PROXY" ]; then
		printf 'proxy = %s\n' "$(cq "$PROXY")"
	else
		printf 'noproxy = "*"\n'
	fi
	[ -z "$CA_BUNDLE" ] || printf 'cacert = %s\n' "$(cq "$CA_BUNDLE")"
}

check_endpoint() {
	local rest hostport path url resp rc code type msg err via=
	if ! command -v curl >/dev/null 2>&1; then
		failed "curl is missing: it makes the signed call to ferry-control (and the downloads)" \
			"fix: $(pkg_fix curl curl curl)"
		return
	fi
	case ${FERRY_INSTALL_SIGNER:-} in
	curl | shell) SIGNER=$FERRY_INSTALL_SIGNER ;;
	*) if curl_version_ok; then SIGNER=curl; else SIGNER=shell; fi ;;
	esac
	if [ "$SIGNER" = shell ] && ! command -v sha256sum >/dev/null 2>&1; then
		failed "this curl is older than 7.75 (no --aws-sigv4) and sha256sum is missing: cannot sign the call" \
			"fix: $(pkg_fix 'curl coreutils' 'curl coreutils' 'curl coreutils')"
		return
	fi
	rest=${ENDPOINT#*://}
	hostport=${rest%%/*}
	path=
	[ "$rest" = "$hostport" ] || path=/${rest#*/}
	path=${path%/}/$PROBE_OP
	url=https://$hostport$path
	probe_body
	[ -z "$PROXY" ] || via=" through the proxy $(mask_url "$PROXY")"
	log "signed call: POST $url$via (signer: $SIGNER, key $(mask_key "$ACCESS_KEY_ID"))"
	resp=$(probe_config "$hostport" "$path" |
		curl -sS -K - -X POST --data-binary "$REQ_BODY" -D - \
			--connect-timeout 10 --max-time "$CURL_TIMEOUT" \
			-w '\nferry-http-code:%{http_code}\n' "$url" 2>&1)
	rc=$?
	code=$(printf '%s\n' "$resp" | sed -n 's/^ferry-http-code:\([0-9]*\)$/\1/p' | tail -n 1)
	type=$(printf '%s\n' "$resp" | tr -d '\r' | sed -n 's/^[Xx]-[Aa]mzn-[Ee]rror[Tt]ype: *\([A-Za-z]*\).*/\1/p' | tail -n 1)
	msg=$(printf '%s\n' "$resp" | sed -n 's/.*"message" *: *"\(\([^"\\]\|\\.\)*\)".*/\1/p' | tail -n 1)
	err=$(printf '%s\n' "$resp" | sed -n 's/^curl: ([0-9]*) //p' | head -n 1)
	log "signed call: curl exit $rc, HTTP ${code:-none}, ${type:-no error type}${msg:+: $msg}${err:+ ($err)}"
	if [ "$rc" -ne 0 ]; then
		case $rc in
		5)
			failed "cannot resolve the proxy's host ($(mask_url "$PROXY")): $err" \
				"fix: check --proxy-address (or https_proxy)" ;;
		6)
			failed "cannot resolve the endpoint's host in $ENDPOINT: $err" \
				"fix: check --endpoint and this machine's DNS (a private endpoint's name must resolve here)" ;;
		7)
			failed "cannot connect to $ENDPOINT$via: $err" \
				"fix: is ferry-control running there? Open TCP ${hostport##*:} from this server to it (firewall, security group)${via:+, and check the proxy}" ;;
		28)
			failed "no answer from $ENDPOINT$via within $CURL_TIMEOUT s: $err" \
				"fix: open TCP ${hostport##*:} from this server to ferry-control (a firewall drops the packets?)" ;;
		35 | 51 | 53 | 54 | 58 | 59 | 60 | 64 | 66 | 77 | 80 | 82 | 83 | 90 | 91)
			failed "TLS with $ENDPOINT failed: $err" \
				"fix: give ferry-control's CA certificate with --ca-bundle FILE (ferry-control's DATA_DIR/ca.pem), and use the host name its certificate names" ;;
		56 | 97)
			failed "the proxy $(mask_url "$PROXY") failed or refused the connection to $ENDPOINT: $err" \
				"fix: check --proxy-address, and that the proxy allows CONNECT to ${hostport}" ;;
		*)
			failed "the call to $ENDPOINT$via failed (curl exit $rc): ${err:-$resp}" ;;
		esac
		return
	fi
	case $code:$type in
	400:ValidationException)
		ok "$ENDPOINT reachable$via; key $(mask_key "$ACCESS_KEY_ID") accepted for region $REGION, and it may register agents"
		;;
	*:UnrecognizedClientException)
		failed "ferry-control does not know the access key ID $(mask_key "$ACCESS_KEY_ID"), or it was deactivated${msg:+ ($msg)}" \
			"fix: create an installer key on ferry-control (ferry-control keys create --role installer --name NAME) and pass --aws-access-key-id and --aws-secret-access-key" ;;
	*:InvalidSignatureException)
		case $msg in
		*[Rr]egion*)
			failed "ferry-control refused the region $REGION: $msg" \
				"fix: pass --region with ferry-control's region (its --region)" ;;
		*[Ee]xpired* | *"not yet current"* | *[Ss]kew*)
			failed "ferry-control refused the signature's time: $msg" \
				"fix: set this machine's clock (timedatectl set-ntp true, or chronyc makestep)" ;;
		*)
			failed "ferry-control refused the signature: the secret access key is wrong for key $(mask_key "$ACCESS_KEY_ID")" \
				"fix: pass the secret that ferry-control keys create printed with this key (--aws-secret-access-key)" ;;
		esac ;;
	*:AccessDeniedException)
		failed "the key $(mask_key "$ACCESS_KEY_ID") may not register agents: $msg" \
			"fix: use an installer key: ferry-control keys create --role installer --name NAME" ;;
	*:ExpiredTokenException)
		failed "the session token of key $(mask_key "$ACCESS_KEY_ID") has expired" \
			"fix: get new temporary keys, or use a long-term installer key" ;;
	*:IncompleteSignatureException | *:MissingAuthenticationTokenException)
		failed "$ENDPOINT did not take the signed request: $type${msg:+: $msg}" \
			"fix: check that --endpoint is ferry-control" ;;
	*)
		failed "$ENDPOINT answered HTTP ${code:-?}${type:+ $type}${msg:+: $msg}, not as ferry-control does" \
			"fix: check that --endpoint is ferry-control (https://HOST[:PORT]), not another service or a proxy's page" ;;
	esac
}

run_checks() {
	say "Checking this machine before changing anything ($OS_NAME; packages: $PM):"
	check_root
	check_headers
	check_compiler
	check_dkms
	check_space
	check_tmp
	check_systemd
	check_secure_boot
	check_devices
	check_existing
	check_endpoint
}

# ---- the steps -----------------------------------------------------------------

fail_after() {		# STEP: the tests' injected failure (FERRY_INSTALL_FAIL_AFTER)
	local sig=${FERRY_INSTALL_SIGNAL_AFTER:-}
	[ "${FERRY_INSTALL_FAIL_AFTER:-}" != "$1" ] ||
		step_failed "after step '$1': a failure injected by FERRY_INSTALL_FAIL_AFTER"
	# ...or signal (FERRY_INSTALL_SIGNAL_AFTER=STEP:HUP, as a dropped
	# SSH session sends).
	[ "${sig%%:*}" != "$1" ] || [ "$sig" = "${sig#*:}" ] || kill -s "${sig#*:}" $$
}

conf_line() {		# KEY VALUE: one line of agent.conf, the value quoted
	printf '%s = "%s"\n' "$1" "$2"
}

# --ca-bundle: the agent reads it at every start, and the file given may
# lie in a download directory that goes once the installation is done.  So
# it is copied next to agent.conf as ca.pem (0644: certificates only), and
# that path written in agent.conf.  stage_ca copies it into the work
# directory first: --force-delete-existing removes /etc/ferry (with the
# old ca.pem, which may be the very file given) before the configuration
# is written.
CA_SRC=
CA_FILE=
# FILE is about to be replaced or written: a later failure puts back the
# one there was (a copy beside it, deleted once the whole run succeeded)
# or removes the new one.
keep_for_undo() {	# FILE
	local file=$1 backup
	if [ ! -e "$file" ]; then
		undo_push "wrote $file" rm -f -- "$file"
		return 0
	fi
	backup=$(umask 077 && mktemp "$file.ferry-old.XXXXXX") ||
		step_failed "cannot back up $file"
	cp -p -- "$file" "$backup" || {
		rm -f -- "$backup"
		step_failed "cannot back up $file"
	}
	undo_push "replaced $file (the previous one is restored)" mv -f -- "$backup" "$file"
	KEEP_UNTIL_END+=("$backup")
}

stage_ca() {
	[ -n "$CA_BUNDLE" ] || return 0
	CA_SRC=$WORK_DIR/ca.pem
	cp -- "$CA_BUNDLE" "$CA_SRC" ||
		step_failed "cannot copy $CA_BUNDLE to $WORK_DIR"
}

install_ca() {
	local tmp
	say "Copying the CA bundle $CA_BUNDLE to $CA_FILE (mode 0644)"
	keep_for_undo "$CA_FILE"
	tmp=$(mktemp "$CA_FILE.ferry-new.XXXXXX") ||
		step_failed "cannot write in $(dirname "$CA_FILE")"
	if ! cp -- "${CA_SRC:-$CA_BUNDLE}" "$tmp" || ! chmod 644 "$tmp" ||
		! mv -f -- "$tmp" "$CA_FILE"; then
		rm -f -- "$tmp"
		step_failed "cannot copy $CA_BUNDLE to $CA_FILE"
	fi
	chown 0:0 "$CA_FILE" 2>/dev/null
	log "copied the CA bundle $CA_BUNDLE to $CA_FILE"
}

write_config() {
	local dir top tmp
	dir=$(dirname "$CONF_FILE")
	if [ ! -d "$dir" ]; then
		top=$dir
		while [ ! -d "$(dirname "$top")" ]; do top=$(dirname "$top"); done
		undo_push "created $top" rm -rf -- "$top"
		mkdir -p "$dir" || step_failed "cannot create $dir"
		chmod 755 "$dir"
	fi
	CA_FILE=$dir/ca.pem
	[ -z "$CA_BUNDLE" ] || install_ca
	say "Writing $CONF_FILE (mode 0600)"
	keep_for_undo "$CONF_FILE"
	tmp=$(umask 077 && mktemp "$CONF_FILE.ferry-new.XXXXXX") ||
		step_failed "cannot write in $dir"
	{
		printf '# %s: ferry-agent'\''s configuration, written by install.sh on %s.\n' \
			"$CONF_FILE" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		printf '# The keys are in docs/agent.md ("Configuration").  Mode 0600: it holds\n'
		printf '# the installer'\''s secret until the agent has registered, and the agent\n'
		printf '# then removes it.\n'
		conf_line endpoint "$ENDPOINT"
		conf_line region "$REGION"
		conf_line access-key-id "$ACCESS_KEY_ID"
		conf_line secret-access-key "$SECRET_ACCESS_KEY"
		[ -z "$SESSION_TOKEN" ] || conf_line session-token "$SESSION_TOKEN"
		[ -z "$CA_BUNDLE" ] || conf_line ca-bundle "$CA_FILE"
		[ -z "$PROXY" ] || conf_line proxy "$PROXY"
		[ -z "$S3_ENDPOINT" ] || conf_line s3-endpoint "$S3_ENDPOINT"
		if [ ${#DEVICE_LIST[@]} -gt 0 ]; then
			conf_line devices "$(printf '%s,' "${DEVICE_LIST[@]}" | sed 's/,$//')"
		fi
		[ -z "$TAG_LIST" ] || conf_line tags "$TAG_LIST"
		[ -z "$USER_PROVIDED_ID" ] || conf_line user-provided-id "$USER_PROVIDED_ID"
		[ "$NO_REPLICATION" = 0 ] || conf_line no-replication yes
	} >"$tmp" || {
		rm -f -- "$tmp"
		step_failed "cannot write $tmp"
	}
	chmod 600 "$tmp" && chown 0:0 "$tmp" 2>/dev/null
	sync "$tmp" 2>/dev/null
	mv -f -- "$tmp" "$CONF_FILE" || {
		rm -f -- "$tmp"
		step_failed "cannot move $tmp to $CONF_FILE"
	}
	log "wrote $CONF_FILE: endpoint $ENDPOINT, region $REGION, key $(mask_key "$ACCESS_KEY_ID")${DEVICES:+, devices $DEVICES}${TAG_LIST:+, tags $TAG_LIST}$([ "$NO_REPLICATION" = 0 ] || printf ', no-replication')"
	fail_after config
}

# ---- the packages ----------------------------------------------------------
#
# ferry-dkms (the module's source; its package scripts build and install it
# with DKMS) and ferry-agent (the agent, ferryctl, the systemd unit), in
# that order.  From, in order of preference: the packages next to this
# script (a source tree's build/pkg/FORMAT, an unpacked release's
# packages/FORMAT), each checked against the SHA512SUMS beside it; else
# the list that ferry-control gives (GetAgentInstallationAssetsForMgn,
# signed with the keys), each package downloaded from --s3-endpoint when
# given, else from ferry-control, and checked against the SHA-512 that
# ferry-control gave: the hashes come over the control plane's TLS, not
# from the place the files come from (as MGN's installer takes them from
# its separate hashes bucket).

PKG_NAMES="ferry-dkms ferry-agent"
PKG_FORMAT=
PKG_FILES=()
PKG_SOURCE=

pkg_format() {
	case $PM in
	apt) PKG_FORMAT=deb ;;
	dnf | yum | zypper) PKG_FORMAT=rpm ;;
	*) step_failed "no package format for $OS_NAME: ferry has deb (Debian, Ubuntu) and rpm (RHEL, Fedora, Amazon Linux, SUSE) packages" ;;
	esac
}

local_packages() {	# -> the directory of packages next to this script, or fail
	local here d
	here=$(cd "$(dirname "$0")" 2>/dev/null && pwd) || return 1
	for d in ${FERRY_INSTALL_PACKAGES:+"$FERRY_INSTALL_PACKAGES"} \
		"$here/../build/pkg/$PKG_FORMAT" "$here/packages/$PKG_FORMAT"; do
		[ -f "$d/SHA512SUMS" ] || continue
		printf '%s' "$(cd "$d" && pwd)"
		return 0
	done
	return 1
}

# The file of package NAME in the SHA512SUMS of DIR, or nothing.
sums_file() {		# DIR NAME
	awk -v n="$2" -v f="$PKG_FORMAT" '
		{ sub(/^\*/, "", $2) }
		f == "deb" && index($2, n "_") == 1 && $2 ~ /\.deb$/ { print $2; exit }
		f == "rpm" && $2 ~ ("^" n "-[0-9]") && $2 ~ /\.rpm$/ { print $2; exit }' "$1/SHA512SUMS"
}

sha512_of() {		# FILE -> hex
	sha512sum -- "$1" | cut -d' ' -f1
}

verify_sha512() {	# FILE WANT SOURCE
	local got
	got=$(sha512_of "$1")
	if [ "$got" != "$2" ]; then
		step_failed "the SHA-512 of $(basename "$1") (from $3) is not the expected one: the download is corrupt or was tampered with.  Expected $2, got $got.  Nothing of it was installed."
	fi
	log "sha512 ok: $(basename "$1") ($got)"
}

# The signed POST of OP with BODY: sets CALL_CODE (HTTP status), CALL_TYPE
# (x-amzn-ErrorType), CALL_MSG, CALL_ERR (curl's reason) and CALL_BODY
# (the answer); returns curl's exit status.
CALL_CODE='' CALL_TYPE='' CALL_MSG='' CALL_ERR='' CALL_BODY=''
signed_post() {		# OP BODY
	local rest hostport path hdr out rc
	rest=${ENDPOINT#*://}
	hostport=${rest%%/*}
	path=
	[ "$rest" = "$hostport" ] || path=/${rest#*/}
	path=${path%/}/$1
	REQ_BODY=$2
	if ! hdr=$(mktemp "$WORK_DIR/hdr.XXXXXX") ||
		! out=$(mktemp "$WORK_DIR/out.XXXXXX"); then
		step_failed "cannot write in $WORK_DIR"
	fi
	probe_config "$hostport" "$path" |
		curl -sS -K - -X POST --data-binary "$REQ_BODY" -D "$hdr" -o "$out" \
			--connect-timeout 10 --max-time "$CURL_TIMEOUT" \
			-w '%{http_code}' "https://$hostport$path" >"$hdr.code" 2>"$hdr.err"
	rc=$?
	CALL_CODE=$(cat "$hdr.code")
	CALL_TYPE=$(tr -d '\r' <"$hdr" | sed -n 's/^[Xx]-[Aa]mzn-[Ee]rror[Tt]ype: *\([A-Za-z]*\).*/\1/p' | tail -n 1)
	CALL_BODY=$(cat "$out")
	CALL_MSG=$(printf '%s\n' "$CALL_BODY" | sed -n 's/.*"message" *: *"\(\([^"\\]\|\\.\)*\)".*/\1/p' | tail -n 1)
	CALL_ERR=$(sed -n 's/^curl: ([0-9]*) //p' "$hdr.err" | head -n 1)
	rm -f "$hdr" "$hdr.code" "$hdr.err" "$out"
	log "signed call: POST https://$hostport$path: curl exit $rc, HTTP ${CALL_CODE:-none}${CALL_TYPE:+, $CALL_TYPE}${CALL_MSG:+: $CALL_MSG}${CALL_ERR:+ ($CALL_ERR)}"
	return $rc
}

# One member of a flat JSON object (the text of one asset), no escapes.
json_str() {		# TEXT KEY
	printf '%s' "$1" | sed -n "s/.*\"$2\" *: *\"\\([^\"]*\\)\".*/\\1/p"
}

# A download, through the proxy and with the CA bundle of the flags (on
# curl's standard input, as the signed calls).
download() {		# URL FILE
	net_config | curl -fsS -K - -L --connect-timeout 10 --max-time 600 \
		-o "$2" "$1" 2>"$2.err"
}

fetch_packages() {
	local dir n f want assets one url name sha version
	PKG_FILES=()
	# shellcheck disable=SC2015 # step_failed exits: A && B || C is fine
	if dir=$(local_packages); then
		PKG_SOURCE="the packages in $dir"
		say "Using $PKG_SOURCE"
		for n in $PKG_NAMES; do
			f=$(sums_file "$dir" "$n")
			[ -n "$f" ] && [ -f "$dir/$f" ] ||
				step_failed "$dir/SHA512SUMS lists no $n $PKG_FORMAT package (or it is missing): rebuild them (make $PKG_FORMAT) or unpack the release again"
			want=$(awk -v f="$f" '{ sub(/^\*/, "", $2) } $2 == f { print $1; exit }' "$dir/SHA512SUMS")
			cp -- "$dir/$f" "$WORK_DIR/$f" || step_failed "cannot copy $dir/$f to $WORK_DIR"
			verify_sha512 "$WORK_DIR/$f" "$want" "$dir/SHA512SUMS"
			PKG_FILES+=("$WORK_DIR/$f")
		done
		return
	fi
	say "Asking ferry-control for the installation assets ($PKG_FORMAT, $(uname -m))"
	if ! signed_post GetAgentInstallationAssetsForMgn \
		"$(printf '{"packageFormat":"%s","architecture":"%s"}' "$PKG_FORMAT" "$(uname -m)")"; then
		step_failed "cannot reach ferry-control at $ENDPOINT for the installation assets: $CALL_ERR"
	fi
	[ "$CALL_CODE" = 200 ] ||
		step_failed "ferry-control did not give the installation assets: HTTP $CALL_CODE${CALL_TYPE:+ $CALL_TYPE}${CALL_MSG:+: $CALL_MSG}"
	version=$(json_str "$CALL_BODY" agentVersion)
	# One asset object per line.
	assets=$(printf '%s' "$CALL_BODY" | sed 's/.*"assets" *: *\[//' | tr '}' '\n')
	for n in $PKG_NAMES; do
		one=$(printf '%s\n' "$assets" | grep -E "\"name\" *: *\"${n}[-_][0-9]" | head -n 1)
		name=$(json_str "$one" name)
		url=$(json_str "$one" url)
		sha=$(json_str "$one" sha512)
		case $name in '' | */* | .*) step_failed "ferry-control's installation assets name no usable $n package" ;; esac
		[ ${#sha} -eq 128 ] || step_failed "ferry-control gave no SHA-512 for $name"
		[ -z "$S3_ENDPOINT" ] || url=$S3_ENDPOINT/latest/linux/$PKG_FORMAT/$name
		say "  downloading $name"
		download "$url" "$WORK_DIR/$name" ||
			step_failed "cannot download $url: $(sed -n 's/^curl: ([0-9]*) //p' "$WORK_DIR/$name.err" | head -n 1)${S3_ENDPOINT:+ (check --s3-endpoint)}"
		verify_sha512 "$WORK_DIR/$name" "$sha" "ferry-control"
		PKG_FILES+=("$WORK_DIR/$name")
	done
	PKG_SOURCE="ferry-control's assets${version:+ (version $version)}${S3_ENDPOINT:+, downloaded from $S3_ENDPOINT}"
}

# Whether package NAME is installed.
pkg_installed() {
	case $PKG_FORMAT in
	deb) dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed' ;;
	rpm) rpm -q "$1" >/dev/null 2>&1 ;;
	esac
}

pkg_remove_cmd() {	# NAMES... -> the command that removes them
	case $PM in
	apt) printf 'env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 purge -y -q %s' "$*" ;;
	dnf) printf 'dnf remove -y %s' "$*" ;;
	yum) printf 'yum remove -y %s' "$*" ;;
	zypper) printf 'env ZYPP_LOCK_TIMEOUT=600 zypper --non-interactive remove %s' "$*" ;;
	esac
}

install_packages() {
	local n rc from why
	for n in $PKG_NAMES; do
		if pkg_installed "$n"; then
			# Only after --force-delete-existing (check_existing):
			# the old one is replaced; rollback removes ours.
			log "$n is installed already: replaced by this run's"
		fi
	done
	say "Installing ${PKG_NAMES// /, } ($PKG_SOURCE); DKMS builds ferry.ko for $KVER"
	# shellcheck disable=SC2046,SC2086 # a list of names
	undo_push "installed the packages $PKG_NAMES" sh -c "$(pkg_remove_cmd $PKG_NAMES)"
	from=$(($(stat -c %s "$(log_target)" 2>/dev/null || echo 0) + 1))
	# A fresh server's apt-daily or unattended-upgrades may hold the
	# package lock: wait for it (apt, zypper; dnf waits by itself).
	case $PM in
	apt)
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			-o DPkg::Lock::Timeout=600 \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"${PKG_FILES[@]}" >>"$(log_target)" 2>&1 ;;
	dnf) dnf install -y "${PKG_FILES[@]}" >>"$(log_target)" 2>&1 ;;
	yum) yum install -y "${PKG_FILES[@]}" >>"$(log_target)" 2>&1 ;;
	zypper) ZYPP_LOCK_TIMEOUT=600 zypper --non-interactive install --allow-unsigned-rpm "${PKG_FILES[@]}" >>"$(log_target)" 2>&1 ;;
	esac
	rc=$?
	if [ "$rc" -ne 0 ]; then
		dkms_reason
		# Else the package manager's own reason: apt's "E:", dnf's
		# "Error:" or "nothing provides", zypper's "Problem:".
		[ -n "$DKMS_WHY" ] ||
			why=$(tail -c "+$from" "$(log_target)" 2>/dev/null |
				grep -E '^(E: |Error: |Problem: )| nothing provides ' |
				tail -n 1 | cut -c1-300)
		step_failed "installing the packages failed (exit $rc)${DKMS_WHY:+: $DKMS_WHY}${why:+: $why}; the details are in $LOG_FILE"
	fi
	for n in $PKG_NAMES; do
		pkg_installed "$n" || step_failed "$n is not installed after the package manager ran: see $LOG_FILE"
	done
	fail_after packages
}

# Why DKMS failed, from its make.log (the first error line), or nothing.
DKMS_WHY=
dkms_reason() {
	local f
	DKMS_WHY=
	for f in /var/lib/dkms/ferry/*/build/make.log /var/lib/dkms/ferry/*/"$KVER"/*/log/make.log; do
		[ -f "$f" ] || continue
		DKMS_WHY="DKMS could not build ferry.ko for $KVER: $(grep -m1 -E 'error|Error' "$f" | cut -c1-200) ($f)"
		{ echo "---- $f"; tail -n 40 "$f"; } >>"$(log_target)" 2>/dev/null
	done
}

load_module() {
	local n=0 why
	say "Loading ferry.ko"
	if ! dkms status ferry -k "$KVER" 2>/dev/null | grep -q installed; then
		dkms_reason
		step_failed "DKMS has not installed ferry.ko for $KVER${DKMS_WHY:+: $DKMS_WHY} (dkms status ferry: $(dkms status ferry 2>&1 | head -n 1))"
	fi
	undo_push "loaded ferry.ko" modprobe -r ferry
	# modprobe's own reason ("Key was rejected by service" under Secure
	# Boot), then the kernel's last lines (lockdown, signature) whether
	# or not they name ferry.
	why=$(modprobe ferry 2>&1) ||
		step_failed "modprobe ferry failed: ${why:-no reason given}; kernel: $(dmesg 2>/dev/null | tail -n 2 | tr '\n' ' ')"
	[ -z "$why" ] || log "modprobe ferry: $why"
	while [ ! -c /dev/ferry-ctl ] && [ $n -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ -c /dev/ferry-ctl ] || step_failed "ferry.ko is loaded but /dev/ferry-ctl did not appear (udev?)"
	log "ferry.ko loaded: $(ferryctl version 2>&1 | tr '\n' ' ')"
	fail_after module
}

start_service() {
	say "Starting the ferry-agent service"
	command -v systemctl >/dev/null 2>&1 ||
		step_failed "systemctl is missing: ferry-agent runs as a systemd service"
	# Undone newest first: the service stops before its state goes.
	[ -d "$STATE_DIR" ] || undo_push "created $STATE_DIR" rm -rf -- "$STATE_DIR" /run/ferry-agent
	undo_push "enabled and started the ferry-agent service" systemctl disable --now ferry-agent
	systemctl daemon-reload >>"$(log_target)" 2>&1
	systemctl enable --now ferry-agent >>"$(log_target)" 2>&1 ||
		step_failed "systemctl enable --now ferry-agent failed: $(systemctl status ferry-agent 2>&1 | tail -n 3 | tr '\n' ' ')"
	fail_after service
}

# The agent registers at its first start; wait for the source server ID
# (as MGN's installer does) and say where to watch.  An agent whose
# registration fails exits, and systemd starts it again 5 s later
# (Restart=on-failure): meanwhile the unit is "activating" (SubState
# auto-restart), which is no reason to give up.  Only a unit that has
# stopped for good (inactive: exit 78, not this machine; failed: the start
# limit) ends the wait early; otherwise the timeout does.
SOURCE_SERVER_ID=
wait_registered() {
	local end reg state last='' limit=${FERRY_INSTALL_REGISTER_TIMEOUT:-120}
	end=$(($(date +%s) + limit))
	say "Waiting for the agent to register with ferry-control"
	reg=$STATE_DIR/registration.json
	while :; do
		if [ -f "$reg" ]; then
			SOURCE_SERVER_ID=$(sed -n 's/.*"sourceServerID" *: *"\(s-[0-9a-f]*\)".*/\1/p' "$reg" | head -n 1)
			[ -z "$SOURCE_SERVER_ID" ] || break
		fi
		# "ActiveState=activating SubState=auto-restart" (systemd 219
		# has no --value).
		state=$(systemctl show -p ActiveState -p SubState ferry-agent 2>/dev/null |
			sort | tr '\n' ' ')
		state=${state% }
		if [ "$state" != "$last" ]; then
			log "the ferry-agent service: $state"
			case $state in
			*SubState=auto-restart*)
				say "  the agent exited before it registered; systemd starts it again (waiting ${limit}s in all): $(journalctl -u ferry-agent -n 1 -o cat --no-pager 2>/dev/null)"
				;;
			esac
			last=$state
		fi
		case " $state" in
		*" ActiveState=failed"* | *" ActiveState=inactive"*)
			step_failed "the ferry-agent service stopped before it registered ($state): $(journalctl -u ferry-agent -n 3 -o cat --no-pager 2>/dev/null | tr '\n' ' ')"
			;;
		esac
		[ "$(date +%s)" -lt "$end" ] ||
			step_failed "the agent did not register with ferry-control within ${limit}s ($state): $(journalctl -u ferry-agent -n 3 -o cat --no-pager 2>/dev/null | tr '\n' ' ')"
		sleep 1
	done
	log "registered: source server $SOURCE_SERVER_ID"
	fail_after register
}

# --force-delete-existing over an installed agent: its uninstaller first
# (service, module, packages, configuration, state; the registration with
# ferry-control is kept), so that this run starts from a clean machine.
# That cannot be undone: a later failure leaves the server without an
# agent, which rollback() then says, with what to do.  So the new module
# is built first (trial_build), the likeliest such failure.
REMOVED_EXISTING=	# "yes" or "partly" once the old agent is (being) removed
OLD_SOURCE_SERVER_ID=
remove_existing() {
	local u
	existing_installation >/dev/null || return 0
	# The installed package's own, else the one next to this script.
	u=/usr/share/ferry/uninstall.sh
	[ -f "$u" ] || u=$(dirname "$0")/uninstall.sh
	[ -f "$u" ] ||
		step_failed "--force-delete-existing: no uninstall.sh next to install.sh to remove the existing agent"
	trial_build
	OLD_SOURCE_SERVER_ID=$(sed -n 's/.*"sourceServerID" *: *"\(s-[0-9a-f]*\)".*/\1/p' \
		"$STATE_DIR/registration.json" 2>/dev/null | head -n 1)
	say "Removing the agent installed here (--force-delete-existing)${OLD_SOURCE_SERVER_ID:+; it stays registered as source server $OLD_SOURCE_SERVER_ID}"
	REMOVED_EXISTING=partly
	bash "$u" --keep-registration --keep-log >>"$(log_target)" 2>&1 ||
		step_failed "the existing agent could not be removed ($u failed): see $LOG_FILE"
	REMOVED_EXISTING=yes
	log "removed the agent installed here${OLD_SOURCE_SERVER_ID:+ (source server $OLD_SOURCE_SERVER_ID)}"
}

# The files of a source tree with their SHA-512, one a line, sorted.
tree_sums() {		# DIR
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha512sum)
}

# ferry.ko from the new ferry-dkms package, built here for the running
# kernel as DKMS will build it (its dkms.conf's make line), before the
# installed agent is removed: a module that does not build stops the run
# with nothing changed.  Skipped when DKMS has already built and installed
# this very source for this kernel (the same packages again).  In the work
# directory: the Makefile runs nothing from there (sh ./detect-features.sh),
# so /tmp may be noexec.
trial_build() {
	local f pkg='' ex src v inst why
	for f in "${PKG_FILES[@]}"; do
		case ${f##*/} in ferry-dkms[_-]*) pkg=$f ;; esac
	done
	[ -n "$pkg" ] || return 0
	ex=$WORK_DIR/trial
	mkdir -p "$ex/root" || step_failed "cannot write in $WORK_DIR"
	case $PKG_FORMAT in
	deb) dpkg-deb -x "$pkg" "$ex/root" ;;
	rpm) (cd "$ex/root" && rpm2cpio "$pkg" | cpio -idm --quiet) ;;
	esac >>"$(log_target)" 2>&1
	src=$(find "$ex/root/usr/src" -mindepth 1 -maxdepth 1 -type d -name 'ferry-*' 2>/dev/null | head -n 1)
	if [ -z "$src" ] || [ ! -f "$src/Makefile" ]; then
		say "  (cannot unpack ${pkg##*/} to build its module first: skipped)"
		return 0
	fi
	v=${src##*/ferry-}
	inst=/usr/src/ferry-$v
	if [ -d "$inst" ] && dkms status -m ferry -v "$v" -k "$KVER" 2>/dev/null | grep -q ': installed' &&
		[ "$(tree_sums "$src")" = "$(tree_sums "$inst")" ]; then
		log "trial build skipped: DKMS has built and installed this very source (ferry $v) for $KVER"
		return 0
	fi
	say "Building ferry.ko $v for $KVER from the new packages, before removing the installed agent"
	if ! make -C "$src" KVER="$KVER" KDIR="$KBUILD" >"$ex/make.log" 2>&1; then
		why=$(grep -m1 -E 'error|Error' "$ex/make.log" | cut -c1-200)
		{ echo "---- trial build of ferry $v for $KVER"; tail -n 40 "$ex/make.log"; } >>"$(log_target)" 2>/dev/null
		step_failed "the new packages' ferry.ko $v does not build for kernel $KVER${why:+: $why}.  Nothing was changed: the agent installed here is still installed and running.  The build's output is in $LOG_FILE"
	fi
	log "trial build of ferry $v for $KVER: ok"
}

summary() {
	local url=${ENDPOINT%/}
	say ""
	say "ferry's replication agent is installed and running."
	say "  source server ID   $SOURCE_SERVER_ID"
	say "  ferry-control      $url"
	if [ "$NO_REPLICATION" = 1 ]; then
		say "  replication        held (--no-replication): start it from ferry-control:"
		say "                     aws mgn start-replication --source-server-id $SOURCE_SERVER_ID --endpoint-url $url"
	fi
	say "  progress, here     ferryctl status"
	say "  progress, anywhere aws mgn describe-source-servers --endpoint-url $url"
	say "  logs               $LOG_FILE, journalctl -u ferry-agent"
}

# ---- main ----------------------------------------------------------------------

main() {
	parse_args "$@"
	if [ -n "$CONFIG_OUT" ]; then
		case $CONFIG_OUT in /*) ;; *) CONFIG_OUT=$(pwd)/$CONFIG_OUT ;; esac
		CONF_FILE=$CONFIG_OUT
	fi
	env_fallbacks
	detect_os
	prompt_missing
	validate

	if [ "$CHECK_ONLY" = 0 ]; then
		open_log
		log "---- install.sh started (uid $(id -u), $OS_NAME)"
		[ ${#FROM_ENV[@]} -eq 0 ] || log "from the environment: ${FROM_ENV[*]}"
	fi
	run_checks
	if [ "$N_FAILED" -gt 0 ]; then
		say ""
		say "$N_FAILED check(s) failed: nothing was changed.  Fix them and run install.sh again."
		exit 1
	fi
	if [ "$CHECK_ONLY" = 1 ]; then
		say ""
		say "All checks passed; nothing was changed (--check-only)."
		exit 0
	fi
	say ""
	trap on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# A dropped SSH session (HUP), or a reader of our output gone (PIPE):
	# untrapped, bash would run the EXIT trap with status 0 and skip the
	# rollback.
	trap 'exit 129' HUP
	trap 'exit 141' PIPE
	if [ -n "$CONFIG_OUT" ]; then
		write_config
		finish
		say ""
		say "The configuration is in $CONF_FILE (--config-out); nothing was installed."
		log "---- install.sh done (--config-out: configuration only)"
		return 0
	fi
	pkg_format
	WORK_DIR=$(mktemp -d "$TMP_DIR/ferry-install.XXXXXX") ||
		step_failed "cannot create a work directory in $TMP_DIR"
	stage_ca
	fetch_packages
	fail_after fetch
	[ "$FORCE_DELETE" = 0 ] || remove_existing
	write_config
	install_packages
	load_module
	start_service
	wait_registered
	finish
	summary
	log "---- install.sh done: source server $SOURCE_SERVER_ID"
	return 0
}

# Success: forget the undo stack, drop the backups and the work directory.
finish() {
	UNDO=()
	UNDO_WHAT=()
	[ ${#KEEP_UNTIL_END[@]} -eq 0 ] || rm -f -- "${KEEP_UNTIL_END[@]}"
}

# Parsed whole before it runs, so that editing this file during a run
# cannot change what runs.
{
	main "$@"
	exit
}
