#!/usr/bin/env python3
"""HTTP/1.1 (and not-HTTP) test clients for the httpscope matrix.

Every mode prints one JSON object on its last stdout line with the counts it knows.
Request ids: X-Request-Id: <prefix><i> and ?id=<prefix><i> in the URL.

  keepalive HOST PORT N PREFIX PATH   http.client, one connection, N requests
  urllib    HOST PORT N PREFIX PATH   urllib.request, a new connection per request
  pipeline  HOST PORT ROUNDS DEPTH PREFIX [PATH]   raw socket, DEPTH requests per write
  split     HOST PORT N PREFIX PATH   raw socket, requests in 3-byte writes, responses read 1 byte at a time
  concurrent HOST PORT N PREFIX       N connections open at once, one request each
  raw       HOST PORT KIND            KIND: random | tls | h2preface; sends bytes, reads until close
  preopen   HOST PORT N PREFIX        one request, "ready" on stdout, waits for a stdin line, N more
  preconnect HOST PORT N PREFIX       connects, "ready" on stdout, waits for a stdin line, N requests
  exit_mid  HOST PORT PREFIX          sends GET /slow and exits before the response
"""
import http.client
import json
import os
import resource
import selectors
import socket
import sys
import time
import urllib.request


def url(path, rid):
    sep = "&" if "?" in path else "?"
    return "%s%sid=%s" % (path, sep, rid)


def request_bytes(host, port, path, rid, method="GET"):
    return (
        "%s %s HTTP/1.1\r\nHost: %s:%d\r\nX-Request-Id: %s\r\nUser-Agent: pyclient\r\n\r\n"
        % (method, url(path, rid), host, port, rid)
    ).encode()


class Reader:
    """Reads HTTP/1.1 responses (Content-Length or chunked) from a socket."""

    def __init__(self, sock, recv_size=65536):
        self.sock = sock
        self.buf = b""
        self.recv_size = recv_size

    def fill(self):
        data = self.sock.recv(self.recv_size)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def until(self, sep):
        while sep not in self.buf:
            self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_request=False):
        head = self.until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if head_request or status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.until(b"\r\n").strip().split(b";")[0], 16)
                if size == 0:
                    self.until(b"\r\n")
                    return status, headers, body
                body += self.take(size)
                self.take(2)
        return status, headers, self.take(int(headers.get("content-length", "0")))


def out(obj):
    print(json.dumps(obj), flush=True)


def keepalive(host, port, n, prefix, path):
    conn = http.client.HTTPConnection(host, port, timeout=20)
    ok = mismatch = 0
    for i in range(n):
        rid = "%s%d" % (prefix, i)
        conn.request("GET", url(path, rid), headers={"X-Request-Id": rid})
        resp = conn.getresponse()
        resp.read()
        ok += resp.status < 400
        mismatch += resp.getheader("X-Request-Id") != rid
    conn.close()
    out({"requests": n, "ok": ok, "mismatch": mismatch})


def with_urllib(host, port, n, prefix, path):
    ok = 0
    h = "[%s]" % host if ":" in host else host
    for i in range(n):
        rid = "%s%d" % (prefix, i)
        req = urllib.request.Request(
            "http://%s:%d%s" % (h, port, url(path, rid)), headers={"X-Request-Id": rid}
        )
        with urllib.request.urlopen(req, timeout=20) as resp:
            resp.read()
            ok += resp.status < 400
    out({"requests": n, "ok": ok})


def pipeline(host, port, rounds, depth, prefix, path="/"):
    s = socket.create_connection((host, port), timeout=20)
    r = Reader(s)
    ok = mismatch = 0
    k = 0
    for _ in range(rounds):
        batch = []
        for _ in range(depth):
            batch.append("%s%d" % (prefix, k))
            k += 1
        s.sendall(b"".join(request_bytes(host, port, path, rid) for rid in batch))
        for rid in batch:
            status, headers, _ = r.response()
            ok += status == 200
            mismatch += headers.get("x-request-id") != rid
    s.close()
    out({"requests": k, "ok": ok, "mismatch": mismatch})


def split(host, port, n, prefix, path):
    s = socket.create_connection((host, port), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    r = Reader(s, recv_size=1)
    ok = writes = 0
    for i in range(n):
        rid = "%s%d" % (prefix, i)
        data = request_bytes(host, port, path, rid)
        for j in range(0, len(data), 3):
            s.sendall(data[j : j + 3])
            writes += 1
            time.sleep(0.0003)
        status, headers, _ = r.response()
        ok += status == 200 and headers.get("x-request-id") == rid
    s.close()
    out({"requests": n, "ok": ok, "writes": writes})


def concurrent(host, port, n, prefix):
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect((host, port))
        socks.append(s)
    # Every connection is open before the first request is sent.
    for i, s in enumerate(socks):
        s.sendall(request_bytes(host, port, "/", "%s%d" % (prefix, i)))
    ok = 0
    for i, s in enumerate(socks):
        status, headers, _ = Reader(s).response()
        ok += status == 200 and headers.get("x-request-id") == "%s%d" % (prefix, i)
    for s in socks:
        s.close()
    out({"requests": n, "ok": ok, "connections": n})


def client_hello():
    """A TLS 1.3 ClientHello record (SNI localhost), lengths computed."""
    sni = b"localhost"
    ext_sni = b"\x00\x00" + (len(sni) + 5).to_bytes(2, "big") + (len(sni) + 3).to_bytes(2, "big") + b"\x00" + len(sni).to_bytes(2, "big") + sni
    ext_versions = bytes.fromhex("002b0003020304")
    ext_groups = bytes.fromhex("000a00040002001d")
    ext_keyshare = bytes.fromhex("003300260024001d0020") + b"\x33" * 32
    ext_sigalgs = bytes.fromhex("000d000400020804")
    exts = ext_sni + ext_versions + ext_groups + ext_keyshare + ext_sigalgs
    body = (
        b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32)
        + bytes.fromhex("000213010100") + len(exts).to_bytes(2, "big") + exts
    )
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


def raw(host, port, kind):
    payload = {
        "random": os.urandom(4096),
        "tls": client_hello(),
        "h2preface": H2_PREFACE,
    }[kind]
    s = socket.create_connection((host, port), timeout=2)
    s.sendall(payload)
    got = 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            got += len(data)
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    out({"sent": len(payload), "received": got})


def preopen(host, port, n, prefix, before=1):
    """`before` requests, "ready", a stdin line, then `n` more, on one connection."""
    conn = http.client.HTTPConnection(host, port, timeout=20)
    conn.connect()
    ok = 0
    for i in range(before + n):
        if i == before:
            print("ready", flush=True)
            sys.stdin.readline()
        rid = "%s%d" % (prefix, i)
        conn.request("GET", url("/", rid), headers={"X-Request-Id": rid})
        resp = conn.getresponse()
        resp.read()
        ok += resp.getheader("X-Request-Id") == rid
    conn.close()
    out({"requests": before + n, "ok": ok})


def exit_mid(host, port, prefix):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(request_bytes(host, port, "/slow", prefix + "0"))
    time.sleep(0.05)
    print(json.dumps({"requests": 1}), flush=True)
    os._exit(0)


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    a = sys.argv[4:]
    if mode == "keepalive":
        keepalive(host, port, int(a[0]), a[1], a[2])
    elif mode == "urllib":
        with_urllib(host, port, int(a[0]), a[1], a[2])
    elif mode == "pipeline":
        pipeline(host, port, int(a[0]), int(a[1]), a[2], *a[3:4])
    elif mode == "split":
        split(host, port, int(a[0]), a[1], a[2])
    elif mode == "concurrent":
        concurrent(host, port, int(a[0]), a[1])
    elif mode == "raw":
        raw(host, port, a[0])
    elif mode == "preopen":
        preopen(host, port, int(a[0]), a[1])
    elif mode == "preconnect":
        preopen(host, port, int(a[0]), a[1], before=0)
    elif mode == "exit_mid":
        exit_mid(host, port, a[0])
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
