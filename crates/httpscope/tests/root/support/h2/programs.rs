//! nghttpd, curl and nghttp, the Node.js `http2` and grpcio test programs, certificates.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::matrix::{
    free_port, last_json, make_certs, program, run_ok, script_server, wait_listening,
};
use crate::support::{Proc, TempDir};

const T: Duration = Duration::from_secs(60);

/// The gRPC service of `tests/programs/grpc_calls.py`.
pub const GRPC_SERVICE: &str = "httpscope.test.Echo";

/// A test CA and a server certificate for localhost and 127.0.0.1.
pub struct Certs {
    dir: TempDir,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = TempDir::new();
        make_certs(&dir.path);
        Certs { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path.join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path.join("server.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path.join("server.key")
    }
}

/// The documents nghttpd serves: `p<k>.txt`, of `PAGE_SIZES[k]` bytes each, plus `big.txt`
/// (`BIG_PAGE` bytes). nghttpd writes every frame it has ready in one syscall: 8 concurrent
/// streams of these pages stay under the default `--capture-bytes` (16 KiB), the big page
/// does not.
pub const PAGE_SIZES: [usize; 3] = [64, 1200, 3000];

pub const BIG_PAGE: usize = 20_000;

/// The page the `i`th request of a run asks for, and that page's size.
pub fn page_for(i: usize) -> (String, usize) {
    let k = i % PAGE_SIZES.len();
    (format!("/p{k}.txt"), PAGE_SIZES[k])
}

/// nghttpd (Debian nghttp2-server) on 127.0.0.1:<free port>, serving the `PAGE_SIZES` pages,
/// echoing uploads; stopped on drop.
pub struct Nghttpd {
    _proc: Proc,
    pub port: u16,
    _dir: TempDir,
}

impl Nghttpd {
    /// Over TLS (ALPN h2) with `certs`, else h2c (prior knowledge or `Upgrade: h2c`).
    pub fn start(certs: Option<&Certs>) -> Nghttpd {
        let dir = TempDir::new();
        let page = |size: usize| -> Vec<u8> { (0..size).map(|i| b'a' + (i % 26) as u8).collect() };
        for (k, size) in PAGE_SIZES.iter().enumerate() {
            std::fs::write(dir.path.join(format!("p{k}.txt")), page(*size)).unwrap();
        }
        std::fs::write(dir.path.join("big.txt"), page(BIG_PAGE)).unwrap();
        let port = free_port();
        let mut cmd = Command::new("nghttpd");
        cmd.args(["--echo-upload", "-a", "127.0.0.1", "-d"])
            .arg(&dir.path)
            .arg(port.to_string());
        match certs {
            Some(certs) => cmd.arg(certs.key()).arg(certs.cert()),
            None => cmd.arg("--no-tls"),
        };
        let proc = Proc::spawn(cmd.stdout(Stdio::null()).stdin(Stdio::null()));
        wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10));
        Nghttpd {
            _proc: proc,
            port,
            _dir: dir,
        }
    }
}

/// The URLs of `ids`, each asking for its `page_for` page with `?id=<id>`.
pub fn page_urls(base: &str, ids: &[String]) -> Vec<String> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| format!("{base}{}?id={id}", page_for(i).0))
        .collect()
}

/// Ids `prefix0..prefix{n-1}` in order (`matrix::expected_ids` sorts them).
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Sorted copy of `ids`.
pub fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

/// Runs one curl invocation over `urls` (one connection, reused), with `mode` (e.g.
/// `--http2-prior-knowledge`, `--http2`, `--parallel`); returns how many transfers it
/// completed with HTTP/2 and status 200, from its `-w` lines.
pub fn curl_h2(mode: &[&str], urls: &[String], ca: Option<&Path>) -> usize {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail"]).args(mode);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    cmd.args(["-w", "%{http_code} %{http_version}\\n"]);
    for url in urls {
        cmd.args(["-o", "/dev/null", url]);
    }
    run_ok(&mut cmd, T)
        .lines()
        .filter(|l| l.trim() == "200 2")
        .count()
}

/// One `curl --http2-prior-knowledge` per URL, each on its own connection: curl 7.88 (Debian
/// 12) fails every request after the first on a reused h2c connection. Returns the 200s.
pub fn curl_h2c_each(urls: &[String]) -> usize {
    urls.iter()
        .map(|url| {
            curl_h2(
                &["--http2-prior-knowledge"],
                std::slice::from_ref(url),
                None,
            )
        })
        .sum()
}

/// curl uploads: a POST of `body` to every URL (`--next` between them); returns the 200s.
pub fn curl_h2_posts(mode: &[&str], urls: &[String], body: &str, ca: Option<&Path>) -> usize {
    let mut cmd = Command::new("curl");
    for (i, url) in urls.iter().enumerate() {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-sS", "--fail", "-o", "/dev/null", "-d", body])
            .args(mode);
        if let Some(ca) = ca {
            cmd.arg("--cacert").arg(ca);
        }
        cmd.args(["-w", "%{http_code} %{http_version}\\n", url]);
    }
    run_ok(&mut cmd, T)
        .lines()
        .filter(|l| l.trim() == "200 2")
        .count()
}

/// nghttp (nghttp2-client) fetching `urls` concurrently on one connection (`upload`: POSTs
/// that file to each); returns how many it completed with status 200, from its `-s` table.
/// Callers keep a burst of responses under `--capture-bytes` unless they test that.
pub fn nghttp(urls: &[String], upload: Option<&Path>) -> usize {
    let mut cmd = Command::new("nghttp");
    cmd.args(["-n", "-s"]);
    if let Some(file) = upload {
        cmd.arg("-d").arg(file);
    }
    let out = run_ok(cmd.args(urls), T);
    // Rows: "id responseEnd requestStart process code size path".
    out.lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("200"))
        .count()
}

/// Node.js `http2` server (`tests/programs/node_h2.js`), h2c or over TLS with `certs`.
/// `node` is the node to run (`Path::new("node")`: the one on PATH).
pub fn node_h2_server(node: &Path, certs: Option<&Certs>) -> (Proc, u16) {
    let mut cmd = Command::new(node);
    cmd.arg(program("node_h2.js")).arg("server");
    match certs {
        Some(certs) => cmd.arg("tls").arg(certs.key()).arg(certs.cert()),
        None => cmd.arg("h2c"),
    };
    script_server(&mut cmd)
}

/// Node.js `http2` client: `n` requests `prefix<i>` on one session; returns how many were
/// answered 200 with their own X-Request-Id.
pub fn node_h2_client(
    node: &Path,
    port: u16,
    n: usize,
    prefix: &str,
    certs: Option<&Certs>,
) -> usize {
    let mut cmd = Command::new(node);
    cmd.arg(program("node_h2.js")).arg("client");
    cmd.arg(if certs.is_some() { "tls" } else { "h2c" });
    cmd.arg(port.to_string()).arg(n.to_string()).arg(prefix);
    if let Some(certs) = certs {
        cmd.arg(certs.ca());
    }
    let out = last_json(&run_ok(&mut cmd, T));
    assert_eq!(out["mismatch"], 0, "node client: {out}");
    out["ok"].as_u64().unwrap() as usize
}

/// A Node.js `http2` client session (h2c) kept open across batches of requests.
pub struct NodeH2Session {
    proc: Proc,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl NodeH2Session {
    pub fn open(port: u16) -> NodeH2Session {
        let mut cmd = Command::new("node");
        cmd.arg(program("node_h2.js"))
            .args(["session", "h2c"])
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut proc = Proc::spawn(&mut cmd);
        let stdin = proc.child.stdin.take();
        let stdout = BufReader::new(proc.child.stdout.take().unwrap());
        NodeH2Session {
            proc,
            stdin,
            stdout,
        }
    }

    /// `n` requests `prefix<i>` on the session; returns how many were answered with their id.
    pub fn requests(&mut self, n: usize, prefix: &str) -> usize {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{n} {prefix}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let out: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("node session said {line:?}: {e}"));
        assert_eq!(out["mismatch"], 0, "node session: {out}");
        out["ok"].as_u64().unwrap() as usize
    }

    /// Closes the session (GOAWAY, FIN) and waits for the program to exit.
    pub fn close(mut self) {
        drop(self.stdin.take());
        let status = self.proc.child.wait().unwrap();
        assert!(status.success(), "node session exited with {status}");
    }
}

/// The grpcio server of `tests/programs/grpc_calls.py`.
pub fn grpc_server() -> (Proc, u16) {
    let mut cmd = Command::new("python3");
    cmd.arg(program("grpc_calls.py")).arg("server");
    script_server(&mut cmd)
}

/// One call the gRPC client made, as it saw it.
#[derive(Debug, Clone)]
pub struct GrpcCall {
    pub id: String,
    pub method: String,
    pub status: u64,
    pub sent: u64,
    pub received: u64,
}

/// Runs the grpcio client: `unary` unary calls, `streams` server-streaming and `streams` bidi
/// calls, ids `prefix<n>`; returns the calls.
pub fn grpc_client(port: u16, prefix: &str, unary: usize, streams: usize) -> Vec<GrpcCall> {
    let out = last_json(&run_ok(
        Command::new("python3")
            .arg(program("grpc_calls.py"))
            .arg("client")
            .arg(port.to_string())
            .arg(prefix)
            .arg(unary.to_string())
            .arg(streams.to_string()),
        T,
    ));
    out["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| GrpcCall {
            id: c["id"].as_str().unwrap().to_owned(),
            method: c["method"].as_str().unwrap().to_owned(),
            status: c["status"].as_u64().unwrap(),
            sent: c["sent"].as_u64().unwrap(),
            received: c["received"].as_u64().unwrap(),
        })
        .collect()
}
