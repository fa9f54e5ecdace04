//! A real container: demo-server under podman (runc, cgroupfs manager, host
//! network), from a local image made by `podman import` of a tar holding the
//! binary and the libraries `ldd` lists (no registry is needed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::matrix::free_port;
use super::{bin, TempDir};

/// podman with the settings that work on a hybrid cgroup host without systemd.
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    cmd
}

/// Runs `cmd` to completion; panics unless it succeeds; returns its stdout, trimmed.
pub fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// demo-server running in a podman container; removed (with its image) on drop.
pub struct PodmanDemoServer {
    /// The full container id, as `podman inspect` gives it.
    pub id: String,
    pub port: u16,
    image: String,
}

impl PodmanDemoServer {
    pub fn start() -> PodmanDemoServer {
        let dir = TempDir::new();
        let image = format!("localhost/httpscope-test-demo:{}", std::process::id());
        build_image(&dir.path, &image);
        let port = free_port();
        let started = run(
            podman().args([
                "run",
                "-d",
                "--network",
                "host",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                &image,
                "/bin/demo-server",
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ]),
            "podman run",
        );
        // Removed on drop from here on, even if inspect fails.
        let mut server = PodmanDemoServer {
            id: started,
            port,
            image,
        };
        server.id = run(
            podman().args(["inspect", "--format", "{{.Id}}", &server.id]),
            "podman inspect",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the container's demo-server never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl PodmanDemoServer {
    /// The host pid of the container's demo-server.
    pub fn host_pid(&self) -> u32 {
        let pid = run(
            podman().args(["inspect", "--format", "{{.State.Pid}}", &self.id]),
            "podman inspect",
        );
        pid.parse()
            .unwrap_or_else(|_| panic!("podman inspect pid: {pid:?}"))
    }
}

impl Drop for PodmanDemoServer {
    fn drop(&mut self) {
        if !self.id.is_empty() {
            let _ = podman()
                .args(["rm", "--force", "--time", "0", &self.id])
                .output();
        }
        let _ = podman().args(["rmi", "--force", &self.image]).output();
    }
}

/// A root filesystem with demo-server and its shared libraries, imported as `image`.
fn build_image(dir: &Path, image: &str) {
    let binary = bin("demo-server");
    let root = dir.join("root");
    let ldd = run(Command::new("ldd").arg(&binary), "ldd demo-server");
    let libraries = ldd
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(str::to_string)
        .collect::<Vec<_>>();
    for file in libraries
        .iter()
        .map(String::as_str)
        .chain([binary.to_str().unwrap()])
    {
        let dest = if file == binary.to_str().unwrap() {
            root.join("bin/demo-server")
        } else {
            root.join(file.trim_start_matches('/'))
        };
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        // Follows symlinks: the image gets the library itself.
        std::fs::copy(file, &dest).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        "tar",
    );
    run(podman().arg("import").arg(&tar).arg(image), "podman import");
}
