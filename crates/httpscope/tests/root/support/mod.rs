//! Helpers for the root integration tests: binaries, RAII process guards, record parsing.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod collector;
pub mod container;
pub mod h2;
pub mod matrix;
pub mod rustls;
pub mod tls;
pub mod tools;

use serde_json::Value;

/// Marks a test that loads BPF programs, in place of `#[test]`: `#[apply(root_test!)]`.
/// Without root the test is skipped, loudly; under CI=true it fails (see `require_root`).
macro_rules! root_test {
    ($(#[$attr:meta])* fn $name:ident() $body:block) => {
        $(#[$attr])*
        #[test]
        fn $name() {
            if !$crate::support::require_root(stringify!($name)) {
                return;
            }
            $body
        }
    };
}
pub(crate) use root_test;

/// Whether root integration tests can run. Under CI=true a missing capability
/// is a failure; elsewhere the test is skipped, loudly.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    skip_unless_ci(test, "needs root to load BPF programs");
    false
}

/// `test` cannot run here (`reason`): under CI=true that is a failure, elsewhere the test
/// is skipped, loudly.
pub fn skip_unless_ci(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {reason}, and CI=true forbids skipping");
    }
    eprintln!("\n*** SKIPPING {test}: {reason} ***\n");
}

/// A recorded event file of the core's fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../httpscope-core/tests/fixtures/{name}.events"))
}

/// Runs httpscope (no root needed) and returns its stdout; it must succeed.
pub fn httpscope_ok(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_httpscope"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn bin(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_httpscope"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace, same profile)",
        path.display()
    );
    path
}

/// A child process killed when dropped, with its stderr collected line by line.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends SIGINT and waits for exit; returns the exit code and the rest of stderr.
    pub fn interrupt(mut self) -> (i32, String) {
        signal(self.child.id(), libc::SIGINT);
        let status = self.child.wait().unwrap();
        let mut rest: Vec<String> = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            rest.push(line);
        }
        (status.code().unwrap_or(-1), rest.join("\n"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Starts demo-server on an ephemeral port; returns it and the port.
pub fn demo_server(extra_env: &[(&str, &str)]) -> (Proc, u16) {
    let mut cmd = Command::new(bin("demo-server"));
    cmd.env("HTTP_PORT", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut server = Proc::spawn(&mut cmd);
    let line = server.wait_for("listening on", Duration::from_secs(10));
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| {
            p.trim()
                .trim_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (server, port)
}

/// A running profiler writing JSON records to a temp file.
pub struct Profiler {
    pub proc: Proc,
    pub output: PathBuf,
    pub events: PathBuf,
    _dir: TempDir,
}

/// How long a profiler may take to attach: `HTTPSCOPE_TEST_ATTACH_SECS` (the kernel
/// matrix raises it: programs start slowly in an emulated VM), else 30 s.
pub fn attach_timeout() -> Duration {
    let secs = std::env::var("HTTPSCOPE_TEST_ATTACH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// The capture backend the root tests run on: `HTTPSCOPE_TEST_BACKEND` (socket or
/// syscall; scripts/test.sh runs the capture suites once per backend), else `auto`.
pub fn test_backend() -> String {
    std::env::var("HTTPSCOPE_TEST_BACKEND").unwrap_or_else(|_| "auto".to_owned())
}

/// `--capture-backend` for a profiler command line, unless `extra` already picks one.
pub fn backend_args(extra: &[&str]) -> Vec<String> {
    if extra.contains(&"--capture-backend") {
        return Vec::new();
    }
    vec!["--capture-backend".to_owned(), test_backend()]
}

/// Panics unless the profiler's "attached" log line names the backend the tests asked for.
pub fn assert_backend_attached(attached_line: &str, extra: &[&str]) {
    let backend = test_backend();
    if backend != "auto" && !extra.contains(&"--capture-backend") {
        assert!(
            attached_line.contains(&format!("backend=\"{backend}\"")),
            "the profiler did not attach the {backend} backend: {attached_line}"
        );
    }
}

impl Profiler {
    pub fn start(ports: &[u16], extra: &[&str]) -> Profiler {
        let dir = TempDir::new();
        let output = dir.path.join("records.jsonl");
        let events = dir.path.join("capture.events");
        let mut cmd = Command::new(bin("httpscope"));
        cmd.arg("record")
            .arg("--format")
            .arg("json")
            .arg("--output")
            .arg(&output);
        cmd.arg("--save-events").arg(&events);
        for port in ports {
            cmd.arg("--port").arg(port.to_string());
        }
        cmd.args(backend_args(extra))
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("HTTP_PORT")
            .stdout(Stdio::null());
        let mut proc = Proc::spawn(&mut cmd);
        let attached = proc.wait_for("attached", attach_timeout());
        assert_backend_attached(&attached, extra);
        Profiler {
            proc,
            output,
            events,
            _dir: dir,
        }
    }

    /// Stops the profiler (SIGINT) and returns its records and stderr.
    pub fn stop(self) -> (Vec<Value>, String) {
        self.stop_inner(None)
    }

    /// Like `stop`, copying the saved event file to `dest` first.
    pub fn stop_keeping_events(self, dest: &Path) -> (Vec<Value>, String) {
        self.stop_inner(Some(dest))
    }

    fn stop_inner(self, keep_events: Option<&Path>) -> (Vec<Value>, String) {
        // Let the last events reach the ring buffer reader.
        std::thread::sleep(Duration::from_millis(300));
        let Profiler {
            proc,
            output,
            events,
            _dir,
        } = self;
        let (code, stderr) = proc.interrupt();
        assert_eq!(code, 0, "httpscope exited with {code}; stderr:\n{stderr}");
        if let Some(dest) = keep_events {
            std::fs::copy(&events, dest).unwrap();
        }
        (read_records(&output), stderr)
    }
}

pub fn read_records(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "output ends with a partial line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Records matching role/kind (and comm when given).
pub fn select<'a>(
    records: &'a [Value],
    role: &str,
    kind: &str,
    comm: Option<&str>,
) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["role"] == role && r["kind"] == kind)
        .filter(|r| comm.is_none_or(|c| r["comm"] == c))
        .collect()
}

/// The server-side records of the server listening on 127.0.0.1:`port`.
pub fn served_on(records: &[Value], port: u16) -> Vec<&Value> {
    let local = format!("127.0.0.1:{port}");
    records
        .iter()
        .filter(|r| r["role"] == "server")
        .filter(|r| r["dst"] == local.as_str() || r["src"] == local.as_str())
        .collect()
}

pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let mut bytes = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        let path =
            std::env::temp_dir().join(format!("httpscope-test-{:016x}", u64::from_ne_bytes(bytes)));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
