//! HTTPS plaintext from GnuTLS (uprobes on gnutls_record_send/recv): Debian's
//! `gnutls-serv --http` answering `gnutls-cli`, one request per connection (the server
//! closes after each answer), counted exactly on both sides.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use macro_rules_attribute::apply;

use crate::support::matrix::*;
use crate::support::*;

const N: usize = 5;

#[apply(root_test!)]
fn gnutls_cli_against_gnutls_serv() {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let port = free_port();
    let _server = Proc::spawn(
        Command::new("gnutls-serv")
            .args(["--http", "--x509certfile"])
            .arg(certs.path.join("server.pem"))
            .arg("--x509keyfile")
            .arg(certs.path.join("server.key"))
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null()),
    );
    wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10));
    let profiler = Profiler::start(&[port], &[]);
    for i in 0..N {
        let mut cli = Command::new("gnutls-cli")
            .arg("--x509cafile")
            .arg(certs.path.join("ca.pem"))
            .args(["-p", &port.to_string(), "127.0.0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let request =
            format!("GET /?id=g{i} HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: g{i}\r\n\r\n");
        let mut stdin = cli.stdin.take().unwrap();
        stdin.write_all(request.as_bytes()).unwrap();
        // Keep stdin open until the server has answered and closed.
        let out = cli.wait_with_output().unwrap();
        drop(stdin);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("X-Request-Id: g{i}")), "{text}");
    }
    let (records, stderr) = profiler.stop();
    let clean = strip_ansi(&stderr);
    assert!(!clean.contains("not HTTP/1.x"), "{clean}");
    assert_eq!(summary(&stderr, "tls_conns"), 0, "{clean}");
    assert_pairing_exact(&records);
    for r in &records {
        assert_eq!(r["tls"], true, "{r}");
        assert_eq!(r["tls_lib"], "gnutls", "{r}");
    }
    let expected = expected_ids("g", N);
    for (role, comm) in [("client", "gnutls-cli"), ("server", "gnutls-serv")] {
        let side = Side::of(&records, role, comm);
        assert_eq!(side.paired_url_ids(), expected, "{role}: {records:#?}");
        assert_eq!(side.partial(), 0, "{role}: {records:#?}");
        note(
            &format!("GnuTLS {role} {comm}"),
            N,
            side.paired_url_ids().len(),
        );
    }
}
