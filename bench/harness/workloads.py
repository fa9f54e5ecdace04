"""The workloads: what each one loads, against which server, and how its load runs."""

from .loadgen import run_ab, run_h2load, run_wrk

# name -> definition. load: wrk | ab | h2load. target: which server. path: URL path.
# tracer: httpscope (default) | bpftrace | tcpdump. backend: httpscope's --capture-backend
# (default auto, the socket backend on kernels that have it).
WORKLOADS = {
    "keepalive-demo": dict(load="wrk", target="demo", path="/", backend="socket",
                           about="wrk -c 50 -t 2, keep-alive, demo-server `/` (~30-byte body)"),
    "keepalive-demo-metrics": dict(load="wrk", target="demo", path="/", backend="socket", metrics_mode=True,
                                   about="keepalive-demo in metrics mode: --output none --metrics-addr "
                                         "(no log; the kernel copies heads, not bodies)"),
    "keepalive-demo-syscall": dict(load="wrk", target="demo", path="/", backend="syscall",
                                   about="keepalive-demo on the syscall backend (--capture-backend syscall)"),
    "tcpdump-demo": dict(load="wrk", target="demo", path="/", tracer="tcpdump",
                         about="keepalive-demo with `tcpdump -i lo -w FILE 'tcp port P'` as the tracer"),
    "keepalive-nginx": dict(load="wrk", target="nginx", path="/",
                            about="wrk -c 50 -t 2, keep-alive, nginx small static file"),
    "keepalive-nginx-tls": dict(load="wrk", target="nginx-tls", path="/", scheme="https",
                                about="wrk -c 50 -t 2, keep-alive HTTPS (TLS 1.3), nginx small static file: "
                                      "plaintext from both sides' OpenSSL uprobes"),
    "keepalive-rustls": dict(load="wrk", target="rustls", path="/?id=bench", scheme="https",
                             about="wrk -c 50 -t 2, keep-alive HTTPS (TLS 1.3) against the axum/tokio-rustls "
                                   "test server (tests/programs/rustls): plaintext from its rustls "
                                   "uprobes and wrk's OpenSSL ones"),
    "new-conn": dict(load="ab", target="demo", path="/",
                     about="ab -c 50 (no -k): a new connection per request, demo-server `/`"),
    "resp-16k": dict(load="wrk", target="demo", path="/bytes/16384",
                     about="wrk -c 50 -t 2, 16 KiB responses"),
    "resp-16k-tls": dict(load="wrk", target="nginx-tls", path="/16k.bin", scheme="https",
                         about="wrk -c 50 -t 2, keep-alive HTTPS (TLS 1.3), nginx 16 KiB static file: "
                               "the capture budget on both sides' OpenSSL plaintext"),
    "resp-16k-tls-whole": dict(load="wrk", target="nginx-tls", path="/16k.bin", scheme="https",
                               capture_budget=False,
                               about="resp-16k-tls with --no-capture-budget: every plaintext call "
                                     "copied whole (up to --capture-bytes), the budget's control"),
    "resp-1m": dict(load="wrk", target="demo", path="/bytes/1048576",
                    about="wrk -c 50 -t 2, 1 MiB responses"),
    "idle-1000": dict(load="wrk", target="demo", path="/", idle=1000,
                      about="1,000 idle keep-alive connections held open + wrk -c 50 -t 2 `/`"),
    "unwatched-port": dict(load="wrk", target="demo-unwatched", path="/", backend="socket",
                           about="wrk -c 50 against a port httpscope does not watch (it watches an idle one)"),
    "unwatched-port-syscall": dict(load="wrk", target="demo-unwatched", path="/", backend="syscall",
                                   about="unwatched-port on the syscall backend (--capture-backend syscall)"),
    "h2c-nghttpd": dict(load="h2load", target="nghttpd", path="/index.html",
                        about="h2load -c 50 -t 2 -m 1 (HTTP/2 prior knowledge, one stream at a time per "
                              "connection) against nghttpd --no-tls, small static file"),
    "mixed-ports": dict(load="wrk", target="demo", path="/", side_load="echo",
                        about="wrk -c 50 -t 2 on demo-server, plus a non-HTTP TCP echo load (8 "
                              "connections, 64-byte ping-pong) on another port; httpscope --port demo"),
    "mixed-all-ports": dict(load="wrk", target="demo", path="/", side_load="echo", all_ports=True,
                            about="the mixed-ports load, httpscope --all-ports (the echo "
                                  "connections are judged not HTTP and dropped in the kernel)"),
    "naive-bpftrace": dict(load="wrk", target="demo", path="/", tracer="bpftrace",
                           about="keepalive-demo traced by bench/naive.bt (fixed 4 KiB copy per syscall)"),
    "rss-10k": dict(load="conns", target="demo", path="/healthz", conns=10000,
                    about="10,000 concurrent keep-alive connections, one request each; profiler VmHWM"),
}


def load_run(ctx, wl, port, duration):
    if wl["load"] == "ab":
        return run_ab(port, wl["path"], duration)
    if wl["load"] == "h2load":
        return run_h2load(port, wl["path"], duration, ctx.work)
    return run_wrk(port, wl["path"], duration, scheme=wl.get("scheme", "http"))
