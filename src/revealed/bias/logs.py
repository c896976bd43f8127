"""The served rows the bias estimators read: one per (decision, item), from `interactions`.

`interactions` (written by `revealed process`) is never rewritten here; it is opened read-only
as the Delta version it is at, and that version is recorded with every estimate.

Columns of `served_rows`: ``session`` (the decision id), ``query_id`` (the decision's query, or
its surface when none was logged), ``item_id``, ``position`` (0-based), ``original_position``
(non-null only for items a randomised intervention moved), ``clicked``, ``satisfied``,
``viewed``, ``surface``, ``model``, ``model_version``, ``policy`` (the policy's name),
``intervention`` (``swap_adjacent``, ``top_n_shuffle`` or null) and ``ranker`` (model, version
and policy name joined by ``/``: a ranker's identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from revealed.errors import StoreError
from revealed.pipeline.engine import Engine, connect
from revealed.store.store import Store

__all__ = ["Logs", "open_logs", "served_rows"]

# canonical JSON (sorted keys, no spaces), so a pattern finds a field on every engine
_NAME = r'"name":"([^"]*)"'
_INTERVENTION = r'"intervention":\{[^}]*"type":"([^"]*)"'


@dataclass
class Logs:
    """The engine, the `interactions` table on it, and the Delta version read."""

    engine: Engine
    interactions: ibis.Table
    version: int

    @property
    def backend(self) -> Any:
        return self.engine.backend


def open_logs(store: Store, *, engine: str = "duckdb") -> Logs:
    """`interactions` (and the store's own tables) on an engine; a clear error before any run."""
    path = Path(store.root) / "tables" / "interactions"
    try:
        table = DeltaTable(str(path))
    except TableNotFoundError as exc:
        raise StoreError(
            "interactions: no such table yet", hint="run `revealed process` first: it writes interactions"
        ) from exc
    session = connect(store, engine=engine)
    if session.kind == "duckdb":
        session.backend.con.register("interactions", table.to_pyarrow_dataset())
    else:
        frame = session.backend._session.read.parquet(*table.file_uris())
        frame.createOrReplaceTempView("interactions")
    return Logs(session, session.table("interactions"), int(table.version()))


def served_rows(interactions: ibis.Table) -> ibis.Table:
    """The served rows with the columns every bias estimator reads (see the module docstring).
    Rows of people flagged as bots are left out: they click without reading."""
    t = interactions.filter(~interactions.bot.fill_null(False))
    name = t.policy.re_extract(_NAME, 1).nullif("")
    intervention = t.policy.re_extract(_INTERVENTION, 1).nullif("")
    model, version = t.model.fill_null(""), t.model_version.fill_null("")
    return t.select(
        session=t.decision_id,
        query_id=ibis.coalesce(t.query_id, t.surface),
        item_id=t.item_id,
        position=t.position.cast("int64"),
        original_position=t.original_position.cast("int64"),
        clicked=t.clicked.fill_null(False),
        satisfied=t.satisfied_click.fill_null(False),
        viewed=t.viewed.fill_null(False),
        surface=t.surface,
        model=t.model,
        model_version=t.model_version,
        policy=name,
        intervention=intervention,
        ranker=model + "/" + version + "/" + name.fill_null(""),
    )
