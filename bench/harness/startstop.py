"""Start and stop with every TLS hook attached: a TLS server of each kind the capture
hooks (OpenSSL, GnuTLS, Node.js, Go crypto/tls, rustls) runs while `record --all-ports`
starts and stops, idle and with wrk loading nginx through the stop; the TLS probes on
uprobe_multi links, and on perf-event uprobes (the path of kernels older than 6.6).
`--tls-zoo` keeps the same servers running under the ordinary workloads."""

import os
import re
import shutil
import signal
import subprocess
import time

from .common import ROOT, HarnessError, log, median
from .procs import PROCS, Procs, free_ports, wait4, wait_port
from .tracers import ANSI

NODE_HTTPS = ROOT / "crates" / "httpscope" / "tests" / "programs" / "node_https.js"
# Built by the TLS test suites; the bench only copies them.
GOHTTPS = ROOT / "target" / "tmp" / "gohttps-cur"
RSSERVER = ROOT / "target" / "rustls-programs" / "release" / "rsserver"
MODES = {"uprobe_multi": "on", "perf-event uprobes": "off"}


def start_tls_zoo(ctx):
    """Starts one TLS server of each kind (those whose program is here); returns their names."""
    prefix = ctx.work / "tls-zoo"
    prefix.mkdir(exist_ok=True)
    key, cert = prefix / "server.key", prefix / "server.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    ports = free_ports(3, start=19600)
    servers = {
        "openssl": (["openssl", "s_server", "-accept", f"127.0.0.1:{ports[0]}", "-cert", cert, "-key", key,
                     "-www", "-quiet"], ports[0]),
        "gnutls": (["gnutls-serv", "--http", "-p", ports[1], "--x509certfile", cert, "--x509keyfile", key],
                   ports[1]),
        "node": (["node", NODE_HTTPS, "server", cert, key], None),
        "go": ([copy(GOHTTPS, prefix), "server", cert, key], None),
        "rustls": ([copy(RSSERVER, prefix), cert, key], ports[2]),
    }
    started = []
    for name, (cmd, port) in servers.items():
        if cmd[0] is None or not shutil.which(str(cmd[0])):
            log(f"  TLS zoo: no {name} server here")
            continue
        err = open(prefix / f"{name}.stderr", "wb")
        proc = PROCS.spawn(cmd, stdout=subprocess.DEVNULL, stderr=err,
                           env=dict(os.environ, RUSTLS_PROGRAMS_PORT=str(ports[2])))
        if port:
            wait_port(port, proc=proc)
        started.append(name)
    time.sleep(1)  # the servers without a fixed port: listening, their libraries mapped
    log(f"  TLS zoo running: {', '.join(started)}")
    return started


def copy(src, prefix):
    if not src.exists():
        return None
    dst = prefix / src.name
    shutil.copy2(src, dst)
    return dst


def tls_hooks(stderr_text):
    """(targets hooked, functions hooked, uprobe_multi links closed) from a debug-level log."""
    text = ANSI.sub("", stderr_text)
    hooked = re.findall(r"TLS functions hooked .*?functions=(\d+)", text)
    links = re.findall(r"uprobes detached links=(\d+)", text)
    return len(hooked), sum(int(n) for n in hooked), int(links[-1]) if links else None


def one_cycle(ctx, run_dir, multi, nginx_port):
    """Starts `record --all-ports`, waits for "attached", stops it with SIGINT; with
    `nginx_port`, wrk loads nginx from before the stop until after the exit."""
    err_path = run_dir / "httpscope.stderr"
    env = dict(os.environ, RUST_LOG="info,httpscope_capture=debug", HTTPSCOPE_UPROBE_MULTI=multi)
    t0 = time.monotonic()
    with open(err_path, "wb") as err:
        proc = PROCS.spawn([ctx.bins["httpscope"], "record", "--all-ports", "--output", run_dir / "records.log"],
                           stdout=subprocess.DEVNULL, stderr=err, env=env)
    while "attached; capturing" not in err_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() - t0 > 120:
            raise HarnessError(f"httpscope did not attach: {err_path.read_text(errors='replace')[-800:]}")
        time.sleep(0.01)
    attach_s = time.monotonic() - t0
    wrk = None
    if nginx_port:
        wrk = PROCS.spawn(["wrk", "-c", "50", "-t", "2", "-d", "60s", f"http://127.0.0.1:{nginx_port}/"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    t_stop = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, _ = wait4(proc, timeout=120)
    stop_s = time.monotonic() - t_stop
    if wrk:
        Procs.stop(wrk)
    text = err_path.read_text(errors="replace")
    if code != 0:
        raise HarnessError(f"httpscope exited with {code}: {text[-800:]}")
    targets, functions, links = tls_hooks(text)
    detach = re.findall(r"detach_ms=(\d+)", ANSI.sub("", text))
    return dict(attach_s=round(attach_s, 3), stop_s=round(stop_s, 3),
                detach_s=int(detach[-1]) / 1000 if detach else None,
                tls_targets=targets, tls_functions=functions, multi_links=links)


def run_startstop(ctx, cycles):
    """`cycles` start/stop cycles per (probe kind, idle or loaded), alternated."""
    zoo = start_tls_zoo(ctx)
    nginx_port = free_ports(1, start=19700)[0]
    ctx.start_nginx(nginx_port)
    runs = []
    try:
        for i in range(cycles):
            for mode, multi in MODES.items():
                for load in ("idle", "wrk"):
                    run_dir = ctx.work / f"startstop-{i}-{multi}-{load}"
                    run_dir.mkdir()
                    run = one_cycle(ctx, run_dir, multi, nginx_port if load == "wrk" else None)
                    run.update(mode=mode, load=load)
                    log(f"  {mode}, {load}: attach {run['attach_s']:.2f} s, stop {run['stop_s']:.2f} s "
                        f"({run['tls_targets']} TLS targets, {run['tls_functions']} functions)")
                    runs.append(run)
    finally:
        ctx.stop_on_demand()
    summary = []
    for mode in MODES:
        for load in ("idle", "wrk"):
            mine = [r for r in runs if r["mode"] == mode and r["load"] == load]
            summary.append(dict(mode=mode, load=load, runs=len(mine),
                                **{k: median([r[k] for r in mine])
                                   for k in ("attach_s", "stop_s", "detach_s", "tls_targets", "tls_functions",
                                             "multi_links")}))
    return dict(tls_zoo=zoo, cycles=cycles, runs=runs, summary=summary)


def startstop_markdown(results):
    s = results["startstop"]
    fmt = lambda v, f="{:.2f}": "—" if v is None else f.format(v)
    lines = [
        "# httpscope start and stop with every TLS hook attached", "",
        f"Kernel {results['meta']['kernel']}, {results['meta']['cpus']} CPUs, commit {results['meta']['commit']}; "
        f"TLS servers running: {', '.join(s['tls_zoo'])}; `record --all-ports`; median of {s['cycles']} cycles. "
        "Stop: SIGINT to exit (last drain, output and summary written, probes detached). "
        "Loaded: wrk -c 50 against nginx from 2 s before the stop.", "",
        "| TLS probes | load | start to attached | SIGINT to exit | of which detach | TLS targets | functions | links |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in s["summary"]:
        lines.append(f"| {r['mode']} | {r['load']} | {fmt(r['attach_s'])} s | {fmt(r['stop_s'])} s "
                     f"| {fmt(r['detach_s'])} s | {fmt(r['tls_targets'], '{:.0f}')} "
                     f"| {fmt(r['tls_functions'], '{:.0f}')} | {fmt(r['multi_links'], '{:.0f}')} |")
    return "\n".join(lines) + "\n"
