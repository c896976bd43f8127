"""Open the store's tables as Ibis tables on an engine (DuckDB here), offline.

DuckDB would download its `delta` extension on first use, which fails without a network:
extension auto-install is off, and Delta snapshots are read through `deltalake` as Arrow
datasets (lazy: DuckDB pushes projections and filters into the scan). On request, the journal
rows not yet sealed are unioned in, so a reader sees everything acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import pyarrow as pa
from deltalake import DeltaTable

from revealed.errors import StoreError
from revealed.schema.arrow import TABLES
from revealed.store.store import Store

__all__ = ["Engine", "connect"]

_DUCKDB_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@dataclass
class Engine:
    """A backend with the store's tables registered by name."""

    backend: Any
    versions: dict[str, int] = field(default_factory=dict)

    def table(self, name: str) -> ibis.Table:
        return self.backend.table(name)

    def sql(self, query: str) -> ibis.Table:
        return self.backend.sql(query)


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


def connect(store: Store, *, include_journal: bool = False, versions: dict[str, int] | None = None) -> Engine:
    """DuckDB (through Ibis) over the sealed tables, optionally plus the unsealed journal tail.

    `versions` pins tables to Delta versions (time travel), e.g. for point-in-time rebuilds.
    """
    backend = ibis.duckdb.connect(**_DUCKDB_CONFIG)
    raw = backend.con
    engine = Engine(backend)
    for name in TABLES:
        pinned = (versions or {}).get(name)
        for attempt in range(5):
            delta = store.table(name, pinned)
            if not include_journal:
                break
            try:
                tail = _tail_after(store, name, delta)
                break
            except StoreError:
                if pinned is not None or attempt == 4:
                    raise  # a seal raced this read: take the newer snapshot and try again
        engine.versions[name] = int(delta.version())
        dataset = delta.to_pyarrow_dataset()
        if include_journal:
            raw.register(f"_{name}_sealed", dataset)
            raw.register(f"_{name}_tail", tail)
            raw.execute(
                f'CREATE VIEW "{name}" AS SELECT * FROM "_{name}_sealed" UNION ALL '
                f'SELECT * FROM "_{name}_tail"'
            )
        else:
            raw.register(name, dataset)
    return engine
