"""A data-driven, time-aware attribution model: an additive hazard fitted by EM.

Each touch of a (person, item) pair raises the rate of that pair's conversions for a while::

    rate(t) = baseline + sum over touches j before t of  lift_c * decay_c * exp(-decay_c * (t - t_j))

with one ``lift`` (expected conversions a touch causes) and one ``decay`` (per hour) per channel
``c`` (surface/kind) and per conversion type, and a ``baseline`` rate of organic conversions per
hour at risk. This is the additive (Aalen) hazard of survival-based multi-touch attribution
(Zhang, Wei and Ren, ICDM 2014; Ji and Wang, AAAI 2017), here with exponential kernels cut at the
attribution windows. A conversion's credit for touch ``j`` is the posterior probability that
``j`` caused it, given that some touch did::

    credit_j = w_j / sum_k w_k,   w_j = lift_c(j) * decay_c(j) * exp(-decay_c(j) * (t - t_j))

Unlike rule-based models it learns from the data how strongly and for how long each channel
acts; unlike a Markov chain over paths it uses the timing of the touches.

The fit is an EM over small, engine-aggregated inputs (so it scales): the candidate (conversion,
touch) pairs with their delay in hours, the exposure of every touch (how long its window stayed
open before the run's cut-off, counted per rounded length), and the total time at risk (the
union of the windows of each pair). The E-step splits each conversion between the baseline and
its touches; the M-step has the baseline and lifts in closed form and each channel's decay by a
one-dimensional maximisation of the profile likelihood.

>>> import numpy as np
>>> fit = fit_additive_hazard(
...     HazardInputs(
...         conversion=np.array([0, 1, 1]),
...         channel=np.array(["search/click", "search/click", "email/view"]),
...         hours=np.array([1.0, 2.0, 20.0]),
...         exposure_channel=np.array(["search/click", "email/view"]),
...         exposure_hours=np.array([168.0, 24.0]),
...         exposure_touches=np.array([40, 60]),
...         at_risk_hours=2000.0,
...     )
... )
>>> sorted(fit)
['email/view', 'search/click']
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize_scalar

__all__ = ["AdditiveHazard", "ChannelEffect", "HazardInputs", "fit_additive_hazard"]

_MICROS_PER_HOUR = 3_600_000_000
#: the decay rate is searched between a half-life of a minute and one of ten years (per hour)
_LOG_DECAY_BOUNDS = (math.log(math.log(2) / 87_600.0), math.log(math.log(2) * 60.0))


@dataclass(frozen=True)
class ChannelEffect:
    """One channel's fitted effect: expected conversions per touch and decay per hour."""

    lift: float
    decay: float

    @property
    def half_life_hours(self) -> float:
        return math.log(2.0) / self.decay


@dataclass(frozen=True)
class HazardInputs:
    """The engine-aggregated inputs of one conversion type's fit.

    ``conversion``, ``channel`` and ``hours`` describe the candidate pairs: a conversion key (any
    hashable values; equal values are one conversion), the touch's channel and the delay from the
    touch to the conversion in hours (within the touch's window). Keys and channels may be
    categoricals (codes and names): at scale, millions of Python strings would not fit.
    ``exposure_*`` say, per channel and length of open window in hours, how many touches there
    were (converting or not). The at-risk time is the total length of the union of the windows
    of every (person, item) pair.
    """

    conversion: npt.NDArray[Any] | pd.Categorical
    channel: npt.NDArray[Any] | pd.Categorical
    hours: npt.NDArray[np.float64]
    exposure_channel: npt.NDArray[Any]
    exposure_hours: npt.NDArray[np.float64]
    exposure_touches: npt.NDArray[np.int64]
    at_risk_hours: float


def _profile_decay(
    s: float, d: float, hours: npt.NDArray[np.float64], touches: npt.NDArray[np.float64]
) -> float:
    """The decay maximising ``s log w - w d - s log(sum touches * (1 - exp(-w hours)))``: the
    channel's likelihood with its lift profiled out."""

    def negative(log_w: float) -> float:
        w = math.exp(log_w)
        exposure = float(np.dot(touches, -np.expm1(-w * hours)))
        return -(s * log_w - w * d - s * math.log(max(exposure, 1e-300)))

    found = minimize_scalar(negative, bounds=_LOG_DECAY_BOUNDS, method="bounded", options={"xatol": 1e-10})
    return math.exp(found.x)


def fit_additive_hazard(
    inputs: HazardInputs, *, iterations: int = 500, tolerance: float = 1e-9
) -> dict[str, ChannelEffect]:
    """Maximum-likelihood lifts and decays per channel (EM); channels without touches are absent.

    Stops when the log-likelihood gains less than `tolerance` (relative) in an iteration."""
    conv, keys = pd.factorize(inputs.conversion)
    ch_codes, ch_names = pd.factorize(inputs.channel)
    e_codes, e_names = pd.factorize(inputs.exposure_channel)
    channels = sorted({str(c) for c in ch_names} | {str(c) for c in e_names})
    if not channels:
        return {}
    index = {c: i for i, c in enumerate(channels)}
    ch = np.array([index[str(c)] for c in ch_names], dtype=np.int64)[ch_codes]
    dt = np.asarray(inputs.hours, dtype=np.float64)
    e_ch = np.array([index[str(c)] for c in e_names], dtype=np.int64)[e_codes]
    e_hours = np.asarray(inputs.exposure_hours, dtype=np.float64)
    e_touches = np.asarray(inputs.exposure_touches, dtype=np.float64)
    n, k = len(keys), len(channels)
    at_risk = max(float(inputs.at_risk_hours), 1e-9)
    touches_of = np.bincount(e_ch, weights=e_touches, minlength=k)
    mean_delay = np.bincount(ch, weights=dt, minlength=k) / np.maximum(np.bincount(ch, minlength=k), 1)
    decay = 1.0 / np.maximum(mean_delay, 0.1)
    lift = np.full(k, 0.5 * n / max(touches_of.sum(), 1.0))
    baseline = 0.5 * n / at_risk
    previous = -math.inf
    for _ in range(iterations):
        w = lift[ch] * decay[ch] * np.exp(-decay[ch] * dt)
        denominator = baseline + np.bincount(conv, weights=w, minlength=n)
        exposure = np.bincount(e_ch, weights=e_touches * -np.expm1(-decay[e_ch] * e_hours), minlength=k)
        loglik = float(np.log(denominator).sum()) - baseline * at_risk - float(np.dot(lift, exposure))
        p = w / denominator[conv]
        baseline = float((baseline / denominator).sum()) / at_risk
        s = np.bincount(ch, weights=p, minlength=k)
        d = np.bincount(ch, weights=p * dt, minlength=k)
        for c in range(k):
            mine = e_ch == c
            if s[c] <= 0 or not mine.any():
                lift[c] = 0.0
                continue
            decay[c] = _profile_decay(float(s[c]), float(d[c]), e_hours[mine], e_touches[mine])
            lift[c] = s[c] / float(np.dot(e_touches[mine], -np.expm1(-decay[c] * e_hours[mine])))
        if abs(loglik - previous) <= tolerance * max(abs(loglik), 1.0):
            break
        previous = loglik
    return {
        c: ChannelEffect(lift=float(lift[i]), decay=float(decay[i]))
        for c, i in index.items()
        if touches_of[i] > 0
    }


@dataclass(frozen=True)
class AdditiveHazard:
    """Fitted effects per conversion type and channel; a type or channel not fitted weighs 0.

    >>> model = AdditiveHazard({"purchase": {"search/click": ChannelEffect(0.06, 0.05)}})
    >>> AdditiveHazard.from_json(model.to_json()) == model
    True
    """

    effects: Mapping[str, Mapping[str, ChannelEffect]]

    def to_json(self) -> str:
        return json.dumps(
            {
                t: {c: {"lift": e.lift, "decay": e.decay} for c, e in sorted(by.items())}
                for t, by in sorted(self.effects.items())
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> AdditiveHazard:
        raw = json.loads(text or "{}")
        return cls(
            {
                t: {c: ChannelEffect(float(e["lift"]), float(e["decay"])) for c, e in by.items()}
                for t, by in raw.items()
            }
        )

    def log_weight(self, touches: ibis.Table) -> ibis.Value:
        """``log(lift * decay) - decay * hours`` of each (conversion, touch) row (columns ``type``,
        ``channel``, ``touch_ts``, ``conversion_ts``); null where the touch has no effect."""
        key = touches.type + ibis.literal("\t") + touches.channel
        fitted = {
            f"{t}\t{c}": e
            for t, by in self.effects.items()
            for c, e in by.items()
            if e.lift > 0 and e.decay > 0
        }
        if not fitted:
            return ibis.null("float64")
        log_scale = key.substitute(
            {k: math.log(e.lift) + math.log(e.decay) for k, e in fitted.items()}, else_=ibis.null()
        )
        decay = key.substitute({k: e.decay for k, e in fitted.items()}, else_=ibis.null())
        hours = (
            touches.conversion_ts.delta(touches.touch_ts, unit="microsecond").cast("float64")
            / _MICROS_PER_HOUR
        )
        return (log_scale.cast("float64") - decay.cast("float64") * hours).cast("float64")
