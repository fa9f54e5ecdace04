"""Two builds side by side: the build under test (B) and another httpscope binary (A),
traced runs alternated A B B A on the same workload, every run with
kernel.bpf_stats_enabled. A change meant to shrink one step is judged here by the
figure of that step (BPF run time per call of each program, the profiler's CPU per
exchange), pair by pair: one full run's single bpf-stats pass moves by more than most
changes do."""

import hashlib
import shutil
from pathlib import Path

from .common import HarnessError, log, median
from .pairs import one_run
from .report import fmt
from .workloads import WORKLOADS, load_run

SIDES = ("A", "B")


def add_other_binary(ctx, path):
    """A private copy of the other build, as ctx.bins["httpscope-a"]; returns its identity."""
    src = Path(path)
    if not src.is_file():
        raise HarnessError(f"--ab {path}: no such file")
    dst = ctx.work / "bin" / "httpscope-a"
    shutil.copy2(src, dst)
    ctx.bins["httpscope-a"] = dst
    return dict(path=str(src.resolve()), sha256=hashlib.sha256(dst.read_bytes()).hexdigest()[:16])


def per_program(run):
    """{program name: ns per run} of one run."""
    bpf = run["tracer"].get("bpf") or {}
    return {p["name"]: p["run_time_ns"] / p["run_cnt"] for p in bpf.get("programs", []) if p["run_cnt"]}


def run_ab(ctx, names):
    """{workload: {runs: {A: [...], B: [...]}, summary: {...}}} for each workload in names."""
    args = ctx.args
    out = {}
    for name in names:
        wl = WORKLOADS[name]
        if wl["load"] == "conns" or wl.get("tracer"):
            log(f"  ab: {name} skipped (not an httpscope throughput workload)")
            continue
        for target in (wl["target"], wl.get("side_load")):
            if target in ctx.on_demand_ports:
                ctx.start_on_demand(target, ctx.on_demand_ports[target])
        try:
            if args.warmup:
                load_run(ctx, wl, ctx.servers[wl["target"]], args.warmup)
            runs = {side: [] for side in SIDES}
            for i in range(args.pairs):
                # A B, then B A: a run can leave work behind (the log's writeback) that
                # slows the next one, which must not always be the same build.
                for side in SIDES if i % 2 == 0 else SIDES[::-1]:
                    variant = dict(wl, binary="httpscope-a" if side == "A" else "httpscope", stage=args.stage)
                    r = one_run(ctx, f"{name}-{side}", variant, True, i, args.duration, bpf_stats=True)
                    runs[side].append(r)
                    log(f"  ab {name} round {i + 1}/{args.pairs} {side} rps={r['load']['rps']:.0f}"
                        f" cpu={r['cpu_us_per_exchange']:.2f}us/ex bpf={fmt(r['bpf_ns_per_syscall'])}ns/call")
        finally:
            ctx.stop_on_demand()
        out[name] = dict(runs=runs, summary=summarize_ab(runs))
    return out


def summarize_ab(runs):
    def side_medians(side):
        rs = runs[side]
        programs = {}
        for r in rs:
            for prog, ns in per_program(r).items():
                programs.setdefault(prog, []).append(ns)
        return dict(rps=median([r["load"]["rps"] for r in rs]),
                    cpu_us_per_exchange=median([r["cpu_us_per_exchange"] for r in rs]),
                    bpf_ns_per_call=median([r["bpf_ns_per_syscall"] for r in rs]),
                    programs={p: median(v) for p, v in programs.items()})

    def b_lower(key):
        pairs = [(a[key], b[key]) for a, b in zip(runs["A"], runs["B"])
                 if a.get(key) is not None and b.get(key) is not None]
        return dict(lower=sum(1 for a, b in pairs if b < a), of=len(pairs))

    def program_b_lower():
        out = {}
        for a, b in zip(runs["A"], runs["B"]):
            pa, pb = per_program(a), per_program(b)
            for prog in set(pa) & set(pb):
                count = out.setdefault(prog, dict(lower=0, of=0))
                count["of"] += 1
                count["lower"] += pb[prog] < pa[prog]
        return out

    return dict(A=side_medians("A"), B=side_medians("B"),
                bpf_b_lower=b_lower("bpf_ns_per_syscall"), cpu_b_lower=b_lower("cpu_us_per_exchange"),
                programs_b_lower=program_b_lower())


def rounds_lower(count):
    return f"{count['lower']} of {count['of']}" if count else ""


def ab_markdown(results):
    meta = results["meta"]
    other = meta.get("ab_binary", {})
    lines = [
        "# httpscope A/B: two builds alternated",
        "",
        f"{meta['date']}, kernel {meta['kernel']}, {meta['cpus']} CPUs; {meta['pairs']} rounds of "
        f"{meta['duration_s']} s per workload, A B B A, every run with kernel.bpf_stats_enabled. "
        f"A: `{other.get('path')}` (sha256 {other.get('sha256')}); B: this tree's build, commit "
        f"{meta['commit']}{' (dirty)' if meta['dirty'] else ''}."
        + (f" Both stop after the cost ladder's step {meta['ab_stage']} (`--stage`)." if meta.get("ab_stage") else ""),
        "",
        "Medians of the rounds. *B lower* counts the rounds in which B's figure was below A's.",
        "",
        "| workload | figure | A | B | B lower |",
        "|---|---|---:|---:|---|",
    ]
    for name, entry in results["ab"].items():
        s = entry["summary"]
        a, b = s["A"], s["B"]
        lines.append(f"| {name} | throughput, req/s | {fmt(a['rps'], '{:.0f}')} | {fmt(b['rps'], '{:.0f}')} | |")
        lines.append(f"| {name} | profiler µs/exchange | {fmt(a['cpu_us_per_exchange'], '{:.2f}')} | "
                     f"{fmt(b['cpu_us_per_exchange'], '{:.2f}')} | {rounds_lower(s['cpu_b_lower'])} |")
        lines.append(f"| {name} | BPF ns per captured call | {fmt(a['bpf_ns_per_call'], '{:.0f}')} | "
                     f"{fmt(b['bpf_ns_per_call'], '{:.0f}')} | {rounds_lower(s['bpf_b_lower'])} |")
        for prog in sorted(set(a["programs"]) | set(b["programs"])):
            lines.append(f"| {name} | `{prog}` ns per run | {fmt(a['programs'].get(prog), '{:.0f}')} | "
                         f"{fmt(b['programs'].get(prog), '{:.0f}')} | "
                         f"{rounds_lower(s['programs_b_lower'].get(prog))} |")
    return "\n".join(lines) + "\n"
