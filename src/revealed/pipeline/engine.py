"""Open the store's tables as Ibis tables on an engine (DuckDB, or Spark in local mode), offline.

DuckDB would download its `delta` extension on first use, which fails without a network:
extension auto-install is off. `deltalake` resolves each snapshot to its Parquet files
(`DeltaTable.file_uris()`: the tables are not partitioned, and delta-rs writes no deletion
vectors) and DuckDB's own Parquet reader scans them. Not an Arrow dataset: pyarrow's scanner
reads ahead outside DuckDB's memory budget (at 10M events the first scan alone peaked near 4 GB),
while DuckDB's reader streams under it and pushes projections and filters into the files. An
empty Arrow table of the declared schema heads each view, so a table with no files, or files
from before a column was added, still has every column with its declared type. On request, the
journal rows not yet sealed are unioned in, so a reader sees everything acknowledged.

On Spark (`engine="spark"`, the `spark` extra), delta-spark cannot be fetched offline: each table
is read as the Parquet files of its Delta snapshot (`DeltaTable.file_uris()`, the tables are not
partitioned), which is the local parity path; clusters would use delta-spark.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import ibis
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.transaction import CommitProperties

from revealed.errors import MissingDependency, StoreError
from revealed.pipeline.delta_files import copy_to_delta, merge_into_delta, parquet_scan
from revealed.schema.arrow import SCHEMAS, TABLES
from revealed.store.store import Store
from revealed.store.tables import WRITER_PROPERTIES

__all__ = ["Engine", "connect", "spark_session"]

_DUCKDB_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


@dataclass
class Engine:
    """A backend with the store's tables registered by name."""

    backend: Any
    versions: dict[str, int] = field(default_factory=dict)
    kind: str = "duckdb"
    #: the engine's scratch files, removed by `close` (or when the engine is collected)
    files: list[Path] = field(default_factory=list)
    #: DuckDB's memory budget, as `Settings.engine_memory` gives it
    memory: str | None = None

    def close(self) -> None:
        """Release the session and its scratch files (DuckDB); the Spark session stays up."""
        if self.kind == "duckdb":
            self.backend.disconnect()
        _remove(self.files)

    @contextmanager
    def handoff(self) -> Iterator[None]:
        """Lend most of the memory budget to Python or Rust for a while (a fit's inputs, the Delta
        writer): DuckDB's pool keeps cached blocks up to its limit, so without this their memory
        comes on top of a full pool. DuckDB keeps a quarter (it evicts, and spills if it must)."""
        if self.kind != "duckdb" or self.memory is None:
            yield
            return
        con = self.backend.con
        con.execute(f"SET memory_limit = '{max(_bytes(self.memory) // 4, 64 * 2**20)}B'")
        try:
            yield
        finally:
            con.execute(f"SET memory_limit = '{self.memory}'")

    def table(self, name: str) -> ibis.Table:
        return self.backend.table(name)

    def materialize(self, name: str, expr: ibis.Table) -> ibis.Table:
        """Compute `expr` once into a temporary table of this session (Spark: a cached view)."""
        if self.kind == "spark":
            # a local checkpoint computes the step now and cuts its lineage, so later steps do not
            # carry (and re-plan) every earlier one
            self.backend.create_view(f"{name}_plan", expr, overwrite=True)
            session = self.backend._session
            session.table(f"{name}_plan").localCheckpoint(eager=True).createOrReplaceTempView(name)
            return self.backend.table(name)
        table = self.backend.create_table(name, expr, overwrite=True)
        # written to the database file now, its blocks can be evicted under the memory budget
        self.backend.con.execute("CHECKPOINT")
        return table

    def batches(self, expr: ibis.Table, rows: int = 200_000) -> pa.RecordBatchReader:
        """Stream `expr`'s result as Arrow record batches, never the whole table at once."""
        if self.kind == "duckdb":
            query = str(ibis.to_sql(expr, dialect="duckdb"))
            return self.backend.con.sql(query).to_arrow_reader(rows)
        return self.backend.to_pyarrow_batches(expr, chunk_size=rows)

    def overwrite_delta(self, expr: ibis.Table, uri: str, metadata: dict[str, str]) -> None:
        """Replace the Delta table at `uri` (created if absent) with `expr`'s rows.

        On DuckDB, DuckDB writes the Parquet files and deltalake commits them (`copy_to_delta`);
        elsewhere, the streamed batches go to deltalake's writer."""
        commit = CommitProperties(custom_metadata=metadata)
        if self.kind == "duckdb":
            query = str(ibis.to_sql(expr, dialect="duckdb"))
            if copy_to_delta(self.backend.con, query, uri, commit):
                return  # else no rows, no file: deltalake's writer records the schema
        write_deltalake(
            uri,
            self.batches(expr),
            mode="overwrite",
            schema_mode="overwrite",
            writer_properties=WRITER_PROPERTIES,
            commit_properties=commit,
        )

    def merge_delta(
        self, expr: ibis.Table, uri: str, keys: tuple[str, ...], metadata: dict[str, str]
    ) -> None:
        """MERGE `expr`'s rows into the Delta table at `uri` by `keys`: matched rows are replaced,
        the others inserted, the rest of the table kept.

        On DuckDB, one commit replaces only the files holding a matched key (`merge_into_delta`);
        elsewhere, deltalake's MERGE. With no new rows, only the commit (and its metadata) is
        recorded."""
        commit = CommitProperties(custom_metadata=metadata)
        if self.kind != "duckdb":
            (
                DeltaTable(uri)
                .merge(
                    self.batches(expr),
                    " AND ".join(f"t.{k} = s.{k}" for k in keys),
                    source_alias="s",
                    target_alias="t",
                    writer_properties=WRITER_PROPERTIES,
                    commit_properties=commit,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return
        merge_into_delta(self.backend.con, str(ibis.to_sql(expr, dialect="duckdb")), uri, keys, commit)

    def sql(self, query: str) -> ibis.Table:
        return self.backend.sql(query)


_UNITS: Final = {
    **{"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12},
    **{"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40},
}


def _bytes(size: str) -> int:
    """A memory size as DuckDB reads it, in bytes.

    >>> _bytes("2GB"), _bytes("512 MiB"), _bytes("100000")
    (2000000000, 536870912, 100000)
    """
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", size)
    if match is None or match[2].upper() not in _UNITS:
        raise ValueError(f"engine_memory: expected a size such as 2GB or 512MiB, found {size!r}")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _tail_after(store: Store, name: str, delta: DeltaTable) -> pa.Table:
    """The journal rows after this snapshot's own watermark. A seal landing meanwhile may trim
    some of them; then the snapshot is stale and the caller must see them, so fail loudly."""
    after = delta.transaction_version(store.journal.app_id) or 0
    tail = store.tail(name, after)
    oldest = store.journal.first_seq(name)
    trimmed_past = store.journal.last_seq(name) > after if oldest is None else oldest > after + 1
    if trimmed_past:
        raise StoreError(
            f"{name}: the journal was trimmed past version {delta.version()}'s watermark while reading",
            hint="read the latest version (the rows are sealed in it), or retry",
        )
    return tail


def _snapshot(
    store: Store, name: str, pinned: int | None, include_journal: bool
) -> tuple[DeltaTable, pa.Table | None]:
    for attempt in range(5):
        delta = store.table(name, pinned)
        if not include_journal:
            return delta, None
        try:
            return delta, _tail_after(store, name, delta)
        except StoreError:
            if pinned is not None or attempt == 4:
                raise  # a seal raced this read: take the newer snapshot and try again
    raise AssertionError("unreachable")


def connect(
    store: Store,
    *,
    include_journal: bool = False,
    versions: dict[str, int] | None = None,
    engine: str = "duckdb",
) -> Engine:
    """The store's tables on DuckDB (through Ibis), or on a local Spark session (`engine="spark"`),
    optionally plus the unsealed journal tail.

    `versions` pins tables to Delta versions (time travel), e.g. for point-in-time rebuilds.
    """
    if engine == "spark":
        return _connect_spark(store, include_journal=include_journal, versions=versions)
    if engine != "duckdb":
        raise ValueError(f"engine: expected duckdb or spark, found {engine!r}")
    # a database file of its own, not an in-memory one: the materialised steps are then ordinary
    # tables whose blocks DuckDB can evict when the memory budget is reached (in-memory and
    # temporary tables must stay pinned, and a run larger than the budget fails)
    spill = Path(store.root) / "tmp" / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    database = spill / f"engine-{os.getpid()}-{uuid.uuid4().hex}.duckdb"
    backend = ibis.duckdb.connect(
        database,
        **_DUCKDB_CONFIG,
        memory_limit=store.settings.engine_memory,
        temp_directory=str(spill),
        preserve_insertion_order=False,
    )
    raw = backend.con
    raw.execute("SET enable_progress_bar = false")  # it would interleave with the CLI's on stderr
    result = Engine(
        backend,
        files=[database, database.with_suffix(".duckdb.wal")],
        memory=store.settings.engine_memory,
    )
    weakref.finalize(result, _remove, list(result.files))
    for name in TABLES:
        delta, tail = _snapshot(store, name, (versions or {}).get(name), include_journal)
        result.versions[name] = int(delta.version())
        _register_snapshot(raw, name, delta, tail)
    return result


def _register_snapshot(raw: Any, name: str, delta: DeltaTable, tail: pa.Table | None) -> None:
    """`name` as a DuckDB view: the declared schema, the snapshot's Parquet files, the tail."""
    raw.register(f"_{name}_schema", SCHEMAS[name].empty_table())
    parts = [f'SELECT * FROM "_{name}_schema"']
    if scan := parquet_scan(delta):
        parts.append(f"SELECT * FROM {scan}")
    if tail is not None:
        raw.register(f"_{name}_tail", tail)
        parts.append(f'SELECT * FROM "_{name}_tail"')
    raw.execute(f'CREATE VIEW "{name}" AS ' + " UNION ALL BY NAME ".join(parts))


def spark_session(warehouse: Path | None = None) -> Any:
    """A local Spark session set up for revealed: UTC, loopback, a fresh warehouse, 2 cores."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise MissingDependency(
            "the Spark engine needs PySpark", hint="pip install 'revealed[spark]' (and a JDK 17 or 21)"
        ) from exc
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    where = warehouse or Path(tempfile.mkdtemp(prefix="revealed-spark-"))
    return (
        SparkSession.builder.master("local[2]")
        .appName("revealed")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(where / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={where}")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


def _connect_spark(store: Store, *, include_journal: bool, versions: dict[str, int] | None) -> Engine:
    session = spark_session()
    backend = ibis.pyspark.connect(session)
    result = Engine(backend, kind="spark")
    for name in TABLES:
        delta, tail = _snapshot(store, name, (versions or {}).get(name), include_journal)
        result.versions[name] = int(delta.version())
        files = delta.file_uris()
        frame = session.read.schema(_spark_schema(name)).parquet(*files) if files else None
        if tail is not None and tail.num_rows:
            extra = session.createDataFrame(tail)
            frame = extra if frame is None else frame.unionByName(extra)
        if frame is None:
            frame = session.createDataFrame(SCHEMAS[name].empty_table())
        frame.createOrReplaceTempView(name)
    return result


def _spark_schema(name: str) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(SCHEMAS[name])
