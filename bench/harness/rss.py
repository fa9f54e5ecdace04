"""rss-10k: many concurrent connections under one traced run, profiler peak memory."""

import shutil
import signal
import time

from .loadgen import IdleConns
from .common import log
from .procs import Procs, proc_hwm_kib, proc_status_kib
from .tracers import HttpscopeTracer

def run_rss(ctx, name, wl):
    """Traced only: N concurrent connections, profiler VmHWM."""
    port = ctx.servers["demo"]
    count = ctx.args.rss_conns
    run_dir = ctx.work / "runs" / name
    run_dir.mkdir(parents=True)
    tracer = HttpscopeTracer(ctx, port, wl.get("backend", "auto"), ctx.args.bpf_stats)
    tracer.start(run_dir)
    idle = None
    try:
        idle = IdleConns(port, count, path=wl["path"])
        time.sleep(1.0)  # let the profiler process the backlog
        hwm_open = proc_hwm_kib(tracer.proc.pid)
        rss_open = proc_status_kib(tracer.proc.pid, "VmRSS")
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
                   rss_now_attach_mib=tracer.rss_at_attach / 1024, rss_now_open_mib=rss_open / 1024,
                   kib_per_connection=(rss_open - tracer.rss_at_attach) / max(opened, 1),
                   kernel_drops=tr["kernel_drops"],
                   captured_server=run["captured_server"], captured_client=run["captured_client"],
                   captured_server_min=run["captured_server"], captured_client_min=run["captured_client"],
                   cpu_us_per_exchange=tr["cpu_s"] * 1e6 / count,
                   bpf_ns_per_syscall=tr["bpf"]["ns_per_syscall"] if tr.get("bpf") else None)
    return [run], summary
