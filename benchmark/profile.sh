#!/usr/bin/env bash
# Profiles one benchmark server under load. Loopback only; every run is bounded.
#
#   benchmark/profile.sh perf  ours|tonic|h2 [unary|streaming] [tls]
#       perf record (cpu-clock, DWARF call graphs) of the server, pinned to core 0, while a
#       load generator on core 1 drives 1-byte calls at concurrency 64 on one connection
#       (h2load for unary, our client for streaming). Writes flat (self) and inclusive
#       reports to target/profile/.
#   benchmark/profile.sh dhat  ours|tonic|h2 [unary|streaming] [tls]
#       valgrind's DHAT over a fixed number of calls: heap allocations (blocks, bytes) per
#       call, and the allocation sites that make them.
#   benchmark/profile.sh syscalls ours|tonic|h2 [unary|streaming] [tls]
#       perf stat of the server under the same load as perf: its CPU time and its I/O
#       system calls (writev, recvfrom, epoll_wait...) per call, from syscall tracepoints
#       (nearly free, unlike strace). One line; run it alternately to compare servers.
#
# tls: the server and the load over TLS, with a fresh certificate from make-cert.sh (as
# run.sh's tls-* scenarios); reports are named ...-tls.
#
# Environment: PROFILE_SECS (perf, default 5), PROFILE_CALLS (dhat, default 20000),
# CARGO_TARGET_DIR (where the release binaries are, default target).
# Needs: perf (Debian linux-perf), valgrind, h2load (nghttp2-client), python3.
set -euo pipefail

TOOL=${1:?perf|dhat|syscalls}
SERVER=${2:?ours|tonic|h2}
RPC=${3:-unary}
SEC=${4:-}
case "$SEC" in "" | tls) ;; *) echo "unknown option $SEC (tls?)" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=target/profile
mkdir -p "$OUT"
TARGET=${CARGO_TARGET_DIR:-target}
R=$TARGET/release
T=$TARGET/tonic/release
case "$SERVER" in
  ours) BIN=("$R/benchmark-server") ;;
  tonic) BIN=("$T/tonic-benchmark-server") ;;
  h2) BIN=("$R/h2-baseline-server" --resp-size 1) ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
SCHEME=http
CLIENT_TLS=()
if [ "$SEC" = tls ]; then
  bash benchmark/make-cert.sh "$OUT/certs"
  BIN+=(--tls-cert "$OUT/certs/server.pem" --tls-key "$OUT/certs/server.key")
  SCHEME=https
  CLIENT_TLS=(--tls-ca "$OUT/certs/ca.pem")
fi
PIN0=(taskset -c 0)
PIN1=(taskset -c 1)
if [ "$(nproc)" -lt 2 ]; then PIN0=(); PIN1=(); fi

BODY="$OUT/request-1-1.bin"
"$R/benchmark-client" --req-size 1 --resp-size 1 --write-request "$BODY"

SPID=""
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true; }
trap cleanup EXIT

start() { # prefix...: starts the server, sets SPID and PORT
  # Emptied first: the forked child truncates it only later, and a log left by an earlier
  # run would name a port nothing listens on.
  : >"$OUT/server.log"
  "$@" "${BIN[@]}" --port 0 >"$OUT/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 600); do
    PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/server.log")
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  cat "$OUT/server.log" >&2
  exit 1
}

load() { # calls|secs N: drives the server
  local how=$1 n=$2
  if [ "$RPC" = unary ]; then
    local limit=(-n "$n")
    [ "$how" = secs ] && limit=(-D "$n")
    "${PIN1[@]}" h2load -t 1 -c 1 -m 64 "${limit[@]}" -d "$BODY" -H 'content-type: application/grpc' \
      -H 'te: trailers' "$SCHEME://127.0.0.1:$PORT/grpc.testing.BenchmarkService/UnaryCall" |
      grep -E '^(finished|requests:)'
  else
    # Our client is duration-based: for DHAT, run long enough and count what it reports.
    local secs=$n
    [ "$how" = calls ] && secs=$(awk -v n="$n" 'BEGIN { print n / 2000 }')
    "${PIN1[@]}" "$R/benchmark-client" --target "127.0.0.1:$PORT" --rpc streaming --concurrency 64 \
      --warmup 0 --duration "$secs" "${CLIENT_TLS[@]}" | grep '^RESULT'
  fi
}

TAG="$SERVER-$RPC${SEC:+-$SEC}"
case "$TOOL" in
  perf)
    start "${PIN0[@]}"
    SECS=${PROFILE_SECS:-5}
    load secs $((SECS + 2)) >"$OUT/load-$TAG.txt" &
    LPID=$!
    sleep 1
    perf record -q -e cpu-clock -F 1999 --call-graph dwarf,16384 -p "$SPID" -o "$OUT/perf-$TAG.data" -- sleep "$SECS" 2>/dev/null
    wait "$LPID"
    cat "$OUT/load-$TAG.txt"
    perf report -i "$OUT/perf-$TAG.data" --no-children --stdio --percent-limit 0.7 -g none \
      --sort symbol 2>/dev/null >"$OUT/perf-$TAG-self.txt"
    perf report -i "$OUT/perf-$TAG.data" --children --stdio --percent-limit 2 -g none \
      --sort symbol 2>/dev/null >"$OUT/perf-$TAG-inclusive.txt"
    echo "self time:      $OUT/perf-$TAG-self.txt"
    echo "inclusive time: $OUT/perf-$TAG-inclusive.txt"
    grep -v '^#' "$OUT/perf-$TAG-self.txt" | grep -v '^$' | head -40
    ;;
  syscalls)
    start "${PIN0[@]}"
    SECS=${PROFILE_SECS:-5}
    load secs $((SECS + 3)) >"$OUT/load-$TAG.txt" &
    LPID=$!
    sleep 1.5
    events=task-clock
    for call in writev write sendmsg sendto recvfrom read recvmsg epoll_wait; do
      events+=",syscalls:sys_enter_$call"
    done
    perf stat -x, -e "$events" -p "$SPID" -o "$OUT/syscalls-$TAG.csv" -- sleep "$SECS"
    wait "$LPID"
    # The load's rate over its whole run, times the counted seconds: the calls counted.
    python3 - "$OUT/load-$TAG.txt" "$OUT/syscalls-$TAG.csv" "$SECS" "$TAG" <<'EOF'
import re, sys
load, csv, secs, tag = open(sys.argv[1]).read(), sys.argv[2], float(sys.argv[3]), sys.argv[4]
m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", load) or re.search(r" qps=([\d.]+)", load)
rate = float(m.group(1)) if m else 0.0
if rate == 0:
    sys.exit(f"{tag}: the load made no calls:\n{load}")
calls = rate * secs
out = [f"{tag}: {rate:.0f} calls/s"]
for line in open(csv):
    f = line.strip().split(",")
    if len(f) < 3 or not f[0].replace(".", "").isdigit():
        continue
    value, event = float(f[0]), f[2]
    if event == "task-clock":
        out.insert(1, f"server CPU {value * 1000 / calls:.2f} us/call")
    elif value > 0:
        out.append(f"{event.split('sys_enter_')[-1]} {value / calls:.4f}/call")
print(", ".join(out))
EOF
    ;;
  dhat)
    CALLS=${PROFILE_CALLS:-20000}
    start valgrind --tool=dhat --dhat-out-file="$OUT/dhat-$TAG.json"
    # Connection setup and the first calls happen once; 2 loads let them be subtracted.
    load calls 1000 | tee "$OUT/load-$TAG.txt"
    load calls "$CALLS" | tee -a "$OUT/load-$TAG.txt"
    kill -INT "$SPID" 2>/dev/null || true
    sleep 0.5
    kill "$SPID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    SPID=""
    python3 - "$OUT/dhat-$TAG.json" "$OUT/load-$TAG.txt" <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
load = open(sys.argv[2]).read()
calls = sum(int(x) for x in re.findall(r"(\d+) succeeded", load)) or sum(
    int(x) for x in re.findall(r" calls=(\d+)", load))
ftbl = d["ftbl"]
skip = re.compile(r"alloc::|__rust|malloc|realloc|calloc|core::ptr|<alloc|hashbrown::raw|RawVec|bytes::bytes_mut::BytesMut::reserve|std::alloc|\?\?\?|vgpreload")
blocks = sum(p["tb"] for p in d["pps"])
nblocks = sum(p["tbk"] for p in d["pps"])
print(f"{calls} calls; {nblocks} heap blocks ({nblocks / calls:.1f} per call), {blocks} bytes ({blocks / calls:.0f} per call)")
rows = []
for p in d["pps"]:
    frames = [ftbl[i] for i in p["fs"]]
    useful = [f for f in frames if not skip.search(f)]
    rows.append((p["tbk"], p["tb"], useful[:3]))
rows.sort(key=lambda r: -r[0])
for tbk, tb, frames in rows[:30]:
    if tbk < calls / 20:
        break
    where = " <- ".join(re.sub(r"^0x[0-9A-F]+: ", "", f)[:110] for f in frames)
    print(f"{tbk / calls:6.2f}/call {tb / max(tbk, 1):8.0f} B  {where}")
EOF
    ;;
  *)
    echo "usage: $0 perf|dhat|syscalls ours|tonic|h2 [unary|streaming] [tls]" >&2
    exit 2
    ;;
esac
