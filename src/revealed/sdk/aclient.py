"""AsyncClient: the same contract as Client for asyncio applications."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from revealed.sdk.core import KINDS, ClientStats, Core, LogMethods, RecordError

__all__ = ["AsyncClient"]


class AsyncClient(LogMethods):
    """Batches records in a background task and sends them as NDJSON (see `Client` for the contract).

    `log_*` are plain (non-async) calls that return at once; `flush()` and `close()` are awaited.
    Use it as `async with AsyncClient(url) as client:` inside a running event loop.

    >>> import asyncio, httpx
    >>> def server(request: httpx.Request) -> httpx.Response:
    ...     n = request.content.count(b"\\n")
    ...     return httpx.Response(200, json={"accepted": n, "duplicate": 0, "conflict": 0, "rejected": 0,
    ...                                      "statuses": ["accepted"] * n, "errors": {}})
    >>> async def main() -> int:
    ...     async with AsyncClient("http://revealed.test", transport=httpx.MockTransport(server)) as client:
    ...         client.log_event("click", user_id="u1")
    ...         await client.flush()
    ...         return client.stats.accepted
    >>> asyncio.run(main())
    1
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        timeout_s: float = 10.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int = 256 << 20,
        on_error: Callable[[RecordError], None] | None = None,
        on_result: Callable[[str, list[dict[str, Any]], list[str]], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = Core.build(
            url,
            api_key=api_key,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            on_error=on_error,
            on_result=on_result,
        )
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._task: asyncio.Task[None] | None = None
        #: the POST being sent, which `close` cancels once it stops waiting
        self._in_flight: asyncio.Task[httpx.Response] | None = None
        self._closing = False

    @property
    def stats(self) -> ClientStats:
        return self._core.stats

    def _add(self, kind: str, record: dict[str, Any]) -> str:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._core.add(kind, record)

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every record logged so far is acknowledged, spooled or dropped; False on timeout."""
        core = self._core
        targets = dict(core.last_logged)
        core.wake.set()

        async def done() -> None:
            while not core.flushed(targets):
                await asyncio.sleep(0.005)

        try:
            await asyncio.wait_for(done(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout_s: float | None = 30.0) -> None:
        """Flush, stop the sender and release the spool (what could not be sent stays spooled).

        Waits up to `timeout_s` for the flush and as long again for the sender to finish. Past
        that, the sender stops retrying and the request in flight is cancelled: every record not
        acknowledged is parked like any batch the server could not take (spooled, else counted
        dropped and reported), never lost unseen."""
        if self._closing:
            return
        if self._task is not None and not await self.flush(timeout_s):
            self._abandon()
        self._closing = True
        self._core.wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._abandon()
            await self._task
        await self._http.aclose()
        if self._core.spool is not None:
            self._core.spool.close()

    def _abandon(self) -> None:
        """Stop retrying and cancel the request in flight: the sender parks what is left."""
        self._core.abandon.set()
        if self._in_flight is not None:
            self._in_flight.cancel()

    async def __aenter__(self) -> AsyncClient:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self) -> None:
        core = self._core
        while True:
            for _ in range(max(1, int(core.flush_interval_s / 0.005))):
                if core.wake.is_set() or self._closing:
                    break
                await asyncio.sleep(0.005)
            core.wake.clear()
            await self._replay()
            for kind in KINDS:
                while batch := core.take(kind):
                    body = core.encode(batch)
                    if (core.spool is not None and len(core.spool)) or not await self._send(
                        kind, batch, body
                    ):
                        core.park(kind, body, len(batch))
                    core.resolve(kind, len(batch))
            if self._closing and not any(core.buffers.values()):
                return

    async def _send(self, kind: str, records: list[dict[str, Any]], body: bytes) -> bool:
        core = self._core
        for attempt in range(core.max_retries + 1):
            if attempt:
                core.stats.retries += 1
                await self._pause(core.backoff(attempt - 1))
            if core.abandon.is_set():
                return False
            request = self._in_flight = asyncio.ensure_future(
                self._http.post(core.endpoint(kind), content=body, headers=core.headers())
            )
            try:
                await asyncio.wait({request})  # `close` may cancel the request, not the sender
            finally:
                self._in_flight = None
                request.cancel()  # a no-op once it is done; else the sender itself was cancelled
            if request.cancelled():
                continue  # by `close`: the loop sees `abandon` and gives the batch up
            try:
                response = request.result()
            except httpx.TransportError:
                continue
            if core.retryable(response.status_code):
                continue
            core.interpret(kind, records, response.status_code, response.content)
            return True
        return False

    async def _pause(self, seconds: float) -> None:
        """The backoff before a retry, cut short once `close` stops waiting."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._core.abandon.is_set():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.005))

    async def _replay(self) -> None:
        core = self._core
        if core.spool is None:
            return
        for item in core.spool.pending():
            body = item.read()
            records = core.decode(body)
            if not await self._send(item.kind, records, body):
                return
            core.spool.remove(item)
            core.stats.replayed += len(records)
