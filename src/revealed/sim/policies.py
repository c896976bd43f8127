"""Logging policies that rank candidates into slates, with the exact probabilities they used.

Each policy takes scores of shape (n, C) (one row of candidate scores per decision) and returns
the `k` candidates it showed, in display order, with:

- `cond_propensity` (n, k): P(this item in this slot | the items above it, context), exact;
- `propensity` (n, k): the marginal P(this item in this slot | context), NaN where no closed form
  exists (Plackett-Luce below the top slot);
- `original_position` (n, k): the slot before a randomised intervention moved the item, -1 where
  there was no intervention.

The product of a row's conditional propensities is the probability of the whole slate.

>>> scores = np.array([[3.0, 1.0, 2.0]])
>>> s = deterministic(scores, k=2)
>>> s.order.tolist(), s.cond_propensity.tolist()
([[0, 2]], [[1.0, 1.0]])
>>> s = top_n_shuffle(scores, k=3, n=2, rng=np.random.default_rng(0))
>>> s.cond_propensity.tolist(), s.propensity.tolist()
([[0.5, 1.0, 1.0]], [[0.5, 0.5, 1.0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Slates",
    "deterministic",
    "epsilon_greedy",
    "plackett_luce",
    "swap_adjacent",
    "top_n_shuffle",
]


@dataclass(frozen=True)
class Slates:
    """Shown candidates per decision (indices into the candidate axis) and their probabilities."""

    order: np.ndarray
    cond_propensity: np.ndarray
    propensity: np.ndarray
    original_position: np.ndarray

    @property
    def joint(self) -> np.ndarray:
        """The probability of each whole slate: the product of its conditional propensities."""
        joint: np.ndarray = np.prod(self.cond_propensity, axis=1)
        return joint


def _check(scores: np.ndarray, k: int) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores: expected a 2-d array (decisions x candidates), found {scores.ndim} dims")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k: expected 1 <= k <= {scores.shape[1]} (the candidates), found {k}")


def _ranking(scores: np.ndarray) -> np.ndarray:
    # ties broken by candidate index, so a ranker is a function of its scores
    order: np.ndarray = np.argsort(-scores, axis=1, kind="stable")
    return order


def deterministic(scores: np.ndarray, *, k: int) -> Slates:
    """The top `k` by score: every probability is 1."""
    _check(scores, k)
    order = _ranking(scores)[:, :k]
    ones = np.ones(order.shape)
    return Slates(order, ones, ones.copy(), np.full(order.shape, -1))


def epsilon_greedy(scores: np.ndarray, *, k: int, epsilon: float, rng: np.random.Generator) -> Slates:
    """With probability `epsilon` a uniformly random slate, else the top `k`.

    The slate's prefix of length m has probability (1 - eps) [prefix is the greedy one] +
    eps (C - m)! / C!, so each conditional propensity is a ratio of two such terms."""
    _check(scores, k)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon: expected a probability in [0, 1], found {epsilon}")
    n, c = scores.shape
    greedy = _ranking(scores)[:, :k]
    explore = np.asarray(rng.random(n) < epsilon)
    random_order = np.argsort(rng.random((n, c)), axis=1)[:, :k]
    order = np.where(explore[:, None], random_order, greedy)
    same = np.cumprod(order == greedy, axis=1).astype(bool)  # prefix up to slot j equals greedy
    # log (C - m)! / C! for m = 0..k
    log_uniform = -np.concatenate([[0.0], np.cumsum(np.log(c - np.arange(k)))])
    prefix = np.empty((n, k + 1))
    prefix[:, 0] = 1.0
    prefix[:, 1:] = (1 - epsilon) * same + epsilon * np.exp(log_uniform[1:])
    cond = prefix[:, 1:] / prefix[:, :-1]
    marginal = (1 - epsilon) * (order == greedy) + epsilon / c
    return Slates(order, cond, marginal, np.full(order.shape, -1))


def plackett_luce(scores: np.ndarray, *, k: int, temperature: float, rng: np.random.Generator) -> Slates:
    """Sample without replacement with probability proportional to exp(score / temperature).

    Drawn with the Gumbel-top-k trick; the conditional propensity of slot j is the item's share
    of what remained. The marginal is exact only for the top slot (the softmax)."""
    _check(scores, k)
    if not temperature > 0:
        raise ValueError(f"temperature: expected a number > 0, found {temperature}")
    logits = scores / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    order = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1)[:, :k]
    # cond_j = exp(logit of the chosen) / sum of exp over what remained, in log space so that
    # a low temperature cannot underflow the remainder to 0
    remaining = logits.copy()
    cond = np.empty(order.shape)
    rows = np.arange(len(order))
    for j in range(k):
        top = remaining.max(axis=1)
        log_total = top + np.log(np.exp(remaining - top[:, None]).sum(axis=1))
        cond[:, j] = np.exp(logits[rows, order[:, j]] - log_total)
        remaining[rows, order[:, j]] = -np.inf
    marginal = np.full(order.shape, np.nan)
    marginal[:, 0] = cond[:, 0]
    return Slates(order, cond, marginal, np.full(order.shape, -1))


def swap_adjacent(scores: np.ndarray, *, k: int, n: int, rng: np.random.Generator) -> Slates:
    """The top `k`, then one adjacent pair (j, j + 1) with j uniform in 0..n-2 swapped.

    A prefix of length m is consistent with one swap index when the swap touched it (j <= m - 1)
    and with the n - 1 - m untouched ones otherwise, so cond = count(m + 1) / count(m)."""
    _check(scores, k)
    if not 2 <= n <= k:
        raise ValueError(f"n: expected 2 <= n <= k={k} (the slots that may swap), found {n}")
    greedy = _ranking(scores)[:, :k]
    rows = len(greedy)
    swap = rng.integers(0, n - 1, size=rows)
    original = np.tile(np.arange(k), (rows, 1))
    first, second = swap, swap + 1
    r = np.arange(rows)
    original[r, first], original[r, second] = second, first
    order = np.take_along_axis(greedy, original, axis=1)
    m = np.arange(k + 1)
    count = np.where(swap[:, None] <= m[None, :] - 1, 1, (n - 1) - m[None, :]).astype(float)
    count[:, 0] = n - 1
    cond = count[:, 1:] / count[:, :-1]
    slot = np.arange(k)
    # P(the item originally at j stays) = 1 - (number of swaps touching j) / (n - 1)
    touching = (slot < n - 1).astype(float) + ((slot >= 1) & (slot <= n - 1)).astype(float)
    stay = np.where(slot < n, 1 - touching / (n - 1), 1.0)
    marginal = np.where(original == slot, stay[original], 1 / (n - 1))
    return Slates(order, cond, marginal, original)


def top_n_shuffle(scores: np.ndarray, *, k: int, n: int, rng: np.random.Generator) -> Slates:
    """The top `k` with the first `n` in a uniformly random order."""
    _check(scores, k)
    if not 2 <= n <= k:
        raise ValueError(f"n: expected 2 <= n <= k={k} (the slots shuffled), found {n}")
    greedy = _ranking(scores)[:, :k]
    rows = len(greedy)
    original = np.tile(np.arange(k), (rows, 1))
    original[:, :n] = np.argsort(rng.random((rows, n)), axis=1)
    order = np.take_along_axis(greedy, original, axis=1)
    slot = np.arange(k)
    cond = np.where(slot < n, 1.0 / np.maximum(n - slot, 1), 1.0) * np.ones((rows, 1))
    marginal = np.where(slot < n, 1.0 / n, 1.0) * np.ones((rows, 1))
    return Slates(order, cond, marginal, original)
