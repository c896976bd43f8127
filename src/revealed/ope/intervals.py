"""Confidence intervals: analytic (CLT, delta method; O(n), the default) and the percentile bootstrap.

>>> [round(x, 4) for x in normal_interval(0.5, 0.1, 0.05)]
[0.304, 0.696]
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from revealed.ope.result import RoundTerms

__all__ = ["bootstrap_interval", "bootstrap_values", "normal_interval"]


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a level in (0, 1) such as 0.05, found {alpha}")


def normal_interval(value: float, se: float, alpha: float) -> tuple[float, float]:
    """The two-sided normal interval value -/+ z_{1 - alpha/2} se."""
    _check_alpha(alpha)
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    if math.isnan(se):
        return (math.nan, math.nan)
    return (value - z * se, value + z * se)


def bootstrap_values(terms: RoundTerms, *, n_bootstrap: int, seed: int) -> np.ndarray:
    """The estimate on `n_bootstrap` resamples of the rounds with replacement (seeded)."""
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap: expected at least 2 resamples, found {n_bootstrap}")
    rng = np.random.default_rng(seed)
    n = terms.n
    out = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        out[b] = terms.resampled(counts)
    return out


def bootstrap_interval(
    terms: RoundTerms, *, alpha: float, n_bootstrap: int = 1_000, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval at level 1 - alpha (costs n_bootstrap passes over the rounds)."""
    _check_alpha(alpha)
    values = bootstrap_values(terms, n_bootstrap=n_bootstrap, seed=seed)
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(low), float(high))
