//! HTTPS plaintext from OpenSSL (uprobes on libssl).
//! A CA and a server certificate are generated per test; servers are nginx (`ssl`) and a
//! Python `http.server` wrapped in `ssl.SSLContext`; clients are curl and Python urllib.
//! Every pair must show requests and responses, paired, with readable bodies and `tls=true`,
//! and none of the ciphertext the socket syscalls carried.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::matrix::*;
use crate::support::*;

const T: Duration = Duration::from_secs(60);

const PY_SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(b"hello from python tls " + self.path.encode())
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.reply(b"echo:" + self.rfile.read(n))
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening on", srv.server_address[1], file=sys.stderr, flush=True)
srv.serve_forever()
"#;

const PY_CLIENT: &str = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
base = sys.argv[2]
with urllib.request.urlopen(base + "/py-get?id=1", context=ctx) as r:
    print(r.status, r.read().decode())
req = urllib.request.Request(base + "/py-post", data=b"py-body", method="POST")
with urllib.request.urlopen(req, context=ctx) as r:
    print(r.status, r.read().decode())
"#;

fn curl(ca: &Path, port: u16) {
    let base = format!("https://127.0.0.1:{port}");
    run_ok(
        Command::new("curl")
            .args(["-sS", "--fail", "--http1.1", "--cacert"])
            .arg(ca)
            .arg(format!("{base}/curl-get?id=1")),
        T,
    );
    run_ok(
        Command::new("curl")
            .args(["-sS", "--fail", "--http1.1", "-d", "curl-body", "--cacert"])
            .arg(ca)
            .arg(format!("{base}/curl-post")),
        T,
    );
}

fn python_client(ca: &Path, port: u16) {
    run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(PY_CLIENT)
            .arg(ca)
            .arg(format!("https://127.0.0.1:{port}")),
        T,
    );
}

/// Requests of `role` whose url starts with `prefix`, each with its paired response.
fn exchanges<'a>(records: &'a [Value], role: &str, prefix: &str) -> Vec<(&'a Value, &'a Value)> {
    records
        .iter()
        .filter(|r| r["role"] == role && r["kind"] == "request")
        .filter(|r| r["url"].as_str().is_some_and(|u| u.starts_with(prefix)))
        .map(|req| {
            let resp = records
                .iter()
                .find(|r| {
                    r["kind"] == "response"
                        && r["conn"] == req["conn"]
                        && r["pid"] == req["pid"]
                        && !req["exchange"].is_null()
                        && r["exchange"] == req["exchange"]
                })
                .unwrap_or_else(|| panic!("no paired response for {req}"));
            (req, resp)
        })
        .collect()
}

/// Checks one side (client or server) of the GET and POST a client made.
fn check_side(records: &[Value], role: &str, client: &str, get_body: &str, post_body: &str) {
    let get = exchanges(records, role, &format!("/{client}-get"));
    let post = exchanges(records, role, &format!("/{client}-post"));
    assert_eq!(get.len(), 1, "{role} GET of {client}: {records:#?}");
    assert_eq!(post.len(), 1, "{role} POST of {client}: {records:#?}");
    for (req, resp) in get.iter().chain(&post) {
        for r in [req, resp] {
            assert_eq!(r["tls"], true, "{r}");
            assert_eq!(r["partial"], false, "{r}");
            assert!(r["dst"].as_str().unwrap().starts_with("127.0.0.1:"), "{r}");
        }
        assert_eq!(resp["status"], 200, "{resp}");
        assert!(resp["latency_ms"].as_f64().is_some(), "{resp}");
    }
    let (_, resp) = get[0];
    assert!(resp["body"].as_str().unwrap().contains(get_body), "{resp}");
    let (req, resp) = post[0];
    assert_eq!(req["method"], "POST");
    assert_eq!(req["body"], format!("{client}-body"), "{req}");
    assert!(resp["body"].as_str().unwrap().contains(post_body), "{resp}");
}

fn check_clean(records: &[Value], stderr: &str) {
    let clean = strip_ansi(stderr);
    assert!(
        records.iter().all(|r| r["tls"] == true),
        "ciphertext or plaintext without tls=true logged: {records:#?}"
    );
    assert!(!clean.contains("not HTTP/1.x"), "{clean}");
    assert_eq!(summary(stderr, "tls_conns"), 0, "{clean}");
    assert_eq!(summary(stderr, "parse_errors"), 0, "{clean}");
}

fn note(pair: &str, records: &[Value]) {
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "  {} {} {} {} {} {}",
                r["comm"].as_str().unwrap_or(""),
                r["role"].as_str().unwrap_or(""),
                r["kind"].as_str().unwrap_or(""),
                r["method"].as_str().unwrap_or(""),
                r["url"].as_str().unwrap_or(""),
                r["status"]
            )
        })
        .collect();
    lines.sort();
    eprintln!(
        "TLS {pair}: {} records\n{}",
        records.len(),
        lines.join("\n")
    );
}

const NGINX_TLS_LOCATIONS: &str = r#"
        location /curl-get { return 200 "hello from nginx tls\n"; }
        location /py-get { return 200 "hello from nginx tls\n"; }
        location /curl-post { client_body_buffer_size 64k; return 200 "posted to nginx\n"; }
        location /py-post { client_body_buffer_size 64k; return 200 "posted to nginx\n"; }"#;

fn python_tls_server(dir: &Path) -> (Proc, u16) {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PY_SERVER)
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"));
    script_server(&mut cmd)
}

#[apply(root_test!)]
fn curl_and_python_against_nginx_tls() {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let ca = certs.path.join("ca.pem");
    let (_nginx, port) = crate::support::tls::nginx_tls(&certs.path, NGINX_TLS_LOCATIONS);
    let profiler = Profiler::start(&[port], &[]);
    curl(&ca, port);
    python_client(&ca, port);
    let (records, stderr) = profiler.stop();
    note("curl+python -> nginx", &records);
    check_clean(&records, &stderr);
    // nginx reads bodies it does not use only to discard them: the POST body still shows.
    check_side(
        &records,
        "client",
        "curl",
        "hello from nginx tls",
        "posted to nginx",
    );
    check_side(
        &records,
        "server",
        "curl",
        "hello from nginx tls",
        "posted to nginx",
    );
    check_side(
        &records,
        "client",
        "py",
        "hello from nginx tls",
        "posted to nginx",
    );
    check_side(
        &records,
        "server",
        "py",
        "hello from nginx tls",
        "posted to nginx",
    );
}

#[apply(root_test!)]
fn curl_and_python_against_python_tls() {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let ca = certs.path.join("ca.pem");
    let (_server, port) = python_tls_server(&certs.path);
    let profiler = Profiler::start(&[port], &[]);
    curl(&ca, port);
    python_client(&ca, port);
    let (records, stderr) = profiler.stop();
    note("curl+python -> python", &records);
    check_clean(&records, &stderr);
    check_side(
        &records,
        "client",
        "curl",
        "hello from python tls /curl-get",
        "echo:curl-body",
    );
    check_side(
        &records,
        "server",
        "curl",
        "hello from python tls /curl-get",
        "echo:curl-body",
    );
    check_side(
        &records,
        "client",
        "py",
        "hello from python tls /py-get",
        "echo:py-body",
    );
    check_side(
        &records,
        "server",
        "py",
        "hello from python tls /py-get",
        "echo:py-body",
    );
}

#[apply(root_test!)]
fn no_tls_counts_https_without_decoding() {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let ca = certs.path.join("ca.pem");
    let (_server, port) = python_tls_server(&certs.path);
    let profiler = Profiler::start(&[port], &["--no-tls"]);
    curl(&ca, port);
    let (records, stderr) = profiler.stop();
    assert!(records.is_empty(), "{records:#?}");
    // Two curl connections, seen from both ends.
    assert_eq!(summary(&stderr, "tls_conns"), 4, "{}", strip_ansi(&stderr));
}
