"""Uplift: the incremental effect of a model or surface per unit over a stated horizon.

A randomised experiment logs one `assignment` event per unit and arm (both arms logged, so the
holdout is visible): ``properties`` name the ``experiment`` and the ``arm``, ``value`` is the
probability the unit had of entering the arm it entered. From the store's ``events``:

- `uplift_units(events, ...)`: the engine step. One row per unit: its first assignment to the
  experiment, whether that arm is the treatment, the arm's probability, and the unit's outcome
  over ``horizon_hours`` after it (count, sum of ``value``, or any, of the outcome event types).
  Backend-neutral Ibis (explicit orderings with tie-breaks, substring matches on canonical JSON,
  no UDFs); `UpliftData.from_arrow` turns the collected rows into typed arrays.
- `ipw_uplift`: the inverse-probability-weighted difference of the arms' mean outcomes, with the
  logged probabilities: Hajek (self-normalised, the default) or Horvitz-Thompson, with a
  standard error from the (linearised) per-unit terms and a normal interval.
- `TLearner`, `XLearner` (Kuenzel et al. 2019): per-unit conditional effects (CATE) with
  scikit-learn regressors, cross-fitted so each unit's prediction comes from models that never
  saw it.
- `uplift_curve`: Qini and uplift curves (Radcliffe 2007; Gutierrez & Gerardy 2017) of a ranking
  of units by a score, with the Qini coefficient and the area under the uplift curve.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> treated = rng.random(20_000) < 0.5
>>> outcome = rng.binomial(1, np.where(treated, 0.3, 0.2)).astype(float)
>>> est = ipw_uplift(outcome=outcome, treatment=treated, propensity=np.full(20_000, 0.5))
>>> round(est.value, 1), bool(est.ci[0] < 0.1 < est.ci[1])
(0.1, True)
"""

from revealed.ope.uplift.curve import UpliftCurve, plot_uplift_curves, uplift_curve
from revealed.ope.uplift.ipw import UpliftEstimate, ipw_uplift
from revealed.ope.uplift.learners import CateEstimate, TLearner, XLearner, cross_fitted_cate
from revealed.ope.uplift.units import UpliftData, uplift_units

__all__ = [
    "CateEstimate",
    "TLearner",
    "UpliftCurve",
    "UpliftData",
    "UpliftEstimate",
    "XLearner",
    "cross_fitted_cate",
    "ipw_uplift",
    "plot_uplift_curves",
    "uplift_curve",
    "uplift_units",
]
