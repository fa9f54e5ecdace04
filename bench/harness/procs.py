"""The processes the harness starts and stops, and what /proc says about them."""

import os
import resource
import signal
import socket
import subprocess
import time

from .common import HarnessError

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def proc_status_kib(pid, field):
    """A kB field of /proc/PID/status (VmHWM, VmRSS, ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def proc_hwm_kib(pid):
    return proc_status_kib(pid, "VmHWM")


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
