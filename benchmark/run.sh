#!/usr/bin/env bash
# Benchmark driver. Three modes:
#
#   benchmark/run.sh bench     our server, driven by our load generator (and h2load if installed)
#   benchmark/run.sh compare   our server vs tonic's vs the bare h2 ceiling, each driven by our
#                              load generator, tonic's and (unary) h2load; side by side, and
#                              the two load generators side by side on each server
#   benchmark/run.sh smoke     a few seconds of ours per RPC kind: completes, responses right
#
# Each measurement starts a fresh server (pinned to core 0 with taskset) and runs one load
# generator (pinned to core 1) against it; runs of the same scenario alternate across servers,
# and the table shows the median of BENCH_RUNS runs. Everything listens on 127.0.0.1 only.
#
# Scenarios named tls-* run over TLS 1.3 (rustls with ring in every server and in both gRPC load
# generators; ALPN h2): a throwaway EC P-256 certificate for localhost and 127.0.0.1 is made
# into $BENCH_OUT/certs by benchmark/make-cert.sh at the start of the run, and the table sets
# each one beside its plaintext twin (the same name without tls-).
#
# Environment (defaults in brackets):
#   BENCH_WARMUP     seconds of unmeasured warm-up per measurement [1]
#   BENCH_DURATION   measured seconds per measurement [2 for compare, 5 for bench]
#   BENCH_RUNS       runs per scenario, server and client; the table shows medians [3; bench 1]
#   BENCH_SCENARIOS  space-separated subset of the scenario names below [all]
#   BENCH_CLIENTS    subset of: ours tonic h2load [compare: all three; bench: ours h2load]
#   BENCH_MEMORY     1 to measure idle-connection and idle-stream memory, 0 to skip [1]
#   BENCH_PIN        1 to pin with taskset (needs 2+ cores), 0 not to [1]
#   BENCH_QUIET      1 to wait, before each measurement, until nothing else runs on the
#                    machine, and to redo a measurement during which something else ran
#                    (runnable tasks beyond the server, the load generator and the sampler,
#                    read from /proc/loadavg every 0.1 s) [1; smoke 0]
#   BENCH_RETRIES    how many times a disturbed measurement is redone before it is kept
#                    (marked: the table counts them) [3]
#   BENCH_OUT        where results go [target/bench]
#   BENCH_NO_BUILD   1 to use already built binaries
#   CARGO_TARGET_DIR where the binaries are built [target] (a private one keeps them from
#                    being rebuilt by others' builds in the middle of a run)
#
# Full compare run with the defaults: about 30 minutes on 2 cores (BENCH_QUIET's waits
# included; about 20 without them).
set -euo pipefail

MODE=${1:-bench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
OUT=${BENCH_OUT:-target/bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# name rpc connections concurrency req_size resp_size [tls|retry]
# rpc: unary (UnaryCall), streaming (StreamingCall ping-pong), server-streaming
# (StreamingFromServer: one call per slot, the server sends responses back-to-back until the
# load generator cancels; each response counts as a call, so QPS is messages/s) or
# client-streaming (StreamingFromClient: one call per slot, the load generator sends requests
# back-to-back until the end of the measured time, then takes the one response; each request
# counts as a call, so QPS is messages/s). h2load drives unary scenarios only.
# retry: our client only, with a service config whose retry policy covers the method but
# never fires (the overhead of having one; issue: within 5% of none).
# mc: both cores for everyone, h2load only: each server on a two-thread runtime, h2load with
# two threads (one connection each), nothing pinned (on 2 cores the load competes with the
# server; the row says how each server uses a second core, not what one core does).
RETRY_CONFIG='{"methodConfig":[{"name":[{"service":"grpc.testing.BenchmarkService"}],"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}'
SCENARIOS_ALL=(
  "unary-1B-c1 unary 1 1 1 1"
  "unary-1B-c64 unary 1 64 1 1"
  "stream-1B-c1 streaming 1 1 1 1"
  "stream-1B-c64 streaming 1 64 1 1"
  "sstream-1KiB-c1 server-streaming 1 1 1 1024"
  "cstream-1KiB-c1 client-streaming 1 1 1024 1"
  "unary-1MiB-c4 unary 1 4 1048576 1048576"
  "unary-100conn-x10 unary 100 10 1 1"
  "unary-10KiB-100conn-x10 unary 100 10 10240 10240"
  "unary-100KiB-100conn-x10 unary 100 10 102400 102400"
  "tls-unary-1B-c64 unary 1 64 1 1 tls"
  "tls-stream-1B-c64 streaming 1 64 1 1 tls"
  "retry-unary-1B-c64 unary 1 64 1 1 retry"
  "mc-unary-1B-c64 unary 2 64 1 1 mc"
)

case "$MODE" in
  bench)
    SERVERS="ours"
    CLIENTS=${BENCH_CLIENTS:-ours h2load}
    DURATION=${BENCH_DURATION:-5}
    RUNS=${BENCH_RUNS:-1}
    ;;
  compare)
    SERVERS="ours tonic h2"
    CLIENTS=${BENCH_CLIENTS:-ours tonic h2load}
    DURATION=${BENCH_DURATION:-2}
    RUNS=${BENCH_RUNS:-3}
    ;;
  smoke)
    SERVERS="ours"
    CLIENTS="ours"
    DURATION=${BENCH_DURATION:-1}
    RUNS=1
    SCENARIOS_ALL=(
      "smoke-unary-c8 unary 1 8 1 1"
      "smoke-stream-c8 streaming 1 8 1 1"
      "smoke-unary-64KiB-c2 unary 1 2 65536 65536"
      "smoke-unary-4conn-x4 unary 4 4 16 16"
      "smoke-stream-64KiB-2conn-x2 streaming 2 2 65536 65536"
      "smoke-sstream-1KiB-c2 server-streaming 1 2 1 1024"
      "smoke-cstream-1KiB-c2 client-streaming 1 2 1024 1"
      "smoke-tls-unary-c8 unary 1 8 1 1 tls"
    )
    ;;
  *)
    echo "usage: $0 bench|compare|smoke" >&2
    exit 2
    ;;
esac
WARMUP=${BENCH_WARMUP:-1}
[ "$MODE" = smoke ] && WARMUP=${BENCH_WARMUP:-0.3}
MEMORY=${BENCH_MEMORY:-1}
PIN=${BENCH_PIN:-1}
[ "$MODE" = smoke ] && PIN=${BENCH_PIN:-0}
QUIET=${BENCH_QUIET:-1}
[ "$MODE" = smoke ] && QUIET=${BENCH_QUIET:-0}
RETRIES=${BENCH_RETRIES:-3}

if [ "$PIN" = 1 ] && [ "$(nproc)" -lt 2 ]; then
  echo "run.sh: fewer than 2 cores; not pinning" >&2
  PIN=0
fi
# Command prefixes (arrays, not functions: a backgrounded function would make $! a subshell's
# pid, not the server's).
PIN0=()
PIN1=()
if [ "$PIN" = 1 ]; then
  PIN0=(taskset -c 0)
  PIN1=(taskset -c 1)
fi

if [[ " $CLIENTS " == *" h2load "* ]] && ! command -v h2load >/dev/null; then
  echo "run.sh: h2load not found (Debian: apt-get install nghttp2-client); skipping it" >&2
  CLIENTS=${CLIENTS//h2load/}
fi

# --- build -------------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-target}
R=$TARGET/release
T=$TARGET/tonic/release
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  echo "== building (release)"
  $CARGO build --release -q -p benchmark
  if [[ " $SERVERS $CLIENTS " == *" tonic "* ]]; then
    $CARGO build --release -q --manifest-path benchmark/tonic/Cargo.toml --target-dir "$TARGET/tonic"
  fi
fi

# --- helpers -----------------------------------------------------------------------------
SERVER_PID=""
SERVER_PORT=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  [ -n "${IDLE_PID:-}" ] && kill "$IDLE_PID" 2>/dev/null || true
}
trap cleanup EXIT

start_server() { # impl resp_size [tls|mc]
  local impl=$1 resp=$2 log="$OUT/server.log" tls=() pin=("${PIN0[@]}")
  [ "${3:-}" = tls ] && tls=(--tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server.key")
  # (--threads 2 goes where the TLS options would: no scenario has both.)
  [ "${3:-}" = mc ] && tls=(--threads 2) && pin=()
  # Emptied here, not by the redirection below: that runs in the forked child, and until it
  # does the loop below could read the previous server's port from the old log.
  : >"$log"
  case "$impl" in
    ours) "${pin[@]}" "$R/benchmark-server" --port 0 "${tls[@]}" >"$log" 2>&1 & ;;
    tonic) "${pin[@]}" "$T/tonic-benchmark-server" --port 0 "${tls[@]}" >"$log" 2>&1 & ;;
    h2) "${pin[@]}" "$R/h2-baseline-server" --port 0 --resp-size "$resp" "${tls[@]}" >"$log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  local i
  for i in $(seq 100); do
    SERVER_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$SERVER_PORT" ] && return 0
    sleep 0.05
  done
  echo "run.sh: $impl server did not start:" >&2
  cat "$log" >&2
  exit 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

status_kb() { # pid field (VmRSS, VmHWM): kB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

cpu_ticks() { # pid: utime + stime in clock ticks
  { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || echo; } | awk '{ print $12 + $13 }'
}

RESULTS="$OUT/results-$MODE.tsv"
: >"$RESULTS"
FAILED=0

# --- other work on the machine -------------------------------------------------------------
# /proc/loadavg's fourth field counts the tasks runnable right now, the reader included. Other
# agents' compilers on a 2-core machine move these numbers by 2x; these find them.
RUNNING=0
running_now() { local rt; read -r _ _ _ rt _ </proc/loadavg; RUNNING=${rt%/*}; }

wait_quiet() { # until, over 2 s, nothing but this script was runnable in 90% of samples (at most 10 min)
  local busy=0 n=0 waited=0
  while :; do
    running_now
    [ "$RUNNING" -gt 1 ] && busy=$((busy + 1))
    n=$((n + 1))
    if [ "$n" -ge 20 ]; then
      [ "$busy" -le 2 ] && return 0
      busy=0 n=0
    fi
    waited=$((waited + 1))
    if [ "$waited" -ge 6000 ]; then
      echo "run.sh: the machine stayed busy for 10 minutes; measuring anyway" >&2
      return 0
    fi
    sleep 0.1
  done
}

SAMPLER=""
start_sampler() { # samples runnable tasks into $OUT/running.txt until stop_sampler
  : >"$OUT/running.txt"
  ( while :; do running_now; echo "$RUNNING"; sleep 0.1; done >"$OUT/running.txt" ) &
  SAMPLER=$!
}

stop_sampler() { # sets OTHERS: the mean number of runnable tasks beyond the 3 expected
  OTHERS=0
  [ -n "$SAMPLER" ] || return 0
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  SAMPLER=""
  OTHERS=$(awk '{ x = $1 - 3; if (x > 0) s += x; n++ } END { printf "%.2f", n ? s / n : 0 }' \
    "$OUT/running.txt")
}

# One measurement, redone while something else ran during it: writes a line to $RESULTS.
measure() { # run scenario server client rpc conns conc req resp sec (tls or empty)
  local try
  for try in $(seq 0 "$RETRIES"); do
    [ "$QUIET" = 1 ] && wait_quiet
    measure_once "$@"
    [ "$QUIET" = 1 ] && [ -n "$KV" ] || break
    awk -v o="$OTHERS" 'BEGIN { exit !(o <= 0.1) }' && break
    [ "$try" -lt "$RETRIES" ] && echo "  (others ran during $2 server=$3 client=$4: $OTHERS tasks on average; again)"
  done
  [ -n "$KV" ] || return 0
  local run=$1 name=$2 server=$3 client=$4
  printf '%s\t%s\t%s\t%s\t%s\thwm_kb=%s others=%s\n' "$name" "$server" "$client" "$run" "$KV" \
    "$HWM" "$OTHERS" >>"$RESULTS"
  printf '  %-20s server=%-5s client=%-6s run %s: %s\n' "$name" "$server" "$client" "$run" \
    "$(echo "$KV" | tr ' ' '\n' | grep -E '^(qps|p50_us|p99_us|cpu_per_1k)=' | tr '\n' ' ') hwm_kb=$HWM others=$OTHERS"
}

# One measurement: sets KV (the RESULT line's key=value pairs, empty if it failed), HWM, OTHERS.
measure_once() { # run scenario server client rpc conns conc req resp sec (tls or empty)
  local run=$1 name=$2 server=$3 client=$4 rpc=$5 conns=$6 conc=$7 req=$8 resp=$9 sec=${10}
  KV=""
  start_server "$server" "$resp" "$sec"
  [ "$QUIET" = 1 ] && start_sampler
  local target="127.0.0.1:$SERVER_PORT" line="" rc=0 clog="$OUT/client.log"
  local tls=() scheme=http
  if [ "$sec" = tls ]; then
    tls=(--tls-ca "$CERTS/ca.pem")
    scheme=https
  elif [ "$sec" = retry ]; then
    tls=(--service-config "$RETRY_CONFIG")
  fi
  local limit
  limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { printf "%d", w + d + 60 }')
  case "$client" in
    ours | tonic)
      local bin="$R/benchmark-client"
      [ "$client" = tonic ] && bin="$T/tonic-benchmark-client"
      "${PIN1[@]}" timeout "$limit" "$bin" --target "$target" --rpc "$rpc" --connections "$conns" \
        --concurrency "$conc" --req-size "$req" --resp-size "$resp" --warmup "$WARMUP" \
        --duration "$DURATION" --server-pid "$SERVER_PID" --label "$name" "${tls[@]}" \
        >"$clog" 2>&1 || rc=$?
      stop_sampler
      line=$(grep '^RESULT' "$clog" || true)
      ;;
    h2load)
      local body="$OUT/request-$req-$resp.bin"
      [ -f "$body" ] || "$R/benchmark-client" --req-size "$req" --resp-size "$resp" --write-request "$body"
      # h2load takes whole units (500ms, 2s), not fractions. Over https:// it negotiates h2 by
      # ALPN and does not check the certificate; it offers TLS_AES_128_GCM_SHA256 first (the
      # rustls clients offer TLS_AES_256_GCM_SHA384 first), and rustls servers follow the
      # client's order.
      local dms wms
      dms=$(awk -v d="$DURATION" 'BEGIN { printf "%dms", d * 1000 }')
      wms=$(awk -v w="$WARMUP" 'BEGIN { printf "%dms", w * 1000 }')
      local pin=("${PIN1[@]}") threads=1
      [ "$sec" = mc ] && pin=() && threads=2
      "${pin[@]}" timeout "$limit" h2load -t "$threads" -c "$conns" -m "$conc" -D "$dms" --warm-up-time "$wms" \
        -d "$body" -H 'content-type: application/grpc' -H 'te: trailers' \
        "$scheme://$target/grpc.testing.BenchmarkService/UnaryCall" >"$clog" 2>&1 &
      local hpid=$!
      # h2load's measured window starts after its warm-up: sample the server's CPU around it.
      sleep "$WARMUP"
      local c0 c1
      c0=$(cpu_ticks "$SERVER_PID")
      sleep "$DURATION"
      c1=$(cpu_ticks "$SERVER_PID")
      wait "$hpid" || rc=$?
      stop_sampler
      line=$(python3 - "$clog" "$c0" "$c1" "$name" "$DURATION" <<'EOF'
import re, sys
out = open(sys.argv[1]).read()
c0, c1, name, dur = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
if not m:
    sys.exit(0)
ok, failed = int(m.group(3)), int(m.group(4)) + int(m.group(5))
qps = ok / dur
cpu = (c1 - c0) / 100.0
per_1k = cpu / ok * 1000 if ok else 0
# h2load's per-request log times do not match its own request rate (a c=1 run at 8k req/s
# logs milliseconds), so its latency is left out: QPS and server CPU only.
print(f"RESULT impl=h2load label={name} rpc=unary qps={qps:.1f} mbps=0 "
      f"calls={ok} errors={failed} server_cpu_s={cpu:.3f} cpu_per_1k={per_1k:.5f}")
EOF
)
      if [[ "$line" != *" errors=0 "* ]]; then rc=1; fi
      ;;
  esac
  HWM=$(status_kb "$SERVER_PID" VmHWM)
  stop_server
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    echo "  FAILED: $name server=$server client=$client (exit $rc)" >&2
    tail -5 "$clog" >&2
    FAILED=1
    return 0
  fi
  KV=$(echo "$line" | tr ' ' '\n' | grep '=' | tr '\n' ' ' | sed 's/ $//')
}

# --- machine -----------------------------------------------------------------------------
MACHINE="$OUT/machine-$MODE.txt"
{
  echo "cores: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel: $(uname -r); memory: $(free -g | awk '/Mem:/ { print $2 }') GiB"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "warm-up ${WARMUP}s, measured ${DURATION}s, runs $RUNS, pinned: $PIN (server core 0, load generator core 1)"
} >"$MACHINE"
cat "$MACHINE"

# --- scenarios ---------------------------------------------------------------------------
selected() {
  [ -z "${BENCH_SCENARIOS:-}" ] && return 0
  [[ " $BENCH_SCENARIOS " == *" $1 "* ]]
}

# The TLS scenarios' certificate: made fresh for this run, never committed.
CERTS="$OUT/certs"
for spec in "${SCENARIOS_ALL[@]}"; do
  read -r name _ _ _ _ _ sec <<<"$spec"
  if [ "$sec" = tls ] && selected "$name"; then
    bash benchmark/make-cert.sh "$CERTS"
    echo "TLS certificate: $CERTS/server.pem (CA $CERTS/ca.pem)"
    break
  fi
done

for run in $(seq "$RUNS"); do
  echo "== run $run of $RUNS"
  for spec in "${SCENARIOS_ALL[@]}"; do
    read -r name rpc conns conc req resp sec <<<"$spec"
    selected "$name" || continue
    for server in $SERVERS; do
      for client in $CLIENTS; do
        [ "$client" = h2load ] && [ "$rpc" != unary ] && continue
        [ "$sec" = retry ] && [ "$client" != ours ] && continue
        [ "$sec" = mc ] && [ "$client" != h2load ] && continue
        measure "$run" "$name" "$server" "$client" "$rpc" "$conns" "$conc" "$req" "$resp" "$sec"
      done
    done
  done
done

# --- memory ------------------------------------------------------------------------------
MEM="$OUT/memory-$MODE.tsv"
: >"$MEM"
idle_rss() { # server conns streams: prints the server's RSS increase in kB while they are held
  local server=$1 conns=$2 streams=$3 log="$OUT/idle.log"
  start_server "$server" 1
  sleep 0.3
  local before after
  before=$(status_kb "$SERVER_PID" VmRSS)
  "${PIN1[@]}" "$R/benchmark-idle" --target "127.0.0.1:$SERVER_PORT" --connections "$conns" \
    --streams "$streams" --hold 120 >"$log" 2>&1 &
  IDLE_PID=$!
  local i
  for i in $(seq 600); do
    grep -q '^READY' "$log" && break
    if ! kill -0 "$IDLE_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! grep -q '^READY' "$log"; then
    echo "  FAILED: idle $server $conns x $streams" >&2
    cat "$log" >&2
    FAILED=1
    kill "$IDLE_PID" 2>/dev/null || true
    IDLE_PID=""
    stop_server
    echo 0
    return
  fi
  sleep 1
  after=$(status_kb "$SERVER_PID" VmRSS)
  kill "$IDLE_PID" 2>/dev/null || true
  wait "$IDLE_PID" 2>/dev/null || true
  IDLE_PID=""
  stop_server
  echo "$before $after"
}

if [ "$MEMORY" = 1 ]; then
  if [ "$MODE" = smoke ]; then
    CONNS=50 SCONNS=5 PER=10
  else
    CONNS=1000 SCONNS=100 PER=100
  fi
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  echo "== memory: $CONNS idle connections; $SCONNS connections x $PER idle streams"
  for server in $SERVERS; do
    read -r b0 a0 <<<"$(idle_rss "$server" "$CONNS" 0)"
    read -r b1 a1 <<<"$(idle_rss "$server" "$SCONNS" 0)"
    read -r b2 a2 <<<"$(idle_rss "$server" "$SCONNS" "$PER")"
    if [ -z "$a0" ] || [ -z "$a1" ] || [ -z "$a2" ]; then FAILED=1; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$CONNS" "$b0" "$a0" \
      "$SCONNS" "$b1" "$a1" "$PER" "$b2" "$a2" "" >>"$MEM"
    echo "  $server: base ${b0} kB; ${CONNS} conns ${a0} kB; ${SCONNS} conns ${a1} kB; +$((SCONNS * PER)) streams ${a2} kB"
  done
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$MACHINE"

# --- table -------------------------------------------------------------------------------
python3 - "$RESULTS" "$MEM" "$MACHINE" "$MODE" "$OUT/table-$MODE.md" <<'EOF'
import statistics, sys
from collections import defaultdict

results, mem, machine, mode, out = sys.argv[1:6]
rows = defaultdict(list)
order = []
for line in open(results):
    name, server, client, run, kv, extra = line.rstrip("\n").split("\t")
    d = dict(x.split("=", 1) for x in (kv.split() + extra.split()))
    if (name, client) not in order:
        order.append((name, client))
    rows[(name, server, client)].append(d)

# Measurements during which other work ran (after BENCH_RETRIES) count only in cells that
# have no clean one.
def disturbed(d):
    return float(d.get("others", "0")) > 0.1
n_disturbed = sum(disturbed(d) for ds in rows.values() for d in ds)
n_all = sum(len(ds) for ds in rows.values())
for k, ds in rows.items():
    clean = [d for d in ds if not disturbed(d)]
    rows[k] = clean or ds

def med(name, server, client, key):
    vals = [float(d[key]) for d in rows.get((name, server, client), []) if key in d and d[key] != ""]
    return statistics.median(vals) if vals else None

def fmt(v, f="{:.0f}"):
    return "-" if v is None else f.format(v)

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"

servers = [s for s in ("ours", "tonic", "h2") if any(k[1] == s for k in rows)]
label = {"ours": "ours", "tonic": "tonic", "h2": "bare h2"}
lines = []
lines.append("```")
lines.append(open(machine).read().rstrip())
lines.append(f"measurements with other work running: {n_disturbed} of {n_all}"
             + (" (left out where the cell has clean ones)" if n_disturbed else ""))
lines.append("```")
lines.append("")
lines.append("QPS (calls/s; streaming: ping-pongs/s; server-streaming and client-streaming: "
             "messages/s) and latency, "
             "medians of the runs:")
lines.append("")
hdr = ["scenario", "client"] + [f"{label[s]} QPS" for s in servers]
if "tonic" in servers:
    hdr.append("ours/tonic")
if "h2" in servers:
    hdr.append("ours/h2")
hdr += [f"{label[s]} p50/p99 us" for s in servers]
lines.append("| " + " | ".join(hdr) + " |")
lines.append("|" + "---|" * len(hdr))
for name, client in order:
    q = {s: med(name, s, client, "qps") for s in servers}
    r = [name, client] + [fmt(q[s]) for s in servers]
    if "tonic" in servers:
        r.append(ratio(q["ours"], q["tonic"]))
    if "h2" in servers:
        r.append(ratio(q["ours"], q["h2"]))
    r += [f"{fmt(med(name, s, client, 'p50_us'))}/{fmt(med(name, s, client, 'p99_us'))}" for s in servers]
    lines.append("| " + " | ".join(r) + " |")
lines.append("")
lines.append("Server CPU ms per 1000 calls (server- and client-streaming: messages; lower is "
             "better) and server "
             "peak RSS (VmHWM, MiB):")
lines.append("")
hdr = ["scenario", "client"] + [f"{label[s]} CPU ms/1k" for s in servers]
if "tonic" in servers:
    hdr.append("CPU ours/tonic")
hdr += [f"{label[s]} peak RSS" for s in servers]
lines.append("| " + " | ".join(hdr) + " |")
lines.append("|" + "---|" * len(hdr))
for name, client in order:
    c = {s: med(name, s, client, "cpu_per_1k") for s in servers}
    c = {s: (None if v is None else v * 1000) for s, v in c.items()}
    # (Two decimals below 10 ms: a streamed message costs well under a microsecond.)
    r = [name, client] + [fmt(c[s], "{:.2f}" if c[s] is not None and c[s] < 10 else "{:.1f}")
                          for s in servers]
    if "tonic" in servers:
        r.append(ratio(c["ours"], c["tonic"]))
    r += [fmt(None if med(name, s, client, "hwm_kb") is None else med(name, s, client, "hwm_kb") / 1024, "{:.1f}") for s in servers]
    lines.append("| " + " | ".join(r) + " |")
# The clients side by side: ours and tonic's driving the same server, each server in turn.
cl = [n for n in dict.fromkeys(n for n, _ in order)
      if (n, "ours") in order and (n, "tonic") in order]
def clients_table(title, key, scale, form):
    """Our client beside tonic's on each server: the median of `key` (times `scale`)."""
    lines.append("")
    lines.append(title)
    lines.append("")
    hdr = ["scenario"]
    for s in servers:
        hdr += [f"on {label[s]}: our client", "tonic's client", "ratio"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for name in cl:
        r = [name]
        for s in servers:
            a, b = med(name, s, "ours", key), med(name, s, "tonic", key)
            r += [fmt(None if a is None else a * scale, form),
                  fmt(None if b is None else b * scale, form), ratio(a, b)]
        lines.append("| " + " | ".join(r) + " |")

if cl:
    clients_table("Clients: our load generator against tonic's, driving the same server (QPS, "
                  "medians; ratio ours/tonic's):", "qps", 1, "{:.0f}")
    # Where the server saturates, both clients reach its rate and QPS cannot tell them apart;
    # each client's own CPU per call still can.
    clients_table("Clients' own CPU ms per 1000 calls (server- and client-streaming: messages), "
                  "driving the same server (medians; lower is better; ratio ours/tonic's):",
                  "client_cpu_per_1k", 1000, "{:.2f}")
# Each tls-NAME row beside its plaintext twin NAME (same client): the ours/tonic ratios of QPS
# and of CPU per call in both, and what TLS costs each server (CPU per call, TLS / plaintext).
twins = [(n, c) for n, c in order if n.startswith("tls-") and (n[4:], c) in order]
if twins:
    lines.append("")
    lines.append("TLS against plaintext (each TLS scenario beside its plaintext twin, same client; "
                 "CPU is server CPU ms per 1000 calls):")
    lines.append("")
    hdr = ["scenario", "client"]
    hdr += [f"{label[s]} TLS QPS" for s in servers]
    if "tonic" in servers:
        hdr += ["TLS ours/tonic", "plaintext ours/tonic"]
    hdr += [f"{label[s]} TLS CPU" for s in servers]
    if "tonic" in servers:
        hdr += ["TLS CPU ours/tonic", "plaintext CPU ours/tonic"]
    hdr += [f"{label[s]} CPU TLS/plain" for s in servers]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for name, client in twins:
        plain = name[4:]
        q = {s: med(name, s, client, "qps") for s in servers}
        qp = {s: med(plain, s, client, "qps") for s in servers}
        c = {s: med(name, s, client, "cpu_per_1k") for s in servers}
        cp = {s: med(plain, s, client, "cpu_per_1k") for s in servers}
        r = [name, client] + [fmt(q[s]) for s in servers]
        if "tonic" in servers:
            r += [ratio(q["ours"], q["tonic"]), ratio(qp["ours"], qp["tonic"])]
        r += [fmt(None if c[s] is None else c[s] * 1000, "{:.2f}") for s in servers]
        if "tonic" in servers:
            r += [ratio(c["ours"], c["tonic"]), ratio(cp["ours"], cp["tonic"])]
        r += [ratio(c[s], cp[s]) for s in servers]
        lines.append("| " + " | ".join(r) + " |")
mrows = [l.rstrip("\n").split("\t") for l in open(mem) if l.strip()]
if mrows:
    lines.append("")
    lines.append("Idle memory (server RSS; per connection over the fresh server, per stream over the same connections without streams):")
    lines.append("")
    lines.append("| server | fresh RSS MiB | idle conns | KiB per connection | idle streams | KiB per stream |")
    lines.append("|---|---|---|---|---|---|")
    for server, conns, b0, a0, sconns, b1, a1, per, b2, a2, _ in mrows:
        conns, sconns, per = int(conns), int(sconns), int(per)
        try:
            b0, a0, b1, a1, b2, a2 = map(int, (b0, a0, b1, a1, b2, a2))
        except ValueError:
            lines.append(f"| {label[server]} | failed | | | | |")
            continue
        per_conn = (a0 - b0) / conns
        per_stream = ((a2 - b2) - (a1 - b1)) / (sconns * per)
        lines.append(f"| {label[server]} | {b0 / 1024:.1f} | {conns} | {per_conn:.1f} | {sconns} x {per} | {per_stream:.2f} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print()
print(text)
EOF
echo "results: $RESULTS, table: $OUT/table-$MODE.md"
if [ "$FAILED" != 0 ]; then
  echo "run.sh: some measurements FAILED" >&2
  exit 1
fi
