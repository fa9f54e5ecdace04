"""The cost ladder: a workload (keepalive-demo unless --workloads) traced with
httpscope's capture stopped after each step of its work in turn
(HTTPSCOPE_BENCH_STAGE), and tcpdump beside keepalive-demo. Every traced run follows an
untraced one, so each step's ratio comes from its own pairs, all in one run; the
difference between two steps is what the later one costs. The steps stop the socket
programs only: a TLS library's probes run whole at every step, so the ladder takes
plain-HTTP workloads."""

from .common import HarnessError, log, median
from .pairs import one_run, summarize_pairs
from .report import fmt
from .workloads import WORKLOADS, load_run

# The steps as crates/httpscope-capture/src/ladder.rs stops them; 10 is the product.
STEPS = [
    (1, "programs attached, returning at once"),
    (2, "plus the port check and the connection-state lookup"),
    (3, "plus describing the call and the capture budget's framing"),
    (4, "plus the copy from user memory"),
    (5, "plus the ring reserve (record discarded unseen)"),
    (6, "plus the reader draining the ring, dropping each record"),
    (7, "plus decoding events and keeping connections"),
    (8, "plus parsing, pairing, routes and the summary"),
    (9, "plus formatting each line, written nowhere"),
    (10, "plus writing the log to a file: the whole product"),
]


def configs(name):
    base = WORKLOADS[name]
    out = [("tcpdump", dict(WORKLOADS["tcpdump-demo"]))] if name == "keepalive-demo" else []
    for n, _ in STEPS:
        out.append((f"stage-{n}", dict(base, stage=n if n < 10 else None, backend="socket")))
    return out


def ladderable(wl):
    """Plain HTTP on a watched port, at saturation, traced whole by httpscope's socket
    backend (the one whose programs stop at every step)."""
    return not (wl.get("tracer") or wl["load"] == "conns" or wl.get("scheme") == "https"
                or wl.get("metrics_mode") or wl.get("backend") == "syscall"
                or wl["target"] == "demo-unwatched")


def ladder_workloads(names):
    """The workloads to run a ladder on (keepalive-demo unless named)."""
    names = names or ["keepalive-demo"]
    bad = [n for n in names if not ladderable(WORKLOADS[n])]
    if bad:
        good = ", ".join(n for n, wl in WORKLOADS.items() if ladderable(wl))
        raise HarnessError(f"--ladder cannot take {', '.join(bad)}; it takes {good}")
    return names


def run_ladder(ctx, names):
    """{workload: ladder} for each of names; see run_one_ladder."""
    out = {}
    for name in ladder_workloads(names):
        wl = WORKLOADS[name]
        for target in (wl["target"], wl.get("side_load")):
            if target in ctx.on_demand_ports:
                ctx.start_on_demand(target, ctx.on_demand_ports[target])
        try:
            out[name] = run_one_ladder(ctx, name)
        finally:
            ctx.stop_on_demand()
    return out


def run_one_ladder(ctx, workload):
    """Runs and summarizes one ladder: {summaries: {name: summary}, runs, untraced_rps}"""
    args = ctx.args
    plan = configs(workload)
    if args.warmup:
        load_run(ctx, WORKLOADS[workload], ctx.servers[WORKLOADS[workload]["target"]], args.warmup)
    runs = {name: [] for name, _ in plan}
    for i in range(args.pairs):
        for name, wl in plan:
            for traced in (False, True):
                r = one_run(ctx, f"{workload}-{name}", wl, traced, i, args.duration)
                runs[name].append(r)
                extra = ""
                if traced:
                    extra = (f" ratio={r['load']['rps'] / runs[name][-2]['load']['rps']:.3f}"
                             f" cpu={r['cpu_us_per_exchange']:.2f}us/ex drops={r['tracer']['kernel_drops']}")
                log(f"  ladder {workload} {name} pair {i + 1}/{args.pairs} "
                    f"{'traced  ' if traced else 'untraced'} rps={r['load']['rps']:.0f}{extra}")
    if args.bpf_stats:
        # BPF run time from one more traced run per step with kernel.bpf_stats_enabled,
        # kept out of the ratios: the stats' clock reads slow every program run.
        for name, wl in plan:
            if wl.get("tracer"):
                continue
            r = one_run(ctx, f"{workload}-{name}", wl, True, "bpf-stats", args.duration, bpf_stats=True)
            runs[name].append(r)
            log(f"  ladder {workload} {name} bpf-stats run: "
                f"{fmt(bpf_us_per_exchange(r), '{:.2f}')} us/ex of BPF")
    summaries = {}
    for name, _ in plan:
        s = summarize_pairs(runs[name])
        stats = [bpf_us_per_exchange(r) for r in runs[name] if r.get("bpf_stats_run")]
        s["bpf_us_per_exchange"] = median(stats)
        # The profiler's CPU until the stop: detaching costs the same whatever the step.
        s["profiler_us_per_exchange"] = median([profiler_us_per_exchange(r) for r in runs[name]
                                                if r["traced"] and not r.get("bpf_stats_run")])
        summaries[name] = s
    return dict(summaries=summaries, runs=runs,
                untraced_rps=median([r["load"]["rps"] for rs in runs.values() for r in rs
                                     if not r["traced"]]))


def profiler_us_per_exchange(run):
    tracer = run["tracer"]
    cpu = tracer.get("cpu_s_before_stop", tracer["cpu_s"])
    return cpu * 1e6 / run["load"]["requests"]


def bpf_us_per_exchange(run):
    bpf = run["tracer"].get("bpf")
    if not bpf or not run["load"].get("requests"):
        return None
    return bpf["total_run_time_ns"] / 1000 / run["load"]["requests"]


def ladder_markdown(results):
    meta = results["meta"]
    ladders = results["ladder"]
    lines = [
        "# httpscope cost ladder",
        "",
        f"{meta['date']}, commit {meta['commit']}{' (dirty)' if meta['dirty'] else ''}, kernel {meta['kernel']}, "
        f"{meta['cpus']} CPUs; {meta['pairs']} untraced/traced pairs per row, {meta['duration_s']} s runs, "
        f"the rows of a workload alternated in one run.",
        "",
        "Ratio: traced/untraced throughput, median of the row's pairs. Step cost: the previous row's "
        "ratio minus this one's. Profiler: the tracer process's CPU (user+sys) per exchange, from "
        "attach to the stop signal. "
        "BPF: the programs' run time per exchange, from one extra run with kernel.bpf_stats_enabled.",
    ]
    for workload, ladder in ladders.items():
        lines += ["", *ladder_table(workload, ladder)]
    return "\n".join(lines) + "\n"


def ladder_table(workload, ladder):
    s = ladder["summaries"]
    lines = [
        f"## {workload}",
        "",
        f"{WORKLOADS[workload]['about']}; untraced median {fmt(ladder['untraced_rps'], '{:.0f}')} req/s.",
        "",
        "| step | what runs | ratio | step cost | profiler µs/ex | BPF µs/ex | drops |",
        "|---|---|---|---|---|---|---|",
    ]
    t = s.get("tcpdump")
    if t:
        lines.append(f"| tcpdump | `tcpdump -i lo -w FILE` | {fmt(t['rps_ratio'], '{:.3f}')} | | "
                     f"{fmt(t['profiler_us_per_exchange'], '{:.2f}')} | | {t['kernel_drops']} |")
    previous = 1.0
    for n, what in STEPS:
        x = s.get(f"stage-{n}")
        if not x:
            continue
        ratio = x["rps_ratio"]
        cost = previous - ratio if ratio is not None and previous is not None else None
        lines.append(f"| {n} | {what} | {fmt(ratio, '{:.3f}')} | {fmt(cost, '{:+.3f}')} | "
                     f"{fmt(x['profiler_us_per_exchange'], '{:.2f}')} | {fmt(x['bpf_us_per_exchange'], '{:.2f}')} | "
                     f"{x['kernel_drops']} |")
        previous = ratio
    full = s.get("stage-10")
    if full and "captured_server_min" in full:
        lines += ["", f"Step 10 captured and paired (worst run): server "
                      f"{full['captured_server_min'] * 100:.2f}%, client {full['captured_client_min'] * 100:.2f}%."]
    return lines
