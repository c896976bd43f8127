"""Open the store's tables as Ibis tables on an engine (DuckDB, or Spark in local mode), offline.

DuckDB would download its `delta` extension on first use, which fails without a network:
extension auto-install is off, and Delta snapshots are read through `deltalake` as Arrow
datasets (lazy: DuckDB pushes projections and filters into the scan). On request, the journal
rows not yet sealed are unioned in, so a reader sees everything acknowledged.

On Spark (`engine="spark"`, the `spark` extra), delta-spark cannot be fetched offline: each table
is read as the Parquet files of its Delta snapshot (`DeltaTable.file_uris()`, the tables are not
partitioned), which is the local parity path; clusters would use delta-spark.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
from deltalake import DeltaTable

from revealed.errors import MissingDependency, StoreError
from revealed.schema.arrow import SCHEMAS, TABLES
from revealed.store.store import Store

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

    def close(self) -> None:
        """Release the session and its scratch files (DuckDB); the Spark session stays up."""
        if self.kind == "duckdb":
            self.backend.disconnect()
        _remove(self.files)

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

    def sql(self, query: str) -> ibis.Table:
        return self.backend.sql(query)


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
    result = Engine(backend, files=[database, database.with_suffix(".duckdb.wal")])
    weakref.finalize(result, _remove, list(result.files))
    for name in TABLES:
        delta, tail = _snapshot(store, name, (versions or {}).get(name), include_journal)
        result.versions[name] = int(delta.version())
        dataset = delta.to_pyarrow_dataset()
        if tail is not None:
            raw.register(f"_{name}_sealed", dataset)
            raw.register(f"_{name}_tail", tail)
            raw.execute(
                f'CREATE VIEW "{name}" AS SELECT * FROM "_{name}_sealed" UNION ALL '
                f'SELECT * FROM "_{name}_tail"'
            )
        else:
            raw.register(name, dataset)
    return result


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
