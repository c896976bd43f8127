"""What the store holds: rows per table, events per type, decisions per surface and model version."""

from __future__ import annotations

from typing import Any

import ibis

from revealed.pipeline.engine import connect
from revealed.schema.arrow import TABLES
from revealed.store.store import Store

__all__ = ["store_stats"]


def _counts(table: ibis.Table, *keys: str) -> dict[str, int]:
    grouped = (
        table.group_by(list(keys)).aggregate(n=table.count()).order_by([ibis.desc("n"), *keys]).to_pyarrow()
    )
    rows = grouped.to_pylist()
    return {" / ".join("-" if r[k] is None else str(r[k]) for k in keys): int(r["n"]) for r in rows}


def _time_range(table: ibis.Table, column: str) -> list[str | None]:
    row = table.aggregate(lo=table[column].min(), hi=table[column].max()).to_pyarrow().to_pylist()[0]
    return [None if row[k] is None else row[k].isoformat().replace("+00:00", "Z") for k in ("lo", "hi")]


def store_stats(store: Store) -> dict[str, Any]:
    """Everything acknowledged (sealed tables plus the journal tail), with what is still unsealed.

    Top-level keys `decisions`, `events`, `items` and `quarantine` are row counts.
    """
    engine = connect(store, include_journal=True)
    t = {name: engine.table(name) for name in TABLES}
    stats: dict[str, Any] = {name: int(t[name].count().to_pyarrow().as_py()) for name in TABLES}
    stats["events_by_type"] = _counts(t["events"], "type")
    stats["decisions_by_surface"] = _counts(t["decisions"], "surface")
    stats["decisions_by_model_version"] = _counts(t["decisions"], "model", "model_version")
    stats["quarantine_by_reason"] = _counts(t["quarantine"], "kind", "reason")
    stats["time_range"] = {
        "decisions": _time_range(t["decisions"], "timestamp"),
        "events": _time_range(t["events"], "timestamp"),
        "received": _time_range(
            t["events"].select("received_at").union(t["decisions"].select("received_at")), "received_at"
        ),
    }
    stats["journal_unsealed"] = store.unsealed()
    stats["table_versions"] = engine.versions
    return stats
