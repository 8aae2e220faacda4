"""The webhook route caps the request body: 413 without reading an oversize body into memory.

Raw sockets on the extractor's real public port (uvicorn), so the test controls exactly what is
sent: a ``Content-Length`` far above the cap with (almost) no body behind it must be answered at
once (a server that tried to read it would wait for bytes that never come), and a chunked body
is counted while it streams.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from services.connectors.wix.receiver import PATH
from services.extractor.service import Extractor
from tests.extractor.support import Harness


def public_port(extractor: Extractor) -> int:
    assert extractor.ctx.runtime.public is not None
    return extractor.ctx.runtime.public.port


LIMIT = 4096
TOO_LARGE = "tether_extractor_webhook_deliveries_total"


@pytest.fixture
def extractor(harness: Harness) -> Iterator[Extractor]:
    yield harness.extractor(
        http=True,
        wix_webhook_public_key=harness.wix.signer.public_key_pem,
        webhook_max_body_bytes=LIMIT,
    )


def exchange(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send the request head (and ``body``), return (status, response bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    status = int(received.split(b" ", 2)[1])
    return status, received


def head(port: int, *headers: str) -> str:
    lines = [f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: text/plain"]
    return "\r\n".join([*lines, *headers, ""]) + "\r\n"


def chunked(data: bytes, size: int = 1000) -> bytes:
    out = b""
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def test_a_declared_oversize_body_is_refused_before_it_is_read(
    harness: Harness, extractor: Extractor
) -> None:
    port = public_port(extractor)
    # 100 MiB announced, 10 bytes sent: only an answer that does not read the body arrives.
    status, response = exchange(port, head(port, "Content-Length: 104857600"), b"x" * 10)
    assert status == 413
    assert b"connection: close" in response.lower()
    labels = {"outcome": "rejected", "reason": "too_large"}
    assert harness.metric(extractor, TOO_LARGE, labels) == 1


def test_a_chunked_body_is_counted_while_it_streams(harness: Harness, extractor: Extractor) -> None:
    port = public_port(extractor)
    status, _ = exchange(
        port, head(port, "Transfer-Encoding: chunked"), chunked(b"y" * (LIMIT + 1))
    )
    assert status == 413
    # A chunked body within the cap is read in full and reaches the receiver: not a JWT -> 401.
    status, response = exchange(port, head(port, "Transfer-Encoding: chunked"), chunked(b"z" * 50))
    assert status == 401, response


def test_a_body_within_the_cap_reaches_the_receiver(harness: Harness, extractor: Extractor) -> None:
    port = public_port(extractor)
    body = b"not-a-jwt" * 10
    status, _ = exchange(port, head(port, f"Content-Length: {len(body)}"), body)
    assert status == 401  # read and verified (and refused: it is no signed JWT)
    status, _ = exchange(port, head(port, f"Content-Length: {LIMIT + 1}"), b"a" * (LIMIT + 1))
    assert status == 413


def test_the_webhook_port_serves_no_metrics_and_the_metrics_port_no_webhook(
    harness: Harness, extractor: Extractor
) -> None:
    """The ingress reaches the public port only: /metrics and the probes are not on it."""
    public, operations = public_port(extractor), extractor.ctx.runtime.http.port
    assert public != operations
    for path in ("/metrics", "/healthz", "/readyz"):
        assert httpx.get(f"http://127.0.0.1:{public}{path}").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{operations}{path}").status_code == 200
    assert httpx.post(f"http://127.0.0.1:{operations}{PATH}", content=b"x").status_code == 501
    assert httpx.post(f"http://127.0.0.1:{public}{PATH}", content=b"x").status_code == 401
