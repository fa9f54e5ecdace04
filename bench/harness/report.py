"""Goals and results.md: what the runs mean against the cost targets."""

from .workloads import WORKLOADS

GOALS_TEXT = "at saturation with wrk, default settings, both sides captured, 0 drops"

# Throughput traced/untraced (median of pairs) each workload must keep.
RATIO_GOALS = (
    ("keepalive-demo", 0.90),
    ("keepalive-demo-metrics", 0.95),
    ("keepalive-nginx", 0.90),
    ("keepalive-nginx-tls", 0.75),
    ("h2c-nghttpd", 0.85),
    ("resp-16k", 0.85),
    ("unwatched-port", 0.98),
)


def evaluate_goals(results):
    wls = results["workloads"]

    def s(name):
        w = wls.get(name)
        return w.get("summary") if w and w.get("status") == "ok" else None

    goals = []

    def add(goal, target, workload, value, ok, unit="", fmt="{:.3f}"):
        goals.append(dict(goal=goal, target=target, workload=workload,
                          measured=value, measured_text=(fmt.format(value) + unit) if value is not None else "n/a",
                          status="n/a" if value is None else ("pass" if ok else "FAIL")))

    for name, target in RATIO_GOALS:
        x = s(name)
        v = x and x["rps_ratio"]
        add("throughput traced/untraced (median of pairs)", f">= {target:.2f}", name, v,
            v is not None and v >= target)
    x, t = s("keepalive-demo"), s("tcpdump-demo")
    v = x and x["rps_ratio"]
    ref = t and t["rps_ratio"]
    add("httpscope's throughput ratio vs tcpdump's, same run (keepalive-demo)",
        ">= tcpdump's" + (f" ({ref:.3f})" if ref is not None else ""), "keepalive-demo",
        v if ref is not None else None, v is not None and ref is not None and v >= ref)
    for name, w in wls.items():
        x = s(name)
        # An unwatched port's exchanges are meant not to be captured.
        if not x or x.get("captured_server_min") is None or WORKLOADS.get(name, {}).get("target") == "demo-unwatched":
            continue
        v = min(x["captured_server_min"], x["captured_client_min"])
        add("exchanges captured and paired, both sides (worst run, worst side)", "100%", name,
            v * 100, v >= 1.0, "%", "{:.2f}")
        v = x["kernel_drops"]
        if v is not None:
            add("kernel drops (all traced runs)", "0", name, v, v == 0, "", "{:d}")
    x = s("keepalive-demo")
    v = x and x["cpu_us_per_exchange"]
    add("profiler CPU per exchange (user+sys)", "<= 1.0 µs", "keepalive-demo", v, v is not None and v <= 1.0,
        " µs", "{:.2f}")
    v = x and x["bpf_ns_per_syscall"]
    add("BPF time per captured socket call", "<= 300 ns", "keepalive-demo", v, v is not None and v <= 300,
        " ns", "{:.0f}")
    x = s("rss-10k")
    v = x and x["rss_mib"]
    add("profiler peak RSS at 10,000 open connections", "<= 48 MiB", "rss-10k", v, v is not None and v <= 48,
        " MiB", "{:.1f}")
    for name in ("keepalive-demo-syscall", "unwatched-port-syscall"):
        x = s(name)
        v = x and x["rps_ratio"]
        goals.append(dict(goal="info: the syscall backend, throughput traced/untraced", target="(info)",
                          workload=name, measured=v, measured_text="n/a" if v is None else f"{v:.3f}",
                          status="info"))
    x = s("h2c-nghttpd")
    for goal, key, unit, spec, http1 in (
            ("HTTP/2 (h2c) throughput traced/untraced", "rps_ratio", "", "{:.3f}", "keepalive-nginx"),
            ("HTTP/2 (h2c) profiler CPU per exchange", "cpu_us_per_exchange", " µs", "{:.2f}", "keepalive-nginx")):
        v = x and x[key]
        h = s(http1)
        ref = f"; HTTP/1 {http1}: {spec.format(h[key])}{unit}" if h and h.get(key) is not None else ""
        goals.append(dict(goal=f"info: {goal}{ref}", target="(info)", workload="h2c-nghttpd", measured=v,
                          measured_text="n/a" if v is None else spec.format(v) + unit, status="info"))
    x = s("naive-bpftrace")
    v = x and x["rps_ratio"]
    goals.append(dict(goal="reference: naive tracer throughput traced/untraced (the seed prototype: 0.47)",
                      target="(info)", workload="naive-bpftrace", measured=v,
                      measured_text="n/a" if v is None else f"{v:.3f}", status="info"))
    return goals


def fmt(v, spec="{:.0f}", suffix=""):
    return "—" if v is None else spec.format(v) + suffix


def markdown(results):
    m = results["meta"]
    lines = [
        f"# httpscope overhead benchmark ({m['mode']})", "",
        f"{m['date']} · commit `{m['commit']}`{' (dirty tree)' if m['dirty'] else ''} · {m['kernel']} · "
        f"{m['cpus']} CPUs · {m['pairs']} untraced/traced pair(s) per workload, {m['duration_s']} s runs, "
        f"alternated · loadavg before {m['loadavg_before']} after {m.get('loadavg_after')}", "",
        "Ratios are traced/untraced, median over pairs. *captured* = paired exchanges in httpscope's output "
        "over requests the load generator completed (server side / client side; >100% = requests in flight "
        "at stop). *CPU* = profiler user+sys from attach to exit (drain included) per completed request. "
        "*BPF* = run time of all httpscope programs / socket calls of the captured kinds (httpscope counts them: "
        "socket backend, every socket send and receive; syscall backend, the socket syscalls, and its sys_exit "
        "program's brief run on every other syscall is included), from one extra "
        "traced run per workload with kernel.bpf_stats_enabled (the pairs run without it: it adds two clock reads "
        "to every program run). *RSS* = profiler VmHWM.", "",
        "| workload | untraced rps | traced rps | rps ratio | p50 ratio | p99 ratio | captured server / client "
        "| drops (sum) | CPU µs/exchange | BPF ns/syscall | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, w in results["workloads"].items():
        if w["status"] != "ok":
            lines.append(f"| {name} | {w['status']}: {w.get('reason', '')} | | | | | | | | | |")
            continue
        s = w["summary"]
        cap = "—"
        if s.get("captured_server") is not None:
            cap = f"{s['captured_server'] * 100:.2f}% / {s['captured_client'] * 100:.2f}%"
            worst = min(s.get("captured_server_min", 1), s.get("captured_client_min", 1))
            if worst < 0.999:
                cap += f" (worst run {worst * 100:.1f}%)"
        if WORKLOADS[name]["target"] == "demo-unwatched":
            cap = "— (not watched)"
        drops = fmt(s.get("kernel_drops"), "{:d}")
        if name == "tcpdump-demo" and s.get("kernel_drops") is not None:
            drops = f"{s['kernel_drops']:d} packets dropped"
        if name == "naive-bpftrace" and s.get("kernel_drops") is not None:
            drops = f"{s['kernel_drops']:d} lost"
        lines.append(
            f"| {name} | {fmt(s.get('untraced_rps'))} | {fmt(s.get('traced_rps'))} | {fmt(s.get('rps_ratio'), '{:.3f}')} "
            f"| {fmt(s.get('p50_ratio'), '{:.2f}')} | {fmt(s.get('p99_ratio'), '{:.2f}')} | {cap} | {drops} "
            f"| {fmt(s.get('cpu_us_per_exchange'), '{:.2f}')} | {fmt(s.get('bpf_ns_per_syscall'))} "
            f"| {fmt(s.get('rss_mib'), '{:.1f}')} |")
    times = [f"{n} {fmt(w['summary'].get('tracer_attach_s'), '{:.2f}', ' s')} / "
             f"{fmt(w['summary'].get('tracer_stop_s'), '{:.2f}', ' s')}"
             for n, w in results["workloads"].items()
             if w["status"] == "ok" and w["summary"].get("tracer_stop_s") is not None]
    if times:
        zoo = results["meta"].get("tls_zoo")
        lines += ["", "Profiler start to `attached` / SIGINT to exit (median of the traced runs"
                  + (f", TLS servers running: {', '.join(zoo)}" if zoo else "") + "): "
                  + ", ".join(times) + "."]
    noisy = [f"{n} {w['summary']['runs_with_other_httpscope']}/{len(w['runs'])}"
             for n, w in results["workloads"].items()
             if w["status"] == "ok" and w["summary"].get("runs_with_other_httpscope")]
    if noisy:
        lines += ["", "Runs during which another httpscope instance was loaded on the machine (its hooks "
                  "slow every syscall, traced or not): " + ", ".join(noisy) + "."]
    mixed = {n: results["workloads"].get(n) for n in ("mixed-ports", "mixed-all-ports")}
    if all(w and w["status"] == "ok" for w in mixed.values()):
        port, every = (mixed[n]["summary"] for n in ("mixed-ports", "mixed-all-ports"))
        lines += ["", "--all-ports: HTTP throughput traced/untraced "
                  f"{fmt(every.get('rps_ratio'), '{:.3f}')} (port-filtered "
                  f"{fmt(port.get('rps_ratio'), '{:.3f}')}); the non-HTTP echo load's own ratio "
                  f"{fmt(every.get('side_load_ratio'), '{:.3f}')} (port-filtered "
                  f"{fmt(port.get('side_load_ratio'), '{:.3f}')})."]
    rss = results["workloads"].get("rss-10k")
    if rss and rss["status"] == "ok" and rss["summary"].get("rss_attach_mib") is not None:
        r = rss["summary"]
        lines += ["", f"rss-10k: profiler VmHWM {r['rss_attach_mib']:.1f} MiB right after attach "
                  f"(the loader's peak; VmRSS {fmt(r.get('rss_now_attach_mib'), '{:.1f}')} MiB), "
                  f"{r['rss_mib']:.1f} MiB with {r['connections']} connections open "
                  f"(VmRSS {fmt(r.get('rss_now_open_mib'), '{:.1f}')} MiB: "
                  f"~{r['kib_per_connection']:.1f} KiB per connection)."]
    if not m.get("bpf_stats", True):
        lines += ["", "kernel.bpf_stats_enabled was left alone (--no-bpf-stats): no BPF figures."]
    lines += ["", "## Goals (" + GOALS_TEXT + ")", "",
              "| goal | workload | target | measured | status |", "|---|---|---|---:|---|"]
    for g in results["goals"]:
        lines.append(f"| {g['goal']} | {g['workload']} | {g['target']} | {g['measured_text']} | {g['status']} |")
    ka = results["workloads"].get("keepalive-demo")
    if ka and ka["status"] == "ok" and ka["summary"].get("bpf_programs"):
        lines += ["", "## BPF programs, keepalive-demo (the bpf-stats run)", "",
                  "| program | runs/exchange | ns/run | ns/exchange |", "|---|---:|---:|---:|"]
        for p in ka["summary"]["bpf_programs"]:
            if p["run_cnt"]:
                lines.append(f"| {p['name']} | {fmt(p['runs_per_exchange'], '{:.2f}')} | {fmt(p['ns_per_run'])} "
                             f"| {fmt(p['ns_per_exchange'])} |")
    hits = [(n, w["summary"]["uprobe_hits"]) for n, w in results["workloads"].items()
            if w["status"] == "ok" and w["summary"].get("uprobe_hits")]
    if hits:
        lines += ["", "## TLS library probes (the bpf-stats runs)", "",
                  "Probe hits per exchange (both sides) and the probes' BPF run time per hit; the trap "
                  "into the kernel and back that each hit also costs is not in it.", "",
                  "| workload | hits/exchange | BPF ns/hit | hits/exchange by program |", "|---|---:|---:|---|"]
        for name, h in hits:
            by = ", ".join(f"{p} {n:.2f}" for p, n in sorted(h["programs"].items(), key=lambda i: -i[1]))
            lines.append(f"| {name} | {h['per_exchange']:.2f} | {h['bpf_ns_per_hit']:.0f} | {by} |")
    lines += ["", "Workloads:", ""]
    for name, w in results["workloads"].items():
        lines.append(f"- `{name}`: {WORKLOADS[name]['about']}")
    return "\n".join(lines) + "\n"
