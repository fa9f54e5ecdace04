#!/usr/bin/env bash
# Replays every fixture event file in logfmt and JSON and compares the outputs (records on
# stdout, summary on stderr) with those of another build: a change that must not alter
# behaviour leaves them byte-identical. Needs no root.
#
#   scripts/replay-check.sh REV            build REV in a scratch worktree and compare with it
#   scripts/replay-check.sh save DIR       write this build's outputs to DIR
#   scripts/replay-check.sh compare DIR    compare this build's outputs with those in DIR
#
# "This build" is target/release/httpscope (or $HTTPSCOPE_BIN): run
# `cargo build --release -p httpscope` first. REV builds into target/replay-check, seeded
# from target/release on the first run so that dependencies are not compiled again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fixtures="$root/crates/httpscope-core/tests/fixtures"
bin=${HTTPSCOPE_BIN:-$root/target/release/httpscope}

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# replay_all BINARY DIR: one stdout and one stderr file per fixture and format.
replay_all() {
    local binary=$1 dir=$2 events name format
    mkdir -p "$dir"
    for events in "$fixtures"/*.events; do
        name=$(basename "$events" .events)
        for format in logfmt json; do
            # A clean environment: OUTPUT_PATH, OTEL_* and the like would change the outputs.
            env -i PATH="$PATH" "$binary" replay --format "$format" "$events" \
                >"$dir/$name.$format" 2>"$dir/$name.$format.stderr"
        done
    done
}

# compare EXPECTED ACTUAL: diff -r, with a count of the files compared.
compare() {
    local expected=$1 actual=$2 files
    files=$(find "$expected" -type f | wc -l)
    if [ "$files" -eq 0 ]; then
        echo "no outputs in $expected" >&2
        exit 1
    fi
    if diff -r "$expected" "$actual"; then
        echo "replay-check: $files outputs byte-identical ($(ls "$fixtures"/*.events | wc -l) fixtures, logfmt and json)"
    else
        echo "replay-check: outputs differ" >&2
        exit 1
    fi
}

# build_rev REV: prints the path of REV's httpscope binary.
build_rev() {
    local rev=$1 target="$root/target/replay-check" tree
    tree="$target/tree"
    if [ ! -d "$target/release" ]; then
        mkdir -p "$target"
        cp -a "$root/target/release" "$target/release"
    fi
    git -C "$root" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
    git -C "$root" worktree add --quiet --detach "$tree" "$rev" >&2
    cargo build --release --quiet -p httpscope --bin httpscope \
        --manifest-path "$tree/Cargo.toml" --target-dir "$target" >&2
    git -C "$root" worktree remove --force "$tree"
    echo "$target/release/httpscope"
}

[ $# -ge 1 ] || usage
if [ ! -x "$bin" ]; then
    echo "$bin missing: cargo build --release -p httpscope" >&2
    exit 1
fi
case $1 in
save)
    [ $# -eq 2 ] || usage
    replay_all "$bin" "$2"
    ;;
compare)
    [ $# -eq 2 ] || usage
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    replay_all "$bin" "$scratch"
    compare "$2" "$scratch"
    ;;
-h | --help) usage ;;
*)
    [ $# -eq 1 ] || usage
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    base=$(build_rev "$1")
    replay_all "$base" "$scratch/base"
    replay_all "$bin" "$scratch/this"
    compare "$scratch/base" "$scratch/this"
    ;;
esac
