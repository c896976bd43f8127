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


def connect(store: Store, *, include_journal: bool = False, versions: dict[str, int] | None = None) -> Engine:
    """DuckDB (through Ibis) over the sealed tables, optionally plus the unsealed journal tail.

    `versions` pins tables to Delta versions (time travel), e.g. for point-in-time rebuilds.
    """
    backend = ibis.duckdb.connect(**_DUCKDB_CONFIG)
    raw = backend.con
    engine = Engine(backend)
    for name in TABLES:
        delta = store.table(name, (versions or {}).get(name))
        engine.versions[name] = int(delta.version())
        dataset = delta.to_pyarrow_dataset()
        if include_journal:
            raw.register(f"_{name}_sealed", dataset)
            raw.register(f"_{name}_tail", store.tail(name))
            raw.execute(
                f'CREATE VIEW "{name}" AS SELECT * FROM "_{name}_sealed" UNION ALL '
                f'SELECT * FROM "_{name}_tail"'
            )
        else:
            raw.register(name, dataset)
    return engine
