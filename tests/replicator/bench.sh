#!/bin/bash
# tests/replicator/bench.sh — ingest rate of ferry-replicator against the
# write rate of its own staging directory (make bench-replicator).
#
# In one run, on the filesystem of $BUILD (the staging directory is
# $BUILD/bench/replicator.XXXXXX/data):
#   - baseline: fio, sequential 1 MiB writes (psync) of a SIZE file with
#     fdatasync every 16 writes (the replicator's group commit flushes
#     every REP_COMMIT_BYTES = 16 MiB when the agent never pauses) and at
#     the end, into a sparse file (no preallocation, as staging volumes);
#   - ingest: ferry-wire-client sync (the agent's codec, TLS 1.3 over
#     loopback) of random, incompressible images read from /dev/shm, 1 MiB
#     DATA frames, to a ferry-replicator with a fresh data directory:
#     codec raw with 1 stream (one SIZE disk) and with STREAMS streams
#     (STREAMS source servers, SIZE/STREAMS each, started together), then
#     lz4 and zstd with 1 stream (incompressible data: the client's
#     compression cost, not the server's).  Each run is timed from the
#     common start to the last CP acknowledged (everything durable); the
#     staged image of the 1-stream raw run is compared with its source.
# Prints one line per figure and writes $BUILD/bench/replicator.md (and the
# figures as BENCH lines, tests/lib/bench.sh, in
# $BUILD/bench/replicator.figures for make bench's report).  Goal:
# 1-stream raw ingest >= 0.9 of fio's rate, STREAMS-stream aggregate >=
# 0.8 of the 1-stream rate.  Client and server share this machine: the CPU
# seconds of each (the server's from /proc/PID/stat, the clients' as the
# shell's reaped children) tell whether CPU or the disk is the limit.
#
# Environment: FERRY_BENCH_SIZE_MB (1024), FERRY_BENCH_STREAMS (50),
# FERRY_BENCH_CODECS (lz4,zstd: extra 1-stream runs; empty for none),
# FERRY_BENCH_STRICT=1 (exit 1 when a goal is missed), FERRY_BENCH_PERF=FILE
# (perf record -g of the server during the 1-stream raw run, into FILE).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
REPL=${FERRY_REPLICATOR_BIN:-$BUILD/bin/ferry-replicator}
CONTROL=${FERRY_CONTROL_BIN:-$BUILD/bin/ferry-control}
CLIENT=${FERRY_WIRE_CLIENT:-$BUILD/tests/replicator/ferry-wire-client}
SIZE_MB=${FERRY_BENCH_SIZE_MB:-1024}
STREAMS=${FERRY_BENCH_STREAMS:-50}
CODECS=${FERRY_BENCH_CODECS-lz4,zstd}
GOAL_ONE=0.9
GOAL_MANY=0.8
MD="$BUILD/bench/replicator.md"
HZ=$(getconf CLK_TCK)

die() {
	echo "bench-replicator: $*" >&2
	exit 1
}
# shellcheck source=tests/lib/bench.sh
. tests/lib/bench.sh

for f in "$REPL" "$CONTROL" "$CLIENT"; do
	[ -x "$f" ] || die "$f is missing: run make bench-replicator"
done
command -v fio >/dev/null || die "fio is missing: scripts/deps.sh vm"
[ "$SIZE_MB" -ge "$STREAMS" ] || die "FERRY_BENCH_SIZE_MB < streams"

bench_init replicator
TMP=$(mktemp -d "$BUILD/bench/replicator.XXXXXX")
TMP=$(cd "$TMP" && pwd)
SHM=$(mktemp -d /dev/shm/ferry-bench-replicator.XXXXXX)
DATA="$TMP/data"
LOG="$TMP/replicator.log"
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$TMP" "$SHM"
}
trap cleanup EXIT
mkdir -p "$DATA"
FSTYPE=$(df --output=fstype "$DATA" | tail -1 | tr -d ' ')
FSDEV=$(df --output=source "$DATA" | tail -1 | tr -d ' ')
# Room for the fio file or one run's volumes, plus the images in tmpfs.
avail=$(df -m --output=avail "$DATA" | tail -1 | tr -d ' ')
[ "$avail" -gt $((SIZE_MB * 2)) ] ||
	die "$DATA has $avail MiB free, want $((SIZE_MB * 2))"

calc() {
	awk "BEGIN { $1 }"
}
# CPU seconds (user + system) of process $1 so far.
cpu_of() {
	awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' \
		"/proc/$1/stat"
}
# CPU seconds of the whole machine (every CPU, all but idle and iowait).
machine_cpu() {
	awk -v hz="$HZ" '$1 == "cpu" { printf "%.3f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
# CPU seconds of this shell's reaped children so far.
children_cpu() {
	awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.3f", ($14 + $15) / hz }' \
		"/proc/$$/stat"
}

# ---- images and certificates --------------------------------------------
echo "bench-replicator: images in $SHM, certificates" >&2
head -c "$((SIZE_MB << 20))" /dev/urandom >"$SHM/one.img"
per_mb=$((SIZE_MB / STREAMS))
for i in $(seq -w 1 "$STREAMS"); do
	dd if="$SHM/one.img" of="$SHM/s$i.img" bs=1M count="$per_mb" \
		skip=$(((10#$i - 1) * per_mb)) status=none ||
		die "cannot make $SHM/s$i.img"
done
PKI="$TMP/pki"
mkdir -p "$PKI"
issue() {
	"$CONTROL" certs issue --data-dir "$PKI/ca" --kind "$1" --id "$2" \
		--out-dir "$PKI/out" ${3:+--name "$3"} >/dev/null ||
		die "certs issue $1 $2 failed"
}
issue replicator bench-repl 127.0.0.1
SOURCES=(one)
for i in $(seq -w 1 "$STREAMS"); do SOURCES+=("s$i"); done
IFS=, read -ra codec_list <<<"$CODECS"
for c in "${codec_list[@]}"; do SOURCES+=("$c"); done
CONF="$TMP/replicator.conf"
: >"$CONF"
for s in "${SOURCES[@]}"; do
	issue client "bench-$s"
	echo "allow = bench-$s *" >>"$CONF"
done

# ---- baseline: the staging directory's own write rate ------------------
# After the images, so that fio and the ingest runs (which follow it and
# each other, every one deleting its files) find page-cache pages in the
# same state: in a VM the first touch of guest memory can be slow.
echo "bench-replicator: fio baseline, ${SIZE_MB} MiB in $DATA ($FSTYPE on" \
	"$FSDEV)" >&2
fio --name=staging --filename="$DATA/fio.img" --rw=write --bs=1M \
	--size="${SIZE_MB}M" --ioengine=psync --fdatasync=16 --end_fsync=1 \
	--fallocate=none --output-format=json >"$TMP/fio.json" ||
	die "fio failed: $(cat "$TMP/fio.json")"
rm -f "$DATA/fio.img"
FIO_MBS=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]["write"]
print("%.1f" % (j["bw_bytes"] / 1e6))' "$TMP/fio.json") ||
	die "cannot read fio's result"

# ---- the replicator -----------------------------------------------------
"$REPL" serve --listen 127.0.0.1:0 --data-dir "$DATA" \
	--cert "$PKI/out/bench-repl.pem" --key "$PKI/out/bench-repl-key.pem" \
	--ca "$PKI/out/ca.pem" --config "$CONF" --max-connections \
	$((STREAMS + 8)) 2>"$LOG" &
PID=$!
PORT=
for _ in $(seq 200); do
	kill -0 "$PID" 2>/dev/null ||
		die "ferry-replicator exited before it was ready: $(cat "$LOG")"
	PORT=$(sed -n 's/.*ready on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" |
		head -1)
	[ -z "$PORT" ] || break
	sleep 0.05
done
[ -n "$PORT" ] || die "ferry-replicator not ready in 10 s: $(cat "$LOG")"

# run_ingest LABEL CODEC SOURCE...: sync each source's image (SHM/S.img)
# as disk vda of source server bench-S, all starting together; sets
# R_MBS (aggregate MB/s), R_SECS, R_SCPU, R_CCPU.
run_ingest() {
	local label=$1 codec=$2 pids=() start s bytes=0 t
	shift 2
	# Connected and past the handshake by then: only the data is timed.
	start=$(calc "printf \"%.3f\", $(date +%s.%N) + 1 + $# / 20")
	local scpu0 ccpu0 mcpu0 t0 wall
	# CPU over the whole run, process start and handshakes included
	# (sampling at the start instant would come late on a busy machine).
	ccpu0=$(children_cpu)
	scpu0=$(cpu_of "$PID")
	mcpu0=$(machine_cpu)
	t0=$(date +%s.%N)
	for s in "$@"; do
		"$CLIENT" --connect "127.0.0.1:$PORT" --ca "$PKI/out/ca.pem" \
			--cert "$PKI/out/bench-$s.pem" \
			--key "$PKI/out/bench-$s-key.pem" --source-id "bench-$s" \
			--disk "vda=$SHM/$s.img" --timeout 600 \
			--start-at "$start" sync --codec "$codec" \
			>"$TMP/$label-$s.json" 2>"$TMP/$label-$s.err" &
		pids+=($!)
	done
	# FERRY_BENCH_PERF=FILE: perf record -g of the server, 1-stream raw.
	local perf=
	if [ -n "${FERRY_BENCH_PERF:-}" ] && [ "$label" = raw1 ]; then
		perf record -g -p "$PID" -o "$FERRY_BENCH_PERF" \
			2>"$TMP/perf.err" &
		perf=$!
	fi
	local rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	wall=$(calc "printf \"%.3f\", $(date +%s.%N) - $t0")
	if [ -n "$perf" ]; then
		kill -INT "$perf"
		wait "$perf" || true
	fi
	R_SCPU=$(calc "printf \"%.2f\", $(cpu_of "$PID") - $scpu0")
	R_CCPU=$(calc "printf \"%.2f\", $(children_cpu) - $ccpu0")
	# Everything else: kernel threads (writeback, softirq) and others'
	# processes, which take CPU from both.
	R_OCPU=$(calc "o = $(machine_cpu) - $mcpu0 - $R_SCPU - $R_CCPU; printf \"%.2f\", (o > 0 ? o : 0)")
	R_WALL=$wall
	[ "$rc" -eq 0 ] || die "$label: a client failed: $(cat \
		"$TMP/$label-"*.err | head -5) $(tail -5 "$LOG")"
	R_SECS=0
	for s in "$@"; do
		t=$(python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert j["ok"], j["error"]
print("%.3f %d" % (j["seconds"], j["data_raw_bytes"]))' "$TMP/$label-$s.json") ||
			die "$label: bad result for $s: $(cat "$TMP/$label-$s.json")"
		bytes=$((bytes + ${t#* }))
		R_SECS=$(calc "s = ${t% *}; print (s > $R_SECS) ? s : $R_SECS")
	done
	R_MBS=$(calc "printf \"%.1f\", $bytes / 1e6 / $R_SECS")
	kill -0 "$PID" 2>/dev/null || die "ferry-replicator died: $(tail "$LOG")"
}

echo "bench-replicator: ferry-replicator pid $PID on 127.0.0.1:$PORT," \
	"$(nproc) CPUs" >&2
run_ingest raw1 raw one
cmp -s "$SHM/one.img" "$DATA/bench-one/vda.img" ||
	die "the staged image of bench-one differs from its source"
ONE_MBS=$R_MBS ONE_SECS=$R_SECS ONE_SCPU=$R_SCPU ONE_CCPU=$R_CCPU
ONE_OCPU=$R_OCPU ONE_WALL=$R_WALL
rm -rf "$DATA/bench-one"
many=()
for i in $(seq -w 1 "$STREAMS"); do many+=("s$i"); done
run_ingest rawN raw "${many[@]}"
MANY_MBS=$R_MBS MANY_SECS=$R_SECS MANY_SCPU=$R_SCPU MANY_CCPU=$R_CCPU
MANY_OCPU=$R_OCPU MANY_WALL=$R_WALL
rm -rf "$DATA"/bench-s*
declare -A C_MBS C_SECS C_SCPU C_CCPU C_OCPU C_WALL
for c in "${codec_list[@]}"; do
	cp "$SHM/one.img" "$SHM/$c.img"
	run_ingest "$c" "$c" "$c"
	C_MBS[$c]=$R_MBS C_SECS[$c]=$R_SECS C_SCPU[$c]=$R_SCPU
	C_CCPU[$c]=$R_CCPU C_OCPU[$c]=$R_OCPU C_WALL[$c]=$R_WALL
	rm -rf "$DATA/bench-$c" "$SHM/$c.img"
done

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=
[ "$rc" -eq 0 ] || die "ferry-replicator exited with $rc on SIGTERM"
if grep -q 'error' "$LOG"; then
	echo "bench-replicator: ferry-replicator logged errors:" >&2
	grep 'error' "$LOG" | head -10 >&2
fi

# ---- figures ------------------------------------------------------------
R1=$(calc "printf \"%.3f\", $ONE_MBS / $FIO_MBS")
RN=$(calc "printf \"%.3f\", $MANY_MBS / $ONE_MBS")
OK1=$(calc "print ($R1 >= $GOAL_ONE) ? \"yes\" : \"no\"")
OKN=$(calc "print ($RN >= $GOAL_MANY) ? \"yes\" : \"no\"")
cores() { # CPU seconds $1 over wall seconds $2
	calc "printf \"%.2f\", $1 / $2"
}
echo "replicator staging dir: $DATA ($FSTYPE on $FSDEV)"
echo "replicator fio 1 MiB writes, fdatasync every 16 MiB, MB/s: $FIO_MBS"
echo "replicator ingest raw 1 stream MB/s: $ONE_MBS (${ONE_SECS} s)"
echo "replicator ingest raw 1 stream ratio to fio: $R1 (goal $GOAL_ONE met: $OK1)"
echo "replicator ingest raw 1 stream CPUs busy: server $(cores "$ONE_SCPU" "$ONE_WALL"), client $(cores "$ONE_CCPU" "$ONE_WALL"), others $(cores "$ONE_OCPU" "$ONE_WALL") of $(nproc)"
echo "replicator ingest raw $STREAMS streams MB/s: $MANY_MBS (${MANY_SECS} s)"
echo "replicator ingest raw $STREAMS streams ratio to 1 stream: $RN (goal $GOAL_MANY met: $OKN)"
echo "replicator ingest raw $STREAMS streams CPUs busy: server $(cores "$MANY_SCPU" "$MANY_WALL"), clients $(cores "$MANY_CCPU" "$MANY_WALL"), others $(cores "$MANY_OCPU" "$MANY_WALL") of $(nproc)"
for c in "${codec_list[@]}"; do
	echo "replicator ingest $c 1 stream MB/s: ${C_MBS[$c]} (${C_SECS[$c]} s; CPUs busy: server $(cores "${C_SCPU[$c]}" "${C_WALL[$c]}"), client $(cores "${C_CCPU[$c]}" "${C_WALL[$c]}"), others $(cores "${C_OCPU[$c]}" "${C_WALL[$c]}"))"
done
bench_figure replicator ingest.raw1 "$ONE_MBS" MB/s "$FIO_MBS" "$R1" \
	"ratio >= $GOAL_ONE" "$OK1" \
	"ingest, raw, 1 stream (baseline: fio writes to the staging directory)"
bench_figure replicator "ingest.raw$STREAMS" "$MANY_MBS" MB/s "$ONE_MBS" \
	"$RN" "ratio >= $GOAL_MANY" "$OKN" \
	"ingest, raw, $STREAMS streams together (baseline: 1 stream)"
for c in "${codec_list[@]}"; do
	bench_figure replicator "ingest.$c" "${C_MBS[$c]}" MB/s "$FIO_MBS" \
		"$(calc "printf \"%.3f\", ${C_MBS[$c]} / $FIO_MBS")" - - \
		"ingest, $c of incompressible data, 1 stream (baseline: fio)"
done

{
	echo "# ferry-replicator ingest benchmark ($(date -u +%Y-%m-%d))"
	echo
	echo "Staging directory: \`$DATA\` on $FSDEV ($FSTYPE), $(nproc) CPUs;"
	echo "client and server on the same machine, TLS over loopback."
	echo "Baseline: fio sequential 1 MiB psync writes of ${SIZE_MB} MiB into a"
	echo "sparse file in that directory, fdatasync every 16 writes (the"
	echo "replicator's group commit flushes every 16 MiB under a steady"
	echo "stream) and at the end. Ingest: ferry-wire-client sync of random"
	echo "(incompressible) images from /dev/shm in 1 MiB DATA frames, timed"
	echo "from the common start to the final CP acknowledged (durable);"
	echo "$STREAMS streams: $STREAMS source servers of $per_mb MiB each, started"
	echo "together. CPUs busy = CPU seconds / wall seconds from the clients'"
	echo "launch to the last one's exit, process start and TLS handshakes"
	echo "included (server from"
	echo "/proc/PID/stat, clients as reaped children, others: the rest of"
	echo "/proc/stat, i.e. kernel writeback and softirq threads and any other"
	echo "load on the machine, which takes CPU from both)."
	echo "Goals: 1 stream >= $GOAL_ONE x fio; $STREAMS streams >= $GOAL_MANY x 1 stream."
	echo
	echo "| run | MB/s | seconds | ratio | goal met | server CPUs | client CPUs | other CPUs |"
	echo "|---|---:|---:|---:|---|---:|---:|---:|"
	echo "| fio baseline | $FIO_MBS | | | | | | |"
	echo "| raw, 1 stream | $ONE_MBS | $ONE_SECS | $R1 of fio | $OK1 | $(cores "$ONE_SCPU" "$ONE_WALL") | $(cores "$ONE_CCPU" "$ONE_WALL") | $(cores "$ONE_OCPU" "$ONE_WALL") |"
	echo "| raw, $STREAMS streams | $MANY_MBS | $MANY_SECS | $RN of 1 stream | $OKN | $(cores "$MANY_SCPU" "$MANY_WALL") | $(cores "$MANY_CCPU" "$MANY_WALL") | $(cores "$MANY_OCPU" "$MANY_WALL") |"
	for c in "${codec_list[@]}"; do
		echo "| $c (incompressible), 1 stream | ${C_MBS[$c]} | ${C_SECS[$c]} | | | $(cores "${C_SCPU[$c]}" "${C_WALL[$c]}") | $(cores "${C_CCPU[$c]}" "${C_WALL[$c]}") | $(cores "${C_OCPU[$c]}" "${C_WALL[$c]}") |"
	done
} >"$MD"
echo "report: $MD"
if [ "${FERRY_BENCH_STRICT:-0}" = 1 ] && { [ "$OK1" != yes ] ||
	[ "$OKN" != yes ]; }; then
	exit 1
fi
exit 0
