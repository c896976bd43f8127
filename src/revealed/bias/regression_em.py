"""Examination by regression EM: examination times relevance, relevance a regression on features.

Following Wang, Golbandi, Bendersky, Metzler & Najork, *Position Bias Estimation for Unbiased
Learning to Rank in Personal Search* (WSDM 2018): a click is examination times relevance,
``P(click) = theta_k * gamma(x)``, and relevance is not a free parameter per (query, item) but a
function of the row's features ``x``; here a logistic regression ``gamma(x) = sigmoid(b0 + x'b)``
on the columns named in ``features`` (add indicator or interaction columns for a richer model).
Because relevance is shared by every row with the same features, position varying given the
features identifies examination, even without interventions, when relevance really is a function
of the features.

The fit is EM on engine-aggregated cells (query, position, feature values) -> impressions,
clicks. The E-step splits each unclicked impression into "examined, not relevant" and "not
examined" (``P(E=1 | C=0) = theta (1 - gamma) / (1 - theta gamma)``); the M-step sets ``theta_k``
to the expected examined share at ``k`` (``theta_0 = 1``, so the result is relative to the top)
and refits the logistic regression to the expected relevant counts (Newton steps: regression EM
with a generalised M-step). From where EM stops, Fisher scoring on the same likelihood finishes
the climb in a few steps, where EM alone would take hundreds; it changes the speed, not the
maximum. Intervals: `revealed.bias.examination`, with the Fisher information as the bread.

Examination is not identified when position is (nearly) a function of the features, since the
position effect then cannot be told apart from relevance: the share of the variance of position
that the features explain linearly (``R^2``, weighted by impressions) is reported, and above
``max_r2`` `ExaminationNotIdentified` is warned. A low ``R^2`` is necessary, not sufficient:
relevance that the features miss and the ranker saw still biases the estimate.

>>> import ibis
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n = 20_000  # sessions of two slots; one binary feature decides relevance (0.2 or 0.7)
>>> good = rng.random((n, 2)) < 0.5
>>> clicked = rng.random((n, 2)) < np.array([1.0, 0.5]) * np.where(good, 0.7, 0.2)
>>> session = np.repeat(np.arange(n), 2)
>>> rows = ibis.memtable({
...     "session": session.astype(str), "query_id": (session % 40).astype(str),
...     "position": np.tile([0, 1], n), "clicked": clicked.ravel(), "good": good.ravel().astype(float)})
>>> found = RegressionEM(features=("good",)).estimate(rows)
>>> round(found.examination[1], 2), found.ci_low[1] < 0.5 < found.ci_high[1], round(found.position_r2, 3)
(0.49, True, 0.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import ibis
import numpy as np
from scipy.special import expit

from revealed.bias.examination import (
    BASE_COLUMNS,
    ExaminationEstimate,
    ExaminationEstimator,
    ExaminationNotIdentified,
    FloatArray,
    IntArray,
    Kind,
    PositionFit,
    check_columns,
    cluster_covariance,
    codes,
    maximize,
    numbers,
    overview,
    per_cluster,
)

__all__ = ["RegressionEM", "feature_counts", "position_r2"]


def feature_counts(table: ibis.Table, features: tuple[str, ...]) -> ibis.Table:
    """Impressions and clicks per (query, position, feature values)."""
    return table.group_by(["query_id", "position", *features]).aggregate(
        impressions=table.count(), clicks=table.clicked.cast("int64").sum()
    )


@dataclass(frozen=True, kw_only=True)
class RegressionEM(ExaminationEstimator):
    """Relative examination by regression EM (Wang et al., WSDM 2018), relevance logistic in `features`.

    ``features`` names the numeric columns relevance is modelled from; ``max_r2`` is the share of
    the variance of position explained by them above which `ExaminationNotIdentified` is warned;
    ``em_iterations`` caps the EM steps before Fisher scoring finishes the fit.
    """

    name: ClassVar[str] = "em"
    features: tuple[str, ...]
    max_r2: float = 0.9
    em_iterations: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        given: object = self.features
        if isinstance(given, str) or not isinstance(given, Sequence) or not given:
            raise ValueError(f"features: expected a non-empty tuple of numeric column names, found {given!r}")
        object.__setattr__(self, "features", tuple(given))
        reserved = {*BASE_COLUMNS, "impressions", "clicks"} & set(self.features)
        if len(set(self.features)) != len(self.features) or reserved:
            raise ValueError(
                f"features: expected distinct feature columns other than {sorted(BASE_COLUMNS)}, "
                f"found {list(self.features)}"
            )
        if not 0.0 < self.max_r2 <= 1.0:
            raise ValueError(f"max_r2: expected a share in (0, 1] such as 0.9, found {self.max_r2}")
        if self.em_iterations < 0:
            raise ValueError(f"em_iterations: expected an integer >= 0, found {self.em_iterations}")

    def estimate(self, table: ibis.Table) -> ExaminationEstimate:
        columns: dict[str, Kind] = {**BASE_COLUMNS, **dict.fromkeys(self.features, "numeric")}
        check_columns(table, columns)
        seen = overview(table)
        if seen.rows == 0:
            raise ValueError("table: no rows to estimate examination from")
        cells = feature_counts(table, self.features).to_pyarrow()
        missing = [f for f in self.features if cells.column(f).null_count]
        if missing:
            raise ValueError(
                f"features: expected a value in every row, found nulls in {missing}; "
                "fill or drop those rows first"
            )
        x = np.column_stack([numbers(cells, f) for f in self.features])
        impressions, clicks = numbers(cells, "impressions"), numbers(cells, "clicks")
        position = numbers(cells, "position", np.int64)
        spread = _spread(x, impressions)
        constant = [f for f, s in zip(self.features, spread, strict=True) if not s > 0]
        if constant:
            raise ValueError(
                f"features: {constant} take a single value; drop them (the intercept is implied)"
            )
        z = (x - np.average(x, axis=0, weights=impressions)) / spread
        r2 = position_r2(position, z, impressions)
        if r2 > self.max_r2:
            warnings.warn(
                f"em: the features explain {r2:.1%} of the variance of position (above max_r2="
                f"{self.max_r2}); position is predictable from the features, so examination is not "
                "identified from this data. Add randomised interventions or rankers that disagree",
                ExaminationNotIdentified,
                stacklevel=2,
            )
        cluster, n_queries = codes(cells.column("query_id"))
        fit = fit_regression_em(
            position, z, impressions, clicks, cluster, n_queries, em_iterations=self.em_iterations
        )
        return self._curve(
            fit, why="no clicks there", sessions=seen.sessions, queries=n_queries, position_r2=r2
        )


def _spread(x: FloatArray, weight: FloatArray) -> FloatArray:
    mean = np.average(x, axis=0, weights=weight)
    spread: FloatArray = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=weight))
    return spread


def position_r2(position: IntArray, x: FloatArray, weight: FloatArray) -> float:
    """The weighted least-squares R^2 of position on the features (with an intercept).

    >>> position_r2(np.array([0, 1, 2]), np.array([[0.0], [1.0], [2.0]]), np.ones(3))
    1.0
    """
    design = np.column_stack([np.ones(len(x)), x]) * np.sqrt(weight)[:, None]
    target = position * np.sqrt(weight)
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    residual = float(np.sum((target - design @ coef) ** 2))
    mean = np.average(position, weights=weight)
    total = float(np.sum(weight * (position - mean) ** 2))
    return 0.0 if total == 0 else round(max(0.0, 1.0 - residual / total), 12)


def fit_regression_em(
    position: IntArray,
    x: FloatArray,
    impressions: FloatArray,
    clicks: FloatArray,
    cluster: IntArray,
    n_clusters: int,
    *,
    em_iterations: int = 200,
) -> PositionFit:
    """Maximum likelihood of ``theta_k sigmoid(b0 + x'b)`` on cells (position, features, n, c)."""
    k = int(position.max()) + 1
    per_position = np.bincount(position, clicks, minlength=k)
    if per_position[0] == 0:
        raise ValueError(
            "table: no clicks at position 0 (the top, the reference); examination is not identified"
        )
    seen = np.unique(position)
    keep = per_position > 0
    unidentified = tuple(int(p) for p in seen if not keep[p])
    kept = np.flatnonzero(keep)
    index = np.full(k, -1)
    index[kept] = np.arange(len(kept))
    rows = keep[position]
    slot, n, c, cl = index[position[rows]], impressions[rows], clicks[rows], cluster[rows]
    design = np.column_stack([np.ones(int(rows.sum())), x[rows]])
    m = len(kept)

    # regression EM (Wang et al.), started from the click-through rates relative to the top
    ctr = np.bincount(slot, c, minlength=m) / np.bincount(slot, n, minlength=m)
    theta = np.clip(ctr / ctr[0], 1e-3, 1.0)
    theta[0] = 1.0
    beta = np.zeros(design.shape[1])
    beta[0] = math.log(ctr[0] / (1.0 - ctr[0])) if 0 < ctr[0] < 1 else 0.0
    for _ in range(em_iterations):
        gamma = expit(design @ beta)
        t = theta[slot]
        miss = 1.0 - t * gamma
        examined = c + (n - c) * t * (1.0 - gamma) / miss
        relevant = c + (n - c) * gamma * (1.0 - t) / miss
        new_theta = np.bincount(slot, examined, minlength=m) / np.bincount(slot, n, minlength=m)
        new_theta[0] = 1.0
        for _ in range(2):  # a generalised M-step: Newton steps on the weighted logistic likelihood
            gamma = expit(design @ beta)
            info = design.T @ (design * (n * gamma * (1.0 - gamma))[:, None])
            beta = beta + np.linalg.lstsq(info, design.T @ (relevant - n * gamma), rcond=None)[0]
        change = np.max(np.abs(new_theta - theta))
        theta = new_theta
        if change < 1e-6:
            break

    def gradients(params: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per-cell click probability, its gradient (cells x params) and d log-likelihood / dp."""
        log_theta = np.concatenate([[0.0], params[: m - 1]])
        th = np.exp(log_theta[slot])
        gamma = expit(design @ params[m - 1 :])
        p = th * gamma
        jac = np.zeros((len(p), len(params)))
        moved = slot > 0
        jac[np.flatnonzero(moved), slot[moved] - 1] = p[moved]
        jac[:, m - 1 :] = design * (th * gamma * (1.0 - gamma))[:, None]
        return p, jac, c / p - (n - c) / (1.0 - p)

    def objective(params: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        p, jac, du = gradients(params)
        if np.any(p >= 1.0) or np.any(p <= 0.0):
            return -np.inf, params, np.eye(len(params))
        value = float(np.sum(c * np.log(p) + (n - c) * np.log1p(-p)))
        fisher = jac.T @ (jac * (n / (p * (1.0 - p)))[:, None])
        return value, jac.T @ du, fisher

    start = np.concatenate([np.log(np.clip(theta[1:], 1e-12, None)), beta])
    params = maximize(objective, start)
    _, _, info = objective(params)
    _, jac, du = gradients(params)
    scores = per_cluster(cl, n_clusters, jac * du[:, None])
    covariance = cluster_covariance(info, scores)
    return PositionFit(
        tuple(int(p) for p in kept), params[: m - 1], covariance[: m - 1, : m - 1], unidentified
    )
