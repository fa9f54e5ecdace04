#!/usr/bin/env python3
"""Opens N keep-alive HTTP/1.1 connections, sends one request on each, reads
its response, then holds every connection open and idle until stdin closes
(or SIGTERM/SIGINT). Used by bench/overhead.py for the idle-1000 and rss-10k
workloads.

Prints `ready OK FAILED SECONDS` on stdout once all connections are settled.
"""

import argparse
import errno
import resource
import selectors
import signal
import socket
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def response_complete(buf):
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = 0
    for line in buf[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(buf) >= head_end + 4 + length


def open_all(host, port, count, path, batch, timeout):
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    done, failed = [], 0
    started = 0
    in_flight = 0
    deadline = time.monotonic() + timeout
    while len(done) + failed < count:
        while started < count and in_flight < batch:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex((host, port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                failed += 1
            else:
                sel.register(sock, selectors.EVENT_WRITE, ["connect", b""])
                in_flight += 1
            started += 1
        if time.monotonic() > deadline:
            break
        for key, mask in sel.select(timeout=1.0):
            sock, state = key.fileobj, key.data
            if state[0] == "connect":
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sel.unregister(sock)
                    sock.close()
                    failed += 1
                    in_flight -= 1
                    continue
                sock.sendall(request)
                state[0] = "read"
                sel.modify(sock, selectors.EVENT_READ, state)
            else:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(sock)
                    sock.close()
                    failed += 1
                    in_flight -= 1
                    continue
                state[1] += chunk
                if response_complete(state[1]):
                    sel.unregister(sock)
                    done.append(sock)
                    in_flight -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    sel.close()
    return done, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--batch", type=int, default=200, help="connections being set up at once")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    start = time.monotonic()
    conns, failed = open_all(args.host, args.port, args.count, args.path, args.batch, args.timeout)
    print(f"ready {len(conns)} {failed} {time.monotonic() - start:.3f}", flush=True)
    try:
        sys.stdin.read()  # hold until stdin closes
    finally:
        for sock in conns:
            sock.close()


if __name__ == "__main__":
    main()
