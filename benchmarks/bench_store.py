"""Journal append and sealing throughput, each beside the raw library doing the same I/O.

- append: `Journal.append` of prepared rows (id dedupe + one Arrow blob insert, one commit per
  1,000 rows) vs raw `sqlite3.executemany` of the same rows, already encoded as JSON payloads,
  into a table with the same pragmas, one commit per 1,000 rows. Encoding (JSON and Arrow) is
  outside the write lock and is timed in the validation benchmark.
- seal: `seal()` from a journal (read + Arrow conversion + Delta commit with an app transaction)
  vs a raw `deltalake.write_deltalake` of the same Arrow batches, already built, written alike
  (`WRITER_PROPERTIES`: Zstandard level 1).
- codec: that raw write with deltalake's default Snappy instead, and the bytes each writes.
- random ids: the append again with random ids (UUID4, as many producers make them) against the
  same rows with the benchmark's ascending ids: each new id lands on its own page of the id index,
  and every page a commit touches is written to the WAL whole.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
from deltalake import WriterProperties, write_deltalake

from benchmarks.common import T0, Result, best_of, event
from revealed.settings import Settings
from revealed.store import Store
from revealed.store.convert import concat
from revealed.store.entries import Accepted, Prepared
from revealed.store.ingest import prepare
from revealed.store.journal import Journal
from revealed.store.tables import WRITER_PROPERTIES


def _fresh(tmp: Path, name: str) -> Path:
    path = tmp / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run(n: int) -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="revealed-bench-"))
    received = (T0 + 10**9) * 1000
    entries = [prepare("event", event(i), received_us=received) for i in range(n)]
    assert all(isinstance(e, Accepted) for e in entries)
    chunks = [entries[i : i + 1000] for i in range(0, n, 1000)]
    batches = [Prepared.of(chunk) for chunk in chunks]
    # the baseline stores each row as its JSON, encoded before timing starts
    rows = [[(e.received_at, msgspec.json.encode(e.row)) for e in chunk] for chunk in chunks]

    def appending(name: str, appends: list[Prepared]) -> Callable[[], None]:
        """Each append in its own commit, into a fresh journal."""

        def run() -> None:
            journal = Journal(_fresh(tmp, name) / "journal.sqlite")
            for batch in appends:
                journal.append(batch)
            journal.close()

        return run

    ours = appending("ours", batches)

    def raw() -> None:
        db = sqlite3.connect(_fresh(tmp, "raw") / "raw.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE j (seq INTEGER PRIMARY KEY AUTOINCREMENT, received_at INTEGER, payload BLOB)"
        )
        for chunk in rows:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO j (received_at, payload) VALUES (?, ?)", chunk)
            db.execute("COMMIT")
        db.close()

    t_ours, t_raw = best_of(3, ours), best_of(3, raw)
    results = [
        Result(
            "journal append (commit per 1,000 rows)",
            n / t_ours,
            "rows/s",
            "raw sqlite3.executemany",
            n / t_raw,
            aim=0.7,
        )
    ]
    draw = random.Random(7)
    random_batches = [
        Prepared.of(
            [
                prepare(
                    "event",
                    {**event(i), "event_id": str(uuid.UUID(int=draw.getrandbits(128), version=4))},
                    received_us=received,
                )
                for i in range(start, min(start + 1000, n))
            ]
        )
        for start in range(0, n, 1000)
    ]

    results.append(
        Result(
            f"journal append, random (UUID4) ids, {n:,} of them",
            n / best_of(2, appending("random-ids", random_batches)),
            "rows/s",
            "the same with ascending ids (above)",
            n / t_ours,
        )
    )

    seal_batch = 100_000

    def seal_ours() -> None:
        data = _fresh(tmp, "store")
        store = Store(Settings(data_dir=data, seal_batch_rows=seal_batch))
        for batch in batches:
            store.journal.append(batch)
        report = store.seal()
        phases.append(report.seconds)
        store.close()

    phases: list[dict[str, float]] = []
    for _ in range(3):
        seal_ours()
    commit_path = min(p["read"] + p["commit"] for p in phases)
    with_trim = min(p["read"] + p["commit"] + p["trim"] for p in phases)
    store = Store(Settings(data_dir=_fresh(tmp, "conv")))
    for batch in batches:
        store.journal.append(batch)
    arrow_batches, after = [], 0
    while chunk := store.journal.read("events", after=after, limit=seal_batch):
        arrow_batches.append(concat("events", [b.batch for b in chunk]))
        after = chunk[-1].seq
    store.close()

    def seal_raw(name: str = "raw-delta", properties: WriterProperties = WRITER_PROPERTIES) -> None:
        target = _fresh(tmp, name)
        for table in arrow_batches:
            write_deltalake(str(target), table, mode="append", writer_properties=properties)

    t_seal_raw = best_of(3, seal_raw)
    t_snappy = best_of(3, lambda: seal_raw("snappy-delta", WriterProperties(compression="SNAPPY")))
    raw_label = "raw write_deltalake of the same Arrow batches"
    results.append(
        Result(
            f"seal: journal read + Delta commit ({seal_batch:,}-row commits)",
            n / commit_path,
            "rows/s",
            raw_label,
            n / t_seal_raw,
            aim=0.8,
        )
    )
    results.append(Result("seal including journal trim", n / with_trim, "rows/s", raw_label, n / t_seal_raw))
    results.append(
        Result(
            "raw write_deltalake, Zstandard level 1 (the store's WRITER_PROPERTIES)",
            n / t_seal_raw,
            "rows/s",
            "the same with deltalake's default Snappy",
            n / t_snappy,
        )
    )
    results.append(
        Result(
            "Parquet bytes per row written, Zstandard level 1",
            _parquet_bytes(tmp / "raw-delta") / n,
            "bytes/row",
            "Snappy",
            _parquet_bytes(tmp / "snappy-delta") / n,
        )
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def _parquet_bytes(table: Path) -> int:
    return sum(f.stat().st_size for f in table.glob("*.parquet"))
