#!/usr/bin/env python3
"""httpscope overhead benchmark. Run it through bench/run.sh.

For each workload it alternates untraced and traced runs of a public load
generator (wrk, ab, h2load), A B A B ..., and reports the median traced/untraced
ratios of throughput and latency, plus, for traced runs: capture completeness
on both sides, kernel drops, profiler CPU per exchange, BPF run time per
hooked syscall (kernel.bpf_stats_enabled + bpftool) and profiler peak RSS.
Results: results.json (every raw run, medians, goals) and results.md.

Standard library only; needs root.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.ab import ab_markdown, add_other_binary, run_ab
from harness.bpf_stats import foreign_bpf_programs
from harness.ladder import ladder_markdown, run_ladder
from harness.common import BENCH, ROOT, HarnessError, Skip, log
from harness.pairs import run_pairs, summarize_pairs
from harness.procs import PROCS, free_ports, raise_nofile
from harness.report import evaluate_goals, markdown
from harness.rss import run_rss
from harness.servers import Context
from harness.soak import run_soak, soak_markdown
from harness.startstop import run_startstop, start_tls_zoo, startstop_markdown
from harness.workloads import WORKLOADS


def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def main():
    parser = argparse.ArgumentParser(description="httpscope overhead benchmark")
    parser.add_argument("--smoke", action="store_true", help="each workload once, 1 s runs, 1 pair; no timing asserts")
    parser.add_argument("--workloads", help="comma-separated subset of: " + ",".join(WORKLOADS))
    parser.add_argument("--out", help="directory for results.json and results.md "
                                      "(default bench/results, bench/results/ladder with --ladder)")
    parser.add_argument("--pairs", type=int, help="untraced/traced pairs per workload (default 5; smoke 1)")
    parser.add_argument("--duration", type=int, help="seconds per run (default 3; smoke 1)")
    parser.add_argument("--warmup", type=int, help="untraced warm-up seconds per workload (default 1; smoke 0)")
    parser.add_argument("--no-bpf-stats", dest="bpf_stats", action="store_false",
                        help="leave kernel.bpf_stats_enabled alone (no BPF run-time figures, no stats overhead)")
    parser.add_argument("--rss-conns", type=int, help="connections of rss-10k (default 10000; smoke 1000)")
    parser.add_argument("--soak", action="store_true",
                        help="instead of the workloads: mixed load at about half of saturation with --metrics-addr "
                             "on; profiler RSS every 30 s, drops, capture rate (in results.json and results.md); not in CI")
    parser.add_argument("--ladder", action="store_true",
                        help="instead of the workloads: the cost ladder, keepalive-demo (or each plain-HTTP "
                             "workload of --workloads) with the capture stopped after each step in turn, "
                             "tcpdump beside keepalive-demo (default 3 pairs per step)")
    parser.add_argument("--ab", metavar="BINARY",
                        help="instead of the pairs: this tree's build (B) against another httpscope binary (A), "
                             "traced runs alternated A B B A with kernel.bpf_stats_enabled, on --workloads "
                             "(default keepalive-demo); BPF ns per call of each program, profiler CPU per "
                             "exchange (default 6 rounds)")
    parser.add_argument("--stage", type=int, choices=range(1, 10), metavar="N",
                        help="with --ab: both builds stop after the cost ladder's step N (1-9), so that a "
                             "change is timed on the step it targets alone")
    parser.add_argument("--startstop", type=int, metavar="CYCLES",
                        help="instead of the workloads: CYCLES start/stop cycles of `record --all-ports` with a TLS "
                             "server of each kind running, idle and loaded, uprobe_multi and perf-event uprobes")
    parser.add_argument("--tls-zoo", action="store_true",
                        help="keep a TLS server of each kind (OpenSSL, GnuTLS, Node.js, Go, rustls) running under "
                             "the workloads, so that start and stop times include every TLS hook")
    parser.add_argument("--soak-seconds", type=int, default=600, help="soak length (default 600)")
    parser.add_argument("--soak-churn-ms", type=int, default=20,
                        help="the soak starts a short-lived client process every this many ms (default 20)")
    args = parser.parse_args()
    if args.stage and not args.ab:
        parser.error("--stage goes with --ab")
    smoke = args.smoke
    args.pairs = args.pairs or (1 if smoke else 3 if args.ladder else 6 if args.ab else 5)
    args.duration = args.duration or (1 if smoke else 3)
    args.warmup = (0 if smoke else 1) if args.warmup is None else args.warmup
    args.rss_conns = args.rss_conns or (1000 if smoke else 10000)
    every = ["keepalive-demo"] if args.ab else list(WORKLOADS)
    names = every if not args.workloads else [n.strip() for n in args.workloads.split(",") if n.strip()]
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

    mode_dir = "ladder" if args.ladder else "startstop" if args.startstop else "ab" if args.ab else ""
    out_dir = Path(args.out or BENCH / "results" / mode_dir)
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
        tools={t: (shutil.which(t) is not None) for t in ("wrk", "ab", "nginx", "h2load", "nghttpd", "bpftool", "bpftrace",
                                                        "tcpdump")},
    ), workloads={}, goals=[])
    failed = False
    try:
        results["meta"]["binaries"] = ctx.snapshot_binaries()
        watched, unwatched, *on_demand_ports = free_ports(7)
        on_demand_port = dict(zip(("nginx", "nghttpd", "echo", "nginx-tls", "rustls"), on_demand_ports))
        ctx.on_demand_ports = on_demand_port
        if args.ab:
            results["meta"]["ab_binary"] = add_other_binary(ctx, args.ab)
            results["meta"]["ab_stage"] = args.stage
        ctx.start_demo("demo", watched)
        ctx.start_demo("demo-unwatched", unwatched)
        log(f"demo-server on {watched} (watched) and {unwatched} (unwatched); work dir {work}")
        if args.soak:
            results["soak"] = run_soak(ctx, args.soak_seconds, args.soak_churn_ms)
            names = []
        if args.ladder:
            results["ladder"] = run_ladder(ctx, names if args.workloads else [])
            names = []
        if args.ab:
            results["ab"] = run_ab(ctx, names)
            names = []
        if args.startstop:
            results["startstop"] = run_startstop(ctx, args.startstop)
            names = []
        elif args.tls_zoo:
            results["meta"]["tls_zoo"] = start_tls_zoo(ctx)
        for name in names:
            wl = WORKLOADS[name]
            entry = dict(about=wl["about"])
            results["workloads"][name] = entry
            t0 = time.monotonic()
            log(f"workload {name}: {wl['about']}")
            try:
                for target in (wl["target"], wl.get("side_load")):
                    if target in on_demand_port:
                        ctx.start_on_demand(target, on_demand_port[target])
                if wl.get("tracer") in ("bpftrace", "tcpdump") and not shutil.which(wl["tracer"]):
                    raise Skip(f"{wl['tracer']} not installed")
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
                ctx.stop_on_demand()
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
        if results.get("soak"):
            text = soak_markdown(results["soak"])
        elif results.get("ladder"):
            text = ladder_markdown(results)
        elif results.get("startstop"):
            text = startstop_markdown(results)
        elif results.get("ab"):
            text = ab_markdown(results)
        else:
            text = markdown(results)
        (out_dir / "results.md").write_text(text)
        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {results['meta']['total_s']} s: {out_dir / 'results.md'}, {out_dir / 'results.json'}")
    print((out_dir / "results.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
