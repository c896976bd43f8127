"""Examination by intervention harvesting: several rankers' logs, no randomisation needed.

Following Agarwal, Zaitsev, Wang, Li, Najork & Joachims, *Estimating Position Bias without
Intrusive Interventions* (WSDM 2019): rankers that differ (a production ranker and its
predecessors, models in an A/B test) show the same item for the same query at different
positions, and these natural "interventions" identify examination without randomising anything,
provided that which ranker served a query does not depend on the user, and that an item's
relevance for a query does not change over the logs.

For every pair of positions ``(k, k')`` the interventional set ``S_kk'`` holds the (query, item)
pairs shown at both. The weighted clicks ``c_k^kk' = sum over S_kk' of CTR(q, d, k)`` and non-clicks
``n_k^kk' = |S_kk'| - c_k^kk'`` pool every session that showed ``d`` at ``k`` for ``q``, whichever
ranker served it (the paper's weight ``w(q, d, k)``: the sessions of all rankers that put ``d``
at ``k``), so ``E[c_k^kk'] = theta_k * r_kk' * |S_kk'|`` with ``r_kk'`` the mean relevance in the
set. Examination is the **AllPairs** extremum estimator: ``theta`` and the symmetric ``r`` maximise

    sum over k != k' of  c_k^kk' log(theta_k r_kk') + n_k^kk' log(1 - theta_k r_kk')

(concave in ``log theta`` and ``log r``; solved by Newton's method) with ``theta_0 = 1``. It uses
every pair, not only pairs with the top ("swap") or adjacent ones ("adjacent chain"), which the
paper found the most accurate. The grouping is by ``query_id``; the ranker identity (model,
version, policy) is what makes positions differ and is reported when nothing does. Intervals:
`revealed.bias.examination` (the scores are sums over queries).

The engine builds the interventional sets: (query, item, position) cells self-joined on (query,
item), summed per (query, position, other position), so the fit reads at most queries x K^2 rows.

>>> import ibis
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n = 40_000  # sessions; two rankers that order each query's two items oppositely
>>> query, ranker = rng.integers(0, 50, n), rng.integers(0, 2, n)
>>> item = np.stack([ranker, 1 - ranker], axis=1)  # the item shown at positions 0 and 1
>>> relevance = rng.uniform(0.2, 0.8, (50, 2))[query[:, None], item]
>>> clicked = rng.random((n, 2)) < np.array([1.0, 0.5]) * relevance  # examination 1.0 and 0.5
>>> rows = ibis.memtable({
...     "session": np.repeat(np.arange(n), 2).astype(str), "query_id": np.repeat(query, 2).astype(str),
...     "item_id": item.ravel().astype(str), "position": np.tile([0, 1], n), "clicked": clicked.ravel(),
...     "model": "ranker", "model_version": np.repeat(ranker, 2).astype(str), "policy": "ranker"})
>>> found = InterventionHarvesting().estimate(rows)
>>> found.positions, round(found.examination[1], 2), found.ci_low[1] < 0.5 < found.ci_high[1]
((0, 1), 0.5, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

import ibis
import numpy as np

from revealed.bias.examination import (
    BASE_COLUMNS,
    RANKER,
    ExaminationEstimate,
    ExaminationEstimator,
    FloatArray,
    IntArray,
    Kind,
    PositionFit,
    check_columns,
    cluster_covariance,
    codes,
    connected_to_top,
    maximize,
    numbers,
    overview,
    rankers,
)

__all__ = ["InterventionHarvesting", "interventional_sets"]

COLUMNS: Final[dict[str, Kind]] = {**BASE_COLUMNS, "item_id": "string", **dict.fromkeys(RANKER, "string")}


def interventional_sets(table: ibis.Table) -> ibis.Table:
    """Per (query, position, other position): the summed click-through rate at ``position`` of the
    (query, item) pairs also shown at ``other_position`` (``clicks``), and how many pairs (``pairs``)."""
    cells = table.group_by(["query_id", "item_id", "position"]).aggregate(
        impressions=table.count(), clicks=table.clicked.cast("int64").sum()
    )
    cells = cells.mutate(ctr=cells.clicks.cast("float64") / cells.impressions.cast("float64"))
    other = cells.select("query_id", "item_id", other_position=cells.position)
    joined = cells.join(other, ["query_id", "item_id"])
    joined = joined.filter(joined.position != joined.other_position)
    return joined.group_by(["query_id", "position", "other_position"]).aggregate(
        clicks=joined.ctr.sum(), pairs=joined.count()
    )


@dataclass(frozen=True, kw_only=True)
class InterventionHarvesting(ExaminationEstimator):
    """Relative examination from several rankers' logs by AllPairs (Agarwal et al., WSDM 2019).

    ``level`` is the coverage of the intervals.
    """

    name: ClassVar[str] = "harvest"

    def estimate(self, table: ibis.Table) -> ExaminationEstimate:
        check_columns(table, COLUMNS)
        seen = overview(table)
        if seen.rows == 0:
            raise ValueError("table: no rows to estimate examination from")
        sets = interventional_sets(table).to_pyarrow()
        if sets.num_rows == 0:
            raise ValueError(
                "table: no item was shown at two positions for the same query, so nothing is harvested; "
                f"rankers found (model/version/policy, sessions): {rankers(table)}. Harvesting needs "
                "rankers that order the same query's items differently (or use RandomizedIntervention)"
            )
        cluster, n_queries = codes(sets.column("query_id"))
        fit = fit_all_pairs(
            numbers(sets, "position", np.int64),
            numbers(sets, "other_position", np.int64),
            numbers(sets, "clicks"),
            numbers(sets, "pairs"),
            cluster,
            n_queries,
        )
        return self._curve(
            fit, why="no harvested pair connects them to the top", sessions=seen.sessions, queries=n_queries
        )


def fit_all_pairs(
    position: IntArray,
    other: IntArray,
    clicks: FloatArray,
    pairs: FloatArray,
    cluster: IntArray,
    n_clusters: int,
) -> PositionFit:
    """The AllPairs fit on per-cluster rows (position k, other position k', c_k^kk', |S_kk'|)."""
    k = int(max(position.max(), other.max())) + 1
    seen = np.unique(np.concatenate([position, other]))
    # totals per ordered term (k, k')
    term = position * k + other
    c_term = np.bincount(term, clicks, minlength=k * k).reshape(k, k)
    n_term = np.bincount(term, pairs, minlength=k * k).reshape(k, k)
    # a pair without any click says nothing about theta; a position without clicks is at 0
    alive = (c_term + c_term.T) > 0
    clicked = (c_term * alive).sum(axis=1) > 0
    alive &= clicked[:, None] & clicked[None, :]
    a, b = np.nonzero(np.triu(alive, 1))
    reach = connected_to_top(k, [(a, b)])
    if not alive[0].any():
        raise ValueError(
            "table: no harvested pair involves position 0 (the top, the reference) with a click; "
            "examination relative to the top is not identified"
        )
    keep = reach & clicked
    unidentified = tuple(int(p) for p in seen if not keep[p])
    kept = np.flatnonzero(keep)
    index = np.full(k, -1)
    index[kept] = np.arange(len(kept))
    # parameters: log theta of kept[1:], then log r of each live unordered pair
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    live = keep[lo] & keep[hi]
    lo, hi = lo[live], hi[live]
    pair_index = np.full((k, k), -1)
    pair_index[lo, hi] = pair_index[hi, lo] = np.arange(len(lo))
    t_from = np.concatenate([lo, hi])
    t_to = np.concatenate([hi, lo])
    n_theta = len(kept) - 1
    design = np.zeros((len(t_from), n_theta + len(lo)))
    rows = np.arange(len(t_from))
    has_theta = index[t_from] > 0
    design[rows[has_theta], index[t_from[has_theta]] - 1] = 1.0
    design[rows, n_theta + pair_index[t_from, t_to]] = 1.0
    c_t, n_t = c_term[t_from, t_to], n_term[t_from, t_to]
    miss_t = n_t - c_t

    def objective(params: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        mu = np.exp(design @ params)
        if np.any(mu >= 1.0):
            return -np.inf, params, np.eye(len(params))
        odds = mu / (1.0 - mu)
        value = float(np.sum(c_t * np.log(mu)) + np.sum(miss_t * np.log1p(-mu)))
        grad = design.T @ (c_t - miss_t * odds)
        info = design.T @ (design * (miss_t * odds / (1.0 - mu))[:, None])
        return value, grad, info

    pooled = (c_term[lo, hi] + c_term[hi, lo]) / (n_term[lo, hi] + n_term[hi, lo])
    start = np.concatenate([np.zeros(n_theta), np.log(np.clip(pooled, 1e-6, 0.99))])
    params = maximize(objective, start)
    _, _, info = objective(params)
    # per-cluster scores: each cluster's share of c and n in the live terms
    mu = np.exp(design @ params)
    term_of = np.full((k, k), -1)
    term_of[t_from, t_to] = np.arange(len(t_from))
    row_term = term_of[position, other]
    used = row_term >= 0
    weight = clicks[used] - (pairs[used] - clicks[used]) * (mu / (1.0 - mu))[row_term[used]]
    by_term = np.zeros((n_clusters, len(t_from)))
    np.add.at(by_term, (cluster[used], row_term[used]), weight)
    scores = by_term @ design
    covariance = cluster_covariance(info, scores)
    return PositionFit(
        tuple(int(p) for p in kept), params[:n_theta], covariance[:n_theta, :n_theta], unidentified
    )
