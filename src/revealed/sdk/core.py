"""What Client and AsyncClient share: the record buffers, ids, encoding, the meaning of
responses, backoff, counters and the spool. No I/O but the spool's."""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from revealed.sdk.spool import Spool, SpoolFull

__all__ = ["KINDS", "ClientStats", "Core", "LogMethods", "RecordError"]

KindName = Literal["decision", "event", "item"]
KINDS: Final[tuple[KindName, ...]] = ("decision", "event", "item")
log = logging.getLogger("revealed.sdk")
_ID_FIELD: Final = {"decision": "decision_id", "event": "event_id", "item": "item_id"}
_ENCODE: Final = msgspec.json.Encoder().encode
_DECODE: Final = msgspec.json.Decoder()
#: the one 4xx after which a batch is sent again (every 5xx is too); any other 4xx is final
_TOO_MANY_REQUESTS: Final = 429


@dataclass(frozen=True)
class RecordError:
    """A record the server refused (never retried): its kind, id, and why."""

    kind: str
    record_id: str | None
    status: str
    errors: list[str]


@dataclass
class ClientStats:
    """Counters since the client started."""

    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0
    rejected: int = 0
    #: records refused as a whole batch by a 4xx (bad key, too large...): never retried
    failed: int = 0
    retries: int = 0
    spooled: int = 0
    replayed: int = 0
    #: records lost because the spool was full or absent and the server stayed unreachable
    dropped: int = 0
    batches: int = 0


@dataclass
class Core:
    url: str
    api_key: str | None
    batch_size: int
    flush_interval_s: float
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    on_error: Callable[[RecordError], None] | None
    on_result: Callable[[str, list[dict[str, Any]], list[str]], None] | None
    spool: Spool | None
    stats: ClientStats = field(default_factory=ClientStats)
    prefix: str = field(default_factory=lambda: secrets.token_hex(8) + "-")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, found {self.batch_size}")
        self.url = self.url.rstrip("/")
        self.buffers: dict[str, deque[dict[str, Any]]] = {k: deque() for k in KINDS}
        self.counter = itertools.count()
        self.logged: dict[str, itertools.count[int]] = {k: itertools.count(1) for k in KINDS}
        self.last_logged: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.resolved: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.wake = threading.Event()
        #: set when `close` stops waiting: no more retries or backoff, what is left is parked
        self.abandon = threading.Event()
        self.add_lock = threading.Lock()
        self.changed = threading.Condition()

    @classmethod
    def build(
        cls,
        url: str,
        *,
        api_key: str | None,
        batch_size: int,
        flush_interval_s: float,
        max_retries: int,
        backoff_base_s: float,
        backoff_max_s: float,
        spool_dir: str | Path | None,
        spool_max_bytes: int,
        on_error: Callable[[RecordError], None] | None,
        on_result: Callable[[str, list[dict[str, Any]], list[str]], None] | None,
    ) -> Core:
        spool = None if spool_dir is None else Spool(Path(spool_dir), max_bytes=spool_max_bytes)
        return cls(
            url,
            api_key,
            batch_size,
            flush_interval_s,
            max_retries,
            backoff_base_s,
            backoff_max_s,
            on_error,
            on_result,
            spool,
        )

    # -- the caller's thread -------------------------------------------------------------------
    def add(self, kind: str, record: dict[str, Any]) -> str:
        """Buffer one record (ids and timestamps filled in); the hot path of log_*."""
        id_field = _ID_FIELD[kind]
        record_id = record.get(id_field)
        if record_id is None and kind != "item":
            record_id = record[id_field] = self.prefix + format(next(self.counter), "x")
        if kind != "item" and "timestamp" not in record:
            record["timestamp"] = time.time_ns() // 1_000_000
        buffer = self.buffers[kind]
        with self.add_lock:  # the flush target must never step back
            buffer.append(record)
            self.last_logged[kind] = next(self.logged[kind])
        if len(buffer) >= self.batch_size:
            self.wake.set()
        return str(record_id)

    def flushed(self, targets: Mapping[str, int]) -> bool:
        return all(self.resolved[k] >= n for k, n in targets.items())

    # -- the sender ----------------------------------------------------------------------------
    def take(self, kind: str) -> list[dict[str, Any]]:
        buffer, batch = self.buffers[kind], list[dict[str, Any]]()
        while buffer and len(batch) < self.batch_size:
            batch.append(buffer.popleft())
        return batch

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/x-ndjson"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    @staticmethod
    def encode(records: list[dict[str, Any]]) -> bytes:
        return b"".join(_ENCODE(r) + b"\n" for r in records)

    @staticmethod
    def decode(body: bytes) -> list[dict[str, Any]]:
        return [_DECODE.decode(line) for line in body.splitlines() if line]

    def endpoint(self, kind: str) -> str:
        return f"{self.url}/v1/{kind}s"

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))

    @staticmethod
    def retryable(status: int) -> bool:
        """5xx and 429 are sent again; any other 4xx is final.

        >>> [s for s in (400, 408, 425, 429, 500, 503) if Core.retryable(s)]
        [429, 500, 503]
        """
        return status == _TOO_MANY_REQUESTS or status >= 500

    def interpret(self, kind: str, records: list[dict[str, Any]], status: int, body: bytes) -> None:
        """Count the server's answer to a batch it took (200/422) or refused as a whole (other 4xx)."""
        self.stats.batches += 1
        result: Any = None
        if status in (200, 422):
            try:
                result = _DECODE.decode(body)
            except msgspec.DecodeError:
                result = None
        if isinstance(result, dict) and isinstance(result.get("statuses"), list):
            statuses: list[str] = result["statuses"]
            errors: dict[str, list[str]] = result.get("errors", {})
            for name in ("accepted", "duplicate", "conflict", "rejected"):
                setattr(self.stats, name, getattr(self.stats, name) + int(result.get(name, 0)))
            if self.on_result is not None:
                self._callback(self.on_result, kind, records, statuses)
            for index, messages in errors.items():
                record = records[int(index)] if int(index) < len(records) else {}
                self.report(RecordError(kind, record.get(_ID_FIELD[kind]), statuses[int(index)], messages))
            return
        self.stats.failed += len(records)
        try:
            message = str(_DECODE.decode(body).get("error", body[:200]))
        except (msgspec.DecodeError, AttributeError):
            message = body[:200].decode(errors="replace")
        for record in records:
            self.report(RecordError(kind, record.get(_ID_FIELD[kind]), f"http {status}", [message]))

    def park(self, kind: str, body: bytes, count: int) -> None:
        """Keep a batch the server could not take: in the spool, or count it dropped."""
        if self.spool is not None:
            try:
                self.spool.push(kind, body)
                self.stats.spooled += count
                return
            except SpoolFull as exc:
                reason = str(exc)
        else:
            reason = "server unreachable and no spool_dir configured"
        self.stats.dropped += count
        self.report(RecordError(kind, None, "dropped", [f"{count} records dropped: {reason}"]))

    def report(self, error: RecordError) -> None:
        if self.on_error is not None:
            self._callback(self.on_error, error)

    def _callback(self, fn: Callable[..., object], *args: object) -> None:
        """Run a user callback; its exceptions are logged, never allowed to stop the sender."""
        try:
            fn(*args)
        except Exception:
            log.exception("revealed SDK callback %r raised", fn)

    def resolve(self, kind: str, count: int) -> None:
        with self.changed:
            self.resolved[kind] += count
            self.changed.notify_all()


class LogMethods:
    """`log_*` for Client and AsyncClient: shape the record, then `_add` buffers it."""

    def _add(self, kind: str, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def log_event(self, type: str, **fields: Any) -> str:
        """Log one event (`type` plus any Event field); returns its event_id."""
        fields["type"] = type
        return self._add("event", fields)

    def log_decision(self, items: list[dict[str, Any]] | list[str], **fields: Any) -> str:
        """Log one decision: the items shown in display order (ids or objects); returns its decision_id."""
        fields["items"] = [{"item_id": i} if isinstance(i, str) else i for i in items]
        return self._add("decision", fields)

    def log_item(self, item_id: str, **fields: Any) -> str:
        """Log catalogue features of an item (as of `valid_from`, when given)."""
        fields["item_id"] = item_id
        return self._add("item", fields)
