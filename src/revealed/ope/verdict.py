"""Is a candidate better than the logging policy? A verdict a product team can act on.

The comparison is **paired**: on the same logged rounds, each estimator's per-round terms for
the candidate (whose mean is its estimate; the linearised influence terms for self-normalised
estimators) minus the logged rewards (whose mean is the logging policy's own value). The mean of
the differences is the estimated improvement, and its standard error comes from the same rounds,
so the noise the two estimates share cancels.

- ``better``: the one-sided lower confidence bound of the improvement is above zero (with
  several candidates, by Holm's step-down adjustment of the one-sided p-values);
- ``worse``: the one-sided upper bound is below zero (same adjustment);
- ``not enough evidence``: neither (the interval includes zero: the logs cannot tell), or more
  than `max_unsupported` of the candidate's probability mass lies on actions the logs never
  show (unlogged, or logged with zero propensity), or the effective sample size of its
  importance weights is below `min_ess`; the reason says which.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> logged = rng.binomial(1, 0.2, 20_000).astype(float)
>>> better = logged + rng.normal(0.05, 0.3, 20_000)
>>> found = verdicts({"b": better}, logged, ess={"b": 15_000.0}, unsupported={"b": 0.0})
>>> [v.verdict for v in found]
['better']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["Verdict", "holm", "verdicts"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Verdict:
    """One candidate against the logging policy, by one estimator."""

    candidate: str
    verdict: str
    reason: str
    value: float
    logged_value: float
    improvement: float
    #: the two-sided interval of the improvement at `level` (not adjusted for multiplicity)
    improvement_ci: tuple[float, float]
    se: float
    #: one-sided p-values of "no improvement" and "no harm", and the first after Holm
    p_better: float
    p_worse: float
    p_better_adjusted: float
    ess: float
    unsupported: float
    level: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def holm(p_values: npt.ArrayLike) -> FloatArray:
    """Holm's step-down adjusted p-values (same order as given).

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def verdicts(
    candidates: Mapping[str, npt.ArrayLike],
    logged: npt.ArrayLike,
    *,
    ess: Mapping[str, float],
    unsupported: Mapping[str, float],
    level: float = 0.95,
    min_ess: float = 100.0,
    max_unsupported: float = 0.01,
) -> list[Verdict]:
    """One verdict per candidate from its per-round terms and the logged rewards (same rounds).

    `ess` is each candidate's effective sample size and `unsupported` the share of its
    probability mass on actions without logged support."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a coverage in (0, 1) such as 0.95, found {level}")
    r = np.asarray(logged, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2:
        raise ValueError(f"logged: expected one reward per round (at least 2), found shape {r.shape}")
    names = list(candidates)
    rows = []
    for name in names:
        terms = np.asarray(candidates[name], dtype=np.float64)
        if terms.shape != r.shape:
            raise ValueError(
                f"candidates[{name!r}]: expected {len(r)} per-round terms, found shape {terms.shape}"
            )
        d = terms - r
        n = len(d)
        se = float(d.std(ddof=1) / math.sqrt(n))
        mean = float(d.mean())
        if se > 0:
            z = mean / se
            p_better, p_worse = float(stats.norm.sf(z)), float(stats.norm.cdf(z))
        else:
            p_better, p_worse = (0.0, 1.0) if mean > 0 else (1.0, 0.0 if mean < 0 else 1.0)
        rows.append((name, terms, mean, se, p_better, p_worse))
    adjusted_better = holm([row[4] for row in rows]) if rows else np.array([])
    adjusted_worse = holm([row[5] for row in rows]) if rows else np.array([])
    alpha = 1.0 - level
    half = float(stats.norm.ppf(0.5 + level / 2))
    out = []
    for i, (name, terms, mean, se, p_better, p_worse) in enumerate(rows):
        support, size = float(unsupported[name]), float(ess[name])
        if support > max_unsupported:
            verdict = "not enough evidence"
            reason = (
                f"{support:.1%} of the candidate's probability is on actions the logs never show "
                f"(more than {max_unsupported:.0%}): the logs say nothing about them"
            )
        elif size < min_ess:
            verdict = "not enough evidence"
            reason = (
                f"the importance weights' effective sample size is {size:,.0f} (under {min_ess:,.0f}): "
                "too few rounds where the logging policy did what the candidate would do"
            )
        elif adjusted_better[i] < alpha:
            verdict = "better"
            reason = f"the improvement's one-sided {level:.0%} lower bound is above zero (Holm-adjusted)"
        elif adjusted_worse[i] < alpha:
            verdict = "worse"
            reason = f"the improvement's one-sided {level:.0%} upper bound is below zero (Holm-adjusted)"
        else:
            verdict = "not enough evidence"
            reason = (
                f"the improvement's interval includes zero ({mean:+.4g} +/- {half * se:.2g}): the logs "
                "cannot tell it from the logging policy"
            )
        out.append(
            Verdict(
                candidate=name,
                verdict=verdict,
                reason=reason,
                value=float(terms.mean()),
                logged_value=float(r.mean()),
                improvement=mean,
                improvement_ci=(mean - half * se, mean + half * se),
                se=se,
                p_better=p_better,
                p_worse=p_worse,
                p_better_adjusted=float(adjusted_better[i]),
                ess=size,
                unsupported=support,
                level=level,
            )
        )
    return out
