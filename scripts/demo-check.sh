#!/usr/bin/env bash
# The seed's demo as a check: demo-server, httpscope record, demo-traffic (20 iterations
# of 4 requests), then every request and response must be logged on both sides, paired.
# Prints one line per side and exits non-zero unless both are 80/80.
# Uses the built binaries in target/release; extra arguments go to `httpscope record`.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release
iterations=20
expected=$((4 * iterations))
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # wait_for FILE PATTERN WHAT SECONDS
    for _ in $(seq 1 $((${4:-30} * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo-check: $3 did not start; its log:" >&2
    cat "$1" >&2
    exit 1
}

HTTP_PORT=$port "$bin/demo-server" >"$work/server.log" 2>&1 &
pids+=($!)
wait_for "$work/server.log" "listening on" demo-server

"$bin/httpscope" record --port "$port" --format json -o "$work/records.json" "$@" \
    2>"$work/httpscope.log" &
scope_pid=$!
pids+=("$scope_pid")
wait_for "$work/httpscope.log" "attached" httpscope 120

"$bin/demo-traffic" --port "$port" --requests "$iterations" --delay-ms 20 >"$work/traffic.log" 2>&1
sleep 1
kill -INT "$scope_pid"
wait "$scope_pid" || true

grep -E "WARN|attached" "$work/httpscope.log" | sed 's/^/httpscope: /' >&2 || true
status=0
for role in client server; do
    count() { # count KIND
        jq -c "select(.role == \"$role\" and .kind == \"$1\" and .exchange != null)" \
            "$work/records.json" | wc -l
    }
    requests=$(count request)
    responses=$(count response)
    echo "demo-check: $role requests $requests/$expected, responses $responses/$expected (kernel $(uname -r))"
    [[ $requests -eq $expected && $responses -eq $expected ]] || status=1
done
if ((status)); then
    echo "demo-check: httpscope's log:" >&2
    cat "$work/httpscope.log" >&2
fi
exit $status
