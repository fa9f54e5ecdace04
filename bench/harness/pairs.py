"""The alternated untraced/traced pairs runner and its per-workload summary."""

import shutil
import signal
import subprocess
import sys

from .bpf_stats import httpscope_instances
from .common import log, median
from .loadgen import IdleConns
from .procs import PROCS, Procs
from .servers import ECHO
from .report import fmt
from .tracers import BpftraceTracer, HttpscopeTracer, TcpdumpTracer
from .workloads import load_run

def one_run(ctx, name, wl, traced, index, duration, bpf_stats=False):
    run_dir = ctx.work / "runs" / f"{name}-{index}-{'traced' if traced else 'untraced'}"
    run_dir.mkdir(parents=True)
    target_port = ctx.servers[wl["target"]]
    watch_port = ctx.servers["demo"] if wl["target"] == "demo-unwatched" else target_port
    tracer = None
    if traced:
        kind = wl.get("tracer", "httpscope")
        if kind == "bpftrace":
            tracer = BpftraceTracer(ctx, bpf_stats)
        elif kind == "tcpdump":
            tracer = TcpdumpTracer(ctx, watch_port)
        else:
            tracer = HttpscopeTracer(ctx, watch_port, wl.get("backend", "auto"), bpf_stats,
                                     all_ports=wl.get("all_ports", False), stage=wl.get("stage"),
                                     metrics_mode=wl.get("metrics_mode", False),
                                     capture_budget=wl.get("capture_budget", True),
                                     binary=wl.get("binary", "httpscope"))
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
        side = None
        if wl.get("side_load"):
            side = PROCS.spawn([sys.executable, ECHO, "load", ctx.servers[wl["side_load"]], duration],
                               stdout=subprocess.PIPE, text=True)
        result["load"] = load_run(ctx, wl, target_port, duration)
        if side:
            out, _ = side.communicate(timeout=duration + 30)
            result["side_load_rate"] = float(out.strip())
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
            extra = f" echo={r['side_load_rate']:.0f}/s" if "side_load_rate" in r else ""
            if traced:
                extra += (f" captured s/c={r.get('captured_server', float('nan')):.3f}/"
                         f"{r.get('captured_client', float('nan')):.3f}"
                         f" drops={r['tracer']['kernel_drops']} cpu={r['cpu_us_per_exchange']:.2f}us/ex"
                         f" bpf={fmt(r['bpf_ns_per_syscall'])}ns/sc")
            log(f"  {name} pair {i + 1}/{args.pairs} {'traced  ' if traced else 'untraced'}"
                f" rps={ld['rps']:.0f} p50={ld['p50_ms']} p99={ld['p99_ms']}{extra}")
            runs.append(r)
    if args.bpf_stats and wl.get("tracer") != "tcpdump":
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
        # From SIGINT to exit: drain, write, detach.
        tracer_stop_s=median([r["tracer"].get("drain_s") for r in traced]),
    )
    if all("side_load_rate" in r for r in untraced + traced) and pairs:
        # The non-HTTP load's own throughput, traced/untraced.
        s["side_load_ratio"] = median([t["side_load_rate"] / u["side_load_rate"] for u, t in pairs
                                       if u["side_load_rate"]])
    if traced and all("captured_server" in r for r in traced + stats_runs):
        s["captured_server"] = median([r["captured_server"] for r in traced])
        s["captured_client"] = median([r["captured_client"] for r in traced])
        s["captured_server_min"] = min(r["captured_server"] for r in traced + stats_runs)
        s["captured_client_min"] = min(r["captured_client"] for r in traced + stats_runs)
    s["bpf_programs"] = aggregate_programs(stats_runs)
    s["uprobe_hits"] = uprobe_hits(s["bpf_programs"], sum(r["load"]["requests"] for r in stats_runs))
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
            t = totals.setdefault(p["name"], dict(name=p["name"], type=p.get("type"), run_time_ns=0,
                                                  run_cnt=0))
            t["run_time_ns"] += p["run_time_ns"]
            t["run_cnt"] += p["run_cnt"]
    out = []
    for t in sorted(totals.values(), key=lambda t: -t["run_time_ns"]):
        t["ns_per_run"] = t["run_time_ns"] / t["run_cnt"] if t["run_cnt"] else None
        t["runs_per_exchange"] = t["run_cnt"] / requests if requests else None
        t["ns_per_exchange"] = t["run_time_ns"] / requests if requests else None
        out.append(t)
    return out


def uprobe_hits(programs, requests):
    """The TLS library probes (uprobes and return probes: bpftool's type "kprobe") per exchange,
    and their programs' run time per hit (the trap into the kernel and back is not in it)."""
    probes = [p for p in programs if p.get("type") == "kprobe"]
    hits = sum(p["run_cnt"] for p in probes)
    if not hits or not requests:
        return None
    return dict(per_exchange=hits / requests, bpf_ns_per_hit=sum(p["run_time_ns"] for p in probes) / hits,
                programs={p["name"]: round(p["run_cnt"] / requests, 2) for p in probes if p["run_cnt"]})
