#!/usr/bin/env python3
"""Threaded HTTP/1.1 test server (http.server.ThreadingHTTPServer) for the httpscope matrix.

Usage: pyserver.py [--bind ADDR] [--byte-reads]
Prints "listening on <port>" on stderr. Echoes X-Request-Id. Routes:
  /            small text body with Content-Length (keep-alive)
  /split       response written in many small writes (one syscall each)
  /close/<n>   n body bytes with no length: delimited by Connection: close
  /die         head (Content-Length: 1000) and 10 body bytes, then the process exits
  POST /echo   echoes the request body
--byte-reads: the request is read with unbuffered 1-byte reads (recv(1) per byte).
"""
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def rid(self):
        return self.headers.get("X-Request-Id", "")

    def send_text(self, status, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self.rid():
            self.send_header("X-Request-Id", self.rid())
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/split":
            body = b"split-" + self.rid().encode() + b"-" + b"x" * 200
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: %s\r\n"
                "Content-Length: %d\r\n\r\n" % (self.rid(), len(body))
            ).encode() + body
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(head), 7):
                self.connection.sendall(head[i : i + 7])
                time.sleep(0.0005)
            return
        if path.startswith("/close/"):
            n = int(path.split("/")[2])
            self.close_connection = True
            self.wfile.write(
                (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: %s\r\n"
                    "Connection: close\r\n\r\n" % self.rid()
                ).encode()
            )
            self.wfile.flush()
            sent = 0
            while sent < n:
                part = min(4096, n - sent)
                self.wfile.write(b"c" * part)
                self.wfile.flush()
                sent += part
            return
        if path == "/die":
            self.wfile.write(
                (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: %s\r\n"
                    "Content-Length: 1000\r\n\r\n0123456789" % self.rid()
                ).encode()
            )
            self.wfile.flush()
            time.sleep(0.2)
            os._exit(0)
        self.send_text(200, ("hello " + self.rid() + "\n").encode())

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.send_text(200, body)


def main():
    bind = "127.0.0.1"
    args = sys.argv[1:]
    if "--bind" in args:
        bind = args[args.index("--bind") + 1]
    if "--byte-reads" in args:
        Handler.rbufsize = 0
    server_class = ThreadingHTTPServer
    if ":" in bind:
        class V6(ThreadingHTTPServer):
            address_family = socket.AF_INET6
        server_class = V6
    server = server_class((bind, 0), Handler)
    server.daemon_threads = True
    print("listening on %d" % server.server_address[1], file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
