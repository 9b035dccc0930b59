#!/usr/bin/env bash
# The interop matrix: our client against each peer server, each peer client against our
# server, every case, over plaintext and then over TLS; prints a table per transport
# (case x direction x peer) and one `N passed, M failed, K skipped` for both; exits
# non-zero on any FAIL.
#
#   interop/run-matrix.sh [--no-build] [--peers=python,go,node] [--cases=a,b,c]
#                         [--tls=plain|tls|both] [--peer-vs-peer]
#
#   --no-build      use the binaries as they are (target/release/interop-*, the Go peer)
#   --peers         which peers (default: every peer present)
#   --cases         which cases (default: all)
#   --tls           which transports (default: both, plaintext first)
#   --peer-vs-peer  instead of ours, run every peer client against every other peer's server
#                   (validates the peers; our binaries are not needed)
#
# TLS: interop/make-certs.sh makes a fresh test CA and server certificate (EC P-256, valid
# 2 days) into target/interop-matrix/certs on every run. Servers get `--use_tls=true
# --cert_file=server.pem --key_file=server.key`; clients dial 127.0.0.1 with
# `--use_tls=true --ca_file=ca.pem --server_host_override=foo.test.google.fr` (a name the
# certificate carries), so every client checks the server's certificate and name. The TLS
# half runs the same cases, in both directions, against the same peers, with the same
# PEER_LIMITATIONS. It costs about as much as the plaintext half (a few seconds each on
# 2 cores, besides the builds), so its soak cases are not shortened.
#
# Environment: SOAK_ITERATIONS (default 10; TLS_SOAK_ITERATIONS, default the same, for the
# TLS half), CLIENT_TIMEOUT seconds per client run (300), OURS_SERVER / OURS_CLIENT (default
# target/release/interop-server / interop-client; with either set, cargo is not run),
# CHANNELZ_WIRED (default true; false: the channelz check skips our server's own
# channelz entries, its listen socket and its call and socket counters).
#
# Each server runs on its own free port, clients connect to 127.0.0.1 only; every client
# run is under `timeout`, every server is stopped after its client (SIGTERM, then SIGKILL
# after 5 s). Logs: target/interop-matrix/ (<client>-client_<server>-server_<transport>.*).
#
# With ours, it also runs our client against two peers' servers at once through one
# `ipv4:` target with `--service_config_json` choosing round_robin, then pick_first (the
# channel's resolver, balancer and subchannels against real servers; "-" marks the cases
# not run that way).
#
# Run interop/install-peers.sh first (make interop does); this script only (re)creates the
# venv/node_modules when they are missing or stale, and builds the Go peer and ours.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

CASES=(empty_unary large_unary client_streaming server_streaming ping_pong empty_stream
  timeout_on_sleeping_server cancel_after_begin cancel_after_first_response
  status_code_and_message special_status_message unimplemented_method unimplemented_service
  custom_metadata client_compressed_unary server_compressed_unary client_compressed_streaming
  server_compressed_streaming very_large_request very_large_response rpc_soak channel_soak)

# What a peer cannot do, as "<peer>-<server|client>:<case>:<why>" (every transport) or
# "<peer>-<server|client>/<plain|tls>:<case>:<why>" (that transport only).
# - A server limitation: the case is not run against that server, and is SKIP with the
#   reason; it is covered against another peer's server.
# - A client limitation: the peer's client runs what it can of the case (a broken call
#   still FAILs) and reports SKIP; a SKIP that is not listed here counts as FAIL.
# Coverage: every case must PASS in each direction against at least one peer, or the
# matrix fails (so a limitation never hides a case of ours); this holds per transport.
PEER_LIMITATIONS=(
  "python-server:client_compressed_unary:grpcio's server API does not expose a received message's compressed flag (expect_compressed unchecked)"
  "python-server:client_compressed_streaming:grpcio's server API does not expose a received message's compressed flag (expect_compressed unchecked)"
  "python-client:server_compressed_unary:grpcio's client API does not expose a received message's compressed flag"
  "python-client:server_compressed_streaming:grpcio's client API does not expose a received message's compressed flag"
  "python-client:client_compressed_streaming:grpcio compresses per call, not per message"
  "go-server:server_compressed_unary:grpc-go 1.33 compresses responses only as the request was, never per message"
  "go-server:server_compressed_streaming:grpc-go 1.33 compresses responses only as the request was, never per message"
  "go-client:client_compressed_streaming:grpc-go 1.33 compresses every message of a call or none"
  "node-server:client_compressed_unary:grpc-js's server does not expose a received message's compressed flag"
  "node-server:client_compressed_streaming:grpc-js's server does not expose a received message's compressed flag"
  "node-server:server_compressed_unary:grpc-js's server does not compress responses"
  "node-server:server_compressed_streaming:grpc-js's server does not compress responses"
  "node-client:server_compressed_unary:grpc-js does not expose a received message's compressed flag"
  "node-client:server_compressed_streaming:grpc-js does not expose a received message's compressed flag"
)

build=1
mode=ours
peers_arg=""
cases_arg=""
tls_arg=both
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --peer-vs-peer) mode=peers ;;
    --peers=*) peers_arg=${arg#--peers=} ;;
    --cases=*) cases_arg=${arg#--cases=} ;;
    --tls=*) tls_arg=${arg#--tls=} ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
[ -n "$cases_arg" ] && IFS=, read -r -a CASES <<<"$cases_arg"
case $tls_arg in
  plain) TRANSPORTS=(plain) ;;
  tls) TRANSPORTS=(tls) ;;
  both) TRANSPORTS=(plain tls) ;;
  *) echo "--tls must be plain, tls or both" >&2; exit 2 ;;
esac

SOAK_ITERATIONS=${SOAK_ITERATIONS:-10}
TLS_SOAK_ITERATIONS=${TLS_SOAK_ITERATIONS:-$SOAK_ITERATIONS}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-300}
logs="$root/target/interop-matrix"
rm -rf "$logs"
mkdir -p "$logs"

ours_server=${OURS_SERVER:-$root/target/release/interop-server}
ours_client=${OURS_CLIENT:-$root/target/release/interop-client}
py_venv="$root/interop/peers/python/.venv"
go_bin="$root/interop/peers/go/.build/bin"
node_dir="$root/interop/peers/node"
certs="$logs/certs"
# The name clients check the server's certificate against (it also has localhost and the
# loopback addresses); the interop spec's default --server_host_override.
TLS_SERVER_NAME=foo.test.google.fr

# ---- build ---------------------------------------------------------------------------
if [ $build = 1 ]; then
  bash interop/install-peers.sh --no-apt || { echo "interop: installing the peers failed" >&2; exit 1; }
  echo "interop: building the grpc-go peer"
  bash interop/peers/go/build.sh || { echo "interop: the Go peer did not build" >&2; exit 1; }
  if [ $mode = ours ] && [ -z "${OURS_SERVER:-}${OURS_CLIENT:-}" ]; then
    echo "interop: cargo build --release -p interop"
    cargo build --release -q -p interop || { echo "interop: our binaries did not build" >&2; exit 1; }
  fi
fi

# ---- peers -------------------------------------------------------------------------
all_peers=()
[ -x "$py_venv/bin/python" ] && all_peers+=(python)
[ -x "$go_bin/go-interop-server" ] && all_peers+=(go)
[ -d "$node_dir/node_modules" ] && all_peers+=(node)
if [ -n "$peers_arg" ]; then
  IFS=, read -r -a PEERS <<<"$peers_arg"
else
  PEERS=("${all_peers[@]}")
fi
for p in python go node; do
  case " ${all_peers[*]} " in *" $p "*) ;; *) echo "interop: peer $p is not installed" >&2 ;; esac
done

if [[ " ${TRANSPORTS[*]} " == *" tls "* ]]; then
  bash interop/make-certs.sh "$certs" || { echo "interop: making the test certificates failed" >&2; exit 1; }
fi

# Command lines; a server command is given its port as --port=N, then the transport's flags.
server_cmd() {
  case $1 in
    ours) echo "$ours_server" ;;
    python) echo "$py_venv/bin/python $root/interop/peers/python/server.py" ;;
    go) echo "$go_bin/go-interop-server" ;;
    node) [ -f "$node_dir/server.js" ] && echo "node $node_dir/server.js" ;;
  esac
}
client_cmd() {
  case $1 in
    ours) echo "$ours_client" ;;
    python) echo "$py_venv/bin/python $root/interop/peers/python/client.py" ;;
    go) echo "$go_bin/go-interop-client" ;;
    node) echo "node $node_dir/client.js" ;;
  esac
}

server_flags() { # transport
  [ "$1" = tls ] && echo "--use_tls=true --cert_file=$certs/server.pem --key_file=$certs/server.key"
}
client_flags() { # transport
  if [ "$1" = tls ]; then
    echo "--use_tls=true --ca_file=$certs/ca.pem --server_host_override=$TLS_SERVER_NAME --soak_iterations=$TLS_SOAK_ITERATIONS"
  else
    echo "--soak_iterations=$SOAK_ITERATIONS"
  fi
}

limitation() { # peer role case transport -> reason (empty if none)
  local entry
  for entry in "${PEER_LIMITATIONS[@]}"; do
    if [ "${entry%%:*}" = "$1-$2" ] || [ "${entry%%:*}" = "$1-$2/$4" ]; then
      local rest=${entry#*:}
      if [ "${rest%%:*}" = "$3" ]; then
        echo "${rest#*:}"
        return
      fi
    fi
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listening() { # port pid
  local i
  for i in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# stop_server PID [LOG]: SIGTERM, then SIGKILL if it is still there after 5 s (a server
# stuck in its shutdown must not hang the matrix; LOG then says so).
stop_server() {
  local i
  kill "$1" 2>/dev/null
  for i in $(seq 1 50); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$1" 2>/dev/null; then
    kill -9 "$1" 2>/dev/null
    echo "interop: server $1 did not stop within 5 s of SIGTERM; killed${2:+ (log: $2)}" >&2
    [ -n "${2:-}" ] && echo "run-matrix: the server did not stop within 5 s of SIGTERM; killed" >>"$2"
  fi
  wait "$1" 2>/dev/null
}

server_pids=()
cleanup() {
  local pid
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${server_pids[@]}"; do stop_server "$pid"; done
}
trap cleanup EXIT

declare -A RESULT REASON TRANSPORT
columns=()

# run_pair CLIENT SERVER TRANSPORT: one client against one server, every case.
run_pair() {
  local client=$1 server=$2 transport=$3 col="$1->$2 ($3)"
  columns+=("$col")
  TRANSPORT[$col]=$transport
  local scmd ccmd
  scmd=$(server_cmd "$server")
  ccmd=$(client_cmd "$client")
  local run=() c why
  for c in "${CASES[@]}"; do
    why=$(limitation "$server" server "$c" "$transport")
    if [ -n "$why" ]; then
      RESULT[$col,$c]=SKIP
      REASON[$col,$c]="$server server: $why"
    else
      run+=("$c")
    fi
  done
  [ ${#run[@]} -eq 0 ] && return
  if [ -z "$scmd" ] || [ -z "$ccmd" ]; then
    for c in "${run[@]}"; do RESULT[$col,$c]=FAIL; REASON[$col,$c]="no binary for $client client / $server server"; done
    return
  fi
  local port pid log="$logs/${client}-client_${server}-server_${transport}"
  port=$(free_port)
  # shellcheck disable=SC2086,SC2046
  $scmd --port="$port" $(server_flags "$transport") >"$log.server.log" 2>&1 &
  pid=$!
  server_pids+=("$pid")
  if ! wait_listening "$port" "$pid"; then
    for c in "${run[@]}"; do RESULT[$col,$c]=FAIL; REASON[$col,$c]="$server server did not start (see $log.server.log)"; done
    stop_server "$pid" "$log.server.log"
    return
  fi
  local list
  list=$(IFS=,; echo "${run[*]}")
  # shellcheck disable=SC2086,SC2046
  timeout --kill-after=5 "$CLIENT_TIMEOUT" $ccmd --server_host=127.0.0.1 --server_port="$port" \
    --test_case="$list" $(client_flags "$transport") >"$log.client.log" 2>"$log.client.err"
  local rc=$?
  stop_server "$pid" "$log.server.log"
  local line verdict name rest
  while IFS= read -r line; do
    case "$line" in
      "PASS "* | "FAIL "* | "SKIP "*) ;;
      *) continue ;;
    esac
    verdict=${line%% *}
    rest=${line#* }
    name=${rest%%:*}
    case " ${run[*]} " in *" $name "*) ;; *) continue ;; esac
    RESULT[$col,$name]=$verdict
    REASON[$col,$name]=""
    [ "$rest" != "$name" ] && REASON[$col,$name]=${rest#*: }
    if [ "$verdict" = SKIP ] && [ -z "$(limitation "$client" client "$name" "$transport")" ]; then
      RESULT[$col,$name]=FAIL
      REASON[$col,$name]="undocumented SKIP: ${REASON[$col,$name]}"
    fi
  done <"$log.client.log"
  for c in "${run[@]}"; do
    if [ -z "${RESULT[$col,$c]:-}" ]; then
      RESULT[$col,$c]=FAIL
      if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        REASON[$col,$c]="client timed out after ${CLIENT_TIMEOUT}s"
      else
        REASON[$col,$c]="no result from the client (exit $rc; see $log.client.err)"
      fi
    fi
  done
}

# run_balanced POLICY SERVER...: our client against several peer servers at once, through
# one ipv4: target and the load-balancing policy given by --service_config_json (the
# channel's resolver, balancer and subchannels against real peers). Plaintext.
LB_CASES=(empty_unary large_unary client_streaming server_streaming ping_pong empty_stream
  custom_metadata status_code_and_message rpc_soak)
run_balanced() {
  local policy=$1; shift
  local names
  names=$(IFS=+; echo "$*")
  local col="ours->$names ($policy)" transport=plain
  columns+=("$col")
  TRANSPORT[$col]=$transport
  local addrs=() pids=() s port pid log="$logs/ours-client_${names}_${policy}"
  for s in "$@"; do
    port=$(free_port)
    # shellcheck disable=SC2086
    $(server_cmd "$s") --port="$port" >"$log.$s.server.log" 2>&1 &
    pid=$!
    server_pids+=("$pid")
    pids+=("$pid")
    wait_listening "$port" "$pid" || echo "interop: $s server did not start" >&2
    addrs+=("127.0.0.1:$port")
  done
  local c list
  list=$(IFS=,; echo "${LB_CASES[*]}")
  timeout --kill-after=5 "$CLIENT_TIMEOUT" "$ours_client" \
    --target="ipv4:$(IFS=,; echo "${addrs[*]}")" \
    --service_config_json="{\"loadBalancingConfig\":[{\"$policy\":{}}]}" \
    --test_case="$list" --soak_iterations="$SOAK_ITERATIONS" >"$log.client.log" 2>"$log.client.err"
  for pid in "${pids[@]}"; do stop_server "$pid"; done
  # "-": not run through the balancers (counted nowhere).
  for c in "${CASES[@]}"; do RESULT[$col,$c]=-; done
  for c in "${LB_CASES[@]}"; do
    RESULT[$col,$c]=FAIL
    REASON[$col,$c]="no result from the client (see $log.client.err)"
  done
  local line verdict name rest
  while IFS= read -r line; do
    case "$line" in "PASS "* | "FAIL "*) ;; *) continue ;; esac
    verdict=${line%% *}
    rest=${line#* }
    name=${rest%%:*}
    RESULT[$col,$name]=$verdict
    REASON[$col,$name]=""
    [ "$rest" != "$name" ] && REASON[$col,$name]=${rest#*: }
  done <"$log.client.log"
}

# run_own CASE PEER: one of our own cases (interop-client's OWN_CASES) against PEER's server,
# plaintext; listed after the tables, counted in the summary.
OWN=()
run_own() {
  local case=$1 server=$2 port pid line verdict="FAIL" why="no result from the client"
  local log="$logs/ours-client_${server}-server_${case}"
  port=$(free_port)
  # shellcheck disable=SC2086
  $(server_cmd "$server") --port="$port" >"$log.server.log" 2>&1 &
  pid=$!
  server_pids+=("$pid")
  wait_listening "$port" "$pid" || echo "interop: $server server did not start" >&2
  timeout --kill-after=5 "$CLIENT_TIMEOUT" "$ours_client" --server_host=127.0.0.1 \
    --server_port="$port" --test_case="$case" >"$log.client.log" 2>"$log.client.err"
  stop_server "$pid" "$log.server.log"
  while IFS= read -r line; do
    case "$line" in
      "PASS $case") verdict=PASS why="" ;;
      "FAIL $case: "*) why=${line#FAIL $case: } ;;
    esac
  done <"$log.client.log"
  OWN+=("$verdict ours->$server (own case) $case${why:+: $why}")
}

# run_own_peer_client CASE PEER: PEER's client runs one of the own cases its peer knows
# (client.py's OWN_CASES, the Go client's ownCases) against our server, plaintext; listed
# and counted as run_own's.
run_own_peer_client() {
  local case=$1 client=$2 port pid line verdict="FAIL" why="no result from the client"
  local log="$logs/${client}-client_ours-server_${case}"
  port=$(free_port)
  "$ours_server" --port="$port" >"$log.server.log" 2>&1 &
  pid=$!
  server_pids+=("$pid")
  wait_listening "$port" "$pid" || echo "interop: our server did not start" >&2
  # shellcheck disable=SC2046
  timeout --kill-after=5 "$CLIENT_TIMEOUT" $(client_cmd "$client") --server_host=127.0.0.1 \
    --server_port="$port" --test_case="$case" >"$log.client.log" 2>"$log.client.err"
  stop_server "$pid" "$log.server.log"
  while IFS= read -r line; do
    case "$line" in
      "PASS $case") verdict=PASS why="" ;;
      "FAIL $case: "*) why=${line#FAIL $case: } ;;
    esac
  done <"$log.client.log"
  OWN+=("$verdict $client->ours (own case) $case${why:+: $why}")
}

if [ $mode = ours ]; then
  for bin in "$ours_server" "$ours_client"; do
    [ -x "${bin%% *}" ] || { echo "interop: $bin is missing" >&2; exit 1; }
  done
  for t in "${TRANSPORTS[@]}"; do
    for p in "${PEERS[@]}"; do
      [ -n "$(server_cmd "$p")" ] && run_pair ours "$p" "$t"
    done
    for p in "${PEERS[@]}"; do
      run_pair "$p" ours "$t"
    done
  done
  # Our channel's balancers against two different peers' servers at once.
  lb_peers=()
  for p in "${PEERS[@]}"; do [ -n "$(server_cmd "$p")" ] && lb_peers+=("$p"); done
  if [ ${#lb_peers[@]} -ge 2 ] && [[ " ${TRANSPORTS[*]} " == *" plain "* ]]; then
    run_balanced round_robin "${lb_peers[0]}" "${lb_peers[1]}"
    run_balanced pick_first "${lb_peers[0]}" "${lb_peers[1]}"
  fi
  # Retries from a service config against grpcio, which fails the first attempts (our own
  # case and convention: interop/peers/python/server.py's x-retry-id / x-fail-first).
  if [[ " ${PEERS[*]} " == *" python "* ]] && [[ " ${TRANSPORTS[*]} " == *" plain "* ]]; then
    for case in retry_on_unavailable retry_bidi_on_unavailable hedging_past_a_stall; do
      run_own "$case" python
    done
  fi
  # google.rpc error details both ways (our own case and convention: interop/src/details.rs,
  # x-fail-with-details): grpcio (grpcio-status) and grpc-go (status.WithDetails) servers
  # send them to our client; their clients decode what our server sends.
  if [[ " ${TRANSPORTS[*]} " == *" plain "* ]]; then
    for p in python go; do
      [[ " ${PEERS[*]} " == *" $p "* ]] || continue
      run_own error_details "$p"
      run_own_peer_client error_details "$p"
    done
  fi
  # ---- health and reflection through the peers' own clients for them ----
  # interop/peers/python/health_reflection_check.py (grpcio-health-checking's stubs,
  # grpcio-reflection's descriptor database under a DescriptorPool, grpc.reflection.v1 stubs
  # from Debian's grpc-proto) and the Go peer's go-reflection-check (grpc-go's v1alpha
  # reflection and health clients, protodesc) against our server, plaintext; each check is
  # one PASS/FAIL line beside the own cases, counted in the summary.
  run_peer_check() { # PEER CHECK,CHECK,... COMMAND...: one run of COMMAND against our server
    local peer=$1 list=$2; shift 2
    local port pid line c why names=() what=health/reflection
    [[ $list == channelz* ]] && what=channelz
    local log="$logs/${peer}-checks-${what%%/*}_ours-server"
    local -A verdict=()
    port=$(free_port)
    "$ours_server" --port="$port" >"$log.server.log" 2>&1 &
    pid=$!
    server_pids+=("$pid")
    wait_listening "$port" "$pid" || echo "interop: our server did not start" >&2
    timeout --kill-after=5 "$CLIENT_TIMEOUT" "$@" --server_host=127.0.0.1 --server_port="$port" \
      >"$log.client.log" 2>"$log.client.err"
    local rc=$?
    stop_server "$pid" "$log.server.log"
    while IFS= read -r line; do
      case "$line" in "PASS "* | "FAIL "*) ;; *) continue ;; esac
      c=${line#* }
      c=${c%%:*}
      verdict[$c]=$line
    done <"$log.client.log"
    IFS=, read -r -a names <<<"$list"
    for c in "${names[@]}"; do
      line=${verdict[$c]:-"FAIL $c: no result from the check (exit $rc; see $log.client.err)"}
      why=${line#* }
      OWN+=("${line%% *} $peer->ours ($what check) $why")
    done
  }
  if [[ " ${TRANSPORTS[*]} " == *" plain "* ]]; then
    if [[ " ${PEERS[*]} " == *" python "* ]]; then
      run_peer_check python health_check,health_watch,reflection_v1alpha,reflection_v1 \
        "$py_venv/bin/python" "$root/interop/peers/python/health_reflection_check.py"
      # Channelz (grpcio-channelz's stubs): the service's answers, paging and NOT_FOUND;
      # with --wired=true also our server's own entries (its listen socket on the port, its
      # call and socket counters), which need the runtime to register them.
      run_peer_check python channelz_servers,channelz_top_channels,channelz_not_found \
        "$py_venv/bin/python" "$root/interop/peers/python/channelz_check.py" \
        --wired="${CHANNELZ_WIRED:-true}"
    fi
    if [[ " ${PEERS[*]} " == *" go "* ]]; then
      run_peer_check go reflection_v1alpha,health "$go_bin/go-reflection-check"
    fi
  fi
  # ---- end of health and reflection ----
else
  for t in "${TRANSPORTS[@]}"; do
    for cl in "${PEERS[@]}"; do
      for sv in "${PEERS[@]}"; do
        [ "$cl" = "$sv" ] && continue
        [ -n "$(server_cmd "$sv")" ] && run_pair "$cl" "$sv" "$t"
      done
    done
  done
fi

# ---- tables, one per transport -------------------------------------------------------
passed=0 failed=0 skipped=0
for t in "${TRANSPORTS[@]}"; do
  cols=()
  width=4
  for col in "${columns[@]}"; do
    [ "${TRANSPORT[$col]}" = "$t" ] || continue
    cols+=("$col")
    [ ${#col} -gt $width ] && width=${#col}
  done
  [ ${#cols[@]} -eq 0 ] && continue
  echo
  title=TLS
  [ "$t" = plain ] && title=plaintext
  echo "interop matrix over $title (client->server; ours = this repository's interop-client/interop-server)"
  printf '%-28s' "case"
  for col in "${cols[@]}"; do printf ' %-*s' "$width" "$col"; done
  echo
  for c in "${CASES[@]}"; do
    printf '%-28s' "$c"
    for col in "${cols[@]}"; do
      v=${RESULT[$col,$c]:-FAIL}
      printf ' %-*s' "$width" "$v"
      case $v in PASS) passed=$((passed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; -) ;; *) failed=$((failed + 1)) ;; esac
    done
    echo
  done
done

echo
for col in "${columns[@]}"; do
  for c in "${CASES[@]}"; do
    v=${RESULT[$col,$c]:-FAIL}
    [ "$v" = PASS ] || [ "$v" = - ] && continue
    echo "$v $col $c: ${REASON[$col,$c]:-}"
  done
done

# Coverage: with ours, each case must PASS in each direction against at least one peer,
# over each transport.
if [ $mode = ours ]; then
  for t in "${TRANSPORTS[@]}"; do
    for dir in client server; do
      for c in "${CASES[@]}"; do
        ok=0
        for col in "${columns[@]}"; do
          [ "${TRANSPORT[$col]}" = "$t" ] || continue
          pair=${col% (*}
          if { [ $dir = client ] && [ "${pair%%->*}" = ours ]; } || { [ $dir = server ] && [ "${pair##*->}" = ours ]; }; then
            [ "${RESULT[$col,$c]:-}" = PASS ] && ok=1
          fi
        done
        if [ $ok = 0 ]; then
          echo "FAIL coverage: $c never passed with our $dir against any peer over $t"
          failed=$((failed + 1))
        fi
      done
    done
  done
fi

for line in "${OWN[@]}"; do
  echo "$line"
  case $line in PASS*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
done

echo "logs: $logs"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
