"""Load generators: wrk, ab, h2load, and bench/idle_conns.py for held-open connections."""

import re
import shutil
import subprocess
import sys

from .common import BENCH, HarnessError, Skip
from .procs import PROCS, Procs

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk_command(port, path, duration, conns=50, threads=2, extra=(), scheme="http"):
    return ["wrk", "-c", str(conns), "-t", str(threads), "-d", f"{duration}s",
            "--timeout", "5s", "--latency", *extra, f"{scheme}://127.0.0.1:{port}{path}"]


def run_wrk(port, path, duration, conns=50, threads=2, scheme="http"):
    cmd = wrk_command(port, path, duration, conns, threads, scheme=scheme)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    return parse_wrk(cmd, out.returncode, out.stdout, out.stderr)


def parse_wrk(cmd, returncode, text, stderr):
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if returncode != 0 or not match or not rps:
        raise HarnessError(f"wrk failed (exit {returncode}): {text[-500:]} {stderr[-500:]}")
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


def run_h2load(port, path, duration, work, conns=50, threads=2):
    """h2load (nghttp2-client), h2c with prior knowledge; p50/p99 from its per-request log."""
    if not shutil.which("h2load"):
        raise Skip("h2load not installed (apt-get install nghttp2-client)")
    url = f"http://127.0.0.1:{port}{path}"
    log_file = work / "h2load.log"
    cmd = ["h2load", "-c", str(conns), "-t", str(threads), "-m", "1", "-D", str(duration),
           "--log-file", str(log_file), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout", text)
    statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if out.returncode != 0 or not rps or not counts or not statuses:
        raise HarnessError(f"h2load failed (exit {out.returncode}): {text[-500:]} {out.stderr[-500:]}")
    done, _, failed, errored, timeout = (int(g) for g in counts.groups())
    if done == 0:
        raise HarnessError(f"h2load completed no request: {text[-500:]}")
    # Log lines: start time (µs), status, request time (µs).
    latencies = sorted(int(line.split()[2]) for line in log_file.read_text().splitlines()
                       if len(line.split()) == 3)
    log_file.unlink()

    def quantile_ms(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000 if latencies else None

    non2xx = sum(int(g) for g in statuses.groups()[1:])
    return dict(tool="h2load", cmd=" ".join(cmd), requests=done, rps=float(rps.group(1)),
                p50_ms=quantile_ms(0.5), p99_ms=quantile_ms(0.99), errors=failed + errored + timeout + non2xx)


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
