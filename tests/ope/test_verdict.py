"""Verdicts: paired differences, Holm's adjustment, and refusing when the logs cannot tell."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revealed.ope.verdict import holm, verdicts

N = 20_000


def _logged(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).binomial(1, 0.3, N).astype(float)


def _one(terms: np.ndarray, logged: np.ndarray, **kw: float) -> str:
    ess = kw.pop("ess", 10_000.0)
    unsupported = kw.pop("unsupported", 0.0)
    return verdicts({"c": terms}, logged, ess={"c": ess}, unsupported={"c": unsupported}, **kw)[0].verdict


def test_better_worse_and_no_difference() -> None:
    r = _logged()
    noise = np.random.default_rng(1).normal(0, 0.2, N)
    assert _one(r + 0.05 + noise, r) == "better"
    assert _one(r - 0.05 + noise, r) == "worse"
    assert _one(r + noise, r) == "not enough evidence"


def test_the_comparison_is_paired_so_shared_noise_cancels() -> None:
    r = _logged()
    # a candidate whose terms move with the logged rewards: unpaired intervals would overlap
    terms = 1.02 * r + 0.002
    verdict = verdicts({"c": terms}, r, ess={"c": 10_000.0}, unsupported={"c": 0.0})[0]
    unpaired_se = np.sqrt(terms.var(ddof=1) / N + r.var(ddof=1) / N)
    assert verdict.se < unpaired_se / 10
    assert verdict.verdict == "better"
    low, high = verdict.improvement_ci
    assert low < verdict.improvement < high


def test_unsupported_actions_or_a_small_effective_sample_mean_not_enough_evidence() -> None:
    r = _logged()
    v = verdicts({"c": r + 0.1}, r, ess={"c": 10_000.0}, unsupported={"c": 0.02})[0]
    assert v.verdict == "not enough evidence"
    assert "never show" in v.reason
    v = verdicts({"c": r + 0.1}, r, ess={"c": 40.0}, unsupported={"c": 0.0})[0]
    assert v.verdict == "not enough evidence"
    assert "effective sample size" in v.reason


def test_holm_by_hand_and_in_the_verdict() -> None:
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]).tolist() == [0.5]
    r = _logged()
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.5, N)
    # tuned so that alone it is better at 5% (one-sided p ~ 0.03), with a null partner it is not
    shift = 1.9 * noise.std() / np.sqrt(N)
    alone = verdicts({"a": r + noise - noise.mean() + shift}, r, ess={"a": 1e4}, unsupported={"a": 0.0})[0]
    assert alone.verdict == "better"
    assert 0.01 < alone.p_better < 0.05
    pair = verdicts(
        {"a": r + noise - noise.mean() + shift, "b": r + rng.normal(0, 0.5, N)},
        r,
        ess={"a": 1e4, "b": 1e4},
        unsupported={"a": 0.0, "b": 0.0},
    )
    assert pair[0].p_better_adjusted >= min(1.0, 2 * alone.p_better) - 1e-12 or pair[0].verdict != "better"
    assert pair[0].verdict == "not enough evidence"
    assert "includes zero" in pair[0].reason


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_adjusted_p_values_are_monotone_bounded_and_not_smaller(p: list[float]) -> None:
    adjusted = holm(p)
    assert ((adjusted >= np.asarray(p) - 1e-15) & (adjusted <= 1.0)).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adjusted[order]) >= -1e-15).all()


def test_bad_input_is_refused_with_the_field() -> None:
    r = _logged()
    with pytest.raises(ValueError, match="level"):
        verdicts({"c": r}, r, ess={"c": 1.0}, unsupported={"c": 0.0}, level=1.5)
    with pytest.raises(ValueError, match=r"candidates\['c'\]"):
        verdicts({"c": r[:10]}, r, ess={"c": 1.0}, unsupported={"c": 0.0})
