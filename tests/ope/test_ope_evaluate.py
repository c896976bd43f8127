"""`evaluate`: one pass of checks and gathers, errors that name the field, cross-fitted reward models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from revealed.errors import ValidationFailed
from revealed.ope import InverseProbabilityWeighting, bandit_data, evaluate, fit_reward_model
from revealed.ope.validate import SAMPLE_ROWS


def arrays(n: int = 200, n_actions: int = 3, len_list: int = 2, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    dist = rng.random((n, n_actions, len_list))
    dist /= dist.sum(axis=1, keepdims=True)
    return {
        "reward": rng.integers(0, 2, n).astype(float),
        "action": rng.integers(0, n_actions, n),
        "position": rng.integers(0, len_list, n),
        "pscore": np.full(n, 1.0 / n_actions),
        "action_dist": dist,
        "estimated_rewards_by_reg_model": rng.random((n, n_actions, len_list)),
    }


def _with(**changes: Any) -> dict[str, Any]:
    base = arrays()
    for key, value in changes.items():
        base[key] = value(base) if callable(value) else value
    return base


def _set(key: str, index: Any, value: float) -> Any:
    def change(base: dict[str, Any]) -> np.ndarray:
        out = np.array(base[key], copy=True)
        out[index] = value
        return out

    return change


INVALID = [
    (_with(reward=np.zeros(5)), "reward: expected an array of shape (200)"),
    (_with(reward=_set("reward", 3, np.nan)), "reward: expected finite numbers"),
    (_with(action=lambda b: b["action"].astype(float)), "action: expected integer action indices"),
    (
        _with(action=_set("action", 7, 3)),
        "action: expected action indices in [0, 3), found 1 outside (first at round 7: 3)",
    ),
    (_with(position=_set("position", 2, -1)), "position: expected position indices in [0, 2)"),
    (
        _with(pscore=_set("pscore", 4, 0.0)),
        "pscore: expected probabilities in (0, 1], found 1 outside (first at round 4",
    ),
    (_with(pscore=_set("pscore", 4, 1.5)), "pscore: expected probabilities in (0, 1]"),
    (
        _with(action_dist=lambda b: b["action_dist"][:, :, 0]),
        "action_dist: expected an array of shape (* x * x *), found shape (200, 3)",
    ),
    (
        _with(action_dist=lambda b: b["action_dist"] * 2),
        "action_dist[i, action[i], position[i]]: expected probabilities in [0, 1]",
    ),
    (
        _with(action_dist=lambda b: b["action_dist"] * 0.9),
        "action_dist: expected the probabilities over actions to sum to 1",
    ),
    (
        _with(estimated_rewards_by_reg_model=lambda b: b["estimated_rewards_by_reg_model"][:, :2]),
        "estimated_rewards_by_reg_model: expected an array of shape (200 x 3 x 2)",
    ),
    (
        _with(estimated_rewards_by_reg_model=_set("estimated_rewards_by_reg_model", (5, 0, 0), np.inf)),
        "estimated_rewards_by_reg_model",
    ),
    (
        _with(estimated_rewards_by_reg_model=None),
        "estimated_rewards_by_reg_model: estimator 'dr' needs it, found None",
    ),
    (_with(pscore=None), "pscore: estimator 'ipw' needs it, found None"),
]


@pytest.mark.parametrize(("args", "message"), INVALID)
def test_invalid_inputs_name_the_field(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        evaluate(["ipw", "dr"], **args, validate="full")
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimators": ["nope"]}, "estimators: expected ids among dm, dr"),
        ({"estimators": ["ipw", InverseProbabilityWeighting(lambda_=3)]}, "estimators: expected distinct"),
        ({"ci": "exact"}, "ci: expected 'analytic' or 'bootstrap'"),
        ({"alpha": 1.5}, "alpha: expected a level in (0, 1)"),
        ({"validate": "some"}, "validate: expected 'sample', 'full' or 'none'"),
    ],
)
def test_invalid_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        evaluate(**{"estimators": ["ipw"], **arrays(), **kwargs})


def test_lambda_is_checked() -> None:
    with pytest.raises(ValueError, match="lambda_: expected a number >= 0"):
        InverseProbabilityWeighting(lambda_=-1.0)


def test_default_validation_samples_rows_and_full_finds_the_rest() -> None:
    n = SAMPLE_ROWS * 20
    base = arrays(n=n, seed=1)
    dist = base["action_dist"]
    # a row that no round's logged action touches the bad cell of, outside the sample
    sampled = set(np.random.default_rng(0).choice(n, SAMPLE_ROWS, replace=False).tolist())
    row = next(i for i in range(n) if i not in sampled)
    other = (base["action"][row] + 1) % 3
    dist[row, other, base["position"][row]] += 0.5
    evaluate(["ipw"], **base)  # the sample misses it: not scanned
    with pytest.raises(ValidationFailed, match=f"sum to 1 .* at round {row}, position"):
        evaluate(["ipw"], **base, validate="full")


def test_gathers_are_computed_once_and_shared() -> None:
    data = bandit_data(**arrays())
    assert data.pi_e is data.pi_e
    assert data.iw is data.iw
    assert data.dm is data.dm


def test_non_contiguous_arrays_gather_the_same() -> None:
    base = arrays()
    wide = np.ascontiguousarray(np.repeat(base["action_dist"], 2, axis=1))[:, ::2]  # a strided view
    assert not wide.flags.c_contiguous
    a = evaluate(["ipw", "dm"], **base)
    b = evaluate(["ipw", "dm"], **{**base, "action_dist": wide})
    assert a["ipw"].value == b["ipw"].value
    assert a["dm"].value == pytest.approx(b["dm"].value, rel=1e-14)


def test_reward_model_is_cross_fitted_and_recovers_q() -> None:
    rng = np.random.default_rng(5)
    n, n_actions = 6_000, 3
    x = rng.standard_normal((n, 2))
    a = rng.integers(0, n_actions, n)
    q = 1 / (1 + np.exp(-(x[:, :1] * np.array([1.0, -1.0, 0.0]) + np.array([-1.0, 0.0, 0.5]))))
    r = (rng.random(n) < q[np.arange(n), a]).astype(float)
    q_hat = fit_reward_model(x, a, r, n_actions=n_actions, seed=0)
    assert q_hat.shape == (n, n_actions, 1)
    assert np.abs(q_hat[:, :, 0] - q).mean() < 0.08  # a constant predictor: about 0.2
    # cross-fitted: a round's prediction does not depend on its own reward
    r2 = r.copy()
    r2[0] = 1 - r2[0]
    fold_of = np.random.default_rng(0).permutation(n) % 3
    q_hat2 = fit_reward_model(x, a, r2, n_actions=n_actions, seed=0)
    assert np.array_equal(q_hat2[0], q_hat[0])
    assert not np.array_equal(q_hat2[fold_of != fold_of[0]], q_hat[fold_of != fold_of[0]])


def test_evaluate_fits_a_reward_model_from_context() -> None:
    rng = np.random.default_rng(6)
    n = 3_000
    x = rng.standard_normal((n, 2))
    base = arrays(n=n, len_list=1, seed=6)
    base.pop("estimated_rewards_by_reg_model")
    out = evaluate(["dm", "dr"], **base, context=x)
    assert set(out) == {"dm", "dr"}
    assert all(np.isfinite(v.value) for v in out.values())


def test_fit_reward_model_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="n_folds: expected an integer in"):
        fit_reward_model(np.zeros((4, 1)), np.zeros(4, dtype=int), np.zeros(4), n_actions=2, n_folds=1)
    with pytest.raises(ValidationFailed, match="action: expected action indices in"):
        fit_reward_model(np.zeros((4, 1)), np.full(4, 5), np.zeros(4), n_actions=2)
