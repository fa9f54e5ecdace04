#!/usr/bin/env bash
# What the kernel matrix runs on each kernel (inside its VM, or on the host):
#   1. `httpscope doctor` must say it can capture;
#   2. the seed's demo must be 80/80 on both sides (scripts/demo-check.sh);
#   3. the root tests listed in target/kernel-tests.list ("suite binary [test]" per line,
#      built on the host by scripts/kernels.sh matrix; a suite is a module of the root
#      test binary): one test, or the whole suite.
# A suite that needs a kernel feature this kernel lacks is skipped with a line that says
# so: Go TLS needs BPF attach cookies, which doctor reports.
# Prints one result line per step; exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

kernel="${HTTPSCOPE_KERNEL:-host} ($(uname -r))"
list=target/kernel-tests.list
failed=()
say() { echo "kernel-suite: $kernel: $*"; }

started=$SECONDS
doctor=$(./target/release/httpscope doctor 2>&1)
if grep -q "httpscope can capture on this machine" <<<"$doctor"; then
    say "doctor: can capture ($(grep -o "the [a-z]* object's [a-z]* backend" <<<"$doctor" | head -n 1))"
else
    say "doctor: FAILED"
    echo "$doctor"
    failed+=(doctor)
fi
grep -E "^\[(warn|FAIL)\]" <<<"$doctor" | sed "s/^/kernel-suite: $kernel: doctor: /"

if bash scripts/demo-check.sh; then
    say "demo: 80/80 on both sides"
else
    say "demo: FAILED"
    failed+=(demo)
fi

# Go programs the host's suites built are reused: a Go build takes minutes when emulated.
export CI="${CI:-true}" HTTPSCOPE_TEST_ATTACH_SECS="${HTTPSCOPE_TEST_ATTACH_SECS:-240}" \
    HTTPSCOPE_TEST_REUSE_GO_BUILDS=1
# The system's python3 ahead of version-manager shims: a shim looks through many files
# before it runs Python, and over the VM's uncached 9p root that took 17-70 s, past the
# tests' 60 s bound for a Python client.
if [[ "${HTTPSCOPE_KERNEL:-host}" != host && -x /usr/bin/python3 ]]; then
    export PATH="/usr/bin:$PATH"
fi
if [[ -f "$list" ]]; then
    while read -r suite binary test; do
        name=$suite${test:+::$test}
        if [[ "$suite" == go_tls ]] && grep -q "lacks BPF attach cookies" <<<"$doctor"; then
            say "$name: skipped: this kernel has no BPF attach cookies, Go TLS is off (doctor says so)"
            continue
        fi
        suite_started=$SECONDS
        # A suite is picked by its module path (no module's name ends with another's), a
        # test by its exact name. A filter that matched nothing would pass having run
        # nothing: a test must run, and a suite at least one.
        if [[ -n "$test" ]]; then
            filter=(--exact "$suite::$test") ran="1 passed"
        else
            filter=("$suite::") ran="[1-9][0-9]* passed"
        fi
        if output=$("$binary" --test-threads=1 "${filter[@]}" 2>&1) &&
            grep -qE "^test result: ok. $ran" <<<"$output"; then
            say "$name: $(grep -E '^test result' <<<"$output" | tail -n 1) ($((SECONDS - suite_started)) s)"
        else
            say "$name: FAILED ($((SECONDS - suite_started)) s)"
            echo "$output" | tail -n 60
            failed+=("$name")
        fi
    done <"$list"
else
    say "no $list: only doctor and the demo ran"
fi

say "done in $((SECONDS - started)) s; failed: ${failed[*]:-none}"
((${#failed[@]} == 0))
