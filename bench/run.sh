#!/usr/bin/env bash
# httpscope overhead benchmark. As root:
#   bash bench/run.sh                 # full: 5 alternated untraced/traced pairs per workload, ~8 min
#   bash bench/run.sh --smoke         # each workload once, 1 s runs (CI); no timing asserts
#   bash bench/run.sh --workloads keepalive-demo,resp-16k --pairs 7 --out /tmp/bench
#   bash bench/run.sh --no-build ...  # don't run cargo build first
#   bash bench/run.sh --startstop 5   # start/stop of record --all-ports with every TLS hook attached
#   bash bench/run.sh --tls-zoo ...   # the workloads with a TLS server of each kind running
#   bash bench/run.sh --ab OTHER_BINARY --workloads resp-16k   # this build against another, alternated
# Writes results.json and results.md to --out (default bench/results/).
# Exits non-zero only when the harness breaks (a workload fails to run,
# httpscope fails to attach...), never because of a measured figure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "bench/run.sh: run as root (BPF programs, kernel.bpf_stats_enabled)" >&2
    exit 2
fi

build=1
args=()
for arg in "$@"; do
    if [[ "$arg" == "--no-build" ]]; then build=0; else args+=("$arg"); fi
done

export PATH="$HOME/.cargo/bin:$PATH"
if (( build )); then
    cargo build --release --workspace --quiet
fi

# rss-10k holds 10,000 connections: client and server each need > 10k fds.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec python3 bench/overhead.py "${args[@]}"
