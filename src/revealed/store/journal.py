"""The durable journal: SQLite in WAL mode, one append-only stream per table.

An append returns only after its transaction is committed with `synchronous=FULL`, so an
acknowledged row survives `kill -9` and power loss of this node. Each table has its own stream
(`journal_<table>`) whose sequence is `INTEGER PRIMARY KEY AUTOINCREMENT`: numbers never restart,
even after the stream is trimmed to empty. The `ids` index holds the payload digest of every id
seen within the id retention, so the first copy of an id wins, a retry with the same payload is a
duplicate, and a different payload under a known id is quarantined as `id_conflict`.

The journal's identity is a UUID created with it (not its path): the sealer records, per Delta
table, the last sequence sealed under that id.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Final

import msgspec

__all__ = ["Accepted", "GroupCommit", "Journal", "JournalRow", "Quarantined", "Status"]

STREAMS: Final = ("decisions", "events", "items", "quarantine")
_ENCODE: Final = msgspec.json.Encoder().encode
_CHUNK: Final = 500


class Status(StrEnum):
    """What became of one appended record."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid record ready to append: its table, id, payload digest and row as JSON (no received_at)."""

    table: str
    record_id: str
    digest: bytes
    payload: bytes
    received_at: int


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record kept with its error instead of being dropped."""

    kind: str
    record_id: str | None
    reason: str
    errors: Sequence[str]
    raw: str
    source: str | None
    received_at: int
    quarantine_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def payload(self) -> bytes:
        return _ENCODE(
            {
                "quarantine_id": self.quarantine_id,
                "kind": self.kind,
                "record_id": self.record_id,
                "reason": self.reason,
                "errors": list(self.errors),
                "raw": self.raw,
                "source": self.source,
            }
        )


Entry = Accepted | Quarantined


@dataclass(frozen=True, slots=True)
class JournalRow:
    seq: int
    received_at: int
    payload: bytes


_SCHEMA: Final = "".join(
    f"CREATE TABLE IF NOT EXISTS journal_{t} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "received_at INTEGER NOT NULL, payload BLOB NOT NULL);"
    for t in STREAMS
) + (
    "CREATE TABLE IF NOT EXISTS ids (tbl TEXT NOT NULL, id TEXT NOT NULL, digest BLOB NOT NULL, "
    "received_at INTEGER NOT NULL, PRIMARY KEY (tbl, id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
)


class Journal:
    """One SQLite journal file; safe to share between threads, and between processes through SQLite.

    >>> import tempfile, pathlib
    >>> j = Journal(pathlib.Path(tempfile.mkdtemp()) / "journal.sqlite")
    >>> j.append([Accepted("events", "e1", b"h", b'{"event_id":"e1"}', 1)])
    [<Status.ACCEPTED: 'accepted'>]
    >>> j.append([Accepted("events", "e1", b"h", b'{"event_id":"e1"}', 2)])
    [<Status.DUPLICATE: 'duplicate'>]
    >>> j.pending()["events"]
    1
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 60.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock, self._transaction():
            for statement in filter(None, _SCHEMA.split(";")):
                self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('app_id', ?)", (str(uuid.uuid4()),))
        (self.app_id,) = self._db.execute("SELECT value FROM meta WHERE key = 'app_id'").fetchone()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def append(self, entries: Sequence[Entry]) -> list[Status]:
        """Append in one committed transaction; returns each entry's status once it is durable."""
        with self._lock, self._transaction():
            return self._append_locked(entries)

    def _append_locked(self, entries: Sequence[Entry]) -> list[Status]:
        statuses: list[Status] = [Status.REJECTED] * len(entries)
        quarantine: list[Quarantined] = []
        by_table: dict[str, list[int]] = {}
        for i, e in enumerate(entries):
            if isinstance(e, Accepted):
                by_table.setdefault(e.table, []).append(i)
            else:
                quarantine.append(e)
        for table, indices in by_table.items():
            known = self._digests(
                table, {e.record_id for i in indices if isinstance(e := entries[i], Accepted)}
            )
            rows: list[tuple[int, bytes]] = []
            ids: list[tuple[str, str, bytes, int]] = []
            for i in indices:
                e = entries[i]
                assert isinstance(e, Accepted)
                seen = known.get(e.record_id)
                if seen is None:
                    known[e.record_id] = e.digest
                    rows.append((e.received_at, e.payload))
                    ids.append((table, e.record_id, e.digest, e.received_at))
                    statuses[i] = Status.ACCEPTED
                elif seen == e.digest:
                    statuses[i] = Status.DUPLICATE
                else:
                    statuses[i] = Status.CONFLICT
                    quarantine.append(
                        Quarantined(
                            kind=table.removesuffix("s"),
                            record_id=e.record_id,
                            reason="id_conflict",
                            errors=[
                                f"{table.removesuffix('s')}_id: expected the same payload as the first copy "
                                f"of {e.record_id!r} or a new id, found a different payload"
                            ],
                            raw=e.payload.decode(),
                            source=None,
                            received_at=e.received_at,
                        )
                    )
            self._db.executemany(f"INSERT INTO journal_{table} (received_at, payload) VALUES (?, ?)", rows)
            self._db.executemany("INSERT INTO ids VALUES (?, ?, ?, ?)", ids)
        if quarantine:
            self._db.executemany(
                "INSERT INTO journal_quarantine (received_at, payload) VALUES (?, ?)",
                [(q.received_at, q.payload()) for q in quarantine],
            )
        return statuses

    def _digests(self, table: str, ids: set[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            cur = self._db.execute(
                f"SELECT id, digest FROM ids WHERE tbl = ? AND id IN ({marks})", (table, *chunk)
            )
            found.update(cur.fetchall())
        return found

    def read(self, table: str, *, after: int, limit: int) -> list[JournalRow]:
        """Committed rows of one stream with seq > after, oldest first (one short read)."""
        with self._lock:
            cur = self._db.execute(
                f"SELECT seq, received_at, payload FROM journal_{table} WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
            return [JournalRow(*row) for row in cur.fetchall()]

    def trim(self, table: str, *, through: int) -> int:
        """Delete rows of one stream with seq <= through (sealed rows); returns how many."""
        with self._lock, self._transaction():
            return self._db.execute(f"DELETE FROM journal_{table} WHERE seq <= ?", (through,)).rowcount

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file so it does not grow without bound."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def prune_ids(self, *, before_us: int) -> int:
        """Forget ids received before a time; later copies then pass ingest and are deduped downstream."""
        with self._lock, self._transaction():
            return self._db.execute("DELETE FROM ids WHERE received_at < ?", (before_us,)).rowcount

    def pending(self) -> dict[str, int]:
        """Rows per stream not yet trimmed (sealed rows vanish at the next trim)."""
        with self._lock:
            return {t: self._db.execute(f"SELECT count(*) FROM journal_{t}").fetchone()[0] for t in STREAMS}

    def last_seq(self, table: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (f"journal_{table}",)
            ).fetchone()
            return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


@dataclass
class _Pending:
    entries: Sequence[Entry]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Status] | None = None
    error: BaseException | None = None


class GroupCommit:
    """Coalesces concurrent appends from many threads into one transaction.

    The first waiting append opens a window of `window_s` (default 2 ms); everything queued by its
    end commits together, and each caller returns only after that commit.
    """

    def __init__(self, journal: Journal, *, window_s: float = 0.002, max_rows: int = 50_000) -> None:
        self.journal = journal
        self.window_s = window_s
        self.max_rows = max_rows
        self._queue: SimpleQueue[_Pending | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="revealed-group-commit", daemon=True)
        self._thread.start()

    def append(self, entries: Sequence[Entry]) -> list[Status]:
        pending = _Pending(entries)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, rows, stop = [first], len(first.entries), False
            deadline = time.monotonic() + self.window_s
            while rows < self.max_rows:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                rows += len(nxt.entries)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: Iterable[_Pending]) -> None:
        group = list(group)
        flat = [e for p in group for e in p.entries]
        try:
            statuses = self.journal.append(flat)
        except BaseException as exc:  # every waiter learns of the failure
            for p in group:
                p.error = exc
                p.done.set()
            return
        start = 0
        for p in group:
            p.result = statuses[start : start + len(p.entries)]
            start += len(p.entries)
            p.done.set()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
