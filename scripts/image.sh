#!/usr/bin/env bash
# Builds the httpscope OCI image with podman, without any registry: the release binary
# (debug info stripped), the C libraries ldd lists for it, and its man page and shell
# completions are staged as the build context of deploy/Dockerfile (FROM scratch).
#   scripts/image.sh [--no-build] [TAG]     TAG defaults to localhost/httpscope:VERSION
# HTTPSCOPE_BINARY picks another binary than target/release/httpscope (with --no-build).
# Prints the image's name and size. Push it with `podman push TAG REGISTRY/...`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

build=1
[[ "${1:-}" == "--no-build" ]] && { build=0; shift; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
tag="${1:-localhost/httpscope:$version}"

(( build )) && cargo build --release -p httpscope
binary=${HTTPSCOPE_BINARY:-target/release/httpscope}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"

objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/httpscope"
# The dynamic loader and libraries, each at the path the binary asks for (cp follows
# symlinks: the image gets the files themselves).
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done

"$binary" generate man --out "$rootfs/usr/local/share/man/man1"
"$binary" generate completions --out "$rootfs/usr/local/share"

podman --runtime runc --cgroup-manager cgroupfs build --quiet \
    --label "org.opencontainers.image.version=$version" \
    -f deploy/Dockerfile -t "$tag" "$context" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "$tag $(( size / 1000000 )) MB"
