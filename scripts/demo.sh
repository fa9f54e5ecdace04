#!/usr/bin/env bash
# The demo: builds everything, starts demo-server on :8080, attaches httpscope,
# runs demo-traffic, then stops httpscope. Records land in output/ebpf_http.log
# (appended to); the summary is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace

export HTTP_PORT="${HTTP_PORT:-8080}"
export TOTAL_REQUESTS="${TOTAL_REQUESTS:-20}"
export REQUEST_DELAY_MS="${REQUEST_DELAY_MS:-100}"
log_dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # wait_for FILE PATTERN WHAT
    for _ in $(seq 1 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: $3 did not start; its log:" >&2
    cat "$1" >&2
    exit 1
}

./target/release/demo-server >"$log_dir/server.log" 2>&1 &
pids+=($!)
wait_for "$log_dir/server.log" "listening on" demo-server

./target/release/httpscope record 2>"$log_dir/httpscope.log" &
scope_pid=$!
pids+=("$scope_pid")
wait_for "$log_dir/httpscope.log" "attached" httpscope

./target/release/demo-traffic
sleep 0.5
kill -INT "$scope_pid"
wait "$scope_pid" || true

echo
echo "== httpscope log and summary =="
cat "$log_dir/httpscope.log"
echo
echo "== last records in ${OUTPUT_PATH:-output/ebpf_http.log} =="
tail -n 8 "${OUTPUT_PATH:-output/ebpf_http.log}"
