"""Examination per position, relative to the top, with a confidence interval: what the estimators share.

Examination is the probability that a user looks at a slot; it is never called propensity (the
probability that the logging policy served an item in a slot). Three estimators recover it from
logged clicks, each under its own assumptions, all under the position-based hypothesis that a
click is examination times relevance, ``P(click | item d at k for query q) = theta_k gamma_qd``:

=================================  =========  ================================================
estimator                          ``name``   identified by
=================================  =========  ================================================
`RandomizedIntervention`           randomized randomised swaps and top-n shuffles
                                              (``original_position``); Joachims et al. 2017
`InterventionHarvesting`           harvest    the same item at different positions for the
                                              same query under several rankers; Agarwal et
                                              al. 2019 (AllPairs)
`RegressionEM`                     em         relevance as a logistic regression on features,
                                              position varying given the features; Wang et
                                              al. 2018
=================================  =========  ================================================

Each takes the ``interactions`` rows as an Ibis table, one row per served item:

=====================  =======  ========================================================
column                 type     meaning
=====================  =======  ========================================================
``session``            string   one ranked list shown once (a decision id)
``query_id``           string   the grouping key (a normalised query, a page id)
``item_id``            string   the item served
``position``           integer  0-based display rank (0 is the top)
``original_position``  integer  the slot before a randomised intervention moved the item;
                                null when there was none
``clicked``            boolean  whether the item was clicked
``model``,             string   the ranker's identity
``model_version``,
``policy``
=====================  =======  ========================================================

The engine aggregates them into small count tables (backend-neutral Ibis: no Python UDFs, no
quantiles); numpy fits the estimator on those. Every estimate is relative to the top position
(``examination[0] == 1.0``) and every interval is a cluster-robust sandwich: queries are the
independent units (a query's sessions share its items' relevance), the covariance of the log
relative examinations is ``I^-1 (sum_q s_q s_q') I^-1 * Q / (Q - 1)`` with ``s_q`` query ``q``'s
score and ``I`` the information, and the interval is ``exp(log theta_k +- z se_k)`` (the delta
method on the log scale, so it stays positive). With fewer than `MIN_QUERIES` queries the
intervals are too narrow and `FewQueries` is warned.

Warnings are typed::

    ExaminationWarning, UserWarning
    ├── ExaminationNotIdentified   a position no intervention, pair or feature variation reaches,
    │                              or (regression EM) position predictable from the features
    └── FewQueries                 too few queries for a cluster-robust interval

>>> estimate = ExaminationEstimate(
...     method="randomized", positions=(0, 1), examination=(1.0, 0.5), ci_low=(1.0, 0.4),
...     ci_high=(1.0, 0.6), level=0.95, sessions=1000, queries=40)
>>> estimate.to_dict()["examination"]
[1.0, 0.5]
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import ibis
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.stats import norm

__all__ = [
    "MIN_QUERIES",
    "ExaminationEstimate",
    "ExaminationEstimator",
    "ExaminationNotIdentified",
    "ExaminationWarning",
    "FewQueries",
    "PositionFit",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Kind = Literal["string", "integer", "boolean", "numeric"]

#: below this many queries a cluster-robust interval is unreliable (too narrow)
MIN_QUERIES: Final = 30
#: the columns every estimator reads, and those that name a ranker
BASE_COLUMNS: Final[dict[str, Kind]] = {
    "session": "string",
    "query_id": "string",
    "position": "integer",
    "clicked": "boolean",
}
RANKER: Final = ("model", "model_version", "policy")


class ExaminationWarning(UserWarning):
    """Base of the warnings the examination estimators issue."""


class ExaminationNotIdentified(ExaminationWarning):
    """The data cannot separate examination from relevance at some positions (or anywhere)."""


class FewQueries(ExaminationWarning):
    """Too few queries (the independent units) for a reliable cluster-robust interval."""


@dataclass(frozen=True)
class ExaminationEstimate:
    """Relative examination per position (top = 1.0) with a ``level`` confidence interval.

    ``positions`` are the identified positions, in order; ``unidentified`` those seen in the data
    that no intervention, pair or feature variation connects to the top. ``sessions`` and
    ``queries`` count what the estimate used. ``position_r2`` (regression EM only) is the share of
    the variance of position that the features explain linearly.
    """

    method: str
    positions: tuple[int, ...]
    examination: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    level: float
    sessions: int
    queries: int
    unidentified: tuple[int, ...] = ()
    position_r2: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``revealed bias estimate --json``."""
        doc: dict[str, Any] = {
            "method": self.method,
            "positions": list(self.positions),
            "examination": list(self.examination),
            "ci_low": list(self.ci_low),
            "ci_high": list(self.ci_high),
            "level": self.level,
            "sessions": self.sessions,
            "queries": self.queries,
            "unidentified": list(self.unidentified),
        }
        if self.position_r2 is not None:
            doc["position_r2"] = self.position_r2
        return doc


@dataclass(frozen=True, kw_only=True)
class ExaminationEstimator(ABC):
    """An estimator of relative examination per position; the constructor holds its configuration."""

    name: ClassVar[str]
    #: the coverage of the confidence intervals
    level: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level: expected a coverage in (0, 1) such as 0.95, found {self.level}")

    @abstractmethod
    def estimate(self, table: ibis.Table) -> ExaminationEstimate:
        """Estimate relative examination from the interactions rows in `table`."""

    def _curve(
        self, fit: PositionFit, *, why: str, sessions: int, queries: int, position_r2: float | None = None
    ) -> ExaminationEstimate:
        """The estimate from a fit, after warning about the positions it could not identify (`why`)
        and about too few queries for its clustered intervals."""
        warn_unidentified(self.name, fit.unidentified, why)
        warn_few_queries(self.name, queries)
        return relative_curve(
            self.name, fit, level=self.level, sessions=sessions, queries=queries, position_r2=position_r2
        )


# --- input -----------------------------------------------------------------------------------------


def check_columns(table: ibis.Table, columns: Mapping[str, Kind]) -> None:
    """Raise a ValueError naming every column of `columns` that `table` lacks or types otherwise."""
    if not isinstance(table, ibis.Table):
        raise TypeError(f"table: expected an ibis.Table of interactions, found {type(table).__name__}")
    schema = table.schema()
    problems = []
    for name, kind in columns.items():
        if name not in schema:
            problems.append(f"{name!r} ({kind}) is missing")
            continue
        dtype = schema[name]
        ok = {
            "string": dtype.is_string(),
            "integer": dtype.is_integer(),
            "boolean": dtype.is_boolean(),
            "numeric": dtype.is_numeric() and not dtype.is_boolean(),
        }[kind]
        if not ok:
            problems.append(f"{name!r} should be {kind}, found {dtype}")
    if problems:
        raise ValueError(
            f"table: expected the interactions columns; {'; '.join(problems)} "
            f"(found columns {sorted(schema.names)})"
        )


@dataclass(frozen=True)
class Overview:
    """What a filtered interactions table holds, read in one aggregation."""

    rows: int
    sessions: int
    queries: int
    min_position: int | None


def overview(table: ibis.Table) -> Overview:
    """Rows, distinct sessions and queries, and the lowest position; a ValueError for negative
    positions and for rows without a position or a click flag."""
    row = (
        table.aggregate(
            rows=table.count(),
            sessions=table.session.nunique(),
            queries=table.query_id.nunique(),
            min_position=table.position.min(),
            null_position=table.position.isnull().sum(),
            null_clicked=table.clicked.isnull().sum(),
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    for name in ("position", "clicked"):
        if row[f"null_{name}"]:
            raise ValueError(
                f"{name}: expected a value in every row, found {row[f'null_{name}']} nulls; "
                "drop or fill those rows first"
            )
    found = Overview(int(row["rows"]), int(row["sessions"]), int(row["queries"]), row["min_position"])
    if found.min_position is not None and found.min_position < 0:
        raise ValueError(f"position: expected 0-based ranks (0 is the top), found {found.min_position}")
    return found


def rankers(table: ibis.Table) -> str:
    """The rankers in `table` with their sessions, for error messages: ``ranker/v1/swap (1200)``."""
    rows = (
        table.group_by(list(RANKER))
        .aggregate(sessions=table.session.nunique())
        .order_by([ibis.desc("sessions"), *RANKER])
        .limit(20)
        .to_pyarrow()
        .to_pylist()
    )
    if not rows:
        return "none"
    return ", ".join(f"{r['model']}/{r['model_version']}/{r['policy']} ({r['sessions']})" for r in rows)


def codes(*columns: pa.ChunkedArray | pa.Array) -> tuple[IntArray, int]:
    """One integer code per row for the combination of `columns` (nulls are a value), and how many."""
    parts = []
    for column in columns:
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        encoded = pc.dictionary_encode(array, null_encoding="encode")
        parts.append(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))
    if not parts or len(parts[0]) == 0:
        return np.zeros(0, dtype=np.int64), 0
    _, inverse = np.unique(np.stack(parts, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    return inverse, int(inverse.max()) + 1


def numbers(table: pa.Table, name: str, dtype: type = np.float64) -> npt.NDArray[Any]:
    """Column `name` of an Arrow table as a numpy array."""
    return np.asarray(table.column(name).to_numpy(), dtype=dtype)


# --- fitting ---------------------------------------------------------------------------------------

Objective = Callable[[FloatArray], tuple[float, FloatArray, FloatArray]]


def maximize(objective: Objective, start: FloatArray, *, iterations: int = 200) -> FloatArray:
    """Maximise a concave (or locally concave) objective by Newton steps with step halving.

    `objective` returns the value (``-inf`` where infeasible), the gradient and the information
    (minus the Hessian, or an expected version of it)."""
    x = np.asarray(start, dtype=np.float64)
    value, grad, info = objective(x)
    if not math.isfinite(value):
        raise ValueError("the starting point of the fit is infeasible (a probability at 0 or 1)")
    ridge = 1e-10 * np.eye(len(x))
    for _ in range(iterations):
        step = np.linalg.lstsq(info + ridge, grad, rcond=None)[0]
        scale = 1.0
        while scale > 1e-12:
            new_value, new_grad, new_info = objective(x + scale * step)
            if math.isfinite(new_value) and new_value >= value - 1e-12 * abs(value):
                break
            scale /= 2.0
        else:
            return x
        x = x + scale * step
        value, grad, info = new_value, new_grad, new_info
        if np.max(np.abs(scale * step), initial=0.0) < 1e-10:
            break
    return x


def cluster_covariance(info: FloatArray, scores: FloatArray) -> FloatArray:
    """The sandwich ``I^-1 (S'S) I^-1 * Q / (Q - 1)`` for per-cluster scores ``S`` (Q x p)."""
    q = len(scores)
    bread = np.linalg.pinv(info)
    meat = scores.T @ scores * (q / (q - 1) if q > 1 else math.nan)
    cov: FloatArray = bread @ meat @ bread
    return cov


def per_cluster(cluster: IntArray, n_clusters: int, values: FloatArray) -> FloatArray:
    """Sum the rows of `values` (n x p) by `cluster` into an (n_clusters x p) matrix."""
    indicator = sparse.csr_matrix(
        (np.ones(len(cluster)), (cluster, np.arange(len(cluster)))), shape=(n_clusters, len(cluster))
    )
    summed: FloatArray = np.asarray(indicator @ values, dtype=np.float64)
    return summed


def connected_to_top(k: int, edges: Iterable[tuple[IntArray, IntArray]]) -> npt.NDArray[np.bool_]:
    """Which of positions ``0..k-1`` the given (position, position) edges connect to position 0."""
    rows, cols = [], []
    for a, b in edges:
        rows.append(np.asarray(a, dtype=np.int64))
        cols.append(np.asarray(b, dtype=np.int64))
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    graph = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(k, k))
    _, label = connected_components(graph, directed=False)
    found: npt.NDArray[np.bool_] = label == label[0]
    return found


@dataclass(frozen=True)
class PositionFit:
    """A fitted curve before its intervals: the log relative examination of ``positions[1:]`` (the
    top's is 0 by definition), its covariance, and the positions seen but not identified."""

    positions: tuple[int, ...]
    log_examination: FloatArray
    covariance: FloatArray
    unidentified: tuple[int, ...]


def relative_curve(
    method: str,
    fit: PositionFit,
    *,
    level: float,
    sessions: int,
    queries: int,
    position_r2: float | None = None,
) -> ExaminationEstimate:
    """The estimate from a fit, with log-scale delta-method intervals."""
    z = float(norm.ppf(0.5 + level / 2.0))
    eta = np.concatenate([[0.0], fit.log_examination])
    se = np.concatenate([[0.0], np.sqrt(np.clip(np.diag(fit.covariance), 0.0, None))])
    return ExaminationEstimate(
        method=method,
        positions=fit.positions,
        examination=tuple(float(v) for v in np.exp(eta)),
        ci_low=tuple(float(v) for v in np.exp(eta - z * se)),
        ci_high=tuple(float(v) for v in np.exp(eta + z * se)),
        level=level,
        sessions=sessions,
        queries=queries,
        unidentified=fit.unidentified,
        position_r2=position_r2,
    )


def warn_unidentified(method: str, unidentified: Sequence[int], why: str) -> None:
    """Warn that `unidentified` positions are left out of `method`'s estimate, and why."""
    if len(unidentified):
        warnings.warn(
            f"{method}: positions {list(unidentified)} are not identified ({why}); "
            "they are left out of the estimate",
            ExaminationNotIdentified,
            stacklevel=4,
        )


def warn_few_queries(method: str, queries: int) -> None:
    """Warn that `queries` clusters are too few for a reliable interval."""
    if queries < MIN_QUERIES:
        warnings.warn(
            f"{method}: only {queries} queries; intervals cluster on query_id and need at least "
            f"{MIN_QUERIES} to be reliable (they are too narrow)",
            FewQueries,
            stacklevel=4,
        )
