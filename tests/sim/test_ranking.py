"""The ranking world against its own truth: statistical self-tests that fail if the simulator is wrong."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from revealed.schema.validate import validate
from revealed.settings import Settings
from revealed.sim import simulate
from revealed.sim.clickmodels import CLICK_MODELS
from revealed.sim.frame import HOUR_US, START_US
from revealed.sim.ranking import QualityChange, RankingConfig, RankingWorld, ranking_value, simulate_ranking
from revealed.sim.world import Simulation
from revealed.store import Store
from revealed.store.files import ingest_file

CLEAN = {"bots": 0, "accidental_clicks": 0.0}


_WORLDS: dict[str, Simulation] = {}


def world(n: int = 30_000, seed: int = 5, **config: object) -> Simulation:
    """A simulation shared by the tests that ask for the same one (they only read it)."""
    key = repr((n, seed, sorted(config.items())))
    if key not in _WORLDS:
        _WORLDS[key] = simulate_ranking(n, seed, config=RankingConfig(**config))  # type: ignore[arg-type]
    return _WORLDS[key]


def slots(sim: Simulation) -> pd.DataFrame:
    """One row per shown slot: decision, item, position, logging policy, and whether it was clicked."""
    d = sim.decisions
    lengths = pc.list_value_length(d.column("items")).to_numpy()
    flat = pc.list_flatten(d.column("items")).combine_chunks()
    frame = pd.DataFrame(
        {
            "decision_id": np.repeat(d.column("decision_id").to_numpy(zero_copy_only=False), lengths),
            "query_id": np.repeat(d.column("query_id").to_numpy(zero_copy_only=False), lengths),
            "version": np.repeat(d.column("model_version").to_numpy(zero_copy_only=False), lengths),
            "policy": np.repeat(
                pc.utf8_slice_codeunits(d.column("policy"), 9, 40).to_numpy(zero_copy_only=False), lengths
            ),
            "item_id": flat.field("item_id").to_numpy(zero_copy_only=False),
            "position": flat.field("position").to_numpy(),
        }
    )
    clicks = sim.events.filter(pc.equal(sim.events.column("type"), "click")).to_pandas()
    clicked = clicks.groupby(["decision_id", "item_id"]).size().rename("clicks").reset_index()
    frame = frame.merge(clicked, on=["decision_id", "item_id"], how="left")
    frame["clicks"] = frame["clicks"].fillna(0)
    return frame


def test_records_pass_the_contract_and_ingest_with_nothing_rejected(tmp_path: Path) -> None:
    sim = world(n=1_500, seed=2)
    for kind in ("decision", "event", "item"):
        for i, record in enumerate(sim.records(kind)):  # type: ignore[arg-type]
            if i % 7 == 0:
                checked = validate(kind, record)  # type: ignore[arg-type]
                assert checked.ok, (kind, record, [str(e) for e in checked.errors])
    store = Store(Settings(data_dir=tmp_path / "data"))
    for name, path in sim.write(tmp_path / "sim").items():
        report = ingest_file(store.journal, path)
        assert report.counts == {"accepted": sim.counts[name]}, report.errors
    store.close()


def test_the_same_seed_gives_the_same_world_and_another_seed_another() -> None:
    a, b, c = simulate_ranking(800, 3), simulate_ranking(800, 3), simulate_ranking(800, 4)
    assert a.decisions.equals(b.decisions)
    assert a.events.equals(b.events)
    assert a.truth.tables["relevance"].equals(b.truth.tables["relevance"])
    assert not a.events.equals(c.events)


def test_the_world_does_not_depend_on_how_much_traffic_is_simulated() -> None:
    small, large = RankingWorld(9), RankingWorld(9)
    assert np.array_equal(small.catalogue.candidates, large.catalogue.candidates)
    a, b = simulate_ranking(300, 9), simulate_ranking(3_000, 9)
    assert a.truth.tables["relevance"].equals(b.truth.tables["relevance"])


def test_ctr_by_position_under_a_uniform_random_ranking_is_examination_times_mean_relevance() -> None:
    """With the top k shuffled uniformly (PBM), CTR_k = theta_k * E[attractiveness of the shown]."""
    sim = world(n=40_000, seed=11, policy_mix={"top_n_shuffle": 1.0}, intervention_n=10, **CLEAN)
    frame = slots(sim)
    rel = sim.truth.tables["relevance"].to_pandas()
    rel["query_id"] = np.where(
        rel["query"] < round(0.3 * 300), "feed:" + rel["query"].astype(str), "q:" + rel["query"].astype(str)
    )
    frame = frame.merge(rel[["query_id", "item_id", "attractiveness"]], on=["query_id", "item_id"])
    theta = np.array(sim.truth.params["click_model"]["theta"])
    mean_alpha = frame["attractiveness"].mean()
    ctr = frame.groupby("position")["clicks"].mean()
    n = frame.groupby("position").size()
    for k in range(10):
        expected = theta[k] * mean_alpha
        assert ctr[k] == pytest.approx(expected, abs=5 * math.sqrt(expected * (1 - expected) / n[k])), k


@pytest.mark.parametrize("model", sorted(CLICK_MODELS))
def test_ctr_by_position_matches_the_click_model_exactly_computed_in_the_truth(model: str) -> None:
    sim = world(n=15_000, seed=12, click_model=model, **CLEAN)
    frame = slots(sim)
    expected = sim.truth.tables["examination"].column("expected_ctr").to_numpy()
    ctr = frame.groupby("position")["clicks"].mean().to_numpy()
    n = len(frame) / 10
    tolerance = 5 * np.sqrt(expected * (1 - expected) / n) + 1e-3
    assert np.all(np.abs(ctr - expected) <= tolerance), (model, ctr, expected)
    assert sim.truth.params["click_model"]["name"] == model


def test_the_true_value_of_the_logging_ranker_is_its_mean_clicks_per_decision() -> None:
    """`ranking_value` is exact: decisions logged by the production ranker average to it."""
    sim = world(n=40_000, seed=13, policy_mix={"ranker": 1.0}, **CLEAN)
    frame = slots(sim)
    per_decision = frame.groupby("decision_id")["clicks"].sum()
    value = ranking_value(RankingWorld(13, RankingConfig(policy_mix={"ranker": 1.0}, **CLEAN)), "ranker")  # type: ignore[arg-type]
    se = per_decision.std() / math.sqrt(len(per_decision))
    assert per_decision.mean() == pytest.approx(value, abs=5 * se)


def test_policy_values_order_the_rankers_by_quality() -> None:
    w = RankingWorld(0)
    v = {p: ranking_value(w, p) for p in w.policies}
    assert v["optimal"] >= v["ranker"] > v["h1"] > v["h3"] > v["random"]
    assert ranking_value(w, lambda world: world.ranker_scores[0]) == v["ranker"]
    with pytest.raises(ValueError, match="policy: expected one of"):
        ranking_value(w, "nonsense")
    with pytest.raises(ValueError, match="scores of shape"):
        ranking_value(w, lambda world: np.zeros((2, 2)))


def test_historical_rankers_show_the_same_item_at_different_positions_for_the_same_query() -> None:
    frame = slots(world())
    hist = frame[frame["version"].str.startswith("h")]
    spread = hist.groupby(["query_id", "item_id"])["position"].nunique()
    assert (spread > 1).mean() > 0.3, "intervention harvesting needs position variation per (query, item)"


def test_each_policy_is_logged_with_its_name_and_interventions_with_original_positions() -> None:
    sim = world()
    policies = pc.value_counts(sim.decisions.column("policy")).to_pylist()
    names = {p["values"] for p in policies}
    assert any('"intervention":{"n":5,"type":"swap_adjacent"}' in n for n in names)
    flat = pc.list_flatten(sim.decisions.column("items")).combine_chunks()
    moved = pc.is_valid(flat.field("original_position"))
    assert 0 < pc.sum(moved).as_py() < len(flat)
    assert pc.all(pc.is_valid(flat.field("cond_propensity"))).as_py()


def _lognormal_cdf(x: np.ndarray, median: float, sigma: float) -> np.ndarray:
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1 + erf((np.log(x) - math.log(median)) / (sigma * math.sqrt(2))).astype(float))


def test_purchase_delays_follow_their_log_normal_distribution() -> None:
    sim = world()
    delays = np.sort(sim.truth.tables["purchases"].column("delay_hours").to_numpy())
    b = sim.truth.params["config"]["behaviour"]
    ks = np.max(
        np.abs(
            np.arange(1, len(delays) + 1) / len(delays)
            - _lognormal_cdf(delays, b["purchase_delay_h"], b["purchase_delay_sigma"])
        )
    )
    assert ks < 1.95 / math.sqrt(len(delays)), "Kolmogorov-Smirnov at the 0.1% level"
    events = sim.events.to_pandas()
    carts = events[events["type"] == "add_to_cart"].set_index(["decision_id", "item_id"])["timestamp"]
    purchases = events[(events["type"] == "purchase") & events["decision_id"].notna()]
    waited = purchases.set_index(["decision_id", "item_id"])["timestamp"] - carts.reindex(
        purchases.set_index(["decision_id", "item_id"]).index
    )
    assert (waited.dt.total_seconds() > 0).all(), "purchases arrive after their cart"
    assert waited.dt.total_seconds().median() / 3600 == pytest.approx(b["purchase_delay_h"], rel=0.2)


def test_returns_revoke_existing_purchases_fully_or_partly() -> None:
    events = world().events.to_pandas()
    bought = events[events["type"] == "purchase"].set_index("order_id")
    returned = events[events["type"] == "return"].set_index("order_id")
    assert len(returned) > 0
    assert returned.index.isin(bought.index).all()
    amount = bought.loc[returned.index, "value"]
    assert (returned["value"] <= amount + 1e-9).all()
    assert (returned["value"] < amount - 1e-9).any()
    assert np.isclose(returned["value"], amount).any()
    assert (returned["timestamp"] > bought.loc[returned.index, "timestamp"]).all()


def test_heartbeats_stop_being_active_when_the_user_walks_away() -> None:
    events = world().events.to_pandas()
    beats = events[events["type"] == "heartbeat"]
    active = beats["properties"] == '{"active":true}'
    assert 0.2 < active.mean() < 0.9, "some reading, some idle time"
    per_click = beats.assign(active=active).groupby(["decision_id", "item_id"])
    active_s = per_click["active"].sum() * 15.0
    dwell = events[events["type"] == "dwell"].groupby(["decision_id", "item_id"])["value"].first()
    both = pd.concat([active_s.rename("active"), dwell.rename("dwell")], axis=1).dropna()
    assert (both["active"] <= both["dwell"] + 15.0).all(), "the client's dwell counts idle time too"
    assert (both["dwell"] > both["active"] + 60).mean() > 0.05, "walk-aways inflate the naive dwell"
    # once inactive, a page never becomes active again
    ordered = beats.sort_values("timestamp").assign(active=active)
    flips = ordered.groupby(["decision_id", "item_id"])["active"].apply(
        lambda s: (s.astype(int).diff() > 0).any()
    )
    assert not flips.any()


def test_bots_and_accidental_clicks_are_in_the_truth_and_look_like_themselves() -> None:
    sim = world()
    events = sim.events.to_pandas()
    decisions = sim.decisions.select(["decision_id", "timestamp", "user_id"]).to_pandas()
    bots = set(sim.truth.tables["bots"].column("user_id").to_pylist())
    clicks = events[events["type"] == "click"].merge(decisions, on="decision_id", suffixes=("", "_served"))
    by_bot = clicks["user_id"].isin(bots)
    assert by_bot.any()
    assert (
        clicks[by_bot].groupby("decision_id").size().mean()
        > 3 * clicks[~by_bot].groupby("decision_id").size().mean()
    )
    accidents = sim.truth.tables["accidental_clicks"].to_pandas()
    assert len(accidents) > 0
    fast = (clicks["timestamp"] - clicks["timestamp_served"]).dt.total_seconds() < 0.3
    assert fast.sum() == len(accidents), "exactly the accidental clicks come within 300 ms of serving"


def test_anonymous_users_are_stitched_by_an_identify_before_their_logged_in_decisions() -> None:
    sim = world()
    events = sim.events.to_pandas()
    identify = events[events["type"] == "identify"]
    assert len(identify) > 0
    assert identify["anonymous_id"].notna().all()
    assert identify["user_id"].notna().all()
    decisions = sim.decisions.select(["user_id", "anonymous_id", "timestamp"]).to_pandas()
    anon = decisions[decisions["anonymous_id"].notna()]
    assert anon["user_id"].isna().all()
    first_logged_in = decisions.dropna(subset=["user_id"]).groupby("user_id")["timestamp"].min()
    at = identify.set_index("user_id")["timestamp"]
    assert (at < first_logged_in.reindex(at.index)).all()


def test_drift_changes_item_quality_at_its_change_point() -> None:
    hours = 30.0
    sim = world(n=20_000, seed=21, drift=(QualityChange(hours, share=0.5, shift=-2.0),), **CLEAN)
    change = START_US + int(hours * HOUR_US)
    assert sim.truth.params["change_points_us"] == [change]
    rel = sim.truth.tables["relevance"].to_pandas()
    periods = rel.pivot_table(index=["query", "item_id"], columns="valid_from_us", values="grade")
    before, after = periods.iloc[:, 0], periods.iloc[:, 1]
    assert (after <= before).all()
    assert (after < before).mean() > 0.2
    frame = slots(sim).merge(sim.decisions.select(["decision_id", "timestamp"]).to_pandas(), on="decision_id")
    late = frame["timestamp"] >= pd.Timestamp(change, unit="us", tz="UTC")
    assert frame[late]["clicks"].mean() < frame[~late]["clicks"].mean() * 0.9


def test_simulate_dispatches_by_world_name() -> None:
    assert simulate("ranking", 100, seed=1).world == "ranking"
    with pytest.raises(ValueError, match="world: expected one of"):
        simulate("nope", 10, seed=1)
    with pytest.raises(ValueError, match="n: expected at least 1"):
        simulate("ranking", 0, seed=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"k": 30}, "k: expected 1 <= k <= candidates"),
        ({"policy_mix": {"magic": 1.0}}, "policy_mix: expected non-negative shares"),
        ({"intervention_n": 1}, "intervention_n: expected 2 <= n"),
        ({"anonymous_share": 1.5}, "anonymous_share: expected a share"),
        ({"click_model": "nope"}, "nope"),
    ],
)
def test_invalid_configuration_names_the_field(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_ranking(10, 0, config=RankingConfig(**config))  # type: ignore[arg-type]


def test_truth_round_trips_through_its_files(tmp_path: Path) -> None:
    sim = world(n=500, seed=1)
    sim.write(tmp_path)
    from revealed.sim.world import Truth

    back = Truth.read(tmp_path / "truth")
    assert back.params == pa.array([sim.truth.params]).to_pylist()[0] or back.params["config"]["k"] == 10
    assert back.tables["relevance"].equals(sim.truth.tables["relevance"])
