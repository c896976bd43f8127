"""The bandit world against its truth: propensities, exact policy values, the holdout, drift."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from revealed.schema.validate import validate
from revealed.settings import Settings
from revealed.sim.bandit import BanditConfig, BanditWorld, RewardChange, policy_value, simulate_bandit
from revealed.sim.frame import HOUR_US, START_US
from revealed.store import Store
from revealed.store.files import ingest_file

N = 60_000
SIM = simulate_bandit(N, seed=4)
ROUNDS = SIM.truth.tables["rounds"].to_pandas()


def _dist(column: str) -> np.ndarray:
    return np.stack(ROUNDS[column].to_numpy())


def test_records_pass_the_contract_and_ingest_with_nothing_rejected(tmp_path: Path) -> None:
    sim = simulate_bandit(500, seed=1)
    for kind in ("decision", "event"):
        for record in sim.records(kind):  # type: ignore[arg-type]
            assert validate(kind, record).ok, record  # type: ignore[arg-type]
    store = Store(Settings(data_dir=tmp_path / "data"))
    for name, path in sim.write(tmp_path / "sim").items():
        assert ingest_file(store.journal, path).counts == {"accepted": sim.counts[name]}
    store.close()


def test_logged_propensity_is_the_probability_the_action_was_drawn_with() -> None:
    dist, action = _dist("logging_dist"), ROUNDS["action"].to_numpy()
    assert np.allclose(ROUNDS["pscore"], dist[np.arange(N), action])
    logged = SIM.decisions.column("propensity").to_numpy()
    assert np.allclose(logged, ROUNDS["pscore"])
    # by frequency: how often each action was drawn equals its mean probability
    for a in range(dist.shape[1]):
        p = dist[:, a].mean()
        assert (action == a).mean() == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / N) + 1e-9)


def test_rewards_follow_the_expected_reward_function() -> None:
    q, action, reward = _dist("q"), ROUNDS["action"].to_numpy(), ROUNDS["reward"].to_numpy()
    expected = q[np.arange(N), action]
    assert np.allclose(ROUNDS["expected_reward"], expected)
    for lo, hi in ((0.0, 0.2), (0.2, 0.5), (0.5, 1.0)):
        sel = (expected >= lo) & (expected < hi)
        se = math.sqrt(expected[sel].mean() * (1 - expected[sel].mean()) / sel.sum())
        assert reward[sel].mean() == pytest.approx(expected[sel].mean(), abs=5 * se)
    clicks = SIM.events.filter(pc.equal(SIM.events.column("type"), "click"))
    assert clicks.num_rows == reward.sum()


def test_the_true_value_of_the_logging_policy_is_the_mean_reward_of_its_rounds() -> None:
    world = BanditWorld(4)
    model = ~ROUNDS["holdout"].to_numpy()
    reward = ROUNDS["reward"].to_numpy()[model]
    assert reward.mean() == pytest.approx(
        policy_value(world, "logging"), abs=5 * reward.std() / math.sqrt(len(reward))
    )


def test_policy_value_is_exact_and_inverse_propensity_weighting_on_the_logs_agrees() -> None:
    """V(optimal) from the truth function equals an IPS estimate from the logged rounds."""
    world = BanditWorld(4)
    model = ~ROUNDS["holdout"].to_numpy()
    x = np.stack(ROUNDS["context"].to_numpy())[model]
    action, reward = ROUNDS["action"].to_numpy()[model], ROUNDS["reward"].to_numpy()[model]
    pscore = ROUNDS["pscore"].to_numpy()[model]
    best = world.expected_reward(x).argmax(axis=1)
    w = (best == action) / pscore
    assert (w * reward).mean() == pytest.approx(
        policy_value(world, "optimal"), abs=5 * (w * reward).std() / math.sqrt(len(w))
    )
    assert policy_value(world, "optimal") > policy_value(world, "logging") > policy_value(world, "uniform")
    assert policy_value(world, "uniform") == policy_value(world, lambda c: np.full((len(c), 10), 0.1))


def test_the_holdout_is_assigned_by_events_and_its_uplift_is_in_the_truth() -> None:
    events = SIM.events.to_pandas()
    assignments = events[events["type"] == "assignment"]
    assert assignments["user_id"].is_unique
    holdout_users = set(assignments[assignments["properties"].str.contains('"arm":"holdout"')]["user_id"])
    decisions = SIM.decisions.select(["user_id", "model_version"]).to_pandas()
    assert (decisions["user_id"].isin(holdout_users) == (decisions["model_version"] == "holdout")).all()
    assert len(holdout_users) / len(assignments) == pytest.approx(0.2, abs=0.03)
    holdout = ROUNDS["holdout"].to_numpy()
    assert (ROUNDS["action"].to_numpy()[holdout] == 0).all(), "the holdout gets the default action"
    reward = ROUNDS["reward"].to_numpy()
    observed = reward[~holdout].mean() - reward[holdout].mean()
    se = math.sqrt(reward[~holdout].var() / (~holdout).sum() + reward[holdout].var() / holdout.sum())
    assert observed == pytest.approx(SIM.truth.params["uplift_per_round"], abs=5 * se)


def test_drift_changes_the_reward_function_at_its_change_point() -> None:
    sim = simulate_bandit(20_000, seed=6, config=BanditConfig(drift=(RewardChange(30.0, share=1.0),)))
    change = START_US + int(30 * HOUR_US)
    assert sim.truth.params["change_points_us"] == [change]
    rounds = sim.truth.tables["rounds"].to_pandas()
    assert set(rounds["period"]) == {0, 1}
    world = BanditWorld(6, BanditConfig(drift=(RewardChange(30.0, share=1.0),)))
    x = np.stack(rounds["context"].to_numpy())
    late = rounds["period"].to_numpy() == 1
    q_late = world.expected_reward(x[late], period=1)[
        np.arange(late.sum()), rounds["action"].to_numpy()[late]
    ]
    assert np.allclose(rounds["expected_reward"].to_numpy()[late], q_late)
    assert not np.allclose(world.expected_reward(x[:50], 0), world.expected_reward(x[:50], 1))


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("nonsense", "policy: expected one of"),
        (lambda c: np.ones((len(c), 3)), "probabilities of shape"),
        (lambda c: np.ones((len(c), 10)), "sum to 1"),
    ],
)
def test_policy_value_refuses_what_is_not_a_policy(policy: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        policy_value(BanditWorld(0), policy, contexts=100)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"actions": 1}, "actions: expected at least 2"),
        ({"default_action": 10}, "default_action"),
        ({"epsilon": 2.0}, "epsilon: expected a share"),
        ({"temperature": 0.0}, "temperature: expected a number > 0"),
    ],
)
def test_invalid_configuration_names_the_field(config: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BanditConfig(**config)  # type: ignore[arg-type]
