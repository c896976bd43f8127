"""The journeys world: valid records, a fixed seed, causal purchases with a known touch, returns,
identity stitching, and files the store ingests whole."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from revealed.schema.records import Kind
from revealed.schema.validate import validate
from revealed.settings import Settings
from revealed.sim.frame import DAY_US, HOUR_US, START_US
from revealed.sim.journeys import KINDS, JourneyConfig, LiftChange, simulate_journeys
from revealed.sim.world import Simulation
from revealed.store import Store
from revealed.store.files import ingest_file

CONFIG = JourneyConfig()


@pytest.fixture(scope="module")
def small() -> Simulation:
    return simulate_journeys(1_500, seed=3)


@pytest.fixture(scope="module")
def big() -> Simulation:
    return simulate_journeys(20_000, seed=11)


#: half way through the default span, email stops working and search triples its lifts
MIDDLE_HOURS = CONFIG.span_days * 24 / 2
DRIFT = (LiftChange(MIDDLE_HOURS, "email", 0.0), LiftChange(MIDDLE_HOURS, "search", 3.0))


@pytest.fixture(scope="module")
def drifting() -> Simulation:
    return simulate_journeys(20_000, seed=13, config=JourneyConfig(drift=DRIFT))


def _frame(table: pa.Table) -> pd.DataFrame:
    """Times as integer microseconds, strings as objects."""
    columns: dict[str, Any] = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            columns[name] = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
        elif pa.types.is_nested(column.type):
            continue
        else:
            columns[name] = column.to_pylist()
    return pd.DataFrame(columns)


@pytest.mark.parametrize("kind", ["decision", "event", "item"])
def test_every_record_passes_validation(small: Simulation, kind: Kind) -> None:
    count = 0
    for record in small.records(kind):
        checked = validate(kind, record)
        assert checked.ok, (record, [str(e) for e in checked.errors])
        count += 1
    assert count == small.counts[{"decision": "decisions", "event": "events", "item": "items"}[kind]]


def test_the_files_ingest_into_a_store_with_nothing_rejected(small: Simulation, tmp_path: Path) -> None:
    paths = small.write(tmp_path / "sim")
    with Store(Settings(data_dir=tmp_path / "data")) as store:
        for name, path in paths.items():
            report = ingest_file(store.journal, path)
            assert report.counts == {"accepted": small.counts[name]}, report.errors


def test_a_seed_fixes_the_world() -> None:
    one, two, other = (simulate_journeys(400, seed=s) for s in (5, 5, 6))
    for name in ("decisions", "events", "items"):
        assert getattr(one, name).equals(getattr(two, name))
    for name, table in one.truth.tables.items():
        assert table.equals(two.truth.tables[name])
    assert one.truth.params == two.truth.params
    assert not one.events.equals(other.events)


def test_decisions_show_distinct_items_from_one_ranker_per_surface(big: Simulation) -> None:
    decisions = big.decisions.to_pandas()
    assert set(decisions["surface"]) == set(CONFIG.surfaces)
    assert (decisions["model"] == "journeys-ranker").all()
    expected = decisions["surface"].map(CONFIG.model_version)
    assert (decisions["model_version"] == expected).all()
    shown = decisions["items"].map(lambda items: len({it["item_id"] for it in items}))
    assert (shown == CONFIG.slate_size).all()
    assert decisions["timestamp"].is_monotonic_increasing


def test_each_conversion_is_one_purchase_event_without_a_decision(big: Simulation) -> None:
    conversions = _frame(big.truth.tables["conversions"])
    events = _frame(big.events).set_index("event_id")
    purchase = events.loc[conversions["event_id"]].reset_index()
    assert (purchase["type"] == "purchase").all()
    assert purchase["decision_id"].isna().all()
    for column in ("order_id", "user_id", "item_id", "timestamp"):
        assert (purchase[column].to_numpy() == conversions[column].to_numpy()).all(), column
    assert np.allclose(purchase["value"], conversions["amount"])
    assert (events["type"] == "purchase").sum() == len(conversions)
    assert conversions["order_id"].is_unique


def test_causal_touches_precede_their_purchase_within_the_generating_window(big: Simulation) -> None:
    conversions = _frame(big.truth.tables["conversions"])
    caused = conversions[conversions["causal_kind"] != "organic"]
    assert caused["causal_decision_id"].notna().all()
    assert conversions.loc[conversions["causal_kind"] == "organic", "causal_decision_id"].isna().all()
    touches = _frame(big.truth.tables["touches"])
    assert not touches.duplicated(["decision_id", "item_id", "kind"]).any()
    joined = caused.merge(
        touches,
        left_on=["causal_decision_id", "item_id", "causal_kind"],
        right_on=["decision_id", "item_id", "kind"],
        suffixes=("", "_touch"),
        validate="many_to_one",
    )
    assert len(joined) == len(caused) > 0
    assert (joined["user_id"] == joined["user_id_touch"]).all()
    assert (joined["causal_surface"] == joined["surface"]).all()
    assert (joined["causal_timestamp"] == joined["timestamp_touch"]).all()
    delay = joined["timestamp"] - joined["timestamp_touch"]
    window = joined["kind"].map({k: CONFIG.window_days[k] * DAY_US for k in KINDS})
    assert (delay > 0).all()
    assert (delay <= window).all()
    # the delay decays: most caused purchases come well inside the window
    assert (delay <= window / 2).mean() > 0.9


def test_clicks_cause_more_purchases_per_touch_than_views(big: Simulation) -> None:
    touches = _frame(big.truth.tables["touches"])
    conversions = _frame(big.truth.tables["conversions"])
    caused = conversions.groupby(["causal_surface", "causal_kind"]).size()
    per_touch = {}
    for (surface, kind), group in touches.groupby(["surface", "kind"]):
        count = int(caused.get((surface, kind), 0))
        expected = group["lift"].sum()
        assert group["lift"].eq(CONFIG.lift(surface, kind)).all()
        assert abs(count - expected) < 4.5 * math.sqrt(expected) + 1, (surface, kind, count, expected)
        per_touch[surface, kind] = count / len(group)
    for surface in CONFIG.surfaces:
        assert per_touch[surface, "click"] > per_touch[surface, "view"], surface


def test_the_organic_share_matches_its_expectation(big: Simulation) -> None:
    conversions = big.truth.tables["conversions"]
    params = big.truth.params
    organic = params["users"] * params["organic_rate"] * params["span_days"]
    caused = sum(big.truth.tables["touches"].column("lift").to_pylist())
    expected = organic / (organic + caused)
    total = conversions.num_rows
    observed = conversions.column("causal_kind").to_pylist().count("organic") / total
    assert 0.1 < expected < 0.6
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / total) + 0.005


def test_the_same_user_and_item_meet_on_several_surfaces(big: Simulation) -> None:
    views = _frame(big.truth.tables["touches"]).query("kind == 'view'")
    pairs = views.groupby(["user_id", "item_id"]).agg(
        decisions=("decision_id", "nunique"), surfaces=("surface", "nunique")
    )
    repeated = pairs[pairs["decisions"] >= 2]
    assert len(repeated) / len(pairs) > 0.75
    assert (repeated["surfaces"] >= 2).mean() > 0.8
    # and purchases are often preceded by touches on more than one surface
    caused = _frame(big.truth.tables["conversions"]).query("causal_kind != 'organic'")
    surfaces = views.groupby(["user_id", "item_id"])["surface"].nunique()
    assert (surfaces.loc[list(zip(caused["user_id"], caused["item_id"], strict=True))] >= 2).mean() > 0.8


def test_returns_revoke_an_existing_purchase_and_never_exceed_it(big: Simulation) -> None:
    events = _frame(big.events)
    purchases = events[events["type"] == "purchase"].set_index(["order_id", "item_id"])
    returns = events[events["type"] == "return"]
    assert len(returns) > 0
    assert returns["order_id"].is_unique
    bought = purchases.loc[list(zip(returns["order_id"], returns["item_id"], strict=True))]
    assert (returns["value"].to_numpy() <= bought["value"].to_numpy()).all()
    assert (returns["value"].to_numpy() > 0).all()
    assert (returns["timestamp"].to_numpy() > bought["timestamp"].to_numpy()).all()
    assert (returns["user_id"].to_numpy() == bought["user_id"].to_numpy()).all()
    partial = returns["value"].to_numpy() < bought["value"].to_numpy()
    assert 0 < partial.mean() < 1
    truth = _frame(big.truth.tables["conversions"]).set_index("order_id")["returned_amount"]
    assert np.allclose(truth.loc[returns["order_id"]], returns["value"])
    assert (truth > 0).sum() == len(returns)
    assert abs(len(returns) / len(purchases) - CONFIG.return_rate) < 0.05


def test_identify_precedes_the_identified_users_later_events(big: Simulation) -> None:
    events = _frame(big.events)
    decisions = _frame(big.decisions)
    identify = events[events["type"] == "identify"]
    assert identify["user_id"].is_unique
    assert identify["anonymous_id"].is_unique
    assert abs(len(identify) / big.truth.params["users"] - CONFIG.anonymous_share) < 0.05
    at_user = dict(zip(identify["user_id"], identify["timestamp"], strict=True))
    at_anonymous = dict(zip(identify["anonymous_id"], identify["timestamp"], strict=True))
    others = pd.concat([events[events["type"] != "identify"], decisions])
    anonymous = others[others["anonymous_id"].notna()]
    assert len(anonymous) > 0
    assert anonymous["user_id"].isna().all()
    assert (anonymous["timestamp"] < anonymous["anonymous_id"].map(at_anonymous)).all()
    known = others[others["user_id"].isin(at_user)]
    assert (known["timestamp"] >= known["user_id"].map(at_user)).all()
    assert others["user_id"].notna().sum() + len(anonymous) == len(others)
    # every purchase is logged in, and stitching recovers the true user of every touch
    assert events.loc[events["type"] == "purchase", "user_id"].notna().all()
    to_user = dict(zip(identify["anonymous_id"], identify["user_id"], strict=True))
    logged = events[events["type"].isin(["impression", "click"])].copy()
    logged["kind"] = logged["type"].map({"impression": "view", "click": "click"})
    logged["who"] = logged["user_id"].fillna(logged["anonymous_id"].map(to_user))
    touches = _frame(big.truth.tables["touches"])
    merged = logged.merge(touches, on=["decision_id", "item_id", "kind"], suffixes=("", "_truth"))
    assert len(merged) == len(touches) == len(logged)
    assert (merged["who"] == merged["user_id_truth"]).all()
    assert (merged["timestamp"] == merged["timestamp_truth"]).all()


def test_times_start_at_the_given_start() -> None:
    sim = simulate_journeys(300, seed=1, start_us=START_US + DAY_US)
    first = sim.events.column("timestamp").cast(pa.int64()).to_numpy()
    assert first.min() >= START_US + DAY_US
    assert sim.truth.params["start_us"] == START_US + DAY_US


def _caused_by_period(sim: Simulation, surface: str) -> tuple[pd.DataFrame, pd.Series]:
    """The surface's touches and the purchases each caused, split at the middle of the span."""
    change_us = START_US + int(MIDDLE_HOURS * HOUR_US)
    touches = _frame(sim.truth.tables["touches"]).query("surface == @surface").copy()
    touches["after"] = touches["timestamp"] >= change_us
    conversions = _frame(sim.truth.tables["conversions"]).query("causal_surface == @surface")
    caused = conversions.groupby(["causal_decision_id", "item_id", "causal_kind"]).size()
    key = pd.MultiIndex.from_frame(touches[["decision_id", "item_id", "kind"]])
    return touches, pd.Series(caused.reindex(key, fill_value=0).to_numpy(), index=touches.index)


def test_email_touches_after_its_lift_drops_to_zero_cause_no_purchases(drifting: Simulation) -> None:
    touches, caused = _caused_by_period(drifting, "email")
    after = touches["after"]
    assert after.sum() > 1_000
    assert (~after).sum() > 1_000
    assert (touches.loc[after, "lift"] == 0).all()
    base = touches.loc[~after, "kind"].map(lambda kind: CONFIG.lift("email", kind))
    assert np.allclose(touches.loc[~after, "lift"], base)
    assert caused[after].sum() == 0
    assert caused[~after].sum() > 10


def test_a_factor_of_three_triples_purchases_per_search_touch(drifting: Simulation) -> None:
    touches, caused = _caused_by_period(drifting, "search")
    after = touches["after"]
    base = touches["kind"].map(lambda kind: CONFIG.lift("search", kind))
    assert np.allclose(touches["lift"], np.where(after, 3 * base, base))
    for period in (after, ~after):
        count, expected = caused[period].sum(), touches.loc[period, "lift"].sum()
        assert abs(count - expected) < 4.5 * math.sqrt(expected) + 1, (count, expected)
    # per touch of each kind, so a different click mix on either side cannot fake the ratio
    for kind in KINDS:
        of_kind = touches["kind"] == kind
        ratio = caused[of_kind & after].mean() / caused[of_kind & ~after].mean()
        tolerance = 0.7 if kind == "click" else 1.5  # views cause few purchases: a wider band
        assert abs(ratio - 3) < tolerance, (kind, ratio)


def test_change_points_are_listed_in_order_in_the_truth_params() -> None:
    drift = (LiftChange(48, "search", 2.0), LiftChange(12.5, "email", 0.0), LiftChange(48, "email", 1.5))
    sim = simulate_journeys(300, seed=2, config=JourneyConfig(drift=drift), start_us=START_US + DAY_US)
    params = sim.truth.params
    start = START_US + DAY_US
    assert params["change_points_us"] == [start + int(12.5 * HOUR_US), start + 48 * HOUR_US]
    assert params["drift"][1] == {"hours": 12.5, "surface": "email", "factor": 0.0}
    assert simulate_journeys(300, seed=2).truth.params["change_points_us"] == []


def test_changes_compose_and_a_factor_of_one_changes_nothing() -> None:
    plain = simulate_journeys(1_000, seed=4)
    drift = (LiftChange(0, "home_feed", 2.0), LiftChange(0, "home_feed", 0.5), LiftChange(99, "email", 1.0))
    same = simulate_journeys(1_000, seed=4, config=JourneyConfig(drift=drift))
    assert same.events.equals(plain.events)
    for name, table in plain.truth.tables.items():
        assert same.truth.tables[name].equals(table), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": -1.0}, "hours: expected a number >= 0 (hours after the start), found -1.0"),
        ({"hours": math.nan}, "hours: expected a number >= 0 (hours after the start), found nan"),
        ({"hours": "2"}, "hours: expected a number >= 0 (hours after the start), found '2'"),
        ({"surface": ""}, "surface: expected a surface name, found ''"),
        ({"surface": None}, "surface: expected a surface name, found None"),
        (
            {"factor": -0.5},
            "factor: expected a number >= 0 (0: the surface stops causing purchases), found -0.5",
        ),
        ({"factor": math.inf}, "factor: expected a number >= 0"),
    ],
)
def test_an_invalid_lift_change_names_its_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        LiftChange(**{"hours": 24.0, "surface": "email", "factor": 0.5, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users: expected an integer >= 1, found 0"),
        ({"slate_size": 9}, "interests_per_user: expected an integer in [slate_size, items], found 8"),
        ({"organic_rate": -1.0}, "organic_rate: expected a number >= 0, found -1.0"),
        ({"return_rate": 1.5}, "return_rate: expected a number >= 0 and <= 1, found 1.5"),
        ({"return_delay_days": (3.0, 1.0)}, "return_delay_days: expected (low, high) days"),
        ({"surfaces": ("search", "search")}, "surfaces: expected at least one surface name, each once"),
        (
            {"click_lift": {"search": 0.1}},
            "click_lift: expected one value for each of search, home_feed, email",
        ),
        (
            {"click_probability": {"search": 2.0, "home_feed": 0.1, "email": 0.1}},
            "click_probability: expected",
        ),
        ({"window_days": {"view": 0.0, "click": 7.0}}, "window_days: expected numbers > 0"),
        ({"surface_share": {"search": 0, "home_feed": 0, "email": 0}}, "surface_share: expected shares"),
        ({"drift": LiftChange(1, "email", 0)}, "drift: expected a tuple of LiftChange, found LiftChange("),
        ({"drift": ({"hours": 1},)}, "drift: expected a tuple of LiftChange, found ({'hours': 1},)"),
        (
            {"drift": (LiftChange(1, "sms", 0),)},
            "drift: expected changes to the surfaces search, home_feed, email, found LiftChange(hours=1",
        ),
    ],
)
def test_an_invalid_config_names_its_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        JourneyConfig(**kwargs)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_n_must_be_a_positive_integer(n: Any) -> None:
    with pytest.raises(ValueError, match=r"^n: expected an integer >= 1"):
        simulate_journeys(n, seed=0)
