//! The rustls test programs (`tests/programs/rustls`, a Cargo workspace of its own): built
//! once per test process into `target/rustls-programs` (cargo keeps them up to date), and
//! run like the Go programs (same arguments, same answers).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::matrix::{last_json, run_ok, script_server};
use super::Proc;

const T: Duration = Duration::from_secs(60);
/// A cold build compiles reqwest, axum and aws-lc: minutes on a small machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// The programs' binaries.
#[derive(Debug, Clone)]
pub struct RustlsPrograms {
    /// Release builds (symbols kept): `rsserver` (aws-lc-rs), `rsserver-ring`, `rsclient`
    /// (reqwest), `rsureq` (ureq).
    pub release: PathBuf,
    /// The aws-lc-rs server built with `strip = true`.
    pub stripped_server: PathBuf,
    /// The aws-lc-rs server built with fat LTO and one codegen unit.
    pub lto_server: PathBuf,
}

impl RustlsPrograms {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.release.join(name)
    }
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("rustls-programs")
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/rustls")
}

/// Builds the programs (once per process; a no-op build takes a second) and returns
/// where they are. Under `HTTPSCOPE_TEST_REUSE_GO_BUILDS` (the kernel matrix's emulated
/// VM) the host's builds are taken as they are.
pub fn rustls_programs() -> &'static RustlsPrograms {
    static BUILT: OnceLock<RustlsPrograms> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = target_dir();
        let programs = RustlsPrograms {
            release: target.join("release"),
            stripped_server: target.join("stripped/rsserver"),
            lto_server: target.join("lto/rsserver"),
        };
        let reuse = std::env::var_os("HTTPSCOPE_TEST_REUSE_GO_BUILDS").is_some();
        if reuse && programs.lto_server.is_file() && programs.bin("rsclient").is_file() {
            return programs;
        }
        for profile in [
            &["--release"][..],
            &["--profile", "stripped", "--bin", "rsserver"],
            &["--profile", "lto", "--bin", "rsserver"],
        ] {
            run_ok(
                Command::new(env!("CARGO"))
                    .current_dir(source_dir())
                    .env("CARGO_TARGET_DIR", &target)
                    .args(["build", "--locked", "--quiet"])
                    .args(profile),
                BUILD_TIMEOUT,
            );
        }
        programs
    })
}

/// A copy of `binary` named `name` in `dir`: a new file (never hooked) with its own comm.
pub fn copy_as(binary: &Path, dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    std::fs::copy(binary, &copy).unwrap();
    copy
}

/// A test server (`rsserver`, `rsserver-ring`, or a copy) on an ephemeral port.
pub fn rustls_server(binary: &Path, certs: &Path) -> (Proc, u16) {
    let mut cmd = Command::new(binary);
    cmd.arg(certs.join("server.pem"))
        .arg(certs.join("server.key"));
    script_server(&mut cmd)
}

/// A test client binary aimed at one server: requests `n` (ids prefix0.., every third a
/// POST) over `proto` (h1 or h2).
pub struct RustlsClient<'a> {
    pub binary: &'a Path,
    pub certs: &'a Path,
    pub port: u16,
}

impl RustlsClient<'_> {
    fn command(&self, n: usize, prefix: &str, proto: &str) -> Command {
        let mut cmd = Command::new(self.binary);
        cmd.arg(self.certs.join("ca.pem"))
            .arg(self.port.to_string())
            .arg(n.to_string())
            .arg(prefix)
            .arg(proto);
        cmd
    }

    /// Runs the client; returns its JSON counts.
    pub fn run(&self, n: usize, prefix: &str, proto: &str) -> Value {
        self.run_after(Duration::ZERO, n, prefix, proto)
    }

    /// Runs the client, which waits `delay` before its first request.
    pub fn run_after(&self, delay: Duration, n: usize, prefix: &str, proto: &str) -> Value {
        let delay = delay.as_millis().to_string();
        let out = run_ok(
            self.command(n, prefix, proto)
                .env("RUSTLS_PROGRAMS_START_DELAY_MS", delay),
            T,
        );
        last_json(&out)
    }

    /// Runs the client once `profiler` has hooked its binary at its exec (the first run of
    /// a binary after capture started: hooking takes 0.1 s to over a second on a busy
    /// machine, and a fixed delay would race it); returns its JSON counts.
    pub fn run_hooked(
        &self,
        profiler: &mut super::Profiler,
        n: usize,
        prefix: &str,
        proto: &str,
    ) -> Value {
        let hooked = format!("{} (rustls)", self.binary.display());
        self.run_held((0, n), prefix, proto, || {
            profiler.proc.wait_for(&hooked, super::attach_timeout());
        })
    }

    /// Runs the client, which stops after `before` of its `n` requests until `ready` has
    /// returned, then makes the rest on the same connection.
    pub fn run_held(
        &self,
        (before, n): (usize, usize),
        prefix: &str,
        proto: &str,
        ready: impl FnOnce(),
    ) -> Value {
        let mut child = self
            .command(n, prefix, proto)
            .env("RUSTLS_PROGRAMS_HOLD_AFTER", before.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while line.trim() != "held" {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "client ended before holding"
            );
        }
        ready();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "client: {:?}", out.status);
        last_json(&String::from_utf8_lossy(&out.stdout))
    }
}
