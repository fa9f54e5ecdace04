"""The servers under load (demo-server, nginx, nghttpd) and the private copies of the binaries."""

import datetime
import hashlib
import os
import shutil
import signal
import subprocess
import sys

from .bpf_stats import BpfStats
from .common import ROOT, HarnessError, Skip
from .procs import PROCS, Procs, wait_port

ECHO = ROOT / "bench" / "harness" / "echo.py"

class Context:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.stats = BpfStats()
        self.bins = {}
        self.servers = {}
        # Servers started for one workload only: target name -> (process, stop signal).
        self.on_demand = {}
        # The port each on-demand server (nginx, nghttpd, echo...) gets when started.
        self.on_demand_ports = {}

    def snapshot_binaries(self):
        """Private copies, so a concurrent `cargo build` cannot swap them mid-run."""
        bindir = self.work / "bin"
        bindir.mkdir()
        info = {}
        for name in ("httpscope", "demo-server"):
            src = ROOT / "target" / "release" / name
            if not src.exists():
                raise HarnessError(f"{src} missing: run cargo build --release --workspace")
            dst = bindir / name
            shutil.copy2(src, dst)
            self.bins[name] = dst
            info[name] = dict(sha256=hashlib.sha256(dst.read_bytes()).hexdigest()[:16],
                              mtime=datetime.datetime.fromtimestamp(src.stat().st_mtime).isoformat(timespec="seconds"))
        return info

    def start_demo(self, key, port):
        err = open(self.work / f"demo-server-{port}.log", "wb")
        proc = PROCS.spawn([self.bins["demo-server"], "--port", port, "--bind", "127.0.0.1"],
                           stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ, RUST_LOG="warn"))
        wait_port(port, proc=proc)
        self.servers[key] = port

    def start_on_demand(self, target, port):
        """Starts `target` (nginx, nghttpd) on `port` for the workloads that need it."""
        if target == "nginx":
            self.start_nginx(port)
        elif target == "nginx-tls":
            self.start_nginx(port, tls=True)
        elif target == "nghttpd":
            self.start_nghttpd(port)
        elif target == "rustls":
            self.start_rustls(port)
        elif target == "echo":
            self.start_echo(port)

    def stop_on_demand(self):
        for target, (proc, sig) in self.on_demand.items():
            Procs.stop(proc, sig=sig)
            self.servers.pop(target, None)
        self.on_demand.clear()

    def start_echo(self, port):
        """The non-HTTP TCP echo server of the mixed workloads."""
        err = open(self.work / "echo.stderr", "wb")
        proc = PROCS.spawn([sys.executable, ECHO, "serve", port], stdout=subprocess.DEVNULL, stderr=err)
        wait_port(port, proc=proc)
        self.on_demand["echo"] = (proc, signal.SIGTERM)
        self.servers["echo"] = port

    def start_nghttpd(self, port):
        """nghttpd (nghttp2-server), h2c with prior knowledge, two worker threads like nginx's
        two worker processes, serving the same small file."""
        nghttpd = shutil.which("nghttpd") or ("/usr/sbin/nghttpd" if os.path.exists("/usr/sbin/nghttpd") else None)
        if not nghttpd:
            raise Skip("nghttpd not installed (apt-get install nghttp2-server)")
        root = self.work / "nghttpd"
        root.mkdir(exist_ok=True)
        (root / "index.html").write_text("ok 0123456789abcdefghijklmn\n")
        err = open(self.work / "nghttpd.stderr", "wb")
        proc = PROCS.spawn([nghttpd, "--no-tls", "-n", "2", "-a", "127.0.0.1", "-d", root, port],
                           stdout=subprocess.DEVNULL, stderr=err)
        wait_port(port, proc=proc)
        self.on_demand["nghttpd"] = (proc, signal.SIGTERM)
        self.servers["nghttpd"] = port

    def start_rustls(self, port):
        """The rustls test server (axum over hyper and tokio-rustls, aws-lc-rs), as the tests
        build it into target/rustls-programs; a private copy, a certificate made per run."""
        src = ROOT / "target" / "rustls-programs" / "release" / "rsserver"
        if not src.exists():
            raise Skip(f"{src} missing: run the rustls tests once (cargo test --release -p httpscope --test root -- rustls::)")
        prefix = self.work / "rustls"
        prefix.mkdir(exist_ok=True)
        server = prefix / "rsserver"
        shutil.copy2(src, server)
        key, cert = prefix / "server.key", prefix / "server.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        err = open(prefix / "stderr.log", "wb")
        proc = PROCS.spawn([server, cert, key], stdout=subprocess.DEVNULL, stderr=err,
                           env=dict(os.environ, RUSTLS_PROGRAMS_PORT=str(port)))
        wait_port(port, proc=proc)
        self.on_demand["rustls"] = (proc, signal.SIGINT)
        self.servers["rustls"] = port

    def start_nginx(self, port, tls=False):
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if not nginx:
            raise Skip("nginx not installed")
        target = "nginx-tls" if tls else "nginx"
        prefix = self.work / target
        for sub in ("html", "tmp", "logs"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        # Body about as long as demo-server's `ok <timestamp>`.
        (prefix / "html" / "index.html").write_text("ok 0123456789abcdefghijklmn\n")
        # The large-response workloads' file (resp-16k-tls).
        (prefix / "html" / "16k.bin").write_bytes(b"0123456789abcdef" * 1024)
        for path in (self.work, prefix, prefix / "html", prefix / "html" / "index.html",
                     prefix / "html" / "16k.bin"):
            os.chmod(path, 0o755)
        listen = f"127.0.0.1:{port}"
        if tls:
            key, cert = prefix / "server.key", prefix / "server.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                           check=True, capture_output=True)
            listen += f" ssl;\n        ssl_certificate {cert};\n        ssl_certificate_key {key}"
        conf = prefix / "nginx.conf"
        conf.write_text(f"""
daemon off;
master_process on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    default_type text/plain;
    server {{
        listen {listen};
        root {prefix}/html;
        location / {{ }}
    }}
}}
""")
        err = open(prefix / "logs" / "stderr.log", "wb")
        proc = PROCS.spawn([nginx, "-p", prefix, "-c", conf, "-e", prefix / "logs" / "error.log"],
                           stdout=subprocess.DEVNULL, stderr=err)
        wait_port(port, proc=proc)
        self.on_demand[target] = (proc, signal.SIGQUIT)
        self.servers[target] = port
