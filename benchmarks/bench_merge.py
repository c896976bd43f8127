"""The incremental run's MERGE into a Delta table, beside rewriting the whole table.

A 20-file table of `20 * n` rows, keyed like `interactions` (decision, item), each file written by
one earlier merge; the source replaces 1% of one file's rows. `merge_into_delta` removes and
rewrites only the file holding those keys; the baseline is the whole-table rewrite it replaced
(`_rewrite_all`, still its fallback when the columns change), timed on the same table, each turn
alternating. Ratio = baseline time / merge time.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from deltalake import DeltaTable
from deltalake.transaction import CommitProperties

from benchmarks.common import Result
from revealed.pipeline import delta_files

FILES = 20
KEYS = ("decision_id", "item_id")


def _rows(start: int, n: int, bump: int = 0) -> str:
    return (
        "SELECT 'd' || lpad(CAST(x // 10 AS VARCHAR), 9, '0') AS decision_id, "
        "'i' || CAST(x % 10 AS VARCHAR) AS item_id, x % 10 AS position, "
        f"(x * 7919 + {bump}) % 1000 / 1000.0 AS reward, x % 3 = 0 AS clicked, "
        '\'{"page": "home", "n": \' || CAST(x % 7 AS VARCHAR) || \'}\' AS context '
        f"FROM range({start}, {start + n}) t(x)"
    )


def run(n: int) -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="revealed-bench-merge-"))
    con = duckdb.connect()
    try:
        uri = str(tmp / "interactions")
        delta_files.copy_to_delta(con, _rows(0, n), uri, CommitProperties())
        for f in range(1, FILES):
            delta_files.merge_into_delta(con, _rows(f * n, n), uri, KEYS, CommitProperties())
        assert len(DeltaTable(uri).file_uris()) == FILES
        update = _rows(FILES // 2 * n, n // 100, bump=1)
        base = str(tmp / "base")

        def on_a_copy(action: Callable[[], object], files_after: int | None) -> float:
            """Seconds `action` takes on a fresh copy of the table at `base` (then the file count
            it leaves is checked, untimed)."""
            shutil.copytree(uri, base, dirs_exist_ok=False)
            start = time.perf_counter()
            action()
            took = time.perf_counter() - start
            assert files_after is None or len(DeltaTable(base).file_uris()) == files_after
            shutil.rmtree(base)
            return took

        def merge() -> None:
            delta_files.merge_into_delta(con, update, base, KEYS, CommitProperties())

        def rewrite_all() -> None:
            con.execute(f"CREATE OR REPLACE TABLE _merge_source AS {update}")
            delta_files._rewrite_all(con, DeltaTable(base), base, KEYS, CommitProperties())
            con.execute("DROP TABLE _merge_source")

        ours, theirs = [], []
        for turn in range(3):
            # the merge takes one file out and puts one in; the whole rewrite leaves one file
            turns = ((merge, ours, FILES), (rewrite_all, theirs, None))
            for fn, out, files_after in turns[:: 1 if turn % 2 == 0 else -1]:
                out.append(on_a_copy(fn, files_after))
        rows = FILES * n
        return [
            Result(
                f"MERGE 1% of one file's rows into a {FILES}-file, {rows:,}-row table "
                "(ratio = whole rewrite's time / merge's)",
                rows / min(ours),
                "table rows/s",
                "rewriting the whole table",
                rows / min(theirs),
            )
        ]
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
