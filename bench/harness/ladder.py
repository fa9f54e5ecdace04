"""The cost ladder: keepalive-demo traced with httpscope's capture stopped after each
step of its work in turn (HTTPSCOPE_BENCH_STAGE), and tcpdump beside it. Every traced
run follows an untraced one, so each step's ratio comes from its own pairs, all in one
run; the difference between two steps is what the later one costs."""

from .common import log, median
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


def configs():
    base = WORKLOADS["keepalive-demo"]
    out = [("tcpdump", dict(WORKLOADS["tcpdump-demo"]))]
    for n, _ in STEPS:
        out.append((f"stage-{n}", dict(base, stage=n if n < 10 else None)))
    return out


def run_ladder(ctx):
    """Runs and summarizes the ladder: {configs: {name: summary}, steps: [...]}"""
    args = ctx.args
    plan = configs()
    port = ctx.servers["demo"]
    if args.warmup:
        load_run(ctx, WORKLOADS["keepalive-demo"], port, args.warmup)
    runs = {name: [] for name, _ in plan}
    for i in range(args.pairs):
        for name, wl in plan:
            for traced in (False, True):
                r = one_run(ctx, name, wl, traced, i, args.duration)
                runs[name].append(r)
                extra = ""
                if traced:
                    extra = (f" ratio={r['load']['rps'] / runs[name][-2]['load']['rps']:.3f}"
                             f" cpu={r['cpu_us_per_exchange']:.2f}us/ex drops={r['tracer']['kernel_drops']}")
                log(f"  ladder {name} pair {i + 1}/{args.pairs} {'traced  ' if traced else 'untraced'}"
                    f" rps={r['load']['rps']:.0f}{extra}")
    if args.bpf_stats:
        # BPF run time from one more traced run per step with kernel.bpf_stats_enabled,
        # kept out of the ratios: the stats' clock reads slow every program run.
        for name, wl in plan[1:]:
            r = one_run(ctx, name, wl, True, "bpf-stats", args.duration, bpf_stats=True)
            runs[name].append(r)
            log(f"  ladder {name} bpf-stats run: {fmt(bpf_us_per_exchange(r), '{:.2f}')} us/ex of BPF")
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
    ladder = results["ladder"]
    s = ladder["summaries"]
    meta = results["meta"]
    lines = [
        "# httpscope cost ladder",
        "",
        f"{meta['date']}, commit {meta['commit']}{' (dirty)' if meta['dirty'] else ''}, kernel {meta['kernel']}, "
        f"{meta['cpus']} CPUs; keepalive-demo ({WORKLOADS['keepalive-demo']['about']}); "
        f"{meta['pairs']} untraced/traced pairs per row, {meta['duration_s']} s runs, all rows alternated "
        f"in one run; untraced median {fmt(ladder['untraced_rps'], '{:.0f}')} req/s.",
        "",
        "Ratio: traced/untraced throughput, median of the row's pairs. Step cost: the previous row's "
        "ratio minus this one's. Profiler: the tracer process's CPU (user+sys) per exchange, from "
        "attach to the stop signal. "
        "BPF: the programs' run time per exchange, from one extra run with kernel.bpf_stats_enabled.",
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
    return "\n".join(lines) + "\n"
