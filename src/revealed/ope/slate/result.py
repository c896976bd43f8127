"""`SlateEstimate`: what every slate estimator returns, with its per-slate terms."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from revealed.ope.slate_arrays import FloatArray

__all__ = ["SlateEstimate"]


@dataclass(frozen=True)
class SlateEstimate:
    """A slate estimator's estimate of a policy's value (expected summed slot reward per slate).

    ``rows`` holds the per-slate terms whose mean is ``value``; ``se`` is their standard error and
    ``ci`` the normal interval at level ``1 - alpha``; ``ess`` the effective sample size
    ``(sum w)^2 / sum w^2`` of each slate's mean weight over its slots."""

    estimator: str
    value: float
    se: float
    ci: tuple[float, float]
    n_slates: int
    ess: float
    rows: FloatArray = field(repr=False)

    @classmethod
    def from_rows(
        cls, rows: FloatArray, weights: FloatArray, *, estimator: str, alpha: float
    ) -> SlateEstimate:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha: expected a significance level in (0, 1), found {alpha}")
        n = len(rows)
        if n == 0:
            raise ValueError("reward: expected at least one logged slate, found none")
        value = float(rows.mean())
        se = float(rows.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        z = float(stats.norm.ppf(1 - alpha / 2))
        w = weights.mean(axis=1) if weights.ndim == 2 else weights
        ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
        return cls(estimator, value, se, (value - z * se, value + z * se), n, ess, rows)
