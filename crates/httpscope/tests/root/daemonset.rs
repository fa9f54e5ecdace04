//! The image (deploy/Dockerfile, built by scripts/image.sh) run the way the DaemonSet in
//! deploy/kubernetes/ runs it: host PID and network namespaces, the node's BTF, tracefs
//! and cgroup tree, a read-only root, and only the capabilities the manifest adds. From
//! inside, it captures a host demo-server, a demo-server in another container, the
//! HTTPS of host programs through the host's libssl (Python, then curl) and a Go TLS
//! server, each with its pid and container id; its /metrics, /healthz and /readyz are
//! fetched from outside. Without any one of those capabilities it says which is
//! missing, in a sentence.
//!
//! Root test; podman, runc and Go come from `scripts/setup.sh --test`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::container::{podman, run, PodmanDemoServer};
use crate::support::matrix::{free_port, make_certs};
use crate::support::tls::{
    check_tls_side, curl_https_each, go_build, go_server, GoBuild, Toolchain,
};
use crate::support::tools::{fetch, get, require_tool};
use crate::support::*;

/// The capabilities deploy/kubernetes/daemonset.yaml and deploy/httpscope.service add.
const CAPABILITIES: [&str; 2] = ["SYS_ADMIN", "SYS_PTRACE"];
const N: usize = 3;

/// A Python HTTPS client (the host's libssl, through its `_ssl` module) that is running,
/// libssl mapped, before the agent attaches, and sends its requests when told.
const PYTHON_CLIENT: &str = r#"
import http.client, ssl, sys
ca, port, n, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
context = ssl.create_default_context(cafile=ca)
print("ready", file=sys.stderr, flush=True)
sys.stdin.readline()
for i in range(n):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context)
    conn.request("GET", f"/?id={prefix}{i}", headers={"X-Request-Id": f"{prefix}{i}"})
    conn.getresponse().read()
    conn.close()
print("done", file=sys.stderr, flush=True)
"#;

/// Starts the Python client against `port`; it waits for a line on stdin.
fn python_client(ca: &Path, port: u16, prefix: &str) -> Proc {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", PYTHON_CLIENT])
        .arg(ca)
        .args([port.to_string(), N.to_string(), prefix.to_owned()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut client = Proc::spawn(&mut cmd);
    client.wait_for("ready", Duration::from_secs(10));
    client
}

/// Tells the Python client to send its requests, and waits for them.
fn python_requests(client: &mut Proc) {
    let stdin = client.child.stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
    client.wait_for("done", Duration::from_secs(30));
}

/// The image of this build's httpscope; removed on drop.
struct Image(String);

impl Image {
    fn build() -> Image {
        let tag = format!("localhost/httpscope-test:{}", std::process::id());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        run(
            Command::new("bash")
                .current_dir(&root)
                .env("HTTPSCOPE_BINARY", bin("httpscope"))
                .args(["scripts/image.sh", "--no-build", &tag]),
            "scripts/image.sh",
        );
        Image(tag)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "--force", &self.0]).output();
    }
}

/// `podman run` of the image as the DaemonSet's pod, with `capabilities` only.
fn agent(image: &Image, capabilities: &[&str], args: &[&str]) -> Command {
    let mut cmd = podman();
    cmd.args([
        "run",
        "--rm",
        "--pid",
        "host",
        "--network",
        "host",
        "--read-only",
    ])
    .args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ])
    .args(["--cap-drop", "all"]);
    for cap in capabilities {
        cmd.args(["--cap-add", cap]);
    }
    for (host, mode) in [
        ("/sys/kernel/btf", "ro"),
        ("/sys/kernel/tracing", "ro"),
        ("/sys/fs/cgroup", "ro"),
    ] {
        cmd.arg("-v").arg(format!("{host}:{host}:{mode}"));
    }
    cmd.arg(&image.0).args(args).env("RUST_LOG", "info");
    cmd
}

/// The running agent: its records go to a file, its log is read line by line.
struct Agent {
    proc: Proc,
    output: PathBuf,
    _dir: TempDir,
}

impl Agent {
    fn start(image: &Image, metrics_port: u16) -> Agent {
        let dir = TempDir::new();
        let output = dir.path.join("records.jsonl");
        let metrics = format!("127.0.0.1:{metrics_port}");
        let mut cmd = agent(
            image,
            &CAPABILITIES,
            &["record", "--all-ports", "--format", "json", "--output", "-"],
        );
        cmd.args(["--metrics-addr", &metrics])
            .stdout(std::fs::File::create(&output).unwrap());
        let mut proc = Proc::spawn(&mut cmd);
        proc.wait_for("attached", Duration::from_secs(60));
        Agent {
            proc,
            output,
            _dir: dir,
        }
    }

    /// SIGINT (podman passes it on), then the records and the log.
    fn stop(self) -> (Vec<Value>, String) {
        std::thread::sleep(Duration::from_millis(500));
        let (code, log) = self.proc.interrupt();
        assert_eq!(code, 0, "the agent exited with {code}:\n{log}");
        (read_records(&self.output), log)
    }
}

fn tools_present(test: &str) -> bool {
    ["podman", "runc", "curl", "objcopy"]
        .iter()
        .all(|tool| require_tool(test, tool))
}

fn assert_served(records: &[Value], port: u16, pid: u32, container: Option<&str>) {
    let served = served_on(records, port);
    assert_eq!(served.len(), 2 * N, "port {port}: {served:#?}");
    for r in served {
        assert_eq!(r["pid"], pid, "{r}");
        assert_eq!(r["container_id"].as_str(), container, "{r}");
    }
}

/// Whether `metrics` counts exchanges served by the container `id`'s demo-server.
fn counts_container(metrics: &str, id: &str) -> bool {
    let label = format!("container_id=\"{id}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .any(|l| l.contains(&label) && l.contains("process=\"demo-server\""))
}

/// The agent's /metrics once it counts the container's demo-server (or after 10 s).
fn metrics_counting(port: u16, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = fetch(port, "/metrics");
        if counts_container(&metrics, id) || Instant::now() > deadline {
            return metrics;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[apply(root_test!)]
fn the_image_captures_the_node_with_the_manifests_capabilities() {
    const TEST: &str = "the_image_captures_the_node_with_the_manifests_capabilities";
    if !tools_present(TEST) {
        return;
    }
    let Some(go) = go_build(Toolchain::Debian) else {
        return;
    };
    let image = Image::build();
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (host_server, host_port) = demo_server(&[]);
    let container = PodmanDemoServer::start();
    let (go_server, go_port) = go_server(&go.plain, &certs.path);
    let ca = certs.path.join("ca.pem");
    let mut python = python_client(&ca, go_port, "p");
    let metrics_port = free_port();

    let agent_run = Agent::start(&image, metrics_port);
    for port in [host_port, container.port] {
        for _ in 0..N {
            assert_eq!(get(port, "/healthz"), 200);
        }
    }
    python_requests(&mut python);
    curl_https_each(&ca, go_port, "c", N);
    let metrics = metrics_counting(metrics_port, &container.id);
    // The probes the DaemonSet's kubelet would use (ready once the reader reports, within
    // a second or so of attaching).
    for probe in ["/healthz", "/readyz"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut answer = fetch(metrics_port, probe);
        while !answer.starts_with("HTTP/1.1 200") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            answer = fetch(metrics_port, probe);
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{probe}: {answer}");
    }
    let (records, log) = agent_run.stop();

    assert!(!log.contains("panicked"), "{log}");
    assert_served(&records, host_port, host_server.child.id(), None);
    assert_served(
        &records,
        container.port,
        container.host_pid(),
        Some(&container.id),
    );
    // The Python client's side through the host's libssl (hooked through
    // /proc/PID/root), the Go server's through its crypto/tls. curl starts after the
    // agent attached: its libssl is the same file, hooked already.
    check_tls_side(&records, "client", "python3", "p", "openssl", N);
    check_tls_side(&records, "client", "curl", "c", "openssl", N);
    let go_comm = GoBuild::comm(&go.plain);
    check_tls_side(&records, "server", &go_comm, "p", "go", N);
    check_tls_side(&records, "server", &go_comm, "c", "go", N);
    for r in served_on(&records, go_port) {
        assert_eq!(r["pid"], go_server.child.id(), "{r}");
    }
    assert!(
        counts_container(&metrics, &container.id),
        "no series of the container's demo-server in /metrics:\n{metrics}"
    );
}

#[apply(root_test!)]
fn each_missing_capability_is_named() {
    const TEST: &str = "each_missing_capability_is_named";
    if !tools_present(TEST) {
        return;
    }
    let image = Image::build();
    // Without CAP_SYS_ADMIN nothing loads (exit 2); without CAP_SYS_PTRACE only other
    // processes' TLS is lost, and capture goes on.
    for (missing, exit) in [("SYS_ADMIN", 2), ("SYS_PTRACE", 0)] {
        let kept: Vec<&str> = CAPABILITIES
            .into_iter()
            .filter(|cap| *cap != missing)
            .collect();
        let out = agent(
            &image,
            &kept,
            &["record", "--all-ports", "--output", "-", "--duration", "1"],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!log.contains("panicked"), "without {missing}: {log}");
        let named = log
            .lines()
            .find(|line| line.contains(&format!("CAP_{missing}")))
            .unwrap_or_else(|| panic!("without {missing}, no line names it:\n{log}"));
        eprintln!("without CAP_{missing}: {named}");
        assert_eq!(out.status.code(), Some(exit), "without {missing}: {log}");
    }
}
