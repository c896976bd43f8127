"""Every bandit estimator equals its textbook definition, written round by round, on random arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revealed.ope import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    MarginalizedInverseProbabilityWeighting,
    PolicyValue,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SelfNormalizedMarginalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    evaluate,
)


def random_arrays(
    seed: int, n: int, n_actions: int, len_list: int, n_cat: int = 3, dims: int = 2
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)

    def policy() -> np.ndarray:
        p = rng.random((n, n_actions, len_list)) ** 3
        return p / p.sum(axis=1, keepdims=True)

    pi_b = policy()
    action_dist = policy()
    position = rng.integers(0, len_list, n)
    action = np.array([rng.choice(n_actions, p=pi_b[i, :, position[i]]) for i in range(n)])
    p_e_a = rng.random((n_actions, n_cat, dims)) + 0.05
    p_e_a /= p_e_a.sum(axis=1, keepdims=True)
    return {
        "reward": rng.random(n) * (rng.random(n) < 0.5),
        "action": action,
        "position": position,
        "pscore": pi_b[np.arange(n), action, position],
        "action_dist": action_dist,
        "estimated_rewards_by_reg_model": rng.random((n, n_actions, len_list)),
        "pi_b": pi_b,
        "action_embed": rng.integers(0, n_cat, (n, dims)),
        "p_e_a": p_e_a,
    }


def textbook(name: str, arrays: dict[str, Any], lambda_: float) -> float:
    """The definitions from the papers (and OBP's docs), one round at a time."""
    r, a, k, p = arrays["reward"], arrays["action"], arrays["position"], arrays["pscore"]
    pi, q = arrays["action_dist"], arrays["estimated_rewards_by_reg_model"]
    n, n_actions, _ = pi.shape
    w = [pi[i, a[i], k[i]] / p[i] for i in range(n)]
    dm = [
        sum(pi[i, b, k[i]] * q[i, b, k[i]] for b in range(n_actions))
        / sum(pi[i, b, k[i]] for b in range(n_actions))
        for i in range(n)
    ]
    res = [r[i] - q[i, a[i], k[i]] for i in range(n)]
    if name == "ipw":
        return sum(min(w[i], lambda_) * r[i] for i in range(n)) / n
    if name == "snipw":
        return sum(w[i] * r[i] for i in range(n)) / sum(w)
    if name == "dm":
        return sum(dm) / n
    if name == "dr":
        return sum(dm[i] + min(w[i], lambda_) * res[i] for i in range(n)) / n
    if name == "sndr":
        return sum(dm) / n + sum(w[i] * res[i] for i in range(n)) / sum(w)
    if name == "switch-dr":
        return sum(dm[i] + (w[i] if w[i] <= lambda_ else 0.0) * res[i] for i in range(n)) / n
    if name == "dr-os":
        return sum(dm[i] + lambda_ * w[i] / (w[i] ** 2 + lambda_) * res[i] for i in range(n)) / n
    # MIPS: w(x, e) = sum_a pi_e(a|x) p(e|a) / sum_a pi_b(a|x) p(e|a), p(e|a) = prod_d p(e_d|a)
    e, p_e_a, pi_b = arrays["action_embed"], arrays["p_e_a"], arrays["pi_b"]
    mw = []
    for i in range(n):
        p_e = [math.prod(p_e_a[b, e[i, d], d] for d in range(e.shape[1])) for b in range(n_actions)]
        mw.append(
            sum(pi[i, b, k[i]] * p_e[b] for b in range(n_actions))
            / sum(pi_b[i, b, k[i]] * p_e[b] for b in range(n_actions))
        )
    if name == "mipw":
        return sum(mw[i] * r[i] for i in range(n)) / n
    assert name == "snmipw"
    return sum(mw[i] * r[i] for i in range(n)) / sum(mw)


def build(name: str, lambda_: float) -> Any:
    with_lambda = {
        "ipw": InverseProbabilityWeighting,
        "dr": DoublyRobust,
        "switch-dr": SwitchDoublyRobust,
        "dr-os": DoublyRobustWithShrinkage,
    }
    if name in with_lambda:
        return with_lambda[name](lambda_=lambda_)
    return ESTIMATORS[name]()


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(ESTIMATORS)),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 25),
    n_actions=st.integers(1, 5),
    len_list=st.integers(1, 3),
    lambda_=st.sampled_from([np.inf, 0.5, 2.0, 7.0]),
)
def test_every_estimator_equals_its_textbook_definition(
    name: str, seed: int, n: int, n_actions: int, len_list: int, lambda_: float
) -> None:
    arrays = random_arrays(seed, n, n_actions, len_list)
    if name == "dr-os" and lambda_ == np.inf:
        lambda_ = 3.0
    estimate = build(name, lambda_).estimate(**arrays, validate="full")
    assert estimate.value == pytest.approx(textbook(name, arrays, lambda_), rel=1e-12, abs=1e-12)
    # the per-round terms average to the estimate (the paired-difference contract)
    assert float(estimate.per_round.mean()) == pytest.approx(estimate.value, rel=1e-12, abs=1e-12)


def test_class_names_and_ids_match_obp() -> None:
    ids = {
        DirectMethod: "dm",
        DoublyRobust: "dr",
        DoublyRobustWithShrinkage: "dr-os",
        InverseProbabilityWeighting: "ipw",
        MarginalizedInverseProbabilityWeighting: "mipw",
        SelfNormalizedDoublyRobust: "sndr",
        SelfNormalizedInverseProbabilityWeighting: "snipw",
        SelfNormalizedMarginalizedInverseProbabilityWeighting: "snmipw",
        SwitchDoublyRobust: "switch-dr",
    }
    assert {cls.name: cls for cls, _ in ids.items()} == ESTIMATORS
    assert all(cls.name == name for cls, name in ids.items())


def test_standard_errors_are_the_delta_method() -> None:
    arrays = random_arrays(1, 2_000, 4, 2)
    out = evaluate(sorted(ESTIMATORS), **arrays)
    w = arrays["action_dist"][np.arange(2_000), arrays["action"], arrays["position"]] / arrays["pscore"]
    r = arrays["reward"]
    ipw = w * r
    assert out["ipw"].se == pytest.approx(ipw.std(ddof=1) / math.sqrt(2_000), rel=1e-12)
    # SNIPW: delta method for a ratio of means, sum(w r) / sum(w)
    v = out["snipw"].value
    assert out["snipw"].se == pytest.approx(
        (w * (r - v)).std(ddof=1) / w.mean() / math.sqrt(2_000), rel=1e-10
    )
    assert out["snipw"].ess == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    assert out["dm"].ess == 2_000
    for name, est in out.items():
        low, high = est.ci
        assert low < est.value < high, name
        assert high - low == pytest.approx(2 * 1.959963984540054 * est.se, rel=1e-9), name
        assert est.n == 2_000
        assert est.method == "analytic"


def test_bootstrap_interval_agrees_with_the_analytic_one() -> None:
    arrays = random_arrays(2, 3_000, 3, 1)
    analytic = evaluate(["snipw", "dr"], **arrays)
    boot = evaluate(["snipw", "dr"], **arrays, ci="bootstrap", n_bootstrap=400, seed=1)
    for name in ("snipw", "dr"):
        assert boot[name].method == "bootstrap"
        assert boot[name].value == analytic[name].value
        width_a = analytic[name].ci[1] - analytic[name].ci[0]
        width_b = boot[name].ci[1] - boot[name].ci[0]
        assert width_b == pytest.approx(width_a, rel=0.2), name
    again = evaluate(["snipw"], **arrays, ci="bootstrap", n_bootstrap=400, seed=1)
    assert again["snipw"].ci == boot["snipw"].ci  # seeded


def test_obp_style_methods() -> None:
    arrays = random_arrays(3, 500, 3, 2)
    ipw = InverseProbabilityWeighting()
    value = ipw.estimate_policy_value(
        **{k: arrays[k] for k in ("reward", "action", "position", "pscore", "action_dist")}
    )
    assert value == pytest.approx(textbook("ipw", arrays, np.inf), rel=1e-12)
    interval = ipw.estimate_interval(
        **{k: arrays[k] for k in ("reward", "action", "position", "pscore", "action_dist")},
        n_bootstrap_samples=200,
        random_state=0,
    )
    assert set(interval) == {"mean", "95.0% CI (lower)", "95.0% CI (upper)"}
    assert interval["95.0% CI (lower)"] < value < interval["95.0% CI (upper)"]


def test_policy_value_is_a_frozen_record() -> None:
    out = evaluate(["ipw"], **{k: v for k, v in random_arrays(4, 50, 2, 1).items() if k != "pi_b"})["ipw"]
    assert isinstance(out, PolicyValue)
    assert out.effective_sample_size == out.ess
    with pytest.raises(AttributeError):
        out.value = 0.0  # type: ignore[misc]
