"""The hand-written DuckDB SQL baseline (`benchmarks/process_sql.py`) writes `process`'s interactions.

The world: small ranking and journeys simulations, plus a few hand-made records the simulators
never produce (ratings, thumbs, negatives, a list scroll, clicks before the decision or on an
unshown item, idle heartbeats, a stitched anonymous buyer, returns, fresh immature rows,
inconsistent propensities, and later conflicting copies of known ids).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from benchmarks.process_sql import run_sql, write_sql
from deltalake import DeltaTable

from revealed.pipeline.process import Fitted, process
from revealed.schema.records import Kind
from revealed.schema.timefmt import now_us
from revealed.settings import Settings
from revealed.sim.journeys import simulate_journeys
from revealed.sim.ranking import RankingConfig, simulate_ranking
from revealed.sim.world import Simulation
from revealed.store import Store
from revealed.store.files import ingest_file
from revealed.store.ingest import ingest

KEYS = ["decision_id", "item_id"]


def _at(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _load(store: Store, sim: Simulation, where: Path) -> None:
    for path in sim.write(where).values():
        report = ingest_file(store.journal, path)
        assert report.counts.get("rejected", 0) == 0, report.errors


def _event(event_id: str, kind: str, t: datetime, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "timestamp": _at(t), **fields}


def _edge_cases(ranking: Simulation) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(decisions, events) that the simulated worlds do not produce."""
    served = next(d for d in ranking.records("decision") if d.get("user_id") and len(d["items"]) == 10)
    t = datetime.fromisoformat(served["timestamp"])
    user, shown = served["user_id"], [i["item_id"] for i in served["items"]]
    on = {"user_id": user, "decision_id": served["decision_id"]}
    events = [
        _event("x-rate-1", "rating", t + timedelta(seconds=60), item_id=shown[0], value=4.0, **on),
        _event("x-rate-2", "rating", t + timedelta(seconds=70), item_id=shown[0], value=2.0, **on),
        _event("x-up", "thumbs_up", t + timedelta(seconds=80), item_id=shown[0], **on),
        _event("x-down", "thumbs_down", t + timedelta(seconds=85), item_id=shown[1], **on),
        _event("x-hide", "hide", t + timedelta(seconds=90), item_id=shown[2], **on),
        _event("x-not", "not_interested", t + timedelta(seconds=91), item_id=shown[3], **on),
        _event("x-skip", "skip", t + timedelta(seconds=92), item_id=shown[4], **on),
        _event("x-scroll", "scroll", t + timedelta(seconds=95), value=0.55, **on),
        _event("x-unshown", "click", t + timedelta(seconds=100), item_id="x-never-shown", **on),
        _event("x-early", "click", t - timedelta(minutes=10), item_id=shown[1], **on),
        _event("x-click", "click", t + timedelta(seconds=20), item_id=shown[5], **on),
        _event("x-dwell", "dwell", t + timedelta(seconds=70), item_id=shown[5], value=45.0, **on),
        _event("x-click-6", "click", t + timedelta(seconds=30), item_id=shown[6], **on),
        _event(
            "x-idle",
            "heartbeat",
            t + timedelta(seconds=40),
            item_id=shown[6],
            value=10.0,
            properties={"active": False},
            **on,
        ),
        _event("x-lost", "click", t + timedelta(seconds=5), item_id=shown[0], decision_id="x-unknown"),
        _event(
            "x-buy",
            "purchase",
            t + timedelta(hours=1),
            user_id=user,
            item_id=shown[3],
            order_id="x-order-1",
            value=20.0,
        ),
        _event(
            "x-return",
            "return",
            t + timedelta(days=2),
            user_id=user,
            item_id=shown[3],
            order_id="x-order-1",
            value=5.0,
        ),
    ]
    # fresh rows (still immature at the run's cut-off), a stitched anonymous visitor, bad propensities
    now = datetime.now(UTC) - timedelta(hours=3)
    items: list[dict[str, Any]] = [
        {"item_id": f"x-item-{i}", "position": i, "cond_propensity": 0.5} for i in range(3)
    ]
    items[0]["propensity"] = 0.5
    decisions: list[dict[str, Any]] = [
        {
            "decision_id": "x-recent",
            "timestamp": _at(now),
            "user_id": "x-user",
            "surface": "search",
            "items": items,
            "propensity": 0.5,  # the product of the conditionals is 0.125
        },
        {
            "decision_id": "x-anon",
            "timestamp": _at(now + timedelta(minutes=1)),
            "anonymous_id": "x-visitor",
            "surface": "home_feed",
            "items": [{"item_id": "x-item-9", "position": 0, "propensity": 0.9, "cond_propensity": 0.5}],
        },
    ]
    recent = {"user_id": "x-user", "decision_id": "x-recent"}
    events += [
        _event("x-r-click", "click", now + timedelta(seconds=5), item_id="x-item-0", **recent),
        _event("x-r-slip", "click", now + timedelta(milliseconds=100), item_id="x-item-1", **recent),
        _event(
            "x-r-buy",
            "purchase",
            now + timedelta(minutes=10),
            item_id="x-item-0",
            order_id="x-order-2",
            value=30.0,
            **recent,
        ),
        _event(
            "x-r-return",
            "return",
            now + timedelta(minutes=50),
            user_id="x-user",
            item_id="x-item-0",
            order_id="x-order-2",
            value=12.5,
        ),
        _event(
            "x-a-view", "impression", now + timedelta(minutes=1), item_id="x-item-9", decision_id="x-anon"
        ),
        _event("x-a-id", "identify", now + timedelta(minutes=2), anonymous_id="x-visitor", user_id="x-user"),
        _event(
            "x-a-buy",
            "purchase",
            now + timedelta(minutes=30),
            anonymous_id="x-visitor",
            item_id="x-item-9",
            order_id="x-order-3",
            value=8.0,
        ),
    ]
    return decisions, events


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("sql-baseline")
    store = Store(Settings(data_dir=root / "data"))
    ranking = simulate_ranking(500, 31, config=RankingConfig(accidental_clicks=0.02, bot_share=0.05))
    _load(store, ranking, root / "ranking")
    _load(store, simulate_journeys(500, 31), root / "journeys")
    decisions, events = _edge_cases(ranking)
    received = now_us()
    batches: list[tuple[Kind, list[dict[str, Any]]]] = [("decision", decisions), ("event", events)]
    for kind, records in batches:
        report = ingest(store.journal, kind, records, received_us=received)
        assert report.counts == {"accepted": len(records)}, report.errors
    # later copies of known ids with other payloads (ids forgotten): the first copy must win
    store.journal.prune_ids(before_us=received + 1)
    copies: list[tuple[Kind, dict[str, Any]]] = [
        ("decision", {**decisions[0], "surface": "email"}),
        ("event", {**events[0], "value": 1.0}),
    ]
    for kind, record in copies:
        report = ingest(store.journal, kind, [record], received_us=received + 1_000_000)
        assert report.counts == {"accepted": 1}, report.errors
    store.seal()
    process(store)
    yield store
    store.close()


def _interactions(store: Store) -> tuple[pa.Table, datetime, Fitted]:
    """The table `process` wrote, its cut-off and the data-driven parameters it credited with."""
    table = DeltaTable(str(store.root / "tables" / "interactions"))
    meta = table.history(1)[0]
    return (
        table.to_pyarrow_table(),
        datetime.fromisoformat(meta["revealed.cutoff"]),
        Fitted.from_metadata(meta),
    )


def _frame(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    return table.to_pandas().sort_values(KEYS).reset_index(drop=True)[columns]


def test_the_world_exercises_every_branch(store: Store) -> None:
    expected, _, fitted = _interactions(store)
    t = expected.to_pandas().set_index(KEYS)
    assert fitted.markov, "the Markov model was fitted"
    assert fitted.hazard.effects, "the hazard model was fitted"
    assert t["elapsed_s"].notna().any(), "fresh rows"
    assert t["mature"].any(), "old rows"
    assert set(t["label"].dropna()) == {-1, 0, 1, 2, 3, 4}
    assert t["rating"].max() == 4.0, "the first copy of an event wins"
    assert t["thumbs_up"].any()
    assert t["thumbs_down"].any()
    assert t["inconsistent_propensity"].sum() >= 2
    assert t["accidental_clicks"].sum() > 0
    assert t["window_conversions"].sum() > 0
    assert t["direct_conversions"].sum() > 0
    assert (t["returned_amount"] > 0).any()
    assert t["returned_within_days"].any()
    assert t["bot"].any()
    assert t.loc[("x-anon", "x-item-9"), "window_conversions"] == 1, "the stitched visitor's purchase"
    assert t.loc[("x-recent", "x-item-0"), "surface"] == "search", "the first copy of a decision wins"


def test_the_sql_baseline_writes_the_interactions_of_process(store: Store, tmp_path: Path) -> None:
    expected, cutoff, fitted = _interactions(store)
    seconds = write_sql(store.root, tmp_path / "interactions", cutoff=cutoff, fitted=fitted)
    got = DeltaTable(str(tmp_path / "interactions")).to_pyarrow_table()
    assert seconds > 0
    assert set(got.column_names) == set(expected.column_names)
    columns = expected.column_names
    pd.testing.assert_frame_equal(
        _frame(got, columns), _frame(expected, columns), check_dtype=False, rtol=1e-9
    )


def test_the_sql_baseline_has_the_column_types_of_process(store: Store) -> None:
    expected, cutoff, fitted = _interactions(store)
    got = run_sql(store.root, cutoff=cutoff, fitted=fitted)
    types = {f.name: f.type for f in expected.schema}
    assert {f.name: f.type for f in got.schema} == types
