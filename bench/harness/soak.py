"""--soak: mixed keep-alive and new-connection load at about half of saturation for ten
minutes, with short-lived client processes coming and going (churn.py), httpscope with
--metrics-addr on; its RSS every 30 s, its drops and capture rate, and at the end every
churn exchange and every watched connection accounted for."""

import math
import os
import re
import signal
import subprocess
import time
import urllib.request

from .churn import CHURN_CLIENT, Churn
from .common import BENCH, HarnessError, log
from .loadgen import parse_wrk, run_wrk, wrk_command
from .procs import PROCS, free_ports, proc_hwm_kib, proc_status_kib, wait4
from .tracers import ANSI, parse_summary

SAMPLE_EVERY_S = 30
# Pause between two requests of one paced connection; the connection count sets the rate.
PACE_MS = 5
# Shares of the measured keep-alive saturation: keep-alive load, and new-connection load.
KEEPALIVE_SHARE = 0.4
NEW_CONN_SHARE = 0.1


def scrape(metrics_port):
    """Sums of the counters the soak watches, from httpscope's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    sums = dict(server=0.0, client=0.0, churn_client=0.0, drops=0.0)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        try:
            number = float(value)
        except ValueError:
            continue
        if name.startswith("http_server_request_duration_seconds_count"):
            sums["server"] += number
        elif name.startswith("http_client_request_duration_seconds_count"):
            sums["client"] += number
            if f'process="{CHURN_CLIENT}"' in name:
                sums["churn_client"] += number
        elif name.startswith("httpscope_kernel_dropped_events_total"):
            sums["drops"] += number
    return sums


# Paced connections never exceed this (wrk holds them all in two threads).
MAX_PACED_CONNS = 2000
CALIBRATION_S = 3


def paced_wrk(port, conns, duration, extra=()):
    """wrk with `conns` connections that each pause PACE_MS between requests."""
    cmd = wrk_command(port, "/", duration, conns=conns, threads=2,
                      extra=("-s", str(BENCH / "paced.lua"), *extra))
    proc = PROCS.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, WRK_DELAY_MS=str(PACE_MS)))
    return cmd, proc


def paced_conns(port, rate, extra=()):
    """Connections that give about `rate` requests/s: a paced connection's rate is set by the
    timer granularity and the response time as much as by PACE_MS, so it is measured (a short
    untraced pilot run) rather than assumed."""
    guess = max(2, min(MAX_PACED_CONNS, math.ceil(rate * PACE_MS / 1000)))
    cmd, proc = paced_wrk(port, guess, CALIBRATION_S, extra)
    out, err = proc.communicate(timeout=CALIBRATION_S + 60)
    per_conn = parse_wrk(cmd, proc.returncode, out, err)["rps"] / guess
    conns = max(2, min(MAX_PACED_CONNS, math.ceil(rate / per_conn)))
    log(f"soak: {per_conn:.0f} rps per paced connection; {conns} connections for {rate:.0f} rps")
    return conns


# Connection counters of the summary: watched = reported + skipped by reason + still open.
CONN_KEYS = ("conns_watched", "conns_reported", "conns_filtered", "conns_not_http", "conns_silent",
             "conns_no_slot", "conns_open")


def accounting(summary, churn, final, wrk_requests):
    """What the end of the soak must add up to: every churn process's exchange logged on the
    client side, every exchange on the server side, every watched connection settled."""
    conns = {key: summary.get(key) for key in CONN_KEYS}
    settled = sum(conns[key] or 0 for key in CONN_KEYS[1:6])
    return dict(
        churn=churn,
        churn_client_unaccounted=churn["ok"] - final["churn_client"],
        server_unaccounted=wrk_requests + churn["ok"] - final["server"],
        conns=conns,
        conns_unaccounted=(conns["conns_watched"] or 0) - settled,
    )


def run_soak(ctx, seconds, churn_ms):
    port = ctx.servers["demo"]
    metrics_port, = free_ports(1, start=19400)
    saturation = run_wrk(port, "/", 3)["rps"]
    log(f"soak: keep-alive saturation {saturation:.0f} rps untraced; "
        f"load {KEEPALIVE_SHARE:.0%} keep-alive + {NEW_CONN_SHARE:.0%} new connections for {seconds} s")
    err_path = ctx.work / "soak-httpscope.stderr"
    with open(err_path, "wb") as err:
        profiler = PROCS.spawn([ctx.bins["httpscope"], "record", "--port", port, "--output", "none",
                                "--metrics-addr", f"127.0.0.1:{metrics_port}"],
                               stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while "attached" not in err_path.read_text(errors="replace"):
        if profiler.poll() is not None or time.monotonic() > deadline:
            raise HarnessError(f"httpscope did not attach: {err_path.read_text(errors='replace')[-800:]}")
        time.sleep(0.05)
    # Calibrated under tracing, so that the traced load is the one near the target rate.
    close = ("-H", "Connection: close")
    keepalive_conns = paced_conns(port, saturation * KEEPALIVE_SHARE)
    new_conn_conns = paced_conns(port, saturation * NEW_CONN_SHARE, close)
    time.sleep(1)
    baseline = scrape(metrics_port)
    loads = [paced_wrk(port, keepalive_conns, seconds), paced_wrk(port, new_conn_conns, seconds, close)]
    churn = Churn(port, churn_ms)
    churn.start()
    started = time.monotonic()
    samples = []
    while any(proc.poll() is None for _, proc in loads):
        time.sleep(min(SAMPLE_EVERY_S, max(0.1, started + seconds + 5 - time.monotonic())))
        elapsed = time.monotonic() - started
        if elapsed > seconds + 60:
            raise HarnessError("the soak load did not end")
        counts = scrape(metrics_port)
        sample = dict(t_s=round(elapsed), rss_kib=proc_status_kib(profiler.pid, "VmRSS"),
                      **{key: counts[key] - baseline[key] for key in counts})
        samples.append(sample)
        log(f"  soak t={sample['t_s']:>4}s rss={sample['rss_kib'] / 1024:.1f} MiB "
            f"exchanges server/client={sample['server']:.0f}/{sample['client']:.0f} drops={sample['drops']:.0f} "
            f"churn processes={churn.started}")
    churned = churn.stop()
    requests = 0
    runs = []
    for cmd, proc in loads:
        out, err = proc.communicate(timeout=30)
        run = parse_wrk(cmd, proc.returncode, out, err)
        runs.append(run)
        requests += run["requests"]
    time.sleep(2)
    final = {key: value - baseline[key] for key, value in scrape(metrics_port).items()}
    wrk_requests = requests
    requests += churned["ok"]
    hwm = proc_hwm_kib(profiler.pid)
    profiler.send_signal(signal.SIGINT)
    code, _ = wait4(profiler, timeout=120)
    stderr_text = ANSI.sub("", err_path.read_text(errors="replace"))
    if code != 0:
        raise HarnessError(f"httpscope exited with {code}: {stderr_text[-800:]}")
    summary = parse_summary(stderr_text)
    backend = re.search(r'backend="?(\w+)', stderr_text)
    after_warmup = [s["rss_kib"] for s in samples if s["t_s"] >= 60 and s["rss_kib"]]
    return dict(
        seconds=seconds, saturation_rps=saturation, loads=runs, requests=requests,
        rps=requests / seconds, paced_conns=[keepalive_conns, new_conn_conns],
        backend=backend.group(1) if backend else None, samples=samples, vmhwm_kib=hwm,
        kernel_drops=summary.get("kernel_drops"),
        captured_server=final["server"] / requests, captured_client=final["client"] / requests,
        rss_growth_after_warmup_kib=(after_warmup[-1] - after_warmup[0]) if len(after_warmup) > 1 else None,
        accounting=accounting(summary, churned, final, wrk_requests),
    )


def soak_markdown(soak):
    lines = [f"# httpscope soak ({soak['seconds']} s, {soak['backend']} backend)", "",
             f"Load: paced wrk, {KEEPALIVE_SHARE:.0%} (keep-alive) + {NEW_CONN_SHARE:.0%} (`Connection: close`) "
             f"of the untraced keep-alive saturation ({soak['saturation_rps']:.0f} rps); "
             f"{soak['requests']} requests completed ({soak['rps']:.0f} rps). httpscope with `--metrics-addr` and `--output none` (metrics mode).", "",
             f"- kernel drops: {soak['kernel_drops']}",
             f"- captured and paired (from /metrics): server {soak['captured_server'] * 100:.2f}%, "
             f"client {soak['captured_client'] * 100:.2f}%",
             f"- RSS growth after the first minute: "
             + ("n/a" if soak["rss_growth_after_warmup_kib"] is None
                else f"{soak['rss_growth_after_warmup_kib'] / 1024:+.1f} MiB")
             + f"; peak {soak['vmhwm_kib'] / 1024:.1f} MiB", *churn_markdown(soak["accounting"]), "",
             "| t (s) | RSS MiB | server exchanges | client exchanges | drops |", "|---:|---:|---:|---:|---:|"]
    for s in soak["samples"]:
        lines.append(f"| {s['t_s']} | {s['rss_kib'] / 1024:.1f} | {s['server']:.0f} | {s['client']:.0f} "
                     f"| {s['drops']:.0f} |")
    return "\n".join(lines) + "\n"


def churn_markdown(acc):
    churn, conns = acc["churn"], acc["conns"]
    return [
        f"- churn: a `{CHURN_CLIENT}` process every {churn['every_ms']:.0f} ms, {churn['started']} started, "
        f"{churn['ok']} answered, {churn['failed']} failed; their exchanges not logged on the client side: "
        f"{acc['churn_client_unaccounted']:.0f}",
        f"- exchanges (wrk + churn) not logged on the server side: {acc['server_unaccounted']:.0f} "
        "(wrk's count leaves out requests in flight when it stops)",
        "- watched connections: " + ", ".join(f"{key.removeprefix('conns_')}={value}" for key, value in conns.items())
        + f"; unaccounted: {acc['conns_unaccounted']}",
    ]
