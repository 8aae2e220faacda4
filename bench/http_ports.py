"""HTTP benchmark (not a test): answer time of the public port (uvicorn + starlette) and of the
operations port (stdlib), one kept-alive connection, a webhook-sized POST / a /metrics GET.

    .venv/bin/python bench/http_ports.py [--requests 2000]

Prints p50/p95/p99 in ms. Both servers send head and body in separate writes; without
TCP_NODELAY every answer on a kept-alive connection waited ~40 ms for the client's delayed ACK
(measured before the fix: p50 44 ms on both).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from benchkit import add_timeout, arm_timeout
from prometheus_client import CollectorRegistry

from services.core.public_http import PublicServer
from services.core.runtime import HttpServer

BODY = b"x" * 600  # about a Wix webhook JWT


def answer(sock: socket.socket, request: bytes) -> None:
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert b" 200 " in lines[0], lines[0]
    length = int(
        next(
            v for k, _, v in (ln.partition(b":") for ln in lines) if k.lower() == b"content-length"
        )
    )
    while len(rest) < length:
        rest += sock.recv(65536)


def measure(port: int, request: bytes, n: int) -> tuple[float, float, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(100):
            answer(sock, request)
        times = []
        for _ in range(n):
            started = time.perf_counter()
            answer(sock, request)
            times.append(time.perf_counter() - started)
    times.sort()
    return (
        statistics.median(times) * 1000,
        times[int(n * 0.95)] * 1000,
        times[int(n * 0.99)] * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    add_timeout(parser, 600)
    args = parser.parse_args()
    arm_timeout(args.timeout, "bench/http_ports.py")
    n = args.requests
    public = PublicServer("127.0.0.1", 0)
    public.add_route("POST", "/h", lambda body, headers: (200, "application/json", b"{}"))
    public.start()
    operations = HttpServer("127.0.0.1", 0, CollectorRegistry()).start()
    post = b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
    get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        for name, port, request in (
            ("public POST (uvicorn)", public.port, post),
            ("operations GET /metrics (stdlib)", operations.port, get),
        ):
            p50, p95, p99 = measure(port, request, n)
            print(f"{name:34} p50 {p50:.3f} ms  p95 {p95:.3f} ms  p99 {p99:.3f} ms  ({n} requests)")
    finally:
        public.stop()
        operations.stop()


if __name__ == "__main__":
    main()
