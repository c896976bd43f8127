"""Client: log decisions, events and items from any thread; a background thread sends them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from revealed.sdk.core import KINDS, ClientStats, Core, LogMethods, RecordError

__all__ = ["Client"]


class Client(LogMethods):
    """Batches records in the background and sends them as NDJSON, durably and idempotently.

    `log_*` return at once (a few microseconds): the record gets a client-side id if it has none,
    so a retried batch can never store it twice. A background thread sends a batch when
    `batch_size` records are waiting or every `flush_interval_s`; connection errors, 5xx and 429
    are retried with exponential backoff and jitter, 4xx never (refused records reach `on_error`
    and `stats`). When the server stays unreachable, batches go to the on-disk spool (with
    `spool_dir`) and are replayed in order once it is back, also after a restart of this process.

    >>> import httpx
    >>> def server(request: httpx.Request) -> httpx.Response:
    ...     n = request.content.count(b"\\n")
    ...     return httpx.Response(200, json={"accepted": n, "duplicate": 0, "conflict": 0, "rejected": 0,
    ...                                      "statuses": ["accepted"] * n, "errors": {}})
    >>> with Client("http://revealed.test", transport=httpx.MockTransport(server)) as client:
    ...     event_id = client.log_event("click", user_id="u1", item_id="sku-7")
    ...     client.flush()
    ...     client.stats.accepted
    True
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
        transport: httpx.BaseTransport | None = None,
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
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="revealed-sdk", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> ClientStats:
        return self._core.stats

    # -- logging (caller's thread) ---------------------------------------------------------------

    def _add(self, kind: str, record: dict[str, Any]) -> str:
        return self._core.add(kind, record)

    # -- control -------------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every record logged so far is acknowledged, spooled or dropped; False on timeout."""
        core = self._core
        targets = dict(core.last_logged)
        core.wake.set()
        with core.changed:
            return core.changed.wait_for(lambda: core.flushed(targets), timeout=timeout_s)

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Flush, stop the sender and release the spool (what could not be sent stays spooled).

        Waits up to `timeout_s` for the flush and as long again for the sender to finish. Past
        that, the sender stops retrying: the batch it is sending gets its request's own time
        (`timeout_s` of the client) to come back, and every record not acknowledged by then is
        parked like any batch the server could not take (spooled, else counted dropped and
        reported), never lost unseen."""
        if self._closing:
            return
        core = self._core
        if not self.flush(timeout_s):
            core.abandon.set()
        self._closing = True
        core.wake.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            core.abandon.set()
            self._thread.join()  # no backoff is left to wait out: at most one request's timeout
        self._http.close()
        if core.spool is not None:
            core.spool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the sender thread ---------------------------------------------------------------------
    def _run(self) -> None:
        core = self._core
        while True:
            core.wake.wait(core.flush_interval_s)
            core.wake.clear()
            self._replay()
            for kind in KINDS:
                while batch := core.take(kind):
                    self._dispatch(kind, batch)
            if self._closing and not any(core.buffers.values()):
                return

    def _dispatch(self, kind: str, batch: list[dict[str, Any]]) -> None:
        core = self._core
        body = core.encode(batch)
        if core.spool is not None and len(core.spool):
            core.park(kind, body, len(batch))  # keep the order: older batches wait in the spool
        elif not self._send(kind, batch, body):
            core.park(kind, body, len(batch))
        core.resolve(kind, len(batch))

    def _send(self, kind: str, records: list[dict[str, Any]], body: bytes) -> bool:
        """POST with retries; True once the server answered for good (2xx/4xx), False if it never could."""
        core = self._core
        for attempt in range(core.max_retries + 1):
            if attempt:
                core.stats.retries += 1
                core.abandon.wait(core.backoff(attempt - 1))
            if core.abandon.is_set():
                return False
            try:
                response = self._http.post(core.endpoint(kind), content=body, headers=core.headers())
            except httpx.TransportError:
                continue
            if core.retryable(response.status_code):
                continue
            core.interpret(kind, records, response.status_code, response.content)
            return True
        return False

    def _replay(self) -> None:
        """Send spooled batches oldest first; stop at the first that still cannot be delivered."""
        core = self._core
        if core.spool is None:
            return
        for item in core.spool.pending():
            body = item.read()
            records = core.decode(body)
            if not self._send(item.kind, records, body):
                return
            core.spool.remove(item)
            core.stats.replayed += len(records)
