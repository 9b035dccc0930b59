#!/usr/bin/env bash
# Attack reproductions against interop-server (issue 13): for each attack, a fresh server, its
# RSS (VmRSS, VmHWM from /proc/PID/status) and open fds before and during the attack, a
# normal call from another connection during the attack and after it, one line per attack.
# See README.md here for the attacks and the numbers.
#
#   benchmark/attacks/run.sh [ATTACK...]      # default: all of them
#
# Environment:
#   SERVER, CLIENT, ATTACKER  binaries [target/release/{interop-server,interop-client,attack}];
#                             with none of them set, `cargo build --release` builds them first
#   BUILD=0                   do not build
#   ATTACK_SECONDS            time limit for sending each attack [20]
#   HOLD                      seconds the attack is held in place after it is sent [5]
#   CONN_HOLD                 the same for the connection attacks (preface-only, idle), so the
#                             output shows how long the server keeps such connections [25]
#   SETTLE                    seconds between the attack being in place and measuring [2]
#   STRICT=1                  also fail when an attack grows the server's RSS (VmRSS now or
#                             VmHWM, whichever is larger) by more than LIMIT_MIB [64]
#   SERVER_LOG                the server's RUST_LOG [info]
#   OUT                       logs and results [target/attacks]
#
# Exit status: 1 if the server stopped answering others (a normal call from another
# connection failed during or after an attack, or the server died), or under STRICT=1 if
# an attack grew its memory past the limit; 0 otherwise.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
R="$root/target/release"
ALL="streams indexed-headers literal-headers partial-messages zero-window no-read big-response preface-only idle ping-flood preface-only-5s connection-flood"
attacks=("$@")
[ ${#attacks[@]} -eq 0 ] && read -ra attacks <<<"$ALL"

if [ -z "${SERVER:-}${CLIENT:-}${ATTACKER:-}" ] && [ "${BUILD:-1}" = 1 ]; then
  (cd "$root" && cargo build --release -q -p interop -p benchmark) || exit 1
fi
SERVER=${SERVER:-$R/interop-server}
CLIENT=${CLIENT:-$R/interop-client}
ATTACKER=${ATTACKER:-$R/attack}
ATTACK_SECONDS=${ATTACK_SECONDS:-20}
HOLD=${HOLD:-5}
CONN_HOLD=${CONN_HOLD:-25}
SETTLE=${SETTLE:-2}
STRICT=${STRICT:-0}
LIMIT_MIB=${LIMIT_MIB:-64}
OUT=${OUT:-$root/target/attacks}
mkdir -p "$OUT"
for bin in "$SERVER" "$CLIENT" "$ATTACKER"; do
  [ -x "$bin" ] || { echo "attacks: no $bin" >&2; exit 1; }
done
# A thousand connections on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 8192 2>/dev/null || true

SERVER_PID=""
ATTACK_PID=""
cleanup() {
  [ -n "$ATTACK_PID" ] && kill "$ATTACK_PID" 2>/dev/null
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
  return 0
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

status_kb() { # pid field: kB (0 if the process is gone)
  awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

fds() { # pid: open file descriptors
  ls "/proc/$1/fd" 2>/dev/null | wc -l
}

mib() { # kB difference -> MiB with one decimal
  awk -v d="$1" 'BEGIN { printf "%.1f", d / 1024 }'
}

human() { # bytes -> B / kB / MB
  awk -v b="$1" 'BEGIN {
    if (b >= 1e6) printf "%.1f MB", b / 1e6; else if (b >= 1e3) printf "%.1f kB", b / 1e3; else printf "%d B", b }'
}

answers() { # port: does a normal call from another connection succeed?
  timeout 10 "$CLIENT" --server_host=127.0.0.1 --server_port="$1" --test_case=empty_unary \
    >/dev/null 2>&1
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

RESULTS="$OUT/results.tsv"
TABLE="$OUT/results.md"
printf 'attack\tsent_bytes\trss_growth_mib\tpeak_growth_mib\tfds_growth\tserving\tserver\n' >"$RESULTS"
{
  echo "| attack | bytes sent | RSS growth | peak (VmHWM) growth | fds held | still serving | what the server did |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} >"$TABLE"
printf '%-17s %10s %11s %11s %6s %-8s %s\n' attack sent "rss+MiB" "peak+MiB" "fds+" serving "server's answers"
failed=0

for attack in "${attacks[@]}"; do
  hold=$HOLD
  # Two attacks run another with server settings that are not defaults: a 5 s connection
  # timeout, and a limit of 100 connections.
  kind=$attack
  server_args=()
  case "$attack" in
    preface-only-5s) kind=preface-only; server_args=(--connection_timeout_ms=5000) ;;
    connection-flood) kind=idle; server_args=(--max_connections=100) ;;
  esac
  case "$kind" in preface-only | idle) hold=$CONN_HOLD ;; esac
  log="$OUT/$attack"
  port=$(free_port)
  RUST_LOG=${SERVER_LOG:-info} "$SERVER" --port="$port" "${server_args[@]}" >"$log.server.log" 2>&1 &
  SERVER_PID=$!
  up=0
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    sleep 0.05
  done
  if [ "$up" = 0 ]; then
    echo "attacks: the server did not start (see $log.server.log)" >&2
    exit 1
  fi
  sleep 0.5
  rss0=$(status_kb "$SERVER_PID" VmRSS)
  fds0=$(fds "$SERVER_PID")

  "$ATTACKER" --target "127.0.0.1:$port" --attack "$kind" --seconds "$ATTACK_SECONDS" \
    --hold "$hold" >"$log.attack.out" 2>"$log.attack.err" &
  ATTACK_PID=$!
  for _ in $(seq $(((ATTACK_SECONDS + 10) * 10))); do
    grep -q '^READY' "$log.attack.out" && break
    kill -0 "$ATTACK_PID" 2>/dev/null || break
    sleep 0.1
  done
  sleep "$SETTLE"
  rss1=$(status_kb "$SERVER_PID" VmRSS)
  fds1=$(fds "$SERVER_PID")
  during=no
  answers "$port" && during=yes

  # The attacker exits after its hold; the peak is read once it is gone.
  for _ in $(seq $(((hold + 15) * 10))); do
    kill -0 "$ATTACK_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill "$ATTACK_PID" 2>/dev/null
  wait "$ATTACK_PID" 2>/dev/null
  ATTACK_PID=""
  hwm=$(status_kb "$SERVER_PID" VmHWM)
  after=no
  answers "$port" && after=yes
  alive=yes
  kill -0 "$SERVER_PID" 2>/dev/null || alive=no
  stop_server

  sent=$(sed -n 's/^DONE sent=\([0-9]*\).*/\1/p' "$log.attack.out")
  [ -n "$sent" ] || sent=$(sed -n 's/^READY sent=\([0-9]*\).*/\1/p' "$log.attack.out")
  [ -n "$sent" ] || sent=0
  did=$(sed -n 's/^DONE sent=[0-9]* //p' "$log.attack.out")
  [ -n "$did" ] || did="(attacker: $(tail -n 1 "$log.attack.err"))"
  growth=$(mib $((rss1 - rss0)))
  # VmHWM is synced lazily: never below the RSS read during the attack.
  [ "$hwm" -lt "$rss1" ] && hwm=$rss1
  peak=$(mib $((hwm - rss0)))
  serving=yes
  if [ "$alive" = no ]; then
    serving="no (died)"
  elif [ "$during" = no ] && [ "$after" = no ]; then
    serving=no
  elif [ "$during" = no ] && [ "$attack" = connection-flood ]; then
    # The attacker holds every place max_connections allows: refusing the rest (the
    # normal call too) is what the limit is for; it must serve again once they go.
    serving="after (limit full during)"
  elif [ "$during" = no ]; then
    serving="after"
  elif [ "$after" = no ]; then
    serving="not after"
  fi
  case "$serving" in yes | "after (limit full during)") ;; *) failed=1 ;; esac
  if [ "$STRICT" = 1 ] && awk -v g="$growth" -v p="$peak" -v l="$LIMIT_MIB" 'BEGIN { exit !(g > l || p > l) }'; then
    failed=1
    did="$did OVER ${LIMIT_MIB} MiB"
  fi
  printf '%-17s %10s %11s %11s %6s %-8s %s\n' "$attack" "$(human "$sent")" "$growth" "$peak" \
    "$((fds1 - fds0))" "$serving" "$did"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$attack" "$sent" "$growth" "$peak" "$((fds1 - fds0))" \
    "$serving" "$did" >>"$RESULTS"
  printf '| %s | %s | +%s MiB | +%s MiB | %s | %s | %s |\n' "$attack" "$(human "$sent")" "$growth" \
    "$peak" "$((fds1 - fds0))" "$serving" "$did" >>"$TABLE"
done

echo "results: $RESULTS, $TABLE; logs: $OUT/<attack>.{server.log,attack.out,attack.err}"
exit "$failed"
