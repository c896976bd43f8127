"""Logged propensities equal the samplers' true ones, checked by frequency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revealed.sim import policies

N = 120_000
SCORES = np.tile(np.array([[2.0, 1.5, 1.2, 0.4, 0.3, -0.5]]), (N, 1))

SAMPLERS: dict[str, Callable[[np.ndarray, np.random.Generator], policies.Slates]] = {
    "epsilon_greedy": lambda s, rng: policies.epsilon_greedy(s, k=3, epsilon=0.3, rng=rng),
    "plackett_luce": lambda s, rng: policies.plackett_luce(s, k=3, temperature=0.8, rng=rng),
    "swap_adjacent": lambda s, rng: policies.swap_adjacent(s, k=4, n=4, rng=rng),
    "top_n_shuffle": lambda s, rng: policies.top_n_shuffle(s, k=4, n=3, rng=rng),
    "deterministic": lambda s, rng: policies.deterministic(s, k=3),
}


def _tolerance(p: float, n: int) -> float:
    return 5 * np.sqrt(p * (1 - p) / n) + 1e-9


@pytest.mark.parametrize("name", SAMPLERS)
def test_joint_slate_probability_matches_its_frequency(name: str) -> None:
    slates = SAMPLERS[name](SCORES, np.random.default_rng(1))
    keys = [tuple(row) for row in slates.order.tolist()]
    freq = Counter(keys)
    joint = dict(zip(keys, slates.joint.tolist(), strict=True))
    assert sum(joint.values()) == pytest.approx(1.0, abs=1e-9), "the logged slates' probabilities sum to 1"
    for key, count in freq.items():
        assert count / N == pytest.approx(joint[key], abs=_tolerance(joint[key], N)), key


@pytest.mark.parametrize("name", SAMPLERS)
def test_conditional_propensity_matches_its_frequency_given_the_prefix(name: str) -> None:
    slates = SAMPLERS[name](SCORES, np.random.default_rng(2))
    order = slates.order
    for slot in range(1, order.shape[1]):
        prefixes = Counter(tuple(r) for r in order[:, :slot].tolist())
        extended = Counter(tuple(r) for r in order[:, : slot + 1].tolist())
        logged = {
            tuple(r): p
            for r, p in zip(order[:, : slot + 1].tolist(), slates.cond_propensity[:, slot], strict=False)
        }
        for key, count in extended.items():
            base = prefixes[key[:-1]]
            if base < 2_000:
                continue
            assert count / base == pytest.approx(logged[key], abs=_tolerance(logged[key], base)), (slot, key)


@pytest.mark.parametrize("name", SAMPLERS)
def test_marginal_propensity_matches_its_frequency_where_it_is_exact(name: str) -> None:
    slates = SAMPLERS[name](SCORES, np.random.default_rng(3))
    checked = 0
    for slot in range(slates.order.shape[1]):
        for item in range(SCORES.shape[1]):
            here = slates.order[:, slot] == item
            logged = slates.propensity[here, slot]
            if not here.any() or np.isnan(logged[0]):
                continue
            assert np.allclose(logged, logged[0]), "the same context gives the same marginal"
            assert here.mean() == pytest.approx(logged[0], abs=_tolerance(logged[0], N))
            checked += 1
    assert checked >= 3


def test_plackett_luce_marginal_is_known_only_for_the_top_slot() -> None:
    slates = policies.plackett_luce(SCORES[:10], k=3, temperature=1.0, rng=np.random.default_rng(0))
    assert not np.isnan(slates.propensity[:, 0]).any()
    assert np.isnan(slates.propensity[:, 1:]).all()


def test_interventions_log_where_each_item_was_before_the_move() -> None:
    rng = np.random.default_rng(4)
    greedy = policies.deterministic(SCORES[:1000], k=4).order
    for slates in (
        policies.swap_adjacent(SCORES[:1000], k=4, n=3, rng=rng),
        policies.top_n_shuffle(SCORES[:1000], k=4, n=3, rng=rng),
    ):
        moved_back = np.take_along_axis(greedy, slates.original_position, axis=1)
        assert (moved_back == slates.order).all()
        assert (slates.original_position[:, 3] == 3).all(), "slots beyond n never move"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: policies.deterministic(np.zeros(3), k=1), "scores: expected a 2-d array"),
        (lambda: policies.deterministic(np.zeros((2, 3)), k=4), "k: expected 1 <= k <= 3"),
        (
            lambda: policies.epsilon_greedy(np.zeros((2, 3)), k=2, epsilon=1.5, rng=np.random.default_rng()),
            "epsilon",
        ),
        (
            lambda: policies.plackett_luce(np.zeros((2, 3)), k=2, temperature=0, rng=np.random.default_rng()),
            "temperature",
        ),
        (
            lambda: policies.swap_adjacent(np.zeros((2, 3)), k=3, n=1, rng=np.random.default_rng()),
            "n: expected 2 <= n",
        ),
        (
            lambda: policies.top_n_shuffle(np.zeros((2, 3)), k=2, n=3, rng=np.random.default_rng()),
            "n: expected 2 <= n",
        ),
    ],
)
def test_invalid_arguments_name_the_argument(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    c=st.integers(2, 12),
    k=st.integers(1, 12),
    epsilon=st.floats(0, 1),
    temperature=st.floats(0.05, 20),
    seed=st.integers(0, 2**16),
)
def test_propensities_are_probabilities_and_rows_are_permutations(
    c: int, k: int, epsilon: float, temperature: float, seed: int
) -> None:
    k = min(k, c)
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(50, c)) * 3
    for slates in (
        policies.deterministic(scores, k=k),
        policies.epsilon_greedy(scores, k=k, epsilon=epsilon, rng=rng),
        policies.plackett_luce(scores, k=k, temperature=temperature, rng=rng),
    ):
        assert ((slates.cond_propensity > 0) & (slates.cond_propensity <= 1 + 1e-12)).all()
        marginal = slates.propensity[~np.isnan(slates.propensity)]
        assert ((marginal > 0) & (marginal <= 1 + 1e-12)).all()
        assert all(len(set(row)) == k for row in slates.order.tolist())
