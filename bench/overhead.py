#!/usr/bin/env python3
"""httpscope overhead benchmark (GitHub issue #4). Run it through bench/run.sh.

For each workload it alternates untraced and traced runs of a public load
generator (wrk, ab), A B A B ..., and reports the median traced/untraced
ratios of throughput and latency, plus, for traced runs: capture completeness
on both sides, kernel drops, profiler CPU per exchange, BPF run time per
hooked syscall (kernel.bpf_stats_enabled + bpftool) and profiler peak RSS.
Results: results.json (every raw run, medians, goals) and results.md.

Standard library only; needs root.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# name -> definition. load: wrk | ab. target: which server. path: URL path.
WORKLOADS = {
    "keepalive-demo": dict(load="wrk", target="demo", path="/",
                           about="wrk -c 50 -t 2, keep-alive, demo-server `/` (~30-byte body)"),
    "keepalive-nginx": dict(load="wrk", target="nginx", path="/",
                            about="wrk -c 50 -t 2, keep-alive, nginx small static file"),
    "new-conn": dict(load="ab", target="demo", path="/",
                     about="ab -c 50 (no -k): a new connection per request, demo-server `/`"),
    "resp-16k": dict(load="wrk", target="demo", path="/bytes/16384",
                     about="wrk -c 50 -t 2, 16 KiB responses"),
    "resp-1m": dict(load="wrk", target="demo", path="/bytes/1048576",
                    about="wrk -c 50 -t 2, 1 MiB responses"),
    "idle-1000": dict(load="wrk", target="demo", path="/", idle=1000,
                      about="1,000 idle keep-alive connections held open + wrk -c 50 -t 2 `/`"),
    "unwatched-port": dict(load="wrk", target="demo-unwatched", path="/",
                           about="wrk -c 50 against a port httpscope does not watch (it watches an idle one)"),
    "naive-bpftrace": dict(load="wrk", target="demo", path="/", tracer="bpftrace",
                           about="keepalive-demo traced by bench/naive.bt (fixed 4 KiB copy per syscall)"),
    "rss-10k": dict(load="conns", target="demo", path="/healthz", conns=10000,
                    about="10,000 concurrent keep-alive connections, one request each; profiler VmHWM"),
}

GOALS_TEXT = "at saturation with wrk, small responses, default settings, both sides captured"


class HarnessError(Exception):
    """The harness itself failed (a tool did not run, httpscope did not attach...)."""


class Skip(Exception):
    """A workload cannot run here (optional tool missing)."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ----------------------------------------------------------------- processes

class Procs:
    """Every process this harness started, so it can stop exactly those."""

    def __init__(self):
        self.procs = []

    def spawn(self, cmd, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen([str(c) for c in cmd], **kw)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc, sig=signal.SIGTERM, timeout=15):
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass

    def stop_all(self):
        for proc in reversed(self.procs):
            self.stop(proc, timeout=5)
        self.procs.clear()


PROCS = Procs()


def wait4(proc, timeout):
    """Reaps proc; returns (exit code, rusage). Kills it after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, rusage
        if time.monotonic() > deadline:
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise HarnessError(f"{proc.args[0]} did not exit within {timeout}s of SIGINT")
        time.sleep(0.02)


def proc_cpu_s(pid):
    """utime + stime of a live process, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def wait_port(port, timeout=20, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"{proc.args[0]} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise HarnessError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def free_ports(n, start=18400):
    ports = []
    port = start
    while len(ports) < n and port < start + 2000:
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
                ports.append(port)
            except OSError:
                pass
        port += 1
    if len(ports) < n:
        raise HarnessError("no free TCP ports")
    return ports


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- BPF stats

class BpfStats:
    """kernel.bpf_stats_enabled on during traced runs, restored afterwards."""

    def __init__(self):
        self.original = STATS_SYSCTL.read_text().strip() if STATS_SYSCTL.exists() else None

    def set(self, on):
        if self.original is None:
            return
        try:
            STATS_SYSCTL.write_text("1" if on else self.original)
        except OSError as err:
            log(f"cannot set kernel.bpf_stats_enabled: {err}")

    def restore(self):
        if self.original is not None:
            try:
                STATS_SYSCTL.write_text(self.original)
            except OSError:
                pass


def bpftool_progs():
    """`bpftool -j prog show`, or None. Retried: it fails when a program goes away mid-listing."""
    if not shutil.which("bpftool"):
        return None
    for _ in range(3):
        try:
            out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                return json.loads(out.stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
        time.sleep(0.05)
    return None


def bpf_ids_of(pid, kind):
    """Ids of the BPF objects of one kind ("prog" or "map") a process holds through its fds."""
    ids = set()
    base = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(base):
        try:
            text = Path(base, fd).read_text()
        except OSError:
            continue
        match = re.search(rf"^{kind}_id:\s+(\d+)", text, re.M)
        if match:
            ids.add(int(match.group(1)))
    return ids


# Index of STAT_HOOKED_SYSCALLS in crates/httpscope-capture/bpf/httpscope.h.
HOOKED_SYSCALLS_STAT = 15


def hooked_syscalls_of(pid):
    """httpscope's count of socket syscalls of the captured kinds (its per-CPU `stats` map), or None.

    One BPF program sees every syscall return; this is the number of returns it had work for.
    """
    if not shutil.which("bpftool"):
        return None
    for map_id in map(str, sorted(bpf_ids_of(pid, "map"))):
        try:
            show = json.loads(subprocess.run(["bpftool", "-j", "map", "show", "id", map_id],
                                             capture_output=True, text=True, timeout=30).stdout)
            if show.get("name") != "stats":
                continue
            dump = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", map_id],
                                             capture_output=True, text=True, timeout=30).stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        total = 0
        for entry in dump:
            if "formatted" in entry:
                for cpu in entry["formatted"]["values"]:
                    total += cpu["value"]["values"][HOOKED_SYSCALLS_STAT]
            else:
                for cpu in entry["values"]:
                    raw = bytes(int(b, 16) for b in cpu["value"])
                    total += int.from_bytes(raw[HOOKED_SYSCALLS_STAT * 8:HOOKED_SYSCALLS_STAT * 8 + 8], "little")
        return total
    return None


def bpf_prog_stats(pid):
    """[{id, name, run_time_ns, run_cnt}] of the programs the process holds."""
    ids = bpf_ids_of(pid, "prog")
    if not ids:
        return []
    progs = bpftool_progs()
    if progs is not None:
        return [dict(id=p["id"], name=p.get("name", f"prog{p['id']}"),
                     run_time_ns=p.get("run_time_ns", 0), run_cnt=p.get("run_cnt", 0))
                for p in progs if p["id"] in ids]
    # Fallback: the counters are in the prog fds' fdinfo too (no names there).
    result = {}
    base = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(base):
        try:
            text = Path(base, fd).read_text()
        except OSError:
            continue
        pid_m = re.search(r"^prog_id:\s+(\d+)", text, re.M)
        rt = re.search(r"^run_time_ns:\s+(\d+)", text, re.M)
        rc = re.search(r"^run_cnt:\s+(\d+)", text, re.M)
        if pid_m and rt and rc:
            pid_ = int(pid_m.group(1))
            result[pid_] = dict(id=pid_, name=f"prog{pid_}", run_time_ns=int(rt.group(1)), run_cnt=int(rc.group(1)))
    return list(result.values())


def is_exit_prog(name):
    return name.startswith("exit_") or name.startswith("sys_exit")


def summarize_bpf(progs, hooked_syscalls=None):
    """Run-time totals. The denominator is the tracer's own count of hooked syscalls when it
    has one (httpscope: one program runs on every syscall return and counts the socket
    syscalls it handles, so all its run time, the quick exits included, is charged to
    those), else the runs of its syscall-exit programs (bpftrace)."""
    if not progs:
        return None
    total_ns = sum(p["run_time_ns"] for p in progs)
    runs = sum(p["run_cnt"] for p in progs)
    if not total_ns:  # kernel.bpf_stats_enabled off: no figures, not zeros
        return None
    syscalls = hooked_syscalls if hooked_syscalls is not None else \
        sum(p["run_cnt"] for p in progs if is_exit_prog(p["name"]))
    return dict(
        total_run_time_ns=total_ns,
        total_run_cnt=runs,
        hooked_syscalls=syscalls,
        ns_per_syscall=total_ns / syscalls if syscalls else None,
        ns_per_run=total_ns / runs if runs else None,
        programs=sorted(progs, key=lambda p: -p["run_time_ns"]),
    )


def httpscope_instances():
    """How many httpscope-like program sets are loaded right now (ours included)."""
    progs = bpftool_progs()
    if progs is None:
        return None
    return sum(1 for p in progs if p.get("name") == "syscall_exit")


def foreign_bpf_programs():
    """Tracepoint programs loaded by others (noise indicator)."""
    progs = bpftool_progs()
    if progs is None:
        return None
    return dict(
        total=len(progs),
        tracepoint=sum(1 for p in progs if p.get("type") == "tracepoint"),
        httpscope_like=sum(1 for p in progs if p.get("name") == "syscall_exit"),
    )


# --------------------------------------------------------------- load tools

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def run_wrk(port, path, duration, conns=50, threads=2):
    url = f"http://127.0.0.1:{port}{path}"
    cmd = ["wrk", "-c", str(conns), "-t", str(threads), "-d", f"{duration}s",
           "--timeout", "5s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if out.returncode != 0 or not match or not rps:
        raise HarnessError(f"wrk failed (exit {out.returncode}): {text[-500:]} {out.stderr[-500:]}")
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        lat[pct] = float(value) * UNITS[unit]
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    requests = int(match.group(1))
    if requests == 0:
        raise HarnessError(f"wrk completed no request: {text[-500:]}")
    return dict(tool="wrk", cmd=" ".join(cmd), requests=requests, rps=float(rps.group(1)),
                p50_ms=lat.get("50"), p99_ms=lat.get("99"), errors=errors)


def run_ab(port, path, duration, conns=50):
    url = f"http://127.0.0.1:{port}{path}"
    # -t before -n: -t alone implies -n 50000.
    cmd = ["ab", "-q", "-r", "-s", "10", "-c", str(conns), "-t", str(duration), "-n", "10000000", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout

    def grab(pattern, cast=float):
        match = re.search(pattern, text, re.M)
        return cast(match.group(1)) if match else None

    requests = grab(r"^Complete requests:\s+(\d+)", int)
    rps = grab(r"^Requests per second:\s+([\d.]+)")
    if out.returncode != 0 or not requests or rps is None:
        raise HarnessError(f"ab failed (exit {out.returncode}): {text[-500:]} {out.stderr[-500:]}")
    errors = (grab(r"^Failed requests:\s+(\d+)", int) or 0) + (grab(r"^Non-2xx responses:\s+(\d+)", int) or 0)
    return dict(tool="ab", cmd=" ".join(cmd), requests=requests, rps=rps,
                p50_ms=grab(r"^\s+50%\s+(\d+)"), p99_ms=grab(r"^\s+99%\s+(\d+)"), errors=errors)


class IdleConns:
    """bench/idle_conns.py: N connections, one request each, then held idle."""

    def __init__(self, port, count, path="/healthz", timeout=180):
        self.proc = PROCS.spawn([sys.executable, BENCH / "idle_conns.py", "--port", port,
                                 "--count", count, "--path", path, "--timeout", timeout],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 4 or line[0] != "ready":
            raise HarnessError(f"idle_conns.py failed: {line}")
        self.ok, self.failed, self.seconds = int(line[1]), int(line[2]), float(line[3])
        if self.ok < count * 0.99:
            raise HarnessError(f"idle_conns.py opened only {self.ok}/{count} connections")

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            Procs.stop(self.proc)


# ------------------------------------------------------------------ tracers

def count_records(path, url):
    """Counts logfmt records for `url`, per role: requests, responses, paired responses."""
    url_tok = b" url=" + url.encode() + b" "
    url_q = b' url="' + url.encode() + b'" '
    counts = {r: dict(requests=0, responses=0, paired=0) for r in ("server", "client")}
    other = 0
    with open(path, "rb") as f:
        for line in f:
            head = line.split(b" body=", 1)[0] + b" "
            if url_tok not in head and url_q not in head:
                other += 1
                continue
            role = "server" if b" role=server " in head else "client" if b" role=client " in head else None
            if role is None:
                other += 1
                continue
            if b" kind=response " in head:
                counts[role]["responses"] += 1
                if b" exchange=" in head:
                    counts[role]["paired"] += 1
            elif b" kind=request " in head:
                counts[role]["requests"] += 1
    counts["other_records"] = other
    return counts


def parse_summary(stderr_text):
    """Counters of httpscope's last summary line (events=... kernel_drops=... records=...)."""
    best = {}
    for line in ANSI.sub("", stderr_text).splitlines():
        if "kernel_drops=" in line and "events=" in line:
            fields = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
            if line.lstrip().startswith("events=") or not best:
                best = fields
    return best


class HttpscopeTracer:
    name = "httpscope"

    def __init__(self, ctx, port, bpf_stats=False):
        self.ctx, self.port, self.bpf_stats = ctx, port, bpf_stats

    def start(self, run_dir):
        self.out = run_dir / "records.log"
        self.err = run_dir / "httpscope.stderr"
        self.ctx.stats.set(self.bpf_stats)
        self.t_start = time.monotonic()
        with open(self.err, "wb") as err:
            self.proc = PROCS.spawn([self.ctx.bins["httpscope"], "record", "--port", self.port,
                                     "--output", self.out], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while "attached" not in self.err.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise HarnessError(f"httpscope exited with {self.proc.returncode} before attaching: "
                                   f"{self.err.read_text(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise HarnessError("httpscope did not attach within 60 s")
            time.sleep(0.02)
        self.attach_s = time.monotonic() - self.t_start
        self.cpu_at_attach = proc_cpu_s(self.proc.pid)
        self.hwm_at_attach = proc_hwm_kib(self.proc.pid)

    def stop(self):
        pid = self.proc.pid
        bpf = summarize_bpf(bpf_prog_stats(pid), hooked_syscalls_of(pid))
        hwm = proc_hwm_kib(pid)
        cpu_before_stop = proc_cpu_s(pid)
        t_stop = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        code, rusage = wait4(self.proc, timeout=120)
        drain_s = time.monotonic() - t_stop
        self.ctx.stats.set(False)
        stderr_text = self.err.read_text(errors="replace")
        if code != 0:
            raise HarnessError(f"httpscope exited with {code}: {stderr_text[-800:]}")
        summary = parse_summary(stderr_text)
        if not summary:
            raise HarnessError(f"no summary line from httpscope: {stderr_text[-800:]}")
        cpu_total = rusage.ru_utime + rusage.ru_stime
        return dict(
            tracer="httpscope", attach_s=round(self.attach_s, 3), drain_s=round(drain_s, 3),
            cpu_s=cpu_total - self.cpu_at_attach,  # from attach to exit, drain included
            cpu_s_before_stop=cpu_before_stop - self.cpu_at_attach,
            cpu_s_startup=self.cpu_at_attach,
            user_s=rusage.ru_utime, sys_s=rusage.ru_stime,
            vmhwm_kib=hwm, vmhwm_attach_kib=self.hwm_at_attach, maxrss_kib=rusage.ru_maxrss,
            summary=summary, kernel_drops=summary.get("kernel_drops"), bpf=bpf,
        )

    def count(self, url):
        return count_records(self.out, url)


class BpftraceTracer:
    name = "bpftrace"

    def __init__(self, ctx, bpf_stats=False):
        self.ctx, self.bpf_stats = ctx, bpf_stats

    def start(self, run_dir):
        self.out = run_dir / "naive.out"
        self.err = run_dir / "bpftrace.stderr"
        self.ctx.stats.set(self.bpf_stats)
        env = dict(os.environ, BPFTRACE_STRLEN="200")
        t0 = time.monotonic()
        with open(self.err, "wb") as err:
            self.proc = PROCS.spawn(["bpftrace", BENCH / "naive.bt", "-o", self.out],
                                    stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.monotonic() + 240
        while True:
            try:
                with open(self.out, "rb") as f:
                    if b"attached" in f.read(256):
                        break
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None:
                raise HarnessError(f"bpftrace exited with {self.proc.returncode}: "
                                   f"{self.err.read_text(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise HarnessError("bpftrace did not attach within 240 s")
            time.sleep(0.05)
        self.attach_s = time.monotonic() - t0
        self.cpu_at_attach = proc_cpu_s(self.proc.pid)

    def stop(self):
        pid = self.proc.pid
        bpf = summarize_bpf(bpf_prog_stats(pid), hooked_syscalls_of(pid))
        hwm = proc_hwm_kib(pid)
        t_stop = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        code, rusage = wait4(self.proc, timeout=180)
        drain_s = time.monotonic() - t_stop
        self.ctx.stats.set(False)
        records = lost = 0
        with open(self.out, "rb") as f:
            for line in f:
                if line.startswith(b"D "):
                    records += 1
                else:
                    match = re.search(rb"Lost (\d+) events", line)
                    if match:
                        lost += int(match.group(1))
        for match in re.finditer(r"Lost (\d+) events", self.err.read_text(errors="replace")):
            lost += int(match.group(1))
        output_bytes = self.out.stat().st_size
        self.out.unlink()
        cpu_total = rusage.ru_utime + rusage.ru_stime
        return dict(
            tracer="bpftrace", exit_code=code, attach_s=round(self.attach_s, 3), drain_s=round(drain_s, 3),
            cpu_s=cpu_total - self.cpu_at_attach, cpu_s_startup=self.cpu_at_attach,
            user_s=rusage.ru_utime, sys_s=rusage.ru_stime,
            vmhwm_kib=hwm, maxrss_kib=rusage.ru_maxrss,
            perf_records=records, kernel_drops=lost, output_bytes=output_bytes, bpf=bpf,
        )

    def count(self, url):
        return None


# ------------------------------------------------------------------- context

class Context:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.stats = BpfStats()
        self.bins = {}
        self.servers = {}
        self.nginx = None

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

    def start_nginx(self, port):
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if not nginx:
            raise Skip("nginx not installed")
        prefix = self.work / "nginx"
        for sub in ("html", "tmp", "logs"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        # Body about as long as demo-server's `ok <timestamp>`.
        (prefix / "html" / "index.html").write_text("ok 0123456789abcdefghijklmn\n")
        for path in (self.work, prefix, prefix / "html", prefix / "html" / "index.html"):
            os.chmod(path, 0o755)
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
        listen 127.0.0.1:{port};
        root {prefix}/html;
        location / {{ }}
    }}
}}
""")
        err = open(prefix / "logs" / "stderr.log", "wb")
        proc = PROCS.spawn([nginx, "-p", prefix, "-c", conf, "-e", prefix / "logs" / "error.log"],
                           stdout=subprocess.DEVNULL, stderr=err)
        wait_port(port, proc=proc)
        self.nginx = proc
        self.servers["nginx"] = port

    def stop_nginx(self):
        if self.nginx is not None:
            Procs.stop(self.nginx, sig=signal.SIGQUIT)
            self.nginx = None
            self.servers.pop("nginx", None)


# ----------------------------------------------------------------- workloads

def load_run(ctx, wl, port, duration):
    if wl["load"] == "ab":
        return run_ab(port, wl["path"], duration)
    return run_wrk(port, wl["path"], duration)


def one_run(ctx, name, wl, traced, index, duration, bpf_stats=False):
    run_dir = ctx.work / "runs" / f"{name}-{index}-{'traced' if traced else 'untraced'}"
    run_dir.mkdir(parents=True)
    target_port = ctx.servers[wl["target"]]
    watch_port = ctx.servers["demo"] if wl["target"] == "demo-unwatched" else target_port
    tracer = None
    if traced:
        tracer = BpftraceTracer(ctx, bpf_stats) if wl.get("tracer") == "bpftrace" \
            else HttpscopeTracer(ctx, watch_port, bpf_stats)
    idle = None
    result = dict(pair=index, traced=traced, bpf_stats_run=bpf_stats)
    try:
        if tracer:
            tracer.start(run_dir)
        if wl.get("idle"):
            idle = IdleConns(target_port, wl["idle"])
            result["idle_conns"] = idle.ok
        others = httpscope_instances()
        if others is not None and traced and not wl.get("tracer"):
            others -= 1
        result["other_httpscope_instances"] = others
        result["load"] = load_run(ctx, wl, target_port, duration)
        if idle:
            idle.close()
            idle = None
        if tracer:
            result["tracer"] = tracer.stop()
            counts = tracer.count(wl["path"])
            if counts is not None:
                result["records"] = counts
            tracer = None
    finally:
        if idle:
            idle.close()
        if tracer and tracer.proc.poll() is None:
            Procs.stop(tracer.proc, sig=signal.SIGINT)
            ctx.stats.set(False)
    if traced and "records" in result:
        req = result["load"]["requests"]
        rec = result["records"]
        result["captured_server"] = rec["server"]["paired"] / req
        result["captured_client"] = rec["client"]["paired"] / req
    if traced:
        tr = result["tracer"]
        result["cpu_us_per_exchange"] = tr["cpu_s"] * 1e6 / result["load"]["requests"]
        result["bpf_ns_per_syscall"] = tr["bpf"]["ns_per_syscall"] if tr.get("bpf") else None
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def run_pairs(ctx, name, wl):
    args = ctx.args
    target_port = ctx.servers[wl["target"]]
    if args.warmup:
        load_run(ctx, wl, target_port, args.warmup)
    runs = []
    for i in range(args.pairs):
        for traced in (False, True):
            r = one_run(ctx, name, wl, traced, i, args.duration)
            ld = r["load"]
            extra = ""
            if traced:
                extra = (f" captured s/c={r.get('captured_server', float('nan')):.3f}/"
                         f"{r.get('captured_client', float('nan')):.3f}"
                         f" drops={r['tracer']['kernel_drops']} cpu={r['cpu_us_per_exchange']:.2f}us/ex"
                         f" bpf={fmt(r['bpf_ns_per_syscall'])}ns/sc")
            log(f"  {name} pair {i + 1}/{args.pairs} {'traced  ' if traced else 'untraced'}"
                f" rps={ld['rps']:.0f} p50={ld['p50_ms']} p99={ld['p99_ms']}{extra}")
            runs.append(r)
    if args.bpf_stats:
        # BPF run times come from one more traced run with kernel.bpf_stats_enabled: the
        # stats clock two reads per program run, which would slow the pairs' traced runs.
        r = one_run(ctx, name, wl, True, "bpf-stats", args.duration, bpf_stats=True)
        log(f"  {name} bpf-stats run rps={r['load']['rps']:.0f} drops={r['tracer']['kernel_drops']}"
            f" bpf={fmt(r['bpf_ns_per_syscall'])}ns/sc (not in the ratios)")
        runs.append(r)
    return runs


def summarize_pairs(runs):
    untraced = [r for r in runs if not r["traced"]]
    traced = [r for r in runs if r["traced"] and not r.get("bpf_stats_run")]
    stats_runs = [r for r in runs if r.get("bpf_stats_run")]
    pairs = list(zip(untraced, traced))

    def ratio(key):
        vals = [t["load"][key] / u["load"][key] for u, t in pairs
                if u["load"].get(key) and t["load"].get(key) is not None]
        return median(vals)

    s = dict(
        pairs=len(pairs),
        untraced_rps=median([r["load"]["rps"] for r in untraced]),
        traced_rps=median([r["load"]["rps"] for r in traced]),
        rps_ratio=ratio("rps"),
        rps_ratios=[round(t["load"]["rps"] / u["load"]["rps"], 4) for u, t in pairs],
        untraced_p50_ms=median([r["load"]["p50_ms"] for r in untraced]),
        traced_p50_ms=median([r["load"]["p50_ms"] for r in traced]),
        untraced_p99_ms=median([r["load"]["p99_ms"] for r in untraced]),
        traced_p99_ms=median([r["load"]["p99_ms"] for r in traced]),
        p50_ratio=ratio("p50_ms"),
        p99_ratio=ratio("p99_ms"),
        load_errors=sum(r["load"]["errors"] for r in runs),
        kernel_drops=sum(r["tracer"]["kernel_drops"] or 0 for r in traced + stats_runs),
        cpu_us_per_exchange=median([r["cpu_us_per_exchange"] for r in traced]),
        bpf_ns_per_syscall=median([r["bpf_ns_per_syscall"] for r in stats_runs]),
        rss_mib=max((r["tracer"]["vmhwm_kib"] or 0) for r in traced) / 1024 if traced else None,
        runs_with_other_httpscope=sum(1 for r in runs if r.get("other_httpscope_instances")),
        tracer_attach_s=median([r["tracer"]["attach_s"] for r in traced]),
    )
    if traced and all("captured_server" in r for r in traced + stats_runs):
        s["captured_server"] = median([r["captured_server"] for r in traced])
        s["captured_client"] = median([r["captured_client"] for r in traced])
        s["captured_server_min"] = min(r["captured_server"] for r in traced + stats_runs)
        s["captured_client_min"] = min(r["captured_client"] for r in traced + stats_runs)
    s["bpf_programs"] = aggregate_programs(stats_runs)
    return s


def aggregate_programs(traced):
    """Per-program totals over all traced runs, with runs per exchange."""
    totals = {}
    requests = sum(r["load"]["requests"] for r in traced if r.get("load"))
    for r in traced:
        bpf = r["tracer"].get("bpf")
        if not bpf:
            continue
        for p in bpf["programs"]:
            t = totals.setdefault(p["name"], dict(name=p["name"], run_time_ns=0, run_cnt=0))
            t["run_time_ns"] += p["run_time_ns"]
            t["run_cnt"] += p["run_cnt"]
    out = []
    for t in sorted(totals.values(), key=lambda t: -t["run_time_ns"]):
        t["ns_per_run"] = t["run_time_ns"] / t["run_cnt"] if t["run_cnt"] else None
        t["runs_per_exchange"] = t["run_cnt"] / requests if requests else None
        t["ns_per_exchange"] = t["run_time_ns"] / requests if requests else None
        out.append(t)
    return out


def run_rss(ctx, name, wl):
    """Traced only: N concurrent connections, profiler VmHWM."""
    port = ctx.servers["demo"]
    count = ctx.args.rss_conns
    run_dir = ctx.work / "runs" / name
    run_dir.mkdir(parents=True)
    tracer = HttpscopeTracer(ctx, port, ctx.args.bpf_stats)
    tracer.start(run_dir)
    idle = None
    try:
        idle = IdleConns(port, count, path=wl["path"])
        time.sleep(1.0)  # let the profiler process the backlog
        hwm_open = proc_hwm_kib(tracer.proc.pid)
        idle.close()
        opened, open_s = idle.ok, idle.seconds
        idle = None
        tr = tracer.stop()
    finally:
        if idle:
            idle.close()
        if tracer.proc.poll() is None:
            Procs.stop(tracer.proc, sig=signal.SIGINT)
            ctx.stats.set(False)
    counts = tracer.count(wl["path"])
    shutil.rmtree(run_dir, ignore_errors=True)
    run = dict(traced=True, connections=opened, open_s=open_s, vmhwm_open_kib=hwm_open, tracer=tr,
               records=counts, captured_server=counts["server"]["paired"] / count,
               captured_client=counts["client"]["paired"] / count)
    log(f"  {name}: {opened} connections in {open_s:.1f}s, httpscope VmHWM {tr['vmhwm_kib'] / 1024:.1f} MiB"
        f" ({tr['vmhwm_attach_kib'] / 1024:.1f} MiB at attach),"
        f" captured s/c={run['captured_server']:.3f}/{run['captured_client']:.3f} drops={tr['kernel_drops']}")
    summary = dict(connections=opened, rss_mib=tr["vmhwm_kib"] / 1024,
                   rss_attach_mib=tr["vmhwm_attach_kib"] / 1024,
                   kib_per_connection=(hwm_open - tr["vmhwm_attach_kib"]) / max(opened, 1), kernel_drops=tr["kernel_drops"],
                   captured_server=run["captured_server"], captured_client=run["captured_client"],
                   captured_server_min=run["captured_server"], captured_client_min=run["captured_client"],
                   cpu_us_per_exchange=tr["cpu_s"] * 1e6 / count,
                   bpf_ns_per_syscall=tr["bpf"]["ns_per_syscall"] if tr.get("bpf") else None)
    return [run], summary


# --------------------------------------------------------------------- goals

def evaluate_goals(results):
    wls = results["workloads"]

    def s(name):
        w = wls.get(name)
        return w.get("summary") if w and w.get("status") == "ok" else None

    goals = []

    def add(goal, target, workload, value, ok, unit="", fmt="{:.3f}"):
        goals.append(dict(goal=goal, target=target, workload=workload,
                          measured=value, measured_text=(fmt.format(value) + unit) if value is not None else "n/a",
                          status="n/a" if value is None else ("pass" if ok else "FAIL")))

    for name in ("keepalive-demo", "keepalive-nginx"):
        x = s(name)
        v = x and x["rps_ratio"]
        add("throughput traced/untraced (median of pairs)", ">= 0.95", name, v, v is not None and v >= 0.95)
    for name in ("keepalive-demo", "keepalive-nginx"):
        x = s(name)
        v = None
        if x and "captured_server_min" in x:
            v = min(x["captured_server_min"], x["captured_client_min"])
        add("exchanges captured and paired, both sides (worst run, worst side)", "100%", name,
            None if v is None else v * 100, v is not None and v >= 1.0, "%", "{:.2f}")
    for name in ("keepalive-demo", "keepalive-nginx"):
        x = s(name)
        v = x and x["kernel_drops"]
        add("kernel drops at the default ring size (all traced runs)", "0", name, v, v == 0, "", "{:d}")
    x = s("keepalive-demo")
    v = x and x["cpu_us_per_exchange"]
    add("profiler CPU per exchange (user+sys)", "<= 2 µs", "keepalive-demo", v, v is not None and v <= 2.0, " µs", "{:.2f}")
    v = x and x["bpf_ns_per_syscall"]
    add("BPF time per hooked syscall", "<= 300 ns", "keepalive-demo", v, v is not None and v <= 300, " ns", "{:.0f}")
    x = s("rss-10k")
    v = x and x["rss_mib"]
    add("profiler peak RSS at 10,000 open connections", "<= 64 MiB", "rss-10k", v, v is not None and v <= 64,
        " MiB", "{:.1f}")
    x = s("unwatched-port")
    v = x and x["rps_ratio"]
    add("throughput on an unwatched port, traced/untraced", ">= 0.98", "unwatched-port", v,
        v is not None and v >= 0.98)
    x = s("naive-bpftrace")
    v = x and x["rps_ratio"]
    goals.append(dict(goal="reference: naive tracer throughput traced/untraced (issue: prototype 0.47)",
                      target="(info)", workload="naive-bpftrace", measured=v,
                      measured_text="n/a" if v is None else f"{v:.3f}", status="info"))
    return goals


# ------------------------------------------------------------------ markdown

def fmt(v, spec="{:.0f}", suffix=""):
    return "—" if v is None else spec.format(v) + suffix


def markdown(results):
    m = results["meta"]
    lines = [
        f"# httpscope overhead benchmark ({m['mode']})", "",
        f"{m['date']} · commit `{m['commit']}`{' (dirty tree)' if m['dirty'] else ''} · {m['kernel']} · "
        f"{m['cpus']} CPUs · {m['pairs']} untraced/traced pair(s) per workload, {m['duration_s']} s runs, "
        f"alternated · loadavg before {m['loadavg_before']} after {m.get('loadavg_after')}", "",
        "Ratios are traced/untraced, median over pairs. *captured* = paired exchanges in httpscope's output "
        "over requests the load generator completed (server side / client side; >100% = requests in flight "
        "at stop). *CPU* = profiler user+sys from attach to exit (drain included) per completed request. "
        "*BPF* = run time of all httpscope programs / socket syscalls of the captured kinds (httpscope counts them; "
        "its sys_exit program also runs, briefly, on every other syscall and that time is included), from one extra "
        "traced run per workload with kernel.bpf_stats_enabled (the pairs run without it: it adds two clock reads "
        "to every program run). *RSS* = profiler VmHWM.", "",
        "| workload | untraced rps | traced rps | rps ratio | p50 ratio | p99 ratio | captured server / client "
        "| drops (sum) | CPU µs/exchange | BPF ns/syscall | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, w in results["workloads"].items():
        if w["status"] != "ok":
            lines.append(f"| {name} | {w['status']}: {w.get('reason', '')} | | | | | | | | | |")
            continue
        s = w["summary"]
        cap = "—"
        if s.get("captured_server") is not None:
            cap = f"{s['captured_server'] * 100:.2f}% / {s['captured_client'] * 100:.2f}%"
            worst = min(s.get("captured_server_min", 1), s.get("captured_client_min", 1))
            if worst < 0.999:
                cap += f" (worst run {worst * 100:.1f}%)"
        if WORKLOADS[name]["target"] == "demo-unwatched":
            cap = "— (not watched)"
        drops = fmt(s.get("kernel_drops"), "{:d}")
        if name == "naive-bpftrace" and s.get("kernel_drops") is not None:
            drops = f"{s['kernel_drops']:d} lost"
        lines.append(
            f"| {name} | {fmt(s.get('untraced_rps'))} | {fmt(s.get('traced_rps'))} | {fmt(s.get('rps_ratio'), '{:.3f}')} "
            f"| {fmt(s.get('p50_ratio'), '{:.2f}')} | {fmt(s.get('p99_ratio'), '{:.2f}')} | {cap} | {drops} "
            f"| {fmt(s.get('cpu_us_per_exchange'), '{:.2f}')} | {fmt(s.get('bpf_ns_per_syscall'))} "
            f"| {fmt(s.get('rss_mib'), '{:.1f}')} |")
    noisy = [f"{n} {w['summary']['runs_with_other_httpscope']}/{len(w['runs'])}"
             for n, w in results["workloads"].items()
             if w["status"] == "ok" and w["summary"].get("runs_with_other_httpscope")]
    if noisy:
        lines += ["", "Runs during which another httpscope instance was loaded on the machine (its hooks "
                  "slow every syscall, traced or not): " + ", ".join(noisy) + "."]
    rss = results["workloads"].get("rss-10k")
    if rss and rss["status"] == "ok" and rss["summary"].get("rss_attach_mib") is not None:
        r = rss["summary"]
        lines += ["", f"rss-10k: profiler VmHWM {r['rss_attach_mib']:.1f} MiB right after attach, "
                  f"{r['rss_mib']:.1f} MiB with {r['connections']} connections open "
                  f"(~{r['kib_per_connection']:.1f} KiB per connection)."]
    if not m.get("bpf_stats", True):
        lines += ["", "kernel.bpf_stats_enabled was left alone (--no-bpf-stats): no BPF figures."]
    lines += ["", "## Goals (issue #4: " + GOALS_TEXT + ")", "",
              "| goal | workload | target | measured | status |", "|---|---|---|---:|---|"]
    for g in results["goals"]:
        lines.append(f"| {g['goal']} | {g['workload']} | {g['target']} | {g['measured_text']} | {g['status']} |")
    ka = results["workloads"].get("keepalive-demo")
    if ka and ka["status"] == "ok" and ka["summary"].get("bpf_programs"):
        lines += ["", "## BPF programs, keepalive-demo (the bpf-stats run)", "",
                  "| program | runs/exchange | ns/run | ns/exchange |", "|---|---:|---:|---:|"]
        for p in ka["summary"]["bpf_programs"]:
            if p["run_cnt"]:
                lines.append(f"| {p['name']} | {fmt(p['runs_per_exchange'], '{:.2f}')} | {fmt(p['ns_per_run'])} "
                             f"| {fmt(p['ns_per_exchange'])} |")
    lines += ["", "Workloads:", ""]
    for name, w in results["workloads"].items():
        lines.append(f"- `{name}`: {WORKLOADS[name]['about']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- main

def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def main():
    parser = argparse.ArgumentParser(description="httpscope overhead benchmark (issue #4)")
    parser.add_argument("--smoke", action="store_true", help="each workload once, 1 s runs, 1 pair; no timing asserts")
    parser.add_argument("--workloads", help="comma-separated subset of: " + ",".join(WORKLOADS))
    parser.add_argument("--out", default=str(BENCH / "results"), help="directory for results.json and results.md")
    parser.add_argument("--pairs", type=int, help="untraced/traced pairs per workload (default 5; smoke 1)")
    parser.add_argument("--duration", type=int, help="seconds per run (default 3; smoke 1)")
    parser.add_argument("--warmup", type=int, help="untraced warm-up seconds per workload (default 1; smoke 0)")
    parser.add_argument("--no-bpf-stats", dest="bpf_stats", action="store_false",
                        help="leave kernel.bpf_stats_enabled alone (no BPF run-time figures, no stats overhead)")
    parser.add_argument("--rss-conns", type=int, help="connections of rss-10k (default 10000; smoke 1000)")
    args = parser.parse_args()
    smoke = args.smoke
    args.pairs = args.pairs or (1 if smoke else 5)
    args.duration = args.duration or (1 if smoke else 3)
    args.warmup = (0 if smoke else 1) if args.warmup is None else args.warmup
    args.rss_conns = args.rss_conns or (1000 if smoke else 10000)
    names = list(WORKLOADS) if not args.workloads else [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    if os.geteuid() != 0:
        print("bench: must run as root (BPF, sysctl)", file=sys.stderr)
        return 2
    for tool in ("wrk", "ab"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found (apt-get install wrk apache2-utils)", file=sys.stderr)
            return 2

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="httpscope-bench-"))
    ctx = Context(args, work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    nofile = raise_nofile()
    started = time.monotonic()
    results = dict(meta=dict(
        mode="smoke" if smoke else "full",
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=git("rev-parse", "--short=12", "HEAD"), dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
        kernel=platform.release(), cpus=os.cpu_count(), pairs=args.pairs, duration_s=args.duration,
        warmup_s=args.warmup, bpf_stats=args.bpf_stats, rss_conns=args.rss_conns, nofile=nofile,
        loadavg_before=f"{os.getloadavg()[0]:.2f}",
        foreign_bpf_before=foreign_bpf_programs(),
        tools={t: (shutil.which(t) is not None) for t in ("wrk", "ab", "nginx", "bpftool", "bpftrace")},
    ), workloads={}, goals=[])
    failed = False
    try:
        results["meta"]["binaries"] = ctx.snapshot_binaries()
        watched, unwatched, nginx_port = free_ports(3)
        ctx.start_demo("demo", watched)
        ctx.start_demo("demo-unwatched", unwatched)
        log(f"demo-server on {watched} (watched) and {unwatched} (unwatched); work dir {work}")
        for name in names:
            wl = WORKLOADS[name]
            entry = dict(about=wl["about"])
            results["workloads"][name] = entry
            t0 = time.monotonic()
            log(f"workload {name}: {wl['about']}")
            try:
                if wl["target"] == "nginx":
                    ctx.start_nginx(nginx_port)
                if wl.get("tracer") == "bpftrace" and not shutil.which("bpftrace"):
                    raise Skip("bpftrace not installed")
                if wl["load"] == "conns":
                    entry["runs"], entry["summary"] = run_rss(ctx, name, wl)
                else:
                    entry["runs"] = run_pairs(ctx, name, wl)
                    entry["summary"] = summarize_pairs(entry["runs"])
                entry["status"] = "ok"
            except Skip as why:
                entry.update(status="skipped", reason=str(why))
                log(f"  {name} skipped: {why}")
            except (HarnessError, subprocess.SubprocessError, OSError, ValueError, KeyError) as err:
                entry.update(status="error", reason=f"{type(err).__name__}: {err}")
                log(f"  {name} FAILED: {err}")
                failed = True
            finally:
                ctx.stop_nginx()
            entry["seconds"] = round(time.monotonic() - t0, 1)
    except HarnessError as err:
        log(f"FAILED: {err}")
        results["meta"]["error"] = str(err)
        failed = True
    finally:
        PROCS.stop_all()
        ctx.stats.restore()
        results["meta"]["loadavg_after"] = f"{os.getloadavg()[0]:.2f}"
        results["meta"]["foreign_bpf_after"] = foreign_bpf_programs()
        results["meta"]["total_s"] = round(time.monotonic() - started, 1)
        results["goals"] = evaluate_goals(results)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (out_dir / "results.md").write_text(markdown(results))
        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {results['meta']['total_s']} s: {out_dir / 'results.md'}, {out_dir / 'results.json'}")
    print((out_dir / "results.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
