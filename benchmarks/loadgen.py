"""A lean open-loop HTTP/1.1 load generator for single-request latency.

httpx spends about a millisecond of CPU per request, so on this machine's two cores it cannot
send much more than 500 requests/s while a server shares them: it, not the server, sets the
latency above that. This generator writes each request's bytes on a kept-alive asyncio
connection (uvloop) and reads the response by its Content-Length, for a few tens of
microseconds per request.

Requests are sent on a fixed schedule (request i at `i / rate` s), whatever the server does, and
each latency is counted from the time the request was *due*, not from when a connection was free
to send it, so a server that falls behind is charged for the queue it causes (no coordinated
omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvloop

__all__ = ["Latencies", "open_loop"]


@dataclass(frozen=True)
class Latencies:
    """Seconds from due time to the end of each response, sorted; and the requests that failed."""

    seconds: list[float]
    failed: int

    def quantile(self, q: float) -> float:
        """The q-quantile in ms (the slowest sample for q=1)."""
        return self.seconds[min(len(self.seconds) - 1, int(len(self.seconds) * q))] * 1e3


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        """Send one request and read its response; returns the status code. The response must
        carry a Content-Length (FastAPI's do), not a chunked body."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ValueError(f"expected a response with a Content-Length, found {head!r}")
        await self.reader.readexactly(length)
        return int(head[9:12])


def open_loop(
    url: str, body: Callable[[int], bytes], *, rate: float, seconds: float, content_type: str
) -> Latencies:
    """POST `body(i)` to `url` at `rate` requests/s for `seconds`, on as many kept-alive
    connections as the server's pace needs (at most 256)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        "Content-Length: "
    ).encode()

    async def run() -> Latencies:
        idle: list[_Connection] = []
        opened: list[_Connection] = []
        samples: list[float] = []
        failed = 0

        async def one(due: float, payload: bytes) -> None:
            nonlocal failed
            connection = None
            while idle and connection is None:
                connection = idle.pop()
                if connection.reader.at_eof():  # closed by the server while idle (uvicorn: 5 s)
                    opened.remove(connection)
                    connection.writer.close()
                    connection = None
            if connection is None:
                if len(opened) >= 256:
                    failed += 1
                    return
                connection = _Connection(*await asyncio.open_connection(host, port))
                opened.append(connection)
            try:
                status = await connection.exchange(head + b"%d\r\n\r\n" % len(payload) + payload)
            except (OSError, asyncio.IncompleteReadError):
                failed += 1
                opened.remove(connection)
                return
            samples.append(time.perf_counter() - due)
            if status >= 300:
                failed += 1
            idle.append(connection)

        tasks = []
        began = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = began + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due, body(i))))
        await asyncio.gather(*tasks)
        for connection in opened:
            connection.writer.close()
        return Latencies(sorted(samples), failed)

    return uvloop.run(run())
