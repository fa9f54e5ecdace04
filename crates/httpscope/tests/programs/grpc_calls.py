#!/usr/bin/env python3
"""gRPC server and client for the httpscope HTTP/2 tests: grpcio with generic handlers and
bytes in and out (no protoc, no generated code).

  python3 grpc_calls.py server                          prints "listening on <port>" on stderr
  python3 grpc_calls.py client PORT PREFIX UNARY STREAMS

The client makes, on one channel (one connection): UNARY unary calls, STREAMS server-streaming
calls and STREAMS bidi calls, each with an `x-request-id` metadata entry PREFIX<n>. Some calls
fail on purpose: a trailers-only NOT_FOUND, an INVALID_ARGUMENT after the response headers, a
server stream aborted with ABORTED after some messages. It prints one JSON object: its pid and
every call with its id, method, grpc status and the messages it sent and received.
"""

import json
import os
import sys
from concurrent import futures

import grpc

SERVICE = "httpscope.test.Echo"


def request_id(context):
    return dict(context.invocation_metadata()).get("x-request-id", "")


def unary(request, context):
    rid = request_id(context)
    if request.startswith(b"fail"):
        # Nothing sent before: a trailers-only response.
        context.abort(grpc.StatusCode.NOT_FOUND, f"no such thing: {rid}")
    context.send_initial_metadata((("x-request-id", rid),))
    if request.startswith(b"error"):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad argument {rid}")
    return b"echo:" + request


def server_stream(request, context):
    rid = request_id(context)
    context.send_initial_metadata((("x-request-id", rid),))
    count, _, abort = request.decode().partition(":")
    for i in range(int(count)):
        yield f"{rid} part {i}".encode()
    if abort:
        context.abort(grpc.StatusCode.ABORTED, "stopped on purpose")


def bidi(requests, context):
    context.send_initial_metadata((("x-request-id", request_id(context)),))
    for message in requests:
        yield b"re:" + message


def serve():
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on {port}", file=sys.stderr, flush=True)
    server.wait_for_termination()


def status_of(err):
    return err.code().value[0]


def client(port, prefix, unary_calls, streams):
    calls = []
    options = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call_unary = channel.unary_unary(f"/{SERVICE}/Unary")
        call_stream = channel.unary_stream(f"/{SERVICE}/ServerStream")
        call_bidi = channel.stream_stream(f"/{SERVICE}/Bidi")
        n = 0

        def next_id():
            nonlocal n
            n += 1
            return f"{prefix}{n - 1}"

        for i in range(unary_calls):
            rid = next_id()
            payload = b"fail" if i % 5 == 3 else b"error" if i % 7 == 5 else f"hello {rid}".encode()
            try:
                call_unary(payload, metadata=(("x-request-id", rid),), timeout=10)
                status, received = 0, 1
            except grpc.RpcError as err:
                status, received = status_of(err), 0
            calls.append(dict(id=rid, method="Unary", status=status, sent=1, received=received))
        for i in range(streams):
            rid = next_id()
            count = 1 + i % 4
            request = f"{count}:abort" if i % 3 == 2 else f"{count}"
            received, status = 0, 0
            try:
                for _ in call_stream(request.encode(), metadata=(("x-request-id", rid),), timeout=10):
                    received += 1
            except grpc.RpcError as err:
                status = status_of(err)
            calls.append(dict(id=rid, method="ServerStream", status=status, sent=1, received=received))
        for i in range(streams):
            rid = next_id()
            messages = [f"{rid} msg {k}".encode() for k in range(1 + i % 3)]
            received = sum(1 for _ in call_bidi(iter(messages), metadata=(("x-request-id", rid),), timeout=10))
            calls.append(dict(id=rid, method="Bidi", status=0, sent=len(messages), received=received))
    print(json.dumps(dict(pid=os.getpid(), calls=calls)))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve()
    else:
        client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
