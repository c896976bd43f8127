"""The pipeline end to end on simulated worlds, against their truth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from revealed.pipeline.process import STEPS, Fitted, ProcessReport, last_run, process
from revealed.pipeline.spec import DEFAULT_SPEC
from revealed.settings import Settings
from revealed.sim.journeys import simulate_journeys
from revealed.sim.ranking import RankingConfig, simulate_ranking
from revealed.sim.world import Simulation
from revealed.store import Store
from revealed.store.files import ingest_file


def _load(store: Store, sim: Simulation, where: Path) -> None:
    for path in sim.write(where).values():
        report = ingest_file(store.journal, path)
        assert report.counts.get("rejected", 0) == 0, report.errors


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Store, Simulation, Simulation, ProcessReport]]:
    root = tmp_path_factory.mktemp("pipeline")
    store = Store(Settings(data_dir=root / "data"))
    ranking = simulate_ranking(4_000, 31, config=RankingConfig(accidental_clicks=0.02))
    journeys = simulate_journeys(4_000, 31)
    _load(store, ranking, root / "ranking")
    _load(store, journeys, root / "journeys")
    store.seal()
    report = process(store)
    yield store, ranking, journeys, report
    store.close()


def interactions(store: Store) -> pd.DataFrame:
    return DeltaTable(str(store.root / "tables" / "interactions")).to_pandas()


def test_one_row_per_served_item_with_lineage(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    store, ranking, journeys, report = world
    shown = sum(len(x) for x in ranking.decisions.column("items").to_pylist()) + sum(
        len(x) for x in journeys.decisions.column("items").to_pylist()
    )
    table = interactions(store)
    assert report.rows == len(table) == shown
    assert not table.duplicated(["decision_id", "item_id"]).any()
    meta = DeltaTable(str(store.root / "tables" / "interactions")).history(1)[0]
    assert meta["revealed.spec_hash"] == DEFAULT_SPEC.hash
    assert "decisions" in meta["revealed.inputs"]
    assert tuple(report.seconds) == STEPS, "each step is timed, in the order the progress bar shows"


def test_active_dwell_is_recovered_within_ten_percent_when_users_walk_away(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    store, ranking, _, _ = world
    truth = ranking.truth.tables["reading"].to_pandas()
    away = truth[truth["walked_away"]]
    merged = away.merge(interactions(store), on=["decision_id", "item_id"])
    assert len(merged) > 100
    assert merged["active_dwell_s"].mean() == pytest.approx(merged["active_s"].mean(), rel=0.10)
    naive = merged["client_dwell_s"].mean()
    assert naive > 1.5 * merged["active_s"].mean(), "the client's dwell counts the idle time"


def test_accidental_clicks_are_set_apart_not_counted_as_clicks(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    _store, ranking, _, report = world
    truth = ranking.truth.tables["accidental_clicks"].to_pandas()
    assert report.quality["accidental_clicks"] == len(truth)


def test_direct_purchases_are_credited_to_their_row_net_of_returns(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    store, ranking, _, _ = world
    purchases = ranking.truth.tables["purchases"].to_pandas()
    direct = purchases[purchases["decision_id_logged"]]
    per_row = (
        direct.assign(net=direct["amount"] - direct["returned_amount"])
        .groupby(["decision_id", "item_id"])["net"]
        .sum()
    )
    table = interactions(store).set_index(["decision_id", "item_id"])
    got = table.loc[per_row.index, "purchase_amount"]
    # the rest of each row's purchases came by window (last touch); direct ones are never lost
    assert (got >= per_row - 1e-6).all()
    fully_returned = direct[(direct["returned_amount"] >= direct["amount"]) & direct["decision_id_logged"]]
    keys = fully_returned.set_index(["decision_id", "item_id"]).index
    only = [k for k in keys if (per_row.loc[k] == 0)]
    assert all(table.loc[k, "purchase_amount"] >= 0 for k in only)


def test_window_attribution_finds_the_causal_touch_and_leaves_organic_purchases_alone(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    store, _, journeys, report = world
    truth = journeys.truth.tables["conversions"].to_pandas()
    credited = store_credit(store)
    caused = truth[truth["causal_kind"] != "organic"]
    found = caused.merge(credited, left_on="event_id", right_on="conversion_id")
    hit = found.groupby("event_id").apply(lambda g: (g["decision_id"] == g["causal_decision_id"]).any())
    assert hit.mean() > 0.97, "the causal touch is among the credited touches"
    organic = truth[truth["causal_kind"] == "organic"]
    assert report.organic.get("purchase", 0) > 0
    touched_organic = organic["event_id"].isin(credited["conversion_id"]).mean()
    assert touched_organic < 0.6, "most organic purchases have no touch in their window"


def store_credit(store: Store) -> pd.DataFrame:
    """Window-credited purchases per (conversion, row), from the interactions' lineage tables."""
    from revealed.pipeline import connect
    from revealed.pipeline.process import build

    engine = connect(store, include_journal=True)
    built = build(engine, DEFAULT_SPEC)
    return engine.backend.to_pyarrow(built.attribution.credited).to_pandas()


def test_credits_of_each_conversion_sum_to_one_in_every_model(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    store, *_ = world
    credited = store_credit(store)
    columns = [c for c in credited.columns if c.startswith("credit_")]
    assert len(columns) == 7
    sums = credited.groupby("conversion_id")[columns].sum()
    assert ((sums - 1.0).abs() < 1e-9).all().all()


def test_the_data_driven_model_is_closer_to_the_causal_touches_than_last_touch(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    store, _, journeys, _ = world
    truth = journeys.truth.tables["conversions"].to_pandas()
    credited = store_credit(store).merge(
        truth[["event_id", "causal_decision_id"]], left_on="conversion_id", right_on="event_id"
    )
    on_cause = credited["decision_id"] == credited["causal_decision_id"]
    share = {
        m: credited.loc[on_cause, f"credit_{m}"].sum() / credited[f"credit_{m}"].sum()
        for m in ("hazard", "markov", "last_touch", "time_decay", "linear")
    }
    # a touch's effect decays within hours here, so the last touch is right ~80% of the time;
    # the fitted hazard also knows that a click weighs far more than a later view. (The Markov
    # removal effect ignores timing and lands near linear.)
    assert share["hazard"] > share["last_touch"] + 0.02, share
    assert share["hazard"] == max(share.values()), share


def test_labels_follow_the_spec_and_immature_rows_are_marked(
    world: tuple[Store, Simulation, Simulation, ProcessReport],
) -> None:
    store, *_ = world
    table = interactions(store)
    bought = table[table["purchase_amount"] > 0]
    assert (bought["label"] == 4).all()
    clicked_only = table[
        table["clicked"]
        & ~table["satisfied_click"]
        & (table["purchase_amount"] == 0)
        & ~table["saved"]
        & ~table["shared"]
        & ~table["copied"]
    ]
    assert (clicked_only["label"] == 1).all()
    below = table[
        table["viewed"]
        & ~table["clicked"]
        & ~table["above_last_click"]
        & ~table["hidden"]
        & ~table["skipped"]
        & ~table["not_interested"]
        & (table["purchase_amount"] == 0)
        & ~table["saved"]
        & ~table["shared"]
        & ~table["copied"]
    ]
    assert below["label"].isna().all(), "viewed below the last click: unknown"
    assert table["mature"].all(), "the simulated data is months old: every window has closed"
    viewed = table[table["viewed"]]
    deepest = viewed.groupby("session")["position"].max() + 1
    assert (table.groupby("session")["session_depth"].first().reindex(deepest.index) == deepest).all()
    assert table["returned_within_days"].any()
    assert not table["returned_within_days"].all()


def test_until_cuts_on_event_time_and_on_received_time_and_fresh_rows_are_immature(tmp_path: Path) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    store = Store(Settings(data_dir=tmp_path / "data"))
    now = datetime.now(UTC)

    def decision(i: int, at: datetime) -> dict[str, object]:
        return {
            "decision_id": f"d{i}",
            "timestamp": at.isoformat(),
            "user_id": "u1",
            "items": [{"item_id": "a"}, {"item_id": "b"}],
        }

    def click(i: int, at: datetime) -> dict[str, object]:
        return {
            "event_id": f"c{i}",
            "timestamp": at.isoformat(),
            "type": "click",
            "user_id": "u1",
            "decision_id": f"d{i}",
            "item_id": "a",
        }

    store.ingest([decision(1, now - timedelta(hours=1)), click(1, now - timedelta(minutes=59))])
    store.ingest([decision(3, now + timedelta(hours=6))])  # received before the cut, happens after it
    time.sleep(0.05)
    cut = datetime.now(UTC)
    time.sleep(0.05)
    store.ingest([decision(2, now - timedelta(hours=2))])  # happened before the cut, received after it
    report = process(store, until=cut)
    table = interactions(store)
    assert set(table["decision_id"]) == {"d1"}
    assert report.rows == 2
    assert report.immature_share == 1.0, "an hour after serving, the click and view windows are open"
    assert table["elapsed_s"].between(3500, 3700).all()
    full = process(store, until=now + timedelta(hours=7))
    assert full.rows == 6
    store.close()


def test_bots_are_flagged_not_dropped(world: tuple[Store, Simulation, Simulation, ProcessReport]) -> None:
    store, ranking, _, report = world
    truth = set(ranking.truth.tables["bots"].column("user_id").to_pylist())
    table = interactions(store)
    flagged = set(table.loc[table["bot"].fillna(False), "person"])
    assert flagged == truth & set(table["person"])
    assert report.quality["bots"] == len(flagged)
    assert report.quality["bot_rows"] == int(table["bot"].fillna(False).sum()) > 0


def test_misplaced_events_and_inconsistent_propensities_are_flagged(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    store = Store(Settings(data_dir=tmp_path / "data"))
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    items = [
        {"item_id": "a", "cond_propensity": 0.5, "propensity": 0.4},
        {"item_id": "b", "cond_propensity": 1.0},
    ]
    store.ingest(
        [
            {
                "decision_id": "d1",
                "timestamp": t.isoformat(),
                "user_id": "u",
                "items": items,
                "propensity": 0.5,
            },
            {
                "decision_id": "d2",
                "timestamp": t.isoformat(),
                "user_id": "u",
                "items": [{"item_id": "a"}],
                "propensity": 0.3,
            },
        ]
    )
    click = {"type": "click", "user_id": "u", "decision_id": "d1"}
    store.ingest(
        [
            {
                **click,
                "event_id": "e1",
                "timestamp": (t + timedelta(seconds=5)).isoformat(),
                "item_id": "zzz",
            },
            {**click, "event_id": "e2", "timestamp": (t - timedelta(minutes=10)).isoformat(), "item_id": "b"},
            {**click, "event_id": "e3", "timestamp": (t + timedelta(seconds=5)).isoformat(), "item_id": "a"},
        ]
    )
    report = process(store)
    assert report.quality["unserved_clicks"] == 1
    assert report.quality["events_before_decision"] == 1
    assert report.quality["inconsistent_decisions"] == 1  # d1: top slot marginal 0.4 != conditional 0.5
    table = interactions(store).set_index(["decision_id", "item_id"])
    assert table.loc[("d1", "b"), "click_count"] == 0, "a click 10 minutes before serving is not a signal"
    assert table.loc[("d1", "a"), "click_count"] == 1
    store.close()


def test_an_incremental_run_equals_a_full_rebuild(tmp_path: Path) -> None:
    """Old rows, new decisions, late purchases and returns for old decisions, a new identify."""
    import time as clock
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    import pyarrow.compute as pc

    from revealed.sim.frame import DAY_US

    now = datetime.now(UTC)
    now_us = int(now.timestamp() * 1e6)
    sim = simulate_ranking(3_000, 41, config=RankingConfig(days=4.0), start_us=now_us - 9 * DAY_US)
    split = pa.scalar(now - timedelta(days=4), type=pa.timestamp("us", tz="UTC"))
    horizon = pa.scalar(now, type=pa.timestamp("us", tz="UTC"))

    def part(table: object, lo: object, hi: object) -> object:
        t = table  # type: ignore[assignment]
        ts = t.column("timestamp")  # type: ignore[attr-defined]
        keep = pc.and_(pc.greater(ts, lo), pc.less_equal(ts, hi)) if lo is not None else pc.less_equal(ts, hi)
        return t.filter(keep)  # type: ignore[attr-defined]

    store = Store(Settings(data_dir=tmp_path / "data"))
    first = Simulation(
        "ranking",
        41,
        part(sim.decisions, None, split),
        part(sim.events, None, split),
        sim.items,
        sim.truth,  # type: ignore[arg-type]
    )
    _load(store, first, tmp_path / "a")
    process(store)
    process(store)  # its files replace the first run's, which vacuum then deletes, in commits of
    store.compact()  # its own after the run's: the next run must still find the run's
    store.vacuum(retention_hours=0)
    last = DeltaTable(str(store.root / "tables" / "interactions")).history(1)[0]
    assert "revealed.mode" not in last, last
    clock.sleep(0.01)
    later = Simulation(
        "ranking",
        41,
        part(sim.decisions, split, horizon),
        part(sim.events, split, horizon),
        sim.items,
        sim.truth,  # type: ignore[arg-type]
    )
    _load(store, later, tmp_path / "b")
    fitted = last_fit(store)
    report = process(store, incremental=True)
    incremental = interactions(store)
    assert (
        DeltaTable(str(store.root / "tables" / "interactions")).history(1)[0]["revealed.mode"]
        == "incremental"
    )
    process(store, fitted=fitted)
    full = interactions(store)
    assert report.rows < len(full), "an incremental run rebuilds only the people it must"
    assert 0 < (~full["mature"]).sum() < len(full)
    keys = ["decision_id", "item_id"]
    columns = sorted(set(full.columns) - {"elapsed_s"})
    a = incremental[columns].sort_values(keys).reset_index(drop=True)
    b = full[columns].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    store.close()


def last_fit(store: Store) -> Fitted:
    """The data-driven models' parameters of the last run, as an incremental run reuses them."""
    fitted = Fitted.from_metadata(last_run(DeltaTable(str(store.root / "tables" / "interactions"))))
    assert fitted.markov
    assert fitted.hazard.effects
    return fitted
