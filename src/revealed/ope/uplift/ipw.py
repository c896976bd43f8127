"""The average uplift over a holdout: the inverse-probability-weighted difference of the arms' mean
outcomes (Hajek or Horvitz-Thompson), with a standard error and a normal interval."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from revealed.ope.uplift.inputs import check

__all__ = ["UpliftEstimate", "ipw_uplift"]


@dataclass(frozen=True)
class UpliftEstimate:
    """An average uplift per unit: treated mean minus control mean, with its uncertainty."""

    estimator: str
    value: float
    se: float
    ci: tuple[float, float]
    treated_mean: float
    control_mean: float
    n_treated: int
    n_control: int
    level: float


def ipw_uplift(
    *,
    outcome: npt.ArrayLike,
    treatment: npt.ArrayLike,
    propensity: npt.ArrayLike,
    normalize: bool = True,
    level: float = 0.95,
) -> UpliftEstimate:
    """Mean outcome had every unit been treated minus had none been, weighting each unit by the
    inverse of the logged probability of its own arm.

    ``normalize=True`` (Hajek, id ``"hajek"``) divides each arm's weighted sum by its weights'
    sum, robust to probabilities known up to a factor; ``False`` (Horvitz-Thompson, ``"ht"``)
    divides by the number of units. The standard error is that of the mean of the per-unit
    (linearised, for Hajek) terms.
    """
    y = np.asarray(outcome, dtype=float)
    t = np.asarray(treatment).astype(np.int8)
    p = np.asarray(propensity, dtype=float)
    check(y, t, p)
    if not 0 < level < 1:
        raise ValueError(f"level: expected a confidence level in (0, 1), found {level}")
    n = len(y)
    wt, wc = t / p, (1 - t) / p
    if normalize:
        mu1, mu0 = (wt @ y) / wt.sum(), (wc @ y) / wc.sum()
        terms = wt * (y - mu1) / wt.mean() - wc * (y - mu0) / wc.mean()
    else:
        mu1, mu0 = (wt @ y) / n, (wc @ y) / n
        terms = (wt - wc) * y
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    value = float(mu1 - mu0)
    return UpliftEstimate(
        estimator="hajek" if normalize else "ht",
        value=value,
        se=se,
        ci=(value - z * se, value + z * se),
        treated_mean=float(mu1),
        control_mean=float(mu0),
        n_treated=int(t.sum()),
        n_control=int(n - t.sum()),
        level=level,
    )
