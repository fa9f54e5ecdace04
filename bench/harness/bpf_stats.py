"""BPF run-time statistics: kernel.bpf_stats_enabled, bpftool, httpscope's own counters."""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .common import log

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


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
        return [dict(id=p["id"], name=p.get("name", f"prog{p['id']}"), type=p.get("type"),
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
    """How many httpscope-like program sets are loaded right now (ours included): one
    capture program per instance, `syscall_exit` (syscall backend) or `sock_send` (socket)."""
    progs = bpftool_progs()
    if progs is None:
        return None
    return sum(1 for p in progs if p.get("name") in ("syscall_exit", "sock_send"))


def foreign_bpf_programs():
    """Tracepoint programs loaded by others (noise indicator)."""
    progs = bpftool_progs()
    if progs is None:
        return None
    return dict(
        total=len(progs),
        tracepoint=sum(1 for p in progs if p.get("type") == "tracepoint"),
        httpscope_like=sum(1 for p in progs if p.get("name") in ("syscall_exit", "sock_send")),
    )
