//! Safety: attaching to and detaching from an HTTPS server under steady load (20 starts and
//! stops of httpscope; a Go server, a rustls server) never changes what the programs see:
//! every response the client gets is the right one, and both programs exit 0.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use macro_rules_attribute::apply;

use crate::support::matrix::*;
use crate::support::rustls::*;
use crate::support::tls::*;
use crate::support::*;

const CYCLES: usize = 20;

/// Attaches to and detaches from `server` (on `port`) CYCLES times while `client` loads
/// it without a pause; then both must exit 0 with every response right.
fn attach_detach_under_load(server: Proc, port: u16, mut client: Proc) {
    let mut stdout = client.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let server_pid = server.child.id().to_string();
    let started = Instant::now();
    let mut captured = 0;
    for _ in 0..CYCLES {
        // --pid: only the server's files are hooked, so each detach is short.
        let (records, _) = Profiler::start(&[port], &["--pid", &server_pid]).stop();
        assert_pairing_exact(&records);
        captured += records.iter().filter(|r| r["kind"] == "response").count();
    }
    let elapsed = started.elapsed();
    let (client_code, client_err) = client.interrupt();
    let counts = last_json(&reader.join().unwrap());
    let (server_code, server_err) = server.interrupt();
    eprintln!(
        "{CYCLES} attach/detach cycles in {elapsed:?}: client {counts}, {captured} responses captured"
    );
    assert_eq!(client_code, 0, "client: {client_err}");
    assert_eq!(server_code, 0, "server: {server_err}");
    assert_eq!(counts["mismatch"], 0, "{counts}");
    assert_eq!(counts["ok"], counts["requests"], "{counts}");
    assert!(counts["ok"].as_u64().unwrap() > 0, "{counts}");
    assert!(captured > 0, "nothing was captured in {CYCLES} cycles");
}

#[apply(root_test!)]
fn go_server_attached_and_detached_20_times_under_load() {
    let Some(build) = go_build(Toolchain::Current) else {
        return;
    };
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (server, port) = go_server(&build.plain, &certs.path);
    // The client runs the same file: both programs pass through the probes.
    let client = Proc::spawn(
        Command::new(&build.plain)
            .arg("client")
            .arg(certs.path.join("ca.pem"))
            .arg(port.to_string())
            .args(["0", "load", "h1", "0"])
            .stdout(Stdio::piped()),
    );
    attach_detach_under_load(server, port, client);
}

/// The same against the rustls server (axum, tokio-rustls), loaded by the reqwest client
/// over h2: the probes on both come and go mid-stream.
#[apply(root_test!)]
fn rustls_server_attached_and_detached_20_times_under_load() {
    let programs = rustls_programs();
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (server, port) = rustls_server(&programs.bin("rsserver"), &certs.path);
    let client = Proc::spawn(
        Command::new(programs.bin("rsclient"))
            .arg(certs.path.join("ca.pem"))
            .arg(port.to_string())
            .args(["0", "load", "h2", "0"])
            .stdout(Stdio::piped()),
    );
    attach_detach_under_load(server, port, client);
}
