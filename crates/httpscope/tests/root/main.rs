//! The integration suites of the httpscope executable, linked as one test binary. Most
//! load BPF programs and need root; run them one at a time, a suite by its module path:
//! `cargo test --release -p httpscope --test root -- go_tls:: --test-threads=1`.
//! A module path is a substring filter, so no module's name ends with another's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hardening;
mod support;

// Counted exactly: every connection on a watched port reported or skipped for a reason.
mod accounting;
// `--all-ports`: HTTP/1 and h2c on unannounced ports kept, other TCP dropped.
mod all_ports;
// Each capture backend forced by name attaches only its own programs.
mod backends;
// The command's error paths: privileges, output, doctor.
mod cli_errors;
// Container identity against podman.
mod containers;
// The image run as the DaemonSet runs it, and each missing capability named.
mod daemonset;
// The README demo end to end.
mod demo_e2e;
// Signals, `kill -9`, a full disk, two profilers side by side.
mod faults;
// HTTPS plaintext from GnuTLS.
mod gnutls;
// HTTPS plaintext from Go's crypto/tls.
mod go_tls;
// HTTP/2 late attach and hostile HTTP/2 over real sockets.
mod h2_situations;
// Hostile traffic on a watched port: bounded memory, counted, good traffic still exact.
mod hostile;
// Prometheus scraping `--metrics-addr`, tshark dissecting `--pcap`.
mod integrations;
// SIGHUP reopens `--output` while records stream in.
mod log_rotation;
// HTTP/1 clients against known ground truth.
mod matrix_clients;
// HTTP/2 and gRPC against real clients and servers.
mod matrix_h2;
// Non-HTTP traffic and ring-buffer loss on a watched port.
mod matrix_nonhttp;
// HTTP/1 servers against their access logs or the clients' counts.
mod matrix_servers;
// Connections, addresses, bodies, syscall boundaries and lifecycle.
mod matrix_situations;
// `--output none` with `--metrics-addr` counts what the full pipeline counts.
mod metrics_mode;
// HTTPS plaintext from both builds of Node.js.
mod node_tls;
// HTTPS plaintext from OpenSSL's libssl (nginx, curl, Python).
mod openssl;
// OTLP export against a real collector.
mod otlp;
// Capture with only CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH, and a clear failure with less.
mod privileges;
// Secrets never reach the output unless asked for.
mod redaction;
// `httpscope report` rendered by headless Chromium (no root needed).
mod report_browser;
// A freed socket's TLS state does not leak into the next socket at its address.
mod reused_socks;
// HTTPS plaintext from rustls.
mod rustls;
// `httpscope stats` on recorded traces (no root needed).
mod stats;
// HTTPS bodies past --body-limit counted, not copied, and still exact.
mod tls_budget;
// Attaching to and detaching from HTTPS servers under load never changes what they see.
mod tls_safety;
// `httpscope top` in a real terminal (tmux).
mod top_tmux;

/// scripts/test.sh and scripts/kernels.sh pick a suite by its module path, a substring
/// filter: `tls::` would also pick `go_tls::`. No suite's name may end with another's.
#[test]
fn each_suite_filter_picks_only_its_suite() {
    let suites: Vec<&str> = include_str!("main.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    assert!(suites.len() > 30, "{suites:?}");
    for a in &suites {
        for b in suites.iter().filter(|b| *b != a) {
            assert!(!a.ends_with(b), "the filter {b}:: also picks {a}::");
        }
    }
}
