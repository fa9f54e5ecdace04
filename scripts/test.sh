#!/usr/bin/env bash
# Runs every test: unit, replay, and the root eBPF integration tests.
# Under CI=true a missing capability fails the integration tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
# The BPF C keeps the style of its .clang-format.
clang-format --dry-run --Werror crates/httpscope-capture/bpf/*.h crates/httpscope-capture/bpf/*.c
# Rust style and lints, the workspace and the fuzz crate beside it.
cargo fmt --all --check
(cd fuzz && cargo fmt --check)
cargo clippy --release --workspace --all-targets -- -D warnings
cargo build --release --workspace
# The container image (deploy/Dockerfile), which the DaemonSet test also builds and runs.
bash scripts/image.sh --no-build
# The Kubernetes manifests and the systemd unit, offline.
bash scripts/check-deploy.sh
# Every test; the root eBPF tests capture with the socket backend (sock_send_length/...).
HTTPSCOPE_TEST_BACKEND=socket cargo test --release --workspace -- --test-threads=1
# The capture-sensitive root suites again on the syscall backend (sys_exit), the one
# kernels without the socket tracepoints use.
# A suite is a module of the root test binary, picked by its path.
HTTPSCOPE_TEST_BACKEND=syscall cargo test --release -p httpscope --test root -- \
  matrix_clients:: matrix_servers:: matrix_situations:: matrix_nonhttp:: matrix_h2:: \
  openssl:: tls_budget:: go_tls:: gnutls:: node_tls:: rustls:: faults:: backends:: \
  all_ports:: containers:: accounting:: reused_socks:: metrics_mode:: --test-threads=1
# The kernel matrix: doctor, the seed's demo and a subset of the root suites on Debian's
# 5.10, 6.1 and 6.12 (each in an emulated VM) and on this machine's kernel.
bash scripts/kernels.sh fetch
bash scripts/kernels.sh matrix
bash fuzz/run.sh 20
bash bench/run.sh --no-build --smoke --out "$(mktemp -d)"
