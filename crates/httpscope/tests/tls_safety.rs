//! Issue #14, safety: attaching to and detaching from a Go HTTPS server under steady load
//! (20 starts and stops of httpscope) never changes what the programs see: every response
//! the Go client gets is the right one, and both programs exit 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use support::matrix::*;
use support::tls::*;
use support::*;

const CYCLES: usize = 20;

#[test]
fn go_server_attached_and_detached_20_times_under_load() {
    if !require_root("go_server_attached_and_detached_20_times_under_load") {
        return;
    }
    let Some(build) = go_build(Toolchain::Current) else {
        return;
    };
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (server, port) = go_server(&build.plain, &certs.path);
    // The client runs the same file: both programs pass through the probes.
    let mut client = Proc::spawn(
        Command::new(&build.plain)
            .arg("client")
            .arg(certs.path.join("ca.pem"))
            .arg(port.to_string())
            .args(["0", "load", "h1", "0"])
            .stdout(Stdio::piped()),
    );
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
