"""Delta tables as DuckDB sees them: a snapshot's Parquet files to scan, and query results that
DuckDB writes as Parquet files and deltalake commits.

DuckDB writes the files itself (Zstandard level 1, up to 128 MB each), streaming under its memory
budget, into a folder of the table's; deltalake then commits them. Handing the rows to
deltalake's writer instead cost about 2 GB on top of the budget at 10M rows (it buffers whole
files), and deltalake's MERGE read the whole 10M-row target into memory (5.8 GB at 1M decisions,
8 GB to merge nothing).

`merge_into_delta` replaces the target's rows whose keys the source has and inserts the others,
in one commit that removes only the files holding a matched key and adds their kept rows
rewritten with the source's: an incremental run costs what it changes, not the whole table. The
files are found by a scan of the key columns alone.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    create_table_with_add_actions,
)

__all__ = ["copy_to_delta", "merge_into_delta", "parquet_scan"]

#: the DuckDB table a merge's source rows are materialised in, once
_SOURCE = "_merge_source"
#: the column DuckDB names each scanned row's file in (a name no table of revealed uses)
_FILE = "_revealed_file"


def parquet_scan(delta: DeltaTable) -> str | None:
    """DuckDB's `read_parquet` over a Delta snapshot's files (None when it has none)."""
    return _scan([uri.removeprefix("file://") for uri in delta.file_uris()])


def copy_to_delta(con: Any, query: str, uri: str, commit: CommitProperties) -> bool:
    """Replace the Delta table at `uri` with the rows of a DuckDB query. False (and nothing
    committed) when the query has no rows: without a file there is no schema to commit."""
    run, files = _write_files(con, query, uri)
    if not files:
        return False
    with _discarded_on_error(Path(uri) / run):
        create_table_with_add_actions(
            uri,
            DeltaSchema.from_arrow(pq.read_schema(files[0])),
            [_add_action(file, f"{run}/{file.name}") for file in files],
            mode="overwrite",
            commit_properties=commit,
        )
    return True


def merge_into_delta(con: Any, query: str, uri: str, keys: tuple[str, ...], commit: CommitProperties) -> None:
    """MERGE the rows of a DuckDB query into the Delta table at `uri` by `keys`: matched rows are
    replaced, the others inserted, the rest of the table kept, in one commit that rewrites only
    the files holding a matched key. With no source rows, only the commit is recorded. Should
    the rows written not have the table's schema (other columns, types or nullability), the
    whole table is rewritten instead.

    The caller keeps compaction away meanwhile (`Tables.lock`): deltalake does not see a
    compaction that removed a touched file between this merge's read and its commit as a
    conflict, and the compacted copy of the replaced rows would stay."""
    con.execute(f"CREATE OR REPLACE TABLE {_SOURCE} AS {query}")
    try:
        target = DeltaTable(uri)
        if not con.execute(f"SELECT count(*) FROM {_SOURCE}").fetchone()[0]:
            target.create_write_transaction(
                [], mode="append", schema=target.schema(), commit_properties=commit
            )
            return
        columns = [f.name for f in target.schema().fields]
        source = [d[0] for d in con.execute(f"SELECT * FROM {_SOURCE} LIMIT 0").description]
        if sorted(source) != sorted(columns) or not _rewrite_touched(con, target, uri, keys, columns, commit):
            _rewrite_all(con, target, uri, keys, commit)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_SOURCE}")


def _rewrite_touched(
    con: Any,
    target: DeltaTable,
    uri: str,
    keys: tuple[str, ...],
    columns: list[str],
    commit: CommitProperties,
) -> bool:
    """The merge as one commit removing the files that hold a matched key and adding their kept
    rows and the source's; False (nothing committed) when the rows written do not have the
    table's schema, for the caller to rewrite everything."""
    adds = pa.table(target.get_add_actions(flatten=True)).select(["path", "size_bytes"]).to_pylist()
    files = {_local(uri, a["path"]): a for a in adds}
    touched = []
    if files:
        found = con.execute(
            f"SELECT DISTINCT t.{_FILE} FROM {_scan(list(files), filename=True)} AS t "
            f"SEMI JOIN {_SOURCE} AS s ON {_matched(keys)}"
        ).fetchall()
        touched = sorted(row[0] for row in found)
    select = ", ".join(_identifier(c) for c in columns)  # the table's column order
    run, written = _write_files(con, f"SELECT {select} FROM ({_merged(_scan(touched), keys)})", uri)
    folder = Path(uri) / run
    with _discarded_on_error(folder):
        if DeltaSchema.from_arrow(pq.read_schema(written[0])).to_json() != target.schema().to_json():
            shutil.rmtree(folder, ignore_errors=True)
            return False
        removed_at = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [
            RemoveAction(_logged(files[path]["path"]), True, removed_at, files[path]["size_bytes"])
            for path in touched
        ]
        actions += [_add_action(file, f"{run}/{file.name}") for file in written]
        target.create_write_transaction(
            actions, mode="append", schema=target.schema(), commit_properties=commit
        )
    return True


def _rewrite_all(
    con: Any, target: DeltaTable, uri: str, keys: tuple[str, ...], commit: CommitProperties
) -> None:
    """The merge as a rewrite of the whole table."""
    copy_to_delta(con, _merged(parquet_scan(target), keys), uri, commit)


def _merged(scan: str | None, keys: tuple[str, ...]) -> str:
    """The rows of `scan` (some or all of the table's files) without the source's keys, plus the
    source's; by name, since older files may lack a column the table gained since."""
    if scan is None:
        return f"SELECT * FROM {_SOURCE}"
    return (
        f"SELECT * FROM {scan} AS t WHERE NOT EXISTS (SELECT 1 FROM {_SOURCE} AS s WHERE "
        f"{_matched(keys)}) UNION ALL BY NAME SELECT * FROM {_SOURCE}"
    )


def _write_files(con: Any, query: str, uri: str) -> tuple[str, list[Path]]:
    """DuckDB writes the query's rows as Parquet files into a new folder of the table's; returns
    the folder's name and its files (none, and no folder, when there are no rows)."""
    run = f"run-{uuid.uuid4().hex}"
    folder = Path(uri) / run
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _discarded_on_error(folder):
        con.execute(
            f"COPY ({query}) TO {_quoted(folder)} "
            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, FILE_SIZE_BYTES '128MB', "
            "FILENAME_PATTERN 'part-{i}')"
        )
    files = sorted(folder.glob("*.parquet"))
    if not files:
        shutil.rmtree(folder, ignore_errors=True)
    return run, files


@contextmanager
def _discarded_on_error(folder: Path) -> Iterator[None]:
    """Removes a folder of uncommitted files when the block fails (the error propagates)."""
    try:
        yield
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _scan(paths: list[str], *, filename: bool = False) -> str | None:
    if not paths:
        return None
    extra = f", filename = '{_FILE}'" if filename else ""
    return f"read_parquet([{', '.join(_quoted(path) for path in paths)}], union_by_name = true{extra})"


def _local(uri: str, path: str) -> str:
    """A data file's local path from its path in the Delta log (relative to the table and
    percent-encoded, or an absolute URI).

    >>> _local("/data/t", "run-1/part%201.parquet"), _local("/data/t", "file:///x/a.parquet")
    ('/data/t/run-1/part 1.parquet', '/x/a.parquet')
    """
    if "://" in path:
        return unquote(path.removeprefix("file://"))
    return str(Path(uri) / unquote(path))


def _logged(path: str) -> str:
    """The path a RemoveAction takes for a file listed in the log: decoded (deltalake encodes it
    again), unless it is an absolute URI.

    >>> _logged("run-1/x%20y.parquet"), _logged("file:///x/a%20b.parquet")
    ('run-1/x y.parquet', 'file:///x/a%20b.parquet')
    """
    return path if "://" in path else unquote(path)


def _matched(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"s.{_identifier(k)} = t.{_identifier(k)}" for k in keys)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quoted(path: Path | str) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _add_action(file: Path, relative: str) -> AddAction:
    """The Delta log's record of one Parquet file already in the table's folder."""
    stat = file.stat()
    rows = pq.read_metadata(file).num_rows
    return AddAction(
        path=relative,
        size=stat.st_size,
        partition_values={},
        modification_time=int(stat.st_mtime * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": rows}),
    )
