#!/usr/bin/env bash
# Runs every test: unit, replay, and the root eBPF integration tests.
# Under CI=true a missing capability fails the integration tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace
cargo test --release --workspace -- --test-threads=1
bash fuzz/run.sh 20
bash bench/run.sh --no-build --smoke --out "$(mktemp -d)"
