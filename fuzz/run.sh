#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60): fuzz/run.sh [SECONDS] [TARGET...]
# Needs only stable Rust: RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz passes.
# No sanitizer: httpscope-core is safe Rust, so the bugs to find are panics and broken
# invariants (debug assertions and overflow checks are on); this runs several times faster.
# A crash stops with its input under fuzz/artifacts/<target>/; copy it to
# crates/httpscope-core/tests/fuzz_regressions/<target>/ so the regression test keeps it.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode http_engine h2 eventlog)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# Starting corpora from the replay fixtures; the fuzzer keeps growing them in corpus/.
cargo run --quiet --release --bin seeds -- corpus
regressions=../crates/httpscope-core/tests/fuzz_regressions

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    # Known nasty inputs are seeds too.
    if [ -d "$regressions/$target" ]; then
        cp -f "$regressions/$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    echo "== fuzzing $target for ${seconds}s"
    cargo fuzz run --release --debug-assertions --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -dict=http.dict -max_len=16384 -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1
done
