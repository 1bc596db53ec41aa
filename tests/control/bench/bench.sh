#!/bin/bash
# tests/control/bench/bench.sh — heartbeat throughput of ferry-control
# (make bench-control).
#
# Starts a ferry-control on 127.0.0.1 (random port, fresh data directory,
# default worker threads), creates an admin and an installer key, calls
# InitializeService, and runs ferry-control-load (load.c) from a second
# process: it registers $FERRY_BENCH_AGENTS agents (not timed), then at
# each concurrency level runs
#   - baseline:  unsigned requests, answered 403
#                MissingAuthenticationTokenException before any signature
#                or database work (HTTP + TLS + client cost only);
#   - heartbeat: UpdateAgentReplicationInfoForMgn signed with each agent's
#                temporary credentials, agents in turn.
# Prints one line per figure (heartbeats/s, ratio to the baseline and to
# the 5,000/s goal, p50/p99/max latency, p99 < 50 ms) and writes
# $BUILD/bench/control.md; the same figures as BENCH lines (tests/lib/
# bench.sh) in $BUILD/bench/control.figures for make bench's report.
# Ratios, not timed assertions: the machine's other load moves both
# columns of a level together.
#
# Environment: FERRY_BENCH_CONCURRENCY (16,64,256), FERRY_BENCH_SECONDS
# (counted seconds per run, 8), FERRY_BENCH_WARMUP (2), FERRY_BENCH_AGENTS
# (1000), FERRY_BENCH_THREADS (ferry-control --threads; default: its own),
# FERRY_BENCH_STRICT=1 (exit 1 when the goal is missed at every level).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
BIN=${FERRY_CONTROL_BIN:-$BUILD/bin/ferry-control}
LOAD=${FERRY_CONTROL_LOAD:-$BUILD/tests/control/bench/ferry-control-load}
LEVELS=${FERRY_BENCH_CONCURRENCY:-16,64,256}
SECONDS_RUN=${FERRY_BENCH_SECONDS:-8}
WARMUP=${FERRY_BENCH_WARMUP:-2}
AGENTS=${FERRY_BENCH_AGENTS:-1000}
THREADS=${FERRY_BENCH_THREADS:-}
REGION=us-east-1
GOAL_RPS=5000
GOAL_P99_MS=50
MD="$BUILD/bench/control.md"

die() {
	echo "bench-control: $*" >&2
	exit 1
}
# shellcheck source=tests/lib/bench.sh
. tests/lib/bench.sh

for f in "$BIN" "$LOAD"; do
	[ -x "$f" ] || die "$f is missing: run make bench-control"
done

bench_init control
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-control.XXXXXX")
DATA="$TMP/data"
LOG="$TMP/control.log"
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# Keys: the JSON of `keys create`, mode 0600, never on a command line.
umask 077
"$BIN" keys create --data-dir "$DATA" --name bench-admin --role admin \
	>"$TMP/admin.json" || die "keys create (admin) failed"
"$BIN" keys create --data-dir "$DATA" --name bench-installer \
	--role installer >"$TMP/installer.json" ||
	die "keys create (installer) failed"

args=(serve --data-dir "$DATA" --listen 127.0.0.1:0 --region "$REGION")
[ -z "$THREADS" ] || args+=(--threads "$THREADS")
"$BIN" "${args[@]}" >"$LOG" 2>&1 &
PID=$!
PORT=
for _ in $(seq 600); do
	kill -0 "$PID" 2>/dev/null ||
		die "ferry-control exited before it was ready: $(cat "$LOG")"
	PORT=$(sed -n 's|.*ready on https://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
		"$LOG" | head -1)
	[ -z "$PORT" ] || break
	sleep 0.05
done
[ -n "$PORT" ] || die "ferry-control not ready in 30 s: $(cat "$LOG")"
URL="https://127.0.0.1:$PORT"
CA="$DATA/ca.pem"

# InitializeService with the admin key, signed by curl's SigV4 signer; the
# key goes to curl on stdin (-K -), not on its command line.
akid=$(sed -n 's/.*"AccessKeyId": *"\([^"]*\)".*/\1/p' "$TMP/admin.json")
secret=$(sed -n 's/.*"SecretAccessKey": *"\([^"]*\)".*/\1/p' "$TMP/admin.json")
[ -n "$akid" ] && [ -n "$secret" ] ||
	die "cannot read the admin key from keys create's output"
status=$(printf 'user = "%s:%s"\n' "$akid" "$secret" |
	curl -sS -K - -o "$TMP/init.out" -w '%{http_code}' \
		--cacert "$CA" --aws-sigv4 "aws:amz:$REGION:mgn" \
		-H 'Content-Type: application/json' -d '{}' \
		"$URL/InitializeService") || die "InitializeService: curl failed"
unset secret
case $status in
204 | 200) ;;
*) die "InitializeService answered $status: $(cat "$TMP/init.out")" ;;
esac

threads_txt=${THREADS:-default ($(nproc))}
echo "bench-control: ferry-control pid $PID on $URL, $(nproc) CPUs," \
	"--threads $threads_txt; $AGENTS agents, concurrency $LEVELS," \
	"${WARMUP}+${SECONDS_RUN} s per run" >&2
"$LOAD" --url "$URL" --ca "$CA" --installer-key "$TMP/installer.json" \
	--agents "$AGENTS" --concurrency "$LEVELS" --seconds "$SECONDS_RUN" \
	--warmup "$WARMUP" --server-pid "$PID" --region "$REGION" \
	>"$TMP/results.jsonl" || die "the load generator failed (see above)"

# The daemon must have survived the load and stop cleanly.
kill -0 "$PID" 2>/dev/null || die "ferry-control died under load: $(tail -20 "$LOG")"
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=
[ "$rc" -eq 0 ] || die "ferry-control exited with $rc on SIGTERM: $(tail -20 "$LOG")"
if grep -q 'error:' "$LOG"; then
	echo "bench-control: ferry-control logged errors:" >&2
	grep 'error:' "$LOG" | sort | uniq -c | head -10 >&2
fi

# Member $2 of the flat JSON object $1.
val() {
	sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"
}
# Line of results for mode $1 at concurrency $2.
result() {
	grep "\"mode\":\"$1\",\"concurrency\":$2," "$TMP/results.jsonl" || true
}
calc() {
	awk "BEGIN { $1 }"
}

mkdir -p "$(dirname "$MD")"
{
	echo "# ferry-control heartbeat benchmark ($(date -u +%Y-%m-%d))"
	echo
	echo "UpdateAgentReplicationInfoForMgn signed with SigV4 (agent"
	echo "temporary credentials) over HTTPS/1.1 keep-alive on loopback, one"
	echo "connection per in-flight request, from ferry-control-load (libcurl"
	echo "multi) on the same $(nproc)-CPU machine; $AGENTS agents in turn;"
	echo "ferry-control --threads $threads_txt. Baseline: the same requests"
	echo "unsigned, answered 403 MissingAuthenticationToken (TLS + HTTP only)."
	echo "Goal: $GOAL_RPS heartbeats/s with p99 < $GOAL_P99_MS ms."
	echo "${WARMUP} s warm-up (not counted) + ${SECONDS_RUN} s counted per run."
	echo "The last column is the CPUs the daemon, the load generator and all"
	echo "other processes kept busy during the heartbeat run: when \"others\""
	echo "is large, the machine was shared and the row's figures are low."
	echo
	echo "| in flight | baseline req/s | heartbeats/s | ratio to baseline | ratio to goal | p50 ms | p99 ms | max ms | p99 < ${GOAL_P99_MS} ms | errors | server CPU ms/heartbeat | client CPU ms/heartbeat | CPUs busy: server + client + others |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"
} >"$MD"

met_any=no
IFS=, read -ra levels <<<"$LEVELS"
for c in "${levels[@]}"; do
	b=$(result baseline "$c")
	h=$(result heartbeat "$c")
	[ -n "$b" ] && [ -n "$h" ] || die "no result for concurrency $c"
	brps=$(val "$b" rps)
	hrps=$(val "$h" rps)
	p50=$(val "$h" p50_ms)
	p99=$(val "$h" p99_ms)
	max=$(val "$h" max_ms)
	errs=$(val "$h" errors)
	berrs=$(val "$b" errors)
	req=$(val "$h" requests)
	wall=$(val "$h" wall_s)
	ratio=$(calc "if ($brps > 0) printf \"%.3f\", $hrps / $brps; else print \"nan\"")
	goal=$(calc "printf \"%.3f\", $hrps / $GOAL_RPS")
	p99ok=$(calc "print ($p99 < $GOAL_P99_MS && $req > 0) ? \"yes\" : \"no\"")
	rpsok=$(calc "print ($hrps >= $GOAL_RPS) ? \"yes\" : \"no\"")
	# CPU per heartbeat over the whole run, warm-up and drain included.
	all=$(val "$h" answers)
	scpu=$(calc "s = $(val "$h" server_cpu_s); n = $all; if (s >= 0 && n > 0) printf \"%.3f\", 1000 * s / n; else print \"?\"")
	ccpu=$(calc "s = $(val "$h" client_cpu_s); n = $all; if (n > 0) printf \"%.3f\", 1000 * s / n; else print \"?\"")
	# Cores busy during the heartbeat run: the daemon, the load
	# generator, and everything else on the machine (which takes CPU
	# from both and makes the absolute figures move between runs).
	cores=$(calc "w = $wall; s = $(val "$h" server_cpu_s); c = $(val "$h" client_cpu_s); m = $(val "$h" machine_cpu_s); if (w > 0 && s >= 0 && m >= 0) printf \"%.2f + %.2f + %.2f\", s / w, c / w, (m - s - c) / w; else print \"?\"")
	[ "$rpsok" = yes ] && [ "$p99ok" = yes ] && met_any=yes
	echo "control c=$c baseline requests/s: $brps (errors $berrs)"
	echo "control c=$c heartbeats/s: $hrps (errors $errs)"
	echo "control c=$c heartbeats/s ratio to baseline: $ratio"
	echo "control c=$c heartbeats/s ratio to goal $GOAL_RPS: $goal (goal met: $rpsok)"
	echo "control c=$c heartbeat latency p50 ms: $p50"
	echo "control c=$c heartbeat latency p99 ms: $p99 (< $GOAL_P99_MS ms: $p99ok)"
	echo "control c=$c heartbeat latency max ms: $max"
	echo "control c=$c CPU per heartbeat ms: server $scpu, client $ccpu"
	echo "control c=$c CPUs busy during heartbeats (server + client + others): $cores of $(nproc)"
	echo "| $c | $brps | $hrps | $ratio | $goal | $p50 | $p99 | $max | $p99ok | $errs | $scpu | $ccpu | $cores |" >>"$MD"
	# Latency against the unsigned requests' at the same level.
	bp50=$(val "$b" p50_ms)
	bp99=$(val "$b" p99_ms)
	bench_figure control "c$c.heartbeats" "$hrps" req/s "$brps" \
		"$ratio" ">= $GOAL_RPS heartbeats/s" "$rpsok" \
		"heartbeats/s, $c in flight (baseline: unsigned requests/s)"
	bench_figure control "c$c.p50" "$p50" ms "$bp50" \
		"$(calc "if ($bp50 > 0) printf \"%.3f\", $p50 / $bp50")" - - \
		"heartbeat latency p50, $c in flight (baseline: unsigned)"
	bench_figure control "c$c.p99" "$p99" ms "$bp99" \
		"$(calc "if ($bp99 > 0) printf \"%.3f\", $p99 / $bp99")" \
		"< $GOAL_P99_MS ms" "$p99ok" \
		"heartbeat latency p99, $c in flight (baseline: unsigned)"
done
{
	echo
	echo "Goal ($GOAL_RPS/s at p99 < $GOAL_P99_MS ms) met at some level: $met_any."
	echo
	echo "Raw results (ferry-control-load):"
	echo
	echo '```'
	cat "$TMP/results.jsonl"
	echo '```'
} >>"$MD"
echo "control goal $GOAL_RPS heartbeats/s at p99 < $GOAL_P99_MS ms met: $met_any"
echo "report: $MD"
if [ "${FERRY_BENCH_STRICT:-0}" = 1 ] && [ "$met_any" != yes ]; then
	exit 1
fi
exit 0
