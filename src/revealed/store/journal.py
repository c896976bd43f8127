"""The durable journal: SQLite in WAL mode, one append-only stream per table.

An append returns only after its transaction is committed with `synchronous=FULL`, so an
acknowledged row survives `kill -9` and power loss of this node. Each table has its own stream
(`journal_<table>`) whose sequence is `INTEGER PRIMARY KEY AUTOINCREMENT`: numbers never restart,
even after the stream is trimmed to empty. One journal row holds the accepted rows of one append
for one table (a group commit's transaction holds several) as an Arrow record batch (IPC, no
schema: the table's schema is known), so sealing concatenates batches instead of re-parsing rows;
or, when the group's appends of that table were all small (single events under load), as
MessagePack rows, which the seal decodes and converts to Arrow a whole run of journal rows at once.

The `ids_<table>` indexes hold the payload digest of every id seen within the id retention: the
first copy of an id wins, a retry with the same payload is a duplicate, and a different payload
under a known id is quarantined as `id_conflict`.

The journal's identity is a UUID created with it (not its path): the sealer records, per Delta
table, the last sequence sealed under that id.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from itertools import compress, pairwise
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Final

import msgspec
import pyarrow as pa

from revealed.errors import StoreError
from revealed.schema.arrow import TABLES
from revealed.store.convert import decode_rows, deserialize, encode_rows, rows_to_batch, serialize
from revealed.store.entries import Entry, Prepared, Status, TableRows

__all__ = ["GroupCommit", "Journal", "JournalBatch"]

#: rows per multi-row INSERT of ids bound one by one (3 parameters a row, SQLite allows 32,766)
_CHUNK: Final = 10_000
_ENCODE: Final = msgspec.json.Encoder().encode
#: how msgspec writes NUL in a JSON string: SQLite's JSON functions end a string there
_JSON_NUL: Final = b"\\u0000"
#: how a journal row's blob is encoded (its `encoding` column)
_ARROW: Final = 0
_ROWS: Final = 1


class _KnownId(Exception):
    """An append of several rows found some of their ids known: redo it on the exact path."""


@dataclass(frozen=True, slots=True)
class JournalBatch:
    """Committed rows of one table, through journal row `seq`: those of one journal row, or of a
    run of consecutive MessagePack ones converted together."""

    seq: int
    batch: pa.RecordBatch


_SCHEMA: Final = [
    *(
        f"CREATE TABLE IF NOT EXISTS journal_{t} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "rows INTEGER NOT NULL, received_at INTEGER NOT NULL, batch BLOB NOT NULL, "
        f"encoding INTEGER NOT NULL DEFAULT {_ARROW})"
        for t in TABLES
    ),
    *(
        f"CREATE TABLE IF NOT EXISTS ids_{t} (id TEXT PRIMARY KEY, digest BLOB NOT NULL, "
        "received_at INTEGER NOT NULL) WITHOUT ROWID"
        for t in TABLES
    ),
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


class Journal:
    """One SQLite journal file; safe to share between threads, and between processes through SQLite.

    >>> import tempfile, pathlib
    >>> from revealed.store.ingest import prepare
    >>> j = Journal(pathlib.Path(tempfile.mkdtemp()) / "journal.sqlite")
    >>> e = prepare("event", {"event_id": "e1", "timestamp": 1769860800000, "type": "click",
    ...                       "user_id": "u"}, received_us=1769860800000000)
    >>> j.append([e]), j.append([e])
    ([<Status.ACCEPTED: 'accepted'>], [<Status.DUPLICATE: 'duplicate'>])
    >>> j.pending()["events"]
    1
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 60.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        # writers in other processes queue on this lock file rather than in SQLite's busy handler,
        # which polls with sleeps of up to 100 ms: a commit waits only as long as the one before it
        self._writers = os.open(path.with_name(path.name + ".write-lock"), os.O_RDWR | os.O_CREAT, 0o644)
        self._db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        # large pages: each journal row is a blob of ~100 KB per 1,000 rows, and trimming walks its
        # overflow chain page by page (takes effect only when the file is created)
        self._db.execute("PRAGMA page_size=16384")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock, self._transaction():
            for statement in _SCHEMA:
                self._db.execute(statement)
            for t in TABLES:  # journals made before received_at, or encoding, was kept per batch
                columns = {row[1] for row in self._db.execute(f"PRAGMA table_info(journal_{t})")}
                for column, default in (("received_at", 0), ("encoding", _ARROW)):
                    if column not in columns:
                        self._db.execute(
                            f"ALTER TABLE journal_{t} ADD COLUMN {column} INTEGER NOT NULL DEFAULT {default}"
                        )
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('app_id', ?)", (str(uuid.uuid4()),))
        (self.app_id,) = self._db.execute("SELECT value FROM meta WHERE key = 'app_id'").fetchone()
        # reads (the sealer's, the metrics') on a connection of their own: in WAL mode they never
        # wait for a commit, where sharing the writer's connection queued them behind every fsync
        # (and each commit behind them: a seal of 1,000 single-event appends took 0.1-0.5 s)
        self._reader = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._read_lock = threading.Lock()
        self._ready_lock = threading.Lock()
        self._ready: tuple[float, bool] = (-math.inf, False)  # (when probed, writable)

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of a read-only statement, on the reader connection."""
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT under the journal's write lock, rolled back on error
        (autocommit connection); callers hold `_lock` (the flock is shared by this process's threads)."""
        if self._writers < 0:
            raise StoreError("the journal is closed", hint="open the store again")
        with _flocked(self._writers):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls some failures back itself (a full disk)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def append(self, entries: Sequence[Entry] | Prepared) -> list[Status]:
        """Append in one committed transaction; returns each entry's status once it is durable.

        Pass a `Prepared` to encode rows to Arrow outside the write lock (on the caller's thread);
        inside it, only the id index is consulted and one blob per table is inserted.
        """
        prepared = entries if isinstance(entries, Prepared) else Prepared.of(entries)
        return self.append_all([prepared])[0]

    def append_all(self, appends: Sequence[Prepared]) -> list[list[Status]]:
        """Several appends in one committed transaction (a group commit), as one append of their
        rows in order: the first copy of an id wins whichever append sent it, the group costs one
        id insert and one journal row per table, and sealing reads fewer, larger batches."""
        merged = Prepared.merge(appends)
        with self._lock:
            try:
                with self._transaction():
                    statuses = self._append_locked(merged, shortcut=True)
            except _KnownId:  # rolled back: again, every id looked up
                with self._transaction():
                    statuses = self._append_locked(merged, shortcut=False)
        offsets = Prepared.offsets(appends)
        return [statuses[start:end] for start, end in pairwise(offsets)]

    def _append_locked(self, prepared: Prepared, *, shortcut: bool) -> list[Status]:
        statuses = [Status.REJECTED] * prepared.size
        quarantine = [q for _, q in prepared.quarantined]
        for table, rows in prepared.tables.items():
            if shortcut and self._insert_new(table, rows):  # every row a new id, each once (the common case)
                if len(rows) == prepared.size:  # every row of the append: no loop over them
                    statuses = [Status.ACCEPTED] * prepared.size
                else:
                    for i in rows.positions:
                        statuses[i] = Status.ACCEPTED
                self._insert_rows(table, rows)
                continue
            first: dict[str, int] = {}  # key -> its first row in this append
            for j, key in enumerate(rows.keys):
                first.setdefault(key, j)
            new = self._insert_ids(
                table,
                list(first),
                [rows.digests[j] for j in first.values()],
                max(rows.received),
            )
            known = self._digests(table, [key for key in first if key not in new])
            keep = []
            for j, key in enumerate(rows.keys):
                if key in new and first[key] == j:
                    status = Status.ACCEPTED
                elif known.get(key, rows.digests[first[key]]) == rows.digests[j]:
                    status = Status.DUPLICATE
                else:
                    status = Status.CONFLICT
                    quarantine.append(rows.conflict(table, j))
                statuses[rows.positions[j]] = status
                keep.append(status is Status.ACCEPTED)
            self._insert_rows(table, rows, keep)
        unique = {q.quarantine_id: q for q in reversed(quarantine)}  # the first copy of each
        if unique:
            latest = max(q.received_at for q in unique.values())
            fresh = self._insert_ids("quarantine", list(unique), [b""] * len(unique), latest)
            quarantine = [q for k, q in unique.items() if k in fresh]
        if quarantine:
            self._insert_batch(
                "quarantine",
                rows_to_batch(
                    "quarantine", [q.row() for q in quarantine], [q.received_at for q in quarantine]
                ),
            )
        return statuses

    def _insert_new(self, table: str, rows: TableRows) -> bool:
        """Insert every row's id when each is new and sent once (the common case); False when
        some id repeats in the append, or one row's id is known (nothing inserted then).

        Without `RETURNING` (which costs a result row per id) and without a savepoint: when SQLite
        counts fewer inserts than rows, some of several ids were known, and `_KnownId` rolls the
        whole transaction back for `append_all` to redo on the exact path. Every statement is a
        wait for the GIL on the way back from SQLite, while requests are being prepared: a
        savepoint and its release cost two.
        """
        n = len(rows)
        if len(set(rows.keys)) != n:
            return False
        before = self._db.total_changes
        self._id_insert(table, rows.keys, rows.digests, max(rows.received))
        inserted = self._db.total_changes - before
        if inserted == n:
            return True
        if inserted:
            raise _KnownId
        return False

    def _insert_rows(self, table: str, rows: TableRows, keep: list[bool] | None = None) -> None:
        """One journal row of the rows (those `keep` marks): their Arrow batch, or the values of a
        group of small appends as MessagePack."""
        if rows.values is None:
            assert rows.batch is not None
            self._insert_batch(
                table, rows.batch if keep is None else rows.batch.filter(pa.array(keep, pa.bool_()))
            )
            return
        values, received = rows.values, rows.received
        if keep is not None:
            values, received = list(compress(values, keep)), list(compress(received, keep))
        self._insert_blob(table, len(values), encode_rows(table, values, received), _ROWS)

    def _insert_batch(self, table: str, batch: pa.RecordBatch) -> None:
        self._insert_blob(table, batch.num_rows, serialize(batch), _ARROW)

    def _insert_blob(self, table: str, rows: int, blob: bytes, encoding: int) -> None:
        if rows:
            self._db.execute(
                f"INSERT INTO journal_{table} (rows, received_at, batch, encoding) VALUES (?, ?, ?, ?)",
                (rows, time.time_ns() // 1000, blob, encoding),
            )

    def _insert_ids(self, table: str, keys: list[str], digests: list[bytes], received_at: int) -> set[str]:
        """Insert the ids not yet known (with their digests); returns the ids it inserted."""
        return {row[0] for row in self._id_insert(table, keys, digests, received_at, " RETURNING id")}

    def _id_insert(
        self, table: str, keys: list[str], digests: list[bytes], received_at: int, returning: str = ""
    ) -> list[tuple[Any, ...]]:
        """Insert (key, digest, received_at) rows for the keys not yet known, in one statement;
        returns what `returning` asks of the inserted rows.

        The keys travel as one JSON array and the digests (all of one width) as one blob, which
        SQLite unpacks itself: bound one by one, three values a row, the binding held the GIL for
        half of the insert (a GIL the commit thread shares with the requests being prepared).
        `received_at` is the commit group's latest receipt time, so the id retention errs on
        keeping an id a few milliseconds longer. Keys with a NUL, at which SQLite's JSON strings
        end, are bound one by one.
        """
        widths = set(map(len, digests))
        payload = _ENCODE(keys)
        if _JSON_NUL in payload or len(widths) > 1:
            return self._id_insert_bound(table, keys, digests, received_at, returning)
        width = widths.pop() if widths else 0
        digest = f"substr(?2, {width} * j.key + 1, {width})" if width else "x''"
        return self._db.execute(
            f"INSERT INTO ids_{table} SELECT j.value, {digest}, ?3 FROM json_each(?1) j "
            f"WHERE true ON CONFLICT DO NOTHING{returning}",
            (payload, b"".join(digests), received_at),
        ).fetchall()

    def _id_insert_bound(
        self, table: str, keys: list[str], digests: list[bytes], received_at: int, returning: str
    ) -> list[tuple[Any, ...]]:
        """`_id_insert` with every value bound on its own: one multi-row statement per `_CHUNK` rows."""
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = zip(keys[start : start + _CHUNK], digests[start : start + _CHUNK], strict=True)
            values = [v for key, d in chunk for v in (key, d, received_at)]
            marks = ",".join(["(?,?,?)"] * (len(values) // 3))
            out += self._db.execute(
                f"INSERT INTO ids_{table} VALUES {marks} ON CONFLICT DO NOTHING{returning}", values
            ).fetchall()
        return out

    def _digests(self, table: str, ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self._db.execute(f"SELECT id, digest FROM ids_{table} WHERE id IN ({marks})", chunk)
            found.update(cur.fetchall())
        return found

    def read(
        self, table: str, *, after: int, limit: int, through: int | None = None, max_bytes: int = 256 << 20
    ) -> list[JournalBatch]:
        """Committed rows of one stream with seq > after (and <= through), oldest first, until
        about `limit` rows or `max_bytes` of journal blobs (at least one journal row): a batch per
        Arrow journal row, and one per run of MessagePack ones. The byte bound keeps what a seal
        concatenates far below Arrow's 2 GB per string column, however long the strings.

        Reads in short statements, so WAL checkpoints are never starved: 16 journal rows at first
        (an Arrow one of 1,000 rows is about 100 KB), more while they are small, fewer once large.
        """
        out: list[JournalBatch] = []
        run: list[bytes] = []  # consecutive MessagePack rows, converted together
        run_end = rows = size = 0
        seq, page = after, 16
        last = (1 << 63) - 1 if through is None else through

        def end_run() -> None:
            if run:
                out.append(JournalBatch(run_end, decode_rows(table, run)))
                run.clear()

        while rows < limit and size < max_bytes:
            found = self._query(
                f"SELECT seq, rows, encoding, batch FROM journal_{table} WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (seq, last, page),
            )
            for seq, n, encoding, blob in found:
                if encoding == _ROWS:
                    run.append(blob)
                    run_end = seq
                else:
                    end_run()
                    out.append(JournalBatch(seq, deserialize(table, blob)))
                rows += n
                size += len(blob)
                if rows >= limit or size >= max_bytes:
                    break
            if len(found) < page:
                break
            fetched = sum(len(blob) for *_, blob in found)
            if fetched < 1 << 18:
                page = min(page * 4, 1024)
            elif fetched > 1 << 25:
                page = max(page // 4, 1)
        end_run()
        return out

    def trim(self, table: str, *, through: int, step_rows: int = 8_192) -> int:
        """Delete batches of one stream with seq <= through (sealed); returns how many rows.

        In steps of about `step_rows` rows, each its own transaction, with a pause between them
        for the appends waiting on the lock. Deleting a seal's worth of batches at once (100,000
        rows, 20 MB of blob pages to walk and free) held the write lock for 20-60 ms, and every
        request waiting on a commit stalled that long. A trim cut short leaves sealed rows behind,
        which no seal reads again (it reads after the Delta table's watermark) and the next trims.
        """
        trimmed = 0
        while True:
            # the step's last batch: the first whose running total reaches `step_rows`, else the
            # last (a batch holds a row or more; `rows` is read without walking the blobs' pages)
            (last,) = self._query(
                "SELECT coalesce(min(seq) FILTER (WHERE total >= ?1), max(seq)) FROM ("
                "SELECT seq, sum(rows) OVER (ORDER BY seq) AS total FROM ("
                f"SELECT seq, rows FROM journal_{table} WHERE seq <= ?2 ORDER BY seq LIMIT ?1))",
                (step_rows, through),
            )[0]
            if last is None:
                return trimmed
            with self._lock, self._transaction():
                (deleted,) = self._db.execute(
                    f"SELECT coalesce(sum(rows), 0) FROM journal_{table} WHERE seq <= ?", (last,)
                ).fetchone()
                self._db.execute(f"DELETE FROM journal_{table} WHERE seq <= ?", (last,))
            trimmed += int(deleted)
            time.sleep(0.001)  # let a waiting commit take the lock before the next step

    def checkpoint(self, *, above_bytes: int = 64 << 20) -> None:
        """Fold the WAL back into the database file when it has grown past `above_bytes`
        (SQLite's passive auto-checkpoint cannot shrink it while readers come and go).

        On a connection of its own: first a passive checkpoint, which copies the WAL's frames
        while appends go on, then, with the writers' lock held, a truncating one, which has only
        what arrived meanwhile left to copy. Truncating it all at once under the journal's lock
        stalled every append for as long as copying tens of MB and syncing them took. (Writers of
        this process hold `_lock` around the flock, which is shared by the process's threads.)"""
        wal = self.path.with_name(self.path.name + "-wal")
        if not (wal.exists() and wal.stat().st_size > above_bytes):
            return
        with closing(sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)) as db:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with self._lock, _flocked(self._writers):  # this process's writers, then the others'
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def prune_ids(self, *, before_us: int) -> int:
        """Forget ids received before a time; later copies then pass ingest and are deduped downstream."""
        with self._lock, self._transaction():
            return sum(
                self._db.execute(f"DELETE FROM ids_{t} WHERE received_at < ?", (before_us,)).rowcount
                for t in TABLES
            )

    def pending(self, after: dict[str, int] | None = None) -> dict[str, int]:
        """Rows per stream still in the journal (with `after`: only those with a later seq)."""
        return {
            t: int(
                self._query(
                    f"SELECT coalesce(sum(rows), 0) FROM journal_{t} WHERE seq > ?",
                    ((after or {}).get(t, 0),),
                )[0][0]
            )
            for t in TABLES
        }

    def oldest(self, after: dict[str, int] | None = None) -> int | None:
        """When the oldest row still in the journal (after `after`, per table) was committed, in
        UTC µs: a stream's first row, as rows are committed in sequence order under the write lock."""
        times = [
            rows[0][0]
            for t in TABLES
            if (
                rows := self._query(
                    f"SELECT received_at FROM journal_{t} WHERE seq > ? ORDER BY seq LIMIT 1",
                    ((after or {}).get(t, 0),),
                )
            )
        ]
        return min(times) if times else None

    def writable(self, *, timeout_s: float = 1.0, max_age_s: float = 1.0) -> bool:
        """Whether a write commits now (readiness): one row of `meta` written and committed on a
        connection of its own, waiting at most `timeout_s` for the write lock. False when another
        writer holds the lock that long, or the file or the disk refuses the write.

        The answer is kept for `max_age_s`, and concurrent callers share one probe: however often
        the probe is called (it needs no key), it costs at most one small commit a second."""
        with self._ready_lock:
            checked, answer = self._ready
            if time.monotonic() - checked >= max_age_s:
                answer = self._probe_write(timeout_s)
                self._ready = (time.monotonic(), answer)
            return answer

    def _probe_write(self, timeout_s: float) -> bool:
        try:
            with closing(sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('ready_at', ?)", (str(time.time_ns()),))
                db.execute("COMMIT")
        except sqlite3.Error:
            return False
        return True

    def first_seq(self, table: str) -> int | None:
        """The oldest sequence still in a stream (None when it is empty)."""
        (first,) = self._query(f"SELECT min(seq) FROM journal_{table}")[0]
        return None if first is None else int(first)

    def last_seq(self, table: str) -> int:
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name = ?", (f"journal_{table}",))
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()
            if self._writers >= 0:
                os.close(self._writers)
                self._writers = -1


@contextmanager
def _flocked(fd: int) -> Iterator[None]:
    """An exclusive flock on an open file, waited for and released on exit."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _settle(settled: Iterable[tuple[Future[list[Status]] | asyncio.Future[list[Status]], Any]]) -> None:
    """Give each future its statuses or the commit's error (unless its waiter gave up)."""
    for future, outcome in settled:
        if future.cancelled():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


@dataclass
class _Pending:
    prepared: Prepared
    #: a thread's future, or (with `loop`) an event loop's, settled on that loop
    future: Future[list[Status]] | asyncio.Future[list[Status]] = field(default_factory=Future)
    loop: asyncio.AbstractEventLoop | None = None


class GroupCommit:
    """Coalesces concurrent appends from many threads and event loops into one transaction.

    One thread commits. When it is free, it takes every append already queued (and, with
    `window_s` > 0, whatever else arrives within that window) and commits them together; appends
    that arrive during a commit go into the next one. So a lone append never waits for company,
    and under load each fsync serves many callers. Each caller returns only after its commit.
    """

    def __init__(
        self, journal: Journal, *, window_s: float = 0.0, max_rows: int = 50_000, max_bytes: int = 64 << 20
    ) -> None:
        self.journal = journal
        self.window_s = window_s
        self.max_rows = max_rows
        #: a group stops growing past this many bytes (`Prepared.nbytes`): a journal row stays far
        #: below SQLite's 1 GB blob limit and Arrow's 2 GB string columns, whatever clients send
        self.max_bytes = max_bytes
        self._queue: SimpleQueue[_Pending | None] = SimpleQueue()
        #: transactions committed so far (fewer than appends when callers were coalesced)
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="revealed-group-commit", daemon=True)
        self._thread.start()

    def append(self, entries: Sequence[Entry] | Prepared) -> list[Status]:
        """Encode on the caller's thread, then wait for the shared commit."""
        return self.submit(entries).result()

    def submit(self, entries: Sequence[Entry] | Prepared) -> Future[list[Status]]:
        """Queue an append (encoded on the caller's thread); the future holds each entry's status
        once the shared commit is durable."""
        pending = _Pending(entries if isinstance(entries, Prepared) else Prepared.of(entries))
        self._put(pending)
        return pending.future  # type: ignore[return-value]

    async def append_async(self, prepared: Prepared) -> list[Status]:
        """`append` for an event loop, awaited without a thread. The commit settles a group's
        futures with one call into each loop, not one wake-up per caller."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Status]] = loop.create_future()
        self.submit_for(loop, future, prepared)
        return await future

    def submit_for(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[list[Status]], prepared: Prepared
    ) -> None:
        """Queue an append whose statuses settle `future` on `loop`; callable from any thread (a
        request's rows are queued by the thread that prepared them, without a detour through the
        loop)."""
        self._put(_Pending(prepared, future, loop))

    def _put(self, pending: _Pending) -> None:
        if not self._thread.is_alive():
            raise StoreError("the group commit is closed", hint="append before closing the store")
        self._queue.put(pending)

    def _run(self) -> None:
        carried: _Pending | None = None  # the append that would have overgrown the last group
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is None:
                return
            group, rows, size, stop = [first], first.prepared.size, first.prepared.nbytes, False
            deadline = time.monotonic() + self.window_s
            while rows < self.max_rows and size < self.max_bytes:
                try:
                    wait = deadline - time.monotonic()
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                nbytes = nxt.prepared.nbytes
                if size + nbytes > self.max_bytes:
                    carried = nxt  # it begins the next group
                    break
                group.append(nxt)
                rows += nxt.prepared.size
                size += nbytes
            self._commit(group)
            if stop:  # `None` ends a group that carries nothing over
                return

    def _commit(self, group: Iterable[_Pending]) -> None:
        group = list(group)
        try:
            outcomes: list[list[Status] | BaseException] = list(
                self.journal.append_all([p.prepared for p in group])
            )
            self.commits += 1
        except BaseException as exc:
            # nothing was written: each append again on its own, so one's failure stays its own
            outcomes = [exc] if len(group) == 1 else [self._alone(p.prepared) for p in group]
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[Status]], Any]]] = {}
        for p, outcome in zip(group, outcomes, strict=True):
            if p.loop is None:
                _settle([(p.future, outcome)])
            else:
                on_loops.setdefault(p.loop, []).append((p.future, outcome))  # type: ignore[arg-type]
        for loop, settled in on_loops.items():
            with suppress(RuntimeError):  # a closed loop: nobody waits there any more
                loop.call_soon_threadsafe(_settle, settled)

    def _alone(self, prepared: Prepared) -> list[Status] | BaseException:
        try:
            (statuses,) = self.journal.append_all([prepared])
        except BaseException as exc:
            return exc
        self.commits += 1
        return statuses

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
