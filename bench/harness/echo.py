"""A non-HTTP TCP load for the --all-ports workloads: an echo server and a
ping-pong client, each run as its own process (`echo.py serve PORT`,
`echo.py load PORT SECONDS`, which prints the round trips per second)."""

import socket
import sys
import threading
import time

MESSAGE = b"PING 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef\n"  # 64 bytes
CONNS = 8


def serve(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)

    def echo(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def load(port, seconds):
    deadline = time.monotonic() + seconds
    counts = [0] * CONNS

    def ping(i):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.monotonic() < deadline:
                conn.sendall(MESSAGE)
                got = 0
                while got < len(MESSAGE):
                    chunk = conn.recv(len(MESSAGE) - got)
                    if not chunk:
                        return
                    got += len(chunk)
                counts[i] += 1

    threads = [threading.Thread(target=ping, args=(i,)) for i in range(CONNS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(counts) / (time.monotonic() - started):.1f}")


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "serve":
        serve(port)
    else:
        load(port, float(sys.argv[3]))
