"""A scripted, in-process fake of the ingestion service for SDK tests: no sockets, no store.

`FakeServer` is an `httpx.MockTransport` handler (it serves `Client` and `AsyncClient` alike). It
records every request, answers like `POST /v1/{kind}s` does (per-row statuses, 200 if a row was
stored, else 422), remembers ids in the order it first stored them, and can be scripted to fail:

- ``"ok"``: ingest the batch;
- ``"connect"``: raise `httpx.ConnectError` (the server is unreachable);
- an ``int`` status (500, 503, 429, 400, 401, 413...): answer it with a Problem body, store nothing;
- ``"stored-then-503"``: store the batch, then answer 503 (the reply was lost);
- ``"hang"``: block until `release` is set, then ingest (sync clients only);
- ``"garbage-200"``: answer 200 with a body that is not an ingest result (a misbehaving proxy);
- any callable: its response.

The script is consumed one action per request; once empty, every request gets `fallback` ("ok"),
or "connect" while `down` is set.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

__all__ = ["FAST", "ID_FIELD", "URL", "Action", "FakeServer", "Seen", "spooled_files", "wait_until"]

URL: Final = "http://revealed.test"
ID_FIELD: Final = {"decision": "decision_id", "event": "event_id", "item": "item_id"}
#: client options that keep the tests fast: short waits, tiny backoff
FAST: Final[dict[str, Any]] = {
    "flush_interval_s": 0.01,
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.004,
    "timeout_s": 5.0,
}

Action = str | int | Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    kind: str
    path: str
    headers: httpx.Headers
    records: list[dict[str, Any]]
    action: str

    @property
    def ids(self) -> list[str]:
        return [r[ID_FIELD[self.kind]] for r in self.records]


def _key(kind: str, record: dict[str, Any]) -> str:
    if kind == "item":
        return f"{record['item_id']}@{record.get('valid_from')}"
    return str(record[ID_FIELD[kind]])


class FakeServer:
    """See the module docstring."""

    def __init__(
        self,
        script: Iterable[Action] = (),
        *,
        reject: Callable[[dict[str, Any]], list[str]] | None = None,
    ) -> None:
        self.script: deque[Action] = deque(script)
        self.down = False
        self.fallback: Action = "ok"
        self.reject = reject or (lambda record: [])
        self.seen: list[Seen] = []
        self.stored: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in ID_FIELD}
        #: ids per kind in the order they were first stored
        self.order: dict[str, list[str]] = {k: [] for k in ID_FIELD}
        self.release = threading.Event()
        self._lock = threading.Lock()

    # -- scripting -----------------------------------------------------------------------------
    def recover(self) -> None:
        """Answer every later request normally (and let hanging requests finish)."""
        with self._lock:
            self.script.clear()
            self.down = False
            self.fallback = "ok"
        self.release.set()

    # -- what the server saw -------------------------------------------------------------------
    def requests(self, kind: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if kind is None or s.kind == kind]

    def delivered(self, kind: str = "event") -> list[str]:
        with self._lock:
            return list(self.order[kind])

    def total_delivered(self) -> int:
        with self._lock:
            return sum(len(ids) for ids in self.order.values())

    # -- the transport handler -----------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        kind = request.url.path.removeprefix("/v1/").removesuffix("s")
        records = [msgspec.json.decode(line) for line in request.content.splitlines() if line]
        with self._lock:
            action = self.script.popleft() if self.script else "connect" if self.down else self.fallback
            self.seen.append(Seen(kind, request.url.path, request.headers, records, str(action)))
        if action == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if action == "hang":
            self.release.wait(30)
            action = "ok"
        if callable(action):
            return action(request)
        if action == "ok":
            return self.ingest(kind, records)
        if action == "stored-then-503":
            self.ingest(kind, records)
            return httpx.Response(503, json={"error": "reply lost", "hint": None})
        if action == "garbage-200":
            return httpx.Response(200, text="<html>ok</html>")
        assert isinstance(action, int), action
        return httpx.Response(action, json={"error": f"the server said {action}", "hint": "fix it"})

    def ingest(self, kind: str, records: list[dict[str, Any]]) -> httpx.Response:
        """What the real service answers: per-row statuses in the order sent."""
        statuses: list[str] = []
        errors: dict[str, list[str]] = {}
        with self._lock:
            stored = self.stored[kind]
            for index, record in enumerate(records):
                problems = self.reject(record)
                key = _key(kind, record)
                if problems:
                    statuses.append("rejected")
                    errors[str(index)] = problems
                elif key in stored:
                    statuses.append("duplicate" if stored[key] == record else "conflict")
                else:
                    stored[key] = record
                    self.order[kind].append(str(record[ID_FIELD[kind]]))
                    statuses.append("accepted")
        counts = {s: statuses.count(s) for s in ("accepted", "duplicate", "conflict", "rejected")}
        ok = counts["accepted"] + counts["duplicate"] > 0
        return httpx.Response(200 if ok else 422, json={**counts, "statuses": statuses, "errors": errors})


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def spooled_files(directory: Path) -> list[str]:
    """The names of a spool directory's batch files, in the order they replay."""
    return sorted(p.name for p in directory.glob("*.ndjson"))
