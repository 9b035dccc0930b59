#!/usr/bin/env bash
# Soak: a mixed load against our interop-server for SOAK_SECONDS (default 600), printing the
# server's RSS every 10 s and one closing SOAK line (interop/src/bin/interop-soak.rs says
# what runs). Exits non-zero if a well-formed call failed, or if the RSS grew more than
# SOAK_MAX_GROWTH_MIB (default 64) between the first 10 s and the end.
#
#   bash benchmark/soak/run.sh            # 10 minutes, 16 workers
#   SOAK_SECONDS=60 SOAK_WORKERS=32 bash benchmark/soak/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${SOAK_SECONDS:-600}
workers=${SOAK_WORKERS:-16}
max_growth=${SOAK_MAX_GROWTH_MIB:-64}

cargo build --release --quiet -p interop --bin interop-server --bin interop-soak
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
RUST_LOG=${RUST_LOG:-warn} target/release/interop-server --port="$port" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

out=$(target/release/interop-soak --server_port="$port" --seconds="$seconds" \
  --workers="$workers" --server_pid="$server" | tee /dev/stderr | tail -1) || {
  echo "soak: a well-formed call failed" >&2
  exit 1
}
if ! kill -0 "$server" 2>/dev/null; then
  echo "soak: the server died" >&2
  exit 1
fi
echo "server log lines (warn and up): $(wc -l <"$log")"
python3 - "$out" "$max_growth" <<'PY'
import sys
fields = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
growth = float(fields["rss_mib_last"]) - float(fields["rss_mib_after_10s"])
print(f"rss growth after the first 10 s: {growth:+.1f} MiB (max {fields['rss_mib_max']} MiB)")
sys.exit(1 if growth > float(sys.argv[2]) else 0)
PY
