//! Helpers for the capture matrix: real programs (nginx, Python, Node.js, wrk, ab),
//! ground truth, and exact pairing checks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{signal, Proc, TempDir};

/// `crates/httpscope/tests/programs/<name>`.
pub fn program(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `addr`.
pub fn wait_listening(addr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion, killing it (and failing) after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Runs `cmd`, asserting success; returns stdout.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> String {
    let out = run(cmd, timeout);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `python3 tests/programs/pyclient.py <args>`.
pub fn pyclient(args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(program("pyclient.py")).args(args);
    cmd
}

/// python's http.client on one keep-alive connection: `n` GETs of `path` with request ids
/// `prefix<i>`; asserts every one succeeded with its own id echoed.
pub fn py_keepalive(port: u16, n: usize, prefix: &str, path: &str) {
    let out = last_json(&run_ok(
        &mut pyclient(&[
            "keepalive",
            "127.0.0.1",
            &port.to_string(),
            &n.to_string(),
            prefix,
            path,
        ]),
        Duration::from_secs(60),
    ));
    assert_eq!(
        (out["ok"].as_u64(), out["mismatch"].as_u64()),
        (Some(n as u64), Some(0)),
        "python keep-alive {prefix}"
    );
}

/// Parses the JSON object a helper program prints last on stdout.
pub fn last_json(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {stdout:?}"));
    serde_json::from_str(line).unwrap()
}

/// A server started from a script that prints `listening on <port>` on stderr.
pub fn script_server(cmd: &mut Command) -> (Proc, u16) {
    cmd.stdout(Stdio::null()).stdin(Stdio::null());
    let mut proc = Proc::spawn(cmd);
    let line = proc.wait_for("listening on", Duration::from_secs(15));
    let port = line
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port in {line:?}"));
    (proc, port)
}

/// The threaded Python HTTP/1.1 server (`tests/programs/pyserver.py`).
pub fn py_threaded_server(extra: &[&str]) -> (Proc, u16) {
    let mut cmd = Command::new("python3");
    cmd.arg(program("pyserver.py")).args(extra);
    script_server(&mut cmd)
}

/// The Node.js `http` server (`tests/programs/node_server.js`); `h2c` for an HTTP/2 server.
pub fn node_server(mode: &str) -> (Proc, u16) {
    let mut cmd = Command::new("node");
    cmd.arg(program("node_server.js")).arg(mode);
    script_server(&mut cmd)
}

/// Strips ANSI colour sequences.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `key=<number>` counter of the summary printed at exit.
pub fn summary(stderr: &str, key: &str) -> u64 {
    let clean = strip_ansi(stderr);
    let needle = format!("{key}=");
    clean
        .lines()
        .filter(|l| l.starts_with("events="))
        .flat_map(|l| l.split(' '))
        .find_map(|kv| kv.strip_prefix(needle.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the summary:\n{clean}"))
}

pub fn header<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record["headers"][name].as_str()
}

/// The `id=` query parameter of a URL.
pub fn url_id(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.strip_prefix("id="))
}

/// Records of one process (by comm) in one role.
pub struct Side<'a> {
    pub requests: Vec<&'a Value>,
    /// Final (non-interim) responses.
    pub responses: Vec<&'a Value>,
}

impl<'a> Side<'a> {
    pub fn of(records: &'a [Value], role: &str, comm: &str) -> Side<'a> {
        let mine = |kind: &str| -> Vec<&'a Value> {
            records
                .iter()
                .filter(|r| r["role"] == role && r["comm"] == comm && r["kind"] == kind)
                .filter(|r| r["interim"] != true)
                .collect()
        };
        Side {
            requests: mine("request"),
            responses: mine("response"),
        }
    }

    pub fn paired(&self) -> Vec<&'a Value> {
        self.responses
            .iter()
            .copied()
            .filter(|r| r["exchange"].is_u64())
            .collect()
    }

    pub fn conns(&self) -> BTreeSet<u64> {
        self.requests
            .iter()
            .chain(&self.responses)
            .filter_map(|r| r["conn"].as_u64())
            .collect()
    }

    /// Request ids (X-Request-Id) of the paired responses, sorted.
    pub fn paired_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .paired()
            .iter()
            .filter_map(|r| header(r, "x-request-id").map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    /// `id=` of the URLs the paired responses inherited from their requests, sorted.
    pub fn paired_url_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .paired()
            .iter()
            .filter_map(|r| r["url"].as_str().and_then(url_id).map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    pub fn partial(&self) -> usize {
        self.requests
            .iter()
            .chain(&self.responses)
            .filter(|r| r["partial"] == true)
            .count()
    }
}

/// Checks that no response is paired with the wrong request; returns how many pairs were verified
/// by a request id (X-Request-Id echoed in the response, or `id=` in the request URL).
///
/// For every response carrying an `exchange`: the request record with the same `conn` and
/// `exchange` (when captured) has the same method, URL, HTTP/2 stream and X-Request-Id; the
/// response's echoed X-Request-Id equals the `id=` of the URL it inherited from its pairing;
/// and no two final responses share an exchange.
pub fn assert_pairing_exact(records: &[Value]) -> usize {
    let mut requests: BTreeMap<(u64, u64), &Value> = BTreeMap::new();
    for r in records.iter().filter(|r| r["kind"] == "request") {
        if let (Some(c), Some(e)) = (r["conn"].as_u64(), r["exchange"].as_u64()) {
            let dup = requests.insert((c, e), r);
            assert!(
                dup.is_none(),
                "two requests share exchange {e} on conn {c}: {r}"
            );
        }
    }
    let mut finals = BTreeSet::new();
    let mut verified = 0;
    for resp in records.iter().filter(|r| r["kind"] == "response") {
        let (Some(c), Some(e)) = (resp["conn"].as_u64(), resp["exchange"].as_u64()) else {
            continue;
        };
        if resp["interim"] != true {
            assert!(
                finals.insert((c, e)),
                "two final responses for exchange {e} on conn {c}: {resp}"
            );
        }
        let resp_id = header(resp, "x-request-id");
        let mut checked = false;
        if let (Some(id), Some(url_id)) = (resp_id, resp["url"].as_str().and_then(url_id)) {
            assert_eq!(id, url_id, "response paired with the wrong request: {resp}");
            checked = true;
        }
        if let Some(req) = requests.get(&(c, e)) {
            assert_eq!(req["method"], resp["method"], "{req}\n{resp}");
            assert_eq!(req["url"], resp["url"], "{req}\n{resp}");
            assert_eq!(req["stream"], resp["stream"], "{req}\n{resp}");
            if let (Some(a), Some(b)) = (header(req, "x-request-id"), resp_id) {
                assert_eq!(
                    a, b,
                    "response paired with the wrong request:\n{req}\n{resp}"
                );
                checked = true;
            }
        }
        verified += usize::from(checked);
    }
    verified
}

/// `comm`'s `role` side holds exactly `n` requests, all paired, with the ids of
/// `expected_ids`, and no partial record.
pub fn assert_exact(records: &[Value], role: &str, comm: &str, prefix: &str, n: usize) {
    let side = Side::of(records, role, comm);
    assert_eq!(
        side.requests.len(),
        n,
        "{comm} {role} requests: {:#?}",
        side.requests
    );
    assert_ids(
        &side.paired_ids(),
        &expected_ids(prefix, n),
        &format!("{comm} {role} paired ids"),
    );
    assert_eq!(side.partial(), 0, "{comm} {role}: partial records");
}

/// The expected ids `prefix0..prefix{n-1}`, sorted as strings.
pub fn expected_ids(prefix: &str, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    ids.sort();
    ids
}

/// One line of the note: case, expected and captured counts.
pub fn note(case: &str, expected: usize, captured: usize) {
    eprintln!("MATRIX case={case:?} expected={expected} captured={captured}");
}

/// nginx with its own prefix, config, pid file and logs, `daemon off`, stopped on drop.
pub struct Nginx {
    proc: Option<Proc>,
    pub port: u16,
    pub dir: TempDir,
}

impl Nginx {
    /// Starts nginx listening on 127.0.0.1:<free port> (and `[::1]` when `ipv6`), with
    /// `server_extra` inside its `server` block and `http_extra` in `http`. The document root
    /// is `<dir>/www`; `files` are written there first.
    pub fn start(server_extra: &str, http_extra: &str, files: &[(&str, &[u8])]) -> Nginx {
        let dir = TempDir::new();
        let www = dir.path.join("www");
        std::fs::create_dir_all(&www).unwrap();
        for (name, content) in files {
            std::fs::write(www.join(name), content).unwrap();
        }
        let port = free_port();
        let d = dir.path.display();
        let conf = format!(
            r#"daemon off;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ text/plain txt; text/html html; application/octet-stream bin; }}
    default_type application/octet-stream;
    log_format truth '$request_id $http_x_request_id $status $request_method "$request_uri" $bytes_sent $body_bytes_sent $request_length $connection $connection_requests';
    access_log {d}/access.log truth;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    sendfile off;
    {http_extra}
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        add_header X-Request-Id $http_x_request_id always;
        {server_extra}
    }}
}}
"#
        );
        let conf_path = dir.path.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&dir.path)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path.join("error.log"))
            .stdout(Stdio::null());
        let proc = Proc::spawn(&mut cmd);
        wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10));
        Nginx {
            proc: Some(proc),
            port,
            dir,
        }
    }

    /// The access log, one entry per line, split on spaces.
    pub fn access_log(&self) -> Vec<Vec<String>> {
        // nginx writes the entry after the response; give the last one a moment.
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(self.dir.path.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').map(str::to_owned).collect())
            .collect()
    }

    /// X-Request-Ids of the access log whose responses nginx really sent bytes of, sorted.
    /// (nginx also logs a response to a client that has gone, with `$bytes_sent` 0: nothing of
    /// it reached a syscall, so there is nothing to capture.)
    pub fn logged_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .access_log()
            .into_iter()
            .filter(|f| f[5] != "0")
            .map(|f| f[1].clone())
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            // SIGTERM makes the master stop its workers; SIGKILL would orphan them.
            signal(proc.child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if proc.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(proc);
        }
    }
}

/// wrk's "N requests in" count.
pub fn wrk_requests(stdout: &str) -> usize {
    stdout
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.split_once(" requests in ")
                .and_then(|(n, _)| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no request count in wrk output:\n{stdout}"))
}

/// pyclient `concurrent`: `n` connections open at once, one request each (ids `prefix0..`),
/// every one answered.
pub fn py_concurrent(port: u16, n: usize, prefix: &str) {
    let args = [
        "concurrent",
        "127.0.0.1",
        &port.to_string(),
        &n.to_string(),
        prefix,
    ];
    let out = last_json(&run_ok(&mut pyclient(&args), Duration::from_secs(120)));
    assert_eq!(out["ok"].as_u64(), Some(n as u64), "{out}");
}

/// ab: `n` GETs of `/healthz` on `port`, a new connection each, `concurrency` at a time;
/// returns how many completed.
pub fn ab_healthz(port: u16, n: usize, concurrency: usize) -> usize {
    let out = run_ok(
        Command::new("ab")
            .args(["-q", "-n", &n.to_string(), "-c", &concurrency.to_string()])
            .arg(format!("http://127.0.0.1:{port}/healthz")),
        Duration::from_secs(120),
    );
    ab_complete(&out)
}

/// ab's "Complete requests:" count.
pub fn ab_complete(stdout: &str) -> usize {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Complete requests:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in ab output:\n{stdout}"))
}

/// Starts demo-server with command-line `args` (port 0 unless given); returns it and its port.
pub fn demo_server_args(args: &[&str]) -> (Proc, u16) {
    let mut cmd = Command::new(super::bin("demo-server"));
    cmd.args(["--port", "0"])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("HTTP_PORT")
        .stdout(Stdio::null());
    let mut server = Proc::spawn(&mut cmd);
    let line = server.wait_for("listening on", Duration::from_secs(10));
    let port = line
        .rsplit(':')
        .next()
        .map(|p| p.trim_matches(|c: char| !c.is_ascii_digit()))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (server, port)
}

/// Asserts two sorted id lists are equal, reporting counts and a few differences.
pub fn assert_ids(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let g: BTreeSet<&String> = got.iter().collect();
    let w: BTreeSet<&String> = want.iter().collect();
    let missing: Vec<&&String> = w.difference(&g).take(10).collect();
    let extra: Vec<&&String> = g.difference(&w).take(10).collect();
    panic!(
        "{what}: captured {} ids, expected {} (distinct {} vs {}); missing (first 10) {missing:?}; \
         unexpected (first 10) {extra:?}",
        got.len(),
        want.len(),
        g.len(),
        w.len()
    );
}

/// Stops the profiler; with MATRIX_DUMP=<dir> set, also writes its records and stderr there.
/// Its summary goes to the test's output, which a failing test shows: a missing exchange
/// is then seen with what the profiler counted.
pub fn stop(profiler: super::Profiler) -> (Vec<Value>, String) {
    let (records, stderr) = profiler.stop();
    for line in strip_ansi(&stderr)
        .lines()
        .filter(|l| l.starts_with("events="))
    {
        eprintln!("profiler summary: {line}");
    }
    if let Ok(dir) = std::env::var("MATRIX_DUMP") {
        let dir = Path::new(&dir);
        let _ = std::fs::create_dir_all(dir);
        let lines: Vec<String> = records.iter().map(Value::to_string).collect();
        let _ = std::fs::write(dir.join("records.jsonl"), lines.join("\n"));
        let _ = std::fs::write(dir.join("stderr.txt"), &stderr);
    }
    (records, stderr)
}

/// CA + server certificate (for 127.0.0.1 and localhost) in `dir`: `ca.pem`, `server.pem`,
/// `server.key`.
pub fn make_certs(dir: &Path) {
    let d = |name: &str| dir.join(name);
    std::fs::write(
        d("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let steps: [Vec<&str>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=httpscope test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    ];
    for args in steps {
        run_ok(
            Command::new("openssl").current_dir(dir).args(args),
            Duration::from_secs(60),
        );
    }
}
