"""The benchmarks' open-loop load generator: it counts what it sends and times it from when it
was due, against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from benchmarks.loadgen import open_loop
from service_helpers import free_port


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 with the body's length; /slow after 30 ms; /broken answers 500."""
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow" or body == b"slow":
        await asyncio.sleep(0.03)
    status = 500 if scope["path"] == "/broken" else 200
    answer = str(len(body)).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def serve(**config: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    yield from serve()


@pytest.fixture(scope="module")
def impatient() -> Iterator[str]:
    """A server that closes a kept-alive connection after 0.1 s idle."""
    yield from serve(timeout_keep_alive=0.1)


def test_every_request_is_sent_on_schedule_and_timed(base: str) -> None:
    began = time.monotonic()
    latencies = open_loop(
        f"{base}/fast", lambda i: b"x" * i, rate=200, seconds=0.5, content_type="text/plain"
    )
    assert len(latencies.seconds) == 100
    assert latencies.failed == 0
    assert time.monotonic() - began >= 0.49, "sent at the stated rate, not as fast as possible"
    assert latencies.seconds == sorted(latencies.seconds)
    assert 0 < latencies.quantile(0.5) <= latencies.quantile(0.99) <= latencies.quantile(1.0)


def test_latency_counts_the_servers_time_and_errors_count_as_failed(base: str) -> None:
    slow = open_loop(f"{base}/slow", lambda i: b"{}", rate=100, seconds=0.3, content_type="application/json")
    assert slow.quantile(0.0) >= 28, "in ms, about the server's 30 ms at least (the loop's clock is coarse)"
    broken = open_loop(
        f"{base}/broken", lambda i: b"{}", rate=100, seconds=0.2, content_type="application/json"
    )
    assert broken.failed == 20


def test_connections_the_server_closed_while_idle_are_replaced_not_failed(impatient: str) -> None:
    """Two bursts of slow requests need several connections each; between them one connection
    does, and the others sit idle long enough for the server to close them."""

    def body(i: int) -> bytes:
        return b"slow" if i < 10 or 40 <= i < 50 else b"fast"

    latencies = open_loop(f"{impatient}/any", body, rate=100, seconds=0.6, content_type="text/plain")
    assert latencies.failed == 0
    assert len(latencies.seconds) == 60
