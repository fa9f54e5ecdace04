"""The traced side of a run: httpscope or the naive bpftrace script, started, stopped and counted."""

import os
import re
import signal
import subprocess
import time
import urllib.request

from .bpf_stats import bpf_prog_stats, hooked_syscalls_of, summarize_bpf
from .common import BENCH, HarnessError
from .procs import PROCS, free_ports, proc_cpu_s, proc_hwm_kib, proc_status_kib, wait4

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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


def scrape_metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode(errors="replace")


def count_metrics(text, route):
    """Per role on `route`: requests seen (httpscope_http_requests_total) and exchanges
    paired with their response (the duration histograms' counts)."""
    counts = {r: dict(requests=0, responses=0, paired=0) for r in ("server", "client")}
    for line in text.splitlines():
        if f'http_route="{route}"' not in line:
            continue
        n = int(float(line.rsplit(" ", 1)[1]))
        for role in ("server", "client"):
            if line.startswith("httpscope_http_requests_total{") and f'role="{role}"' in line:
                counts[role]["requests"] += n
            elif line.startswith(f"http_{role}_request_duration_seconds_count{{"):
                counts[role]["responses"] += n
                counts[role]["paired"] += n
    counts["other_records"] = 0
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

    def __init__(self, ctx, port, backend="auto", bpf_stats=False, all_ports=False, stage=None,
                 metrics_mode=False, capture_budget=True, binary="httpscope"):
        self.ctx, self.port, self.backend, self.bpf_stats = ctx, port, backend, bpf_stats
        # Which of ctx.bins runs: the build under test, or --ab's other build.
        self.binary = binary
        self.ports = ["--all-ports"] if all_ports else ["--port", port]
        # The cost ladder's stage (1-9): the capture stops after that step, writes no log.
        self.stage = stage
        # Metrics mode: no log (`--output none`), Prometheus metrics scraped before the stop.
        self.metrics_port = free_ports(1, start=19400)[0] if metrics_mode else None
        self.metrics_text = None
        # False: --no-capture-budget (every call copied whole), a control for the budget.
        self.capture_budget = capture_budget

    def start(self, run_dir):
        self.out = run_dir / "records.log"
        self.err = run_dir / "httpscope.stderr"
        self.ctx.stats.set(self.bpf_stats)
        self.t_start = time.monotonic()
        env = dict(os.environ)
        env.pop("HTTPSCOPE_BENCH_STAGE", None)
        if self.stage is not None:
            env["HTTPSCOPE_BENCH_STAGE"] = str(self.stage)
        output = ["--output", self.out]
        if self.metrics_port:
            output = ["--output", "none", "--metrics-addr", f"127.0.0.1:{self.metrics_port}"]
        if not self.capture_budget:
            output.append("--no-capture-budget")
        with open(self.err, "wb") as err:
            self.proc = PROCS.spawn([self.ctx.bins[self.binary], "record", *self.ports,
                                     "--capture-backend", self.backend, *output],
                                    stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.monotonic() + 60
        while "attached; capturing" not in self.err.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise HarnessError(f"httpscope exited with {self.proc.returncode} before attaching: "
                                   f"{self.err.read_text(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise HarnessError("httpscope did not attach within 60 s")
            time.sleep(0.02)
        self.attach_s = time.monotonic() - self.t_start
        self.cpu_at_attach = proc_cpu_s(self.proc.pid)
        self.hwm_at_attach = proc_hwm_kib(self.proc.pid)
        self.rss_at_attach = proc_status_kib(self.proc.pid, "VmRSS")

    def stop(self):
        pid = self.proc.pid
        bpf = summarize_bpf(bpf_prog_stats(pid), hooked_syscalls_of(pid))
        hwm = proc_hwm_kib(pid)
        cpu_before_stop = proc_cpu_s(pid)
        if self.metrics_port:
            # The load is over; the pipeline's counters are refreshed once a second.
            time.sleep(1.5)
            self.metrics_text = scrape_metrics(self.metrics_port)
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
            backend=self.attached_backend(stderr_text),
        )

    def attached_backend(self, stderr_text):
        match = re.search(r'backend="?(\w+)', ANSI.sub("", stderr_text))
        return match.group(1) if match else None

    def count(self, url):
        if self.metrics_text is not None:
            return count_metrics(self.metrics_text, url)
        return None if self.stage is not None else count_records(self.out, url)


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


class TcpdumpTracer:
    """The packet capture httpscope means to replace: `tcpdump -i lo -w FILE 'tcp port P'`."""
    name = "tcpdump"

    def __init__(self, ctx, port):
        self.ctx, self.port = ctx, port

    def start(self, run_dir):
        self.out = run_dir / "capture.pcap"
        self.err = run_dir / "tcpdump.stderr"
        t0 = time.monotonic()
        with open(self.err, "wb") as err:
            self.proc = PROCS.spawn(["tcpdump", "-i", "lo", "-Z", "root", "-w", self.out,
                                     f"tcp port {self.port}"],
                                    stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 30
        while "listening on" not in self.err.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise HarnessError(f"tcpdump exited with {self.proc.returncode}: "
                                   f"{self.err.read_text(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise HarnessError("tcpdump did not start listening within 30 s")
            time.sleep(0.02)
        self.attach_s = time.monotonic() - t0
        self.cpu_at_attach = proc_cpu_s(self.proc.pid)

    def stop(self):
        hwm = proc_hwm_kib(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        code, rusage = wait4(self.proc, timeout=60)
        stderr_text = self.err.read_text(errors="replace")
        if code != 0:
            raise HarnessError(f"tcpdump exited with {code}: {stderr_text[-800:]}")
        count = lambda what: int(m.group(1)) if (m := re.search(rf"(\d+) packets? {what}", stderr_text)) else None
        output_bytes = self.out.stat().st_size
        self.out.unlink()
        return dict(
            tracer="tcpdump", attach_s=round(self.attach_s, 3),
            cpu_s=rusage.ru_utime + rusage.ru_stime - self.cpu_at_attach,
            user_s=rusage.ru_utime, sys_s=rusage.ru_stime, vmhwm_kib=hwm, maxrss_kib=rusage.ru_maxrss,
            packets=count("captured"), kernel_drops=count("dropped by kernel"), output_bytes=output_bytes,
            bpf=None,
        )

    def count(self, url):
        return None
