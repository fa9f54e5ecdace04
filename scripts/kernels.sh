#!/usr/bin/env bash
# Kernel matrix runner: runs a command on Debian's 5.10, 6.1 and 6.12 kernels, each
# booted in a qemu VM (virtme-ng, no KVM), or on the host's own kernel.
#
#   scripts/kernels.sh fetch [--refresh] [KERNEL...]   download and cache kernels and tools
#   scripts/kernels.sh list                            kernels and the versions cached
#   scripts/kernels.sh run KERNEL [OPTIONS] -- CMD...  run CMD as root on KERNEL
#   scripts/kernels.sh matrix [--all] [KERNEL...]      scripts/kernel-suite.sh on each kernel
#
# KERNEL is 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie) or host. See docs/kernels.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${HTTPSCOPE_KERNELS_DIR:-/var/cache/httpscope-kernels}
vng_version=1.42
# The kernels booted in a VM, each pinned to a Debian suite (newest kernel in the suite).
declare -A suite_of=([5.10]=bullseye [6.1]=bookworm [6.12]=trixie)
vm_kernels=(5.10 6.1 6.12)
all_kernels=("${vm_kernels[@]}" host)

# Modules that udev would load for qemu's emulated q35 devices and CPU features. Without
# KVM each load costs seconds (decompression and signature checks run emulated) and
# httpscope needs none of them; an explicit `modprobe NAME` still loads them.
unneeded_modules=(kvm kvm_amd kvm_intel ahci libahci libata sr_mod cdrom sg iTCO_wdt
    iTCO_vendor_support intel_pmc_bxt i6300esb lpc_ich i2c_i801 i2c_smbus psmouse pcspkr
    serio_raw evdev button qemu_fw_cfg aesni_intel ghash_clmulni_intel crypto_simd cryptd
    glue_helper powernow_k8 acpi_cpufreq crct10dif_pclmul crc32_pclmul crc32c_intel)

say() { echo "kernels.sh: $*" >&2; }
# run_vm's exit code when the guest failed to boot before the command started.
boot_failed=75
die() { say "$*"; exit 2; }

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

is_kernel() {
    local k
    for k in "${all_kernels[@]}"; do [[ "$1" == "$k" ]] && return 0; done
    return 1
}

# --- fetch -------------------------------------------------------------------------

install_tools() {
    # qemu emulates the VM; virtme-ng (vng) boots a kernel on a read-only view of this
    # machine's root; it needs busybox (its initramfs), kmod (depmod), file (to read the
    # kernel's version) and udev (the guest's udev names the ports that carry the
    # command's stdout, stderr and exit code).
    local -A need=([qemu-system-x86_64]=qemu-system-x86 [busybox]=busybox-static
        [depmod]=kmod [file]=file [udevadm]=udev)
    local cmd missing=()
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null || PATH="$PATH:/sbin:/usr/sbin" command -v "$cmd" >/dev/null ||
            missing+=("${need[$cmd]}")
    done
    if (( ${#missing[@]} )); then
        [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}: run this as root to install them"
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
            apt-get update -q >&2
            apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
        }
    fi
    if ! command -v vng >/dev/null; then
        if ! python3 -m pip --version >/dev/null 2>&1; then
            [[ $(id -u) -eq 0 ]] || die "missing python3-pip: run this as root to install it"
            say "installing python3-pip"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pip >&2
        fi
        say "installing virtme-ng $vng_version (pip)"
        python3 -m pip install --quiet "virtme-ng==$vng_version" >&2 ||
            python3 -m pip install --quiet --break-system-packages "virtme-ng==$vng_version" >&2
        hash -r
        command -v vng >/dev/null || die "virtme-ng is installed but vng is not on PATH ($PATH)"
    fi
}

# The Debian mirror this machine's apt already uses (first .../debian URI), else Debian's.
debian_mirror() {
    if [[ -n "${HTTPSCOPE_KERNELS_MIRROR:-}" ]]; then
        echo "${HTTPSCOPE_KERNELS_MIRROR%/}"
        return
    fi
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
            2>/dev/null | grep -v '^[[:space:]]*#' |
          grep -oE 'https?://[^[:space:]]+/debian/?([[:space:]]|$)' | head -n 1 | tr -d '[:space:]') || true
    uri=${uri:-http://deb.debian.org/debian}
    echo "${uri%/}"
}

# apt-get/apt-cache on a private sources list, lists and cache: the host's apt sources
# and lists are neither read nor changed, and nothing is installed.
apt_private() {
    local tool=$1 suite=$2
    shift 2
    local dir="$cache/apt/$suite"
    "$tool" -q \
        -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" \
        -o APT::Architectures=amd64 -o APT::Architecture=amd64 -o Acquire::Languages=none \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
        "$@"
}

fetch_kernel() {
    local name=$1 refresh=$2 suite=${suite_of[$1]}
    local dir="$cache/$suite"
    if [[ -f "$dir/kernel.env" && $refresh -eq 0 ]]; then
        # shellcheck source=/dev/null
        source "$dir/kernel.env"
        say "$name: cached ($PACKAGE $VERSION)"
        return
    fi
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -r "$keyring" ]] || die "$keyring is missing (apt-get install debian-archive-keyring)"
    mkdir -p "$cache/apt/$suite/lists/partial" "$cache/apt/$suite/cache/archives/partial"
    echo "deb [signed-by=$keyring] $(debian_mirror) $suite main" >"$cache/apt/$suite/sources.list"
    say "$name: reading $suite's package list from $(debian_mirror)"
    apt_private apt-get "$suite" update >&2
    # linux-image-amd64 depends on the suite's newest generic kernel (vmlinuz + modules).
    local package
    package=$(apt_private apt-cache "$suite" show linux-image-amd64 |
              sed -n 's/^Depends: \(linux-image-[^ ,]*-amd64\).*/\1/p' | head -n 1)
    [[ -n "$package" ]] || die "$name: no linux-image-amd64 in $suite"
    if [[ -f "$dir/kernel.env" ]] && grep -qx "PACKAGE=$package" "$dir/kernel.env" &&
       grep -qx "VERSION=$(apt_private apt-cache "$suite" show "$package" |
                          sed -n 's/^Version: //p' | head -n 1)" "$dir/kernel.env"; then
        say "$name: $package is already the newest in $suite"
        return
    fi
    local work
    work=$(mktemp -d "$cache/.fetch.XXXXXX")
    # shellcheck disable=SC2064 # this fetch's folder, now
    trap "rm -rf $(printf %q "$work")" EXIT
    chmod 755 "$work"
    mkdir "$work/download"
    chown _apt "$work/download" 2>/dev/null || true   # apt downloads as _apt when it can
    say "$name: downloading $package"
    (cd "$work/download" && apt_private apt-get "$suite" download "$package" >&2)
    local deb
    deb=$(ls "$work"/download/*.deb)
    say "$name: unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$work/root"
    local vmlinuz release
    vmlinuz=$(find "$work/root/boot" -name 'vmlinuz-*' | head -n 1)
    [[ -n "$vmlinuz" ]] || die "$name: $package has no /boot/vmlinuz"
    release=${vmlinuz##*/vmlinuz-}
    # Newer packages ship /usr/lib/modules only: give the tree the /lib of a merged /usr,
    # where virtme-ng looks for the modules that belong to the kernel image.
    [[ -e "$work/root/lib" ]] || ln -s usr/lib "$work/root/lib"
    [[ -d "$work/root/lib/modules/$release" ]] || die "$name: $package has no modules for $release"
    depmod -a -b "$work/root" "$release"
    cat >"$work/kernel.env" <<EOF
NAME=$name
SUITE=$suite
PACKAGE=$package
VERSION=$(dpkg-deb -f "$deb" Version)
RELEASE=$release
EOF
    rm -rf "$work/download"
    rm -rf "$dir.old"
    [[ -e "$dir" ]] && mv "$dir" "$dir.old"
    mv "$work" "$dir"
    trap - EXIT
    rm -rf "$dir.old"
    say "$name: cached in $dir ($release)"
}

cmd_fetch() {
    local refresh=0 names=()
    while (( $# )); do
        case $1 in
            --refresh) refresh=1 ;;
            host) ;;
            5.10|6.1|6.12) names+=("$1") ;;
            *) die "fetch: unknown kernel or option '$1'" ;;
        esac
        shift
    done
    (( ${#names[@]} )) || names=("${vm_kernels[@]}")
    install_tools
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    rm -rf "$cache"/.fetch.*   # what an interrupted fetch left
    local name
    for name in "${names[@]}"; do fetch_kernel "$name" "$refresh"; done
    exec 9>&-
}

# --- list --------------------------------------------------------------------------

cmd_list() {
    local name
    for name in "${vm_kernels[@]}"; do
        local env="$cache/${suite_of[$name]}/kernel.env"
        if [[ -f "$env" ]]; then
            # shellcheck source=/dev/null
            (source "$env"; printf '%-5s %-9s %-24s %s\n' "$name" "$SUITE" "$RELEASE" "$PACKAGE=$VERSION")
        else
            printf '%-5s %-9s %s\n' "$name" "${suite_of[$name]}" "(not fetched: scripts/kernels.sh fetch $name)"
        fi
    done
    printf '%-5s %-9s %-24s %s\n' host - "$(uname -r)" "(this machine's kernel, no VM)"
}

# --- run ---------------------------------------------------------------------------

# The variables a command sees in the VM, as on the host.
passed_env() {
    local var
    for var in $(compgen -e); do
        case $var in
            PATH|HOME|LANG|LC_ALL|TZ|CI|RUST_BACKTRACE|RUST_LOG|HTTPSCOPE_*)
                printf 'export %s=%q\n' "$var" "${!var}" ;;
        esac
    done
}

# Runs CMD under a timeout and returns its status. timeout puts CMD in a process group of
# its own, out of reach of the terminal's Ctrl-C: an INT or TERM here stops it (a VM too).
supervised_pid=
interrupted=0
supervise() {
    local timeout_s=$1
    shift
    timeout --kill-after=10 "$timeout_s" "$@" &
    supervised_pid=$!
    trap 'interrupted=1; kill -TERM "$supervised_pid" 2>/dev/null || true' INT TERM
    local status
    while :; do
        status=0
        wait "$supervised_pid" || status=$?
        kill -0 "$supervised_pid" 2>/dev/null || break
    done
    trap - INT TERM
    return "$status"
}

run_host() {
    local timeout_s=$1
    shift
    say "host: running on $(uname -sr) $(uname -v)"
    local start=$SECONDS rc=0
    HTTPSCOPE_KERNEL=host supervise "$timeout_s" "$@" || rc=$?
    if (( interrupted )); then
        say "host: interrupted"
        rc=130
    elif (( rc == 124 || rc == 137 )); then
        say "host: timed out after ${timeout_s}s"
    fi
    say "host: exit $rc after $(( SECONDS - start ))s"
    return "$rc"
}

run_vm() {
    local name=$1 timeout_s=$2 memory=$3 cpus=$4 scratch=$5
    shift 5
    local -a extra_dirs=()
    while [[ $1 != -- ]]; do extra_dirs+=("$1"); shift; done
    shift
    local env="$cache/${suite_of[$name]}/kernel.env"
    [[ -f "$env" ]] || cmd_fetch "$name"
    install_tools
    local SUITE PACKAGE VERSION RELEASE
    # shellcheck source=/dev/null
    source "$env"
    local root="$cache/$SUITE/root"

    local path
    for path in "$scratch" "$repo" "${HOME:-}" "$cache" "$PWD" "${extra_dirs[@]}"; do
        # vng passes them on in a command line of its own, split at whitespace.
        [[ "$path" != *[[:space:]]* ]] || die "$name: vng cannot share a path with spaces: '$path'"
    done
    mkdir -p "$scratch"
    scratch=$(cd "$scratch" && pwd)
    local ctl
    ctl=$(mktemp -d "$scratch/.kernels-run.XXXXXX")
    # shellcheck disable=SC2064 # this run's folder, now
    trap "rm -rf $(printf %q "$ctl")" EXIT
    {
        echo '#!/usr/bin/env bash'
        passed_env
        printf 'export HTTPSCOPE_KERNEL=%q HTTPSCOPE_SCRATCH=%q\n' "$name" "$scratch"
        printf 'cwd=%q exit_code=%q started=%q\n' "$PWD" "$ctl/exit-code" "$ctl/started"
        printf 'cmd=(%s)\n' "$(printf '%q ' "$@")"
        cat <<'EOF'
echo "kernels.sh: $HTTPSCOPE_KERNEL: running on $(uname -sr) $(uname -v)" >&2
: >"$started"
# virtme-ng mounts /proc, /sys, debugfs and tracefs and brings lo up; the rest of what
# httpscope's tests expect of a machine:
ip link set lo up 2>/dev/null || true
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
cd "$cwd" || exit 125
"${cmd[@]}"
rc=$?
echo "$rc" >"$exit_code"
exit "$rc"
EOF
    } >"$ctl/guest.sh"

    # The host's root is the guest's, read-only. The repository and $HOME are writable in
    # the guest (tests build and cache there) but the writes stay in the guest's memory;
    # only the scratch folder (and --rwdir folders) are written through to the host.
    local -a vng_args=(--disable-kvm --force-9p --run "$root/boot/vmlinuz-$RELEASE"
        --cpus "$cpus" --memory "$memory" --rwdir="$scratch"
        --append "modprobe.blacklist=$(IFS=,; echo "${unneeded_modules[*]}") ${HTTPSCOPE_KERNELS_APPEND:-}")
    if [[ -d "${HOME:-}" && "$HOME" != / ]]; then
        vng_args+=(--overlay-rwdir="$HOME")
        [[ "$repo/" == "$HOME/"* ]] || vng_args+=(--overlay-rwdir="$repo")
    else
        vng_args+=(--overlay-rwdir="$repo")
    fi
    # The kernel's messages (from when its virtio console starts: oopses, hung tasks, init's
    # log) go to a file beside the results; HTTPSCOPE_KERNELS_VERBOSE=1 shows the whole boot
    # console on stderr instead.
    local console="$scratch/kernel-console.log"
    rm -f "$console"
    if [[ -n "${HTTPSCOPE_KERNELS_VERBOSE:-}" ]]; then
        vng_args+=(--verbose)
    else
        vng_args+=(--qemu-opts="-chardev file,id=kcon,path=$console -device virtio-serial-pci"
                   --qemu-opts="-device virtconsole,chardev=kcon" --append "console=hvc0 loglevel=7")
    fi
    local dir
    for dir in "${extra_dirs[@]}"; do vng_args+=(--rwdir="$dir"); done

    say "$name: booting $RELEASE ($PACKAGE $VERSION), $cpus vCPUs, $memory, timeout ${timeout_s}s"
    local start=$SECONDS rc=0
    # qemu opens its stdout and stderr again by path, truncating them if they are files:
    # pipes keep a caller's redirection to a file intact.
    local out_fd out_pid err_fd err_pid
    exec {out_fd}> >(cat)
    out_pid=$!
    exec {err_fd}> >(cat >&2)
    err_pid=$!
    supervise "$timeout_s" vng "${vng_args[@]}" --exec "bash $ctl/guest.sh" \
        </dev/null 1>&"$out_fd" 2>&"$err_fd" || rc=$?
    exec {out_fd}>&- {err_fd}>&-
    wait "$out_pid" "$err_pid" || true
    local elapsed=$(( SECONDS - start ))
    if (( interrupted )); then
        say "$name: interrupted"
        rc=130
    elif [[ -f "$ctl/exit-code" ]]; then
        rc=$(cat "$ctl/exit-code")
    elif (( rc == 124 || rc == 137 )); then
        say "$name: timed out after ${timeout_s}s"
        rc=124
    else
        say "$name: the VM stopped before the command finished (vng exit $rc); the end of its console:"
        [[ -f "$console" ]] && tail -n 40 "$console" >&2
        (( rc != 0 )) || rc=125
        # The guest never reached the command: its boot failed (an emulated CPU
        # occasionally trips a kernel at boot), which another boot may not.
        [[ -f "$ctl/started" ]] || rc=$boot_failed
    fi
    rm -rf "$ctl"
    say "$name: exit $rc after ${elapsed}s (boot + command)"
    return "$rc"
}

cmd_run() {
    (( $# )) || usage
    local name=$1
    shift
    is_kernel "$name" || die "run: unknown kernel '$name' (one of: ${all_kernels[*]})"
    local timeout_s=${HTTPSCOPE_KERNELS_TIMEOUT:-1800}
    local memory=${HTTPSCOPE_KERNELS_MEMORY:-2G} cpus=${HTTPSCOPE_KERNELS_CPUS:-2}
    local scratch=${HTTPSCOPE_KERNELS_SCRATCH:-$repo/target/kernels/$name}
    local -a rwdirs=()
    while (( $# )); do
        [[ $1 != --?* || $1 == -- || $# -ge 2 ]] || die "run: $1 needs a value"
        case $1 in
            --timeout) timeout_s=$2; shift 2 ;;
            --memory) memory=$2; shift 2 ;;
            --cpus) cpus=$2; shift 2 ;;
            --scratch) scratch=$2; shift 2 ;;
            --rwdir) mkdir -p "$2"; rwdirs+=("$(cd "$2" && pwd)"); shift 2 ;;
            --) shift; break ;;
            *) die "run: unknown option '$1' (the command goes after --)" ;;
        esac
    done
    (( $# )) || die "run: no command (scripts/kernels.sh run $name -- CMD...)"
    [[ $timeout_s =~ ^[0-9]+$ ]] || die "run: --timeout takes seconds, not '$timeout_s'"
    if [[ $name == host ]]; then
        mkdir -p "$scratch"
        HTTPSCOPE_SCRATCH=$(cd "$scratch" && pwd) run_host "$timeout_s" "$@"
        return
    fi
    local boot rc
    for boot in 1 2 3; do
        rc=0
        run_vm "$name" "$timeout_s" "$memory" "$cpus" "$scratch" "${rwdirs[@]}" -- "$@" || rc=$?
        (( rc == boot_failed )) || return "$rc"
        say "$name: boot $boot of 3 failed before the command started"
    done
    return "$rc"
}

# The root tests scripts/kernel-suite.sh runs on each kernel: built here, run inside. The
# subset CI runs, as suite:test, a suite being a module of the root test binary (each test
# starts programs that an emulated CPU runs slowly: a test takes 30-120 s in a VM): the
# HTTP/1 client and server matrix, HTTP/2 (cleartext and TLS), OpenSSL, Go TLS, rustls,
# a clean stop, and --all-ports. Tests that need a load generator's throughput (wrk) or a python
# server's start within seconds fail there for the emulation's sake, not the capture's:
# they run on this machine's kernel only.
matrix_tests=(matrix_clients:curl_keepalive_and_separate_invocations
    matrix_clients:ab_new_connection_per_request
    matrix_servers:nginx_writev_keepalive_against_access_log
    matrix_servers:demo_server_under_demo_traffic_load
    matrix_h2:nghttpd_h2c_with_curl_and_nghttp matrix_h2:nghttpd_tls_with_curl_and_nghttp
    openssl:curl_and_python_against_nginx_tls go_tls:curl_against_a_go_server
    rustls:clients_against_the_aws_lc_rs_server
    faults:sigint_and_sigterm_drain_and_write_every_record_whole all_ports)
# `--all`: every test of every capture suite.
all_tests=(matrix_clients matrix_servers matrix_situations matrix_nonhttp matrix_h2
    h2_situations openssl go_tls gnutls node_tls rustls faults backends all_ports demo_e2e)

# build_tests SUITE[:TEST]... -> target/kernel-tests.list, "suite binary [test]" per line
build_tests() {
    local entry binary
    say "building the root test binary"
    binary=$(cd "$repo" && cargo build --release --workspace >&2 &&
        cargo test --release -p httpscope --test root --no-run --message-format=json |
        jq -r 'select(.reason == "compiler-artifact" and .executable != null
                      and .target.kind == ["test"] and .target.name == "root") | .executable')
    [[ -n "$binary" ]] || die "cargo named no root test binary"
    for entry in "$@"; do
        printf '%s %s' "${entry%%:*}" "$binary"
        [[ $entry == *:* ]] && printf ' %s' "${entry#*:}"
        printf '\n'
    done >"$repo/target/kernel-tests.list"
}

# matrix [--all] [KERNEL...]: scripts/kernel-suite.sh on each kernel (default: all four),
# one VM at a time; a line per kernel at the end, and the exit code of the worst.
cmd_matrix() {
    local tests=("${matrix_tests[@]}") kernels=() k rc=0 start
    local -a results=()
    while (( $# )); do
        case $1 in
            --all) tests=("${all_tests[@]}"); shift ;;
            *) is_kernel "$1" || die "matrix: unknown kernel '$1'"; kernels+=("$1"); shift ;;
        esac
    done
    (( ${#kernels[@]} )) || kernels=("${all_kernels[@]}")
    build_tests "${tests[@]}"
    for k in "${kernels[@]}"; do
        start=$SECONDS
        if cmd_run "$k" -- bash "$repo/scripts/kernel-suite.sh"; then
            results+=("$k: passed in $((SECONDS - start)) s (boot included)")
        else
            rc=1
            results+=("$k: FAILED after $((SECONDS - start)) s")
        fi
    done
    printf 'kernels.sh: matrix: %s\n' "${results[@]}" >&2
    return $rc
}

case ${1:-} in
    fetch) shift; cmd_fetch "$@" ;;
    list) shift; cmd_list ;;
    run) shift; cmd_run "$@" ;;
    matrix) shift; cmd_matrix "$@" ;;
    -h|--help|help|'') usage ;;
    *) die "unknown command '$1' (fetch, list, run, matrix)" ;;
esac
