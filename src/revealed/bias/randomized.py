"""Examination from randomised interventions: the same items moved at random between positions.

A randomised intervention (an adjacent swap, a top-n shuffle) takes a ranker's list and moves
items with a probability that depends on nothing about them; each moved row keeps the slot it came
from in ``original_position``. Following Joachims, Swaminathan & Schnabel, *Unbiased
Learning-to-Rank with Biased Feedback* (WSDM 2017), the item that the ranker put at slot ``o``
for query ``q`` is as relevant wherever the intervention shows it, so under the position-based
hypothesis the click rates of the same (query, ranker, original slot) at two positions differ only
by examination: ``E[clicks at k] = impressions at k * theta_k * r_(q, ranker, o)``.

All interventions are combined in one conditional (multinomial) likelihood, the fixed-effects
Poisson estimator: given how many clicks a group (query, ranker identity, original slot) got, the
probability that one was at position ``k`` is ``n_gk theta_k / sum_j n_gj theta_j``, so the
nuisance relevances drop out and ``theta`` is fitted by Newton's method. For a top-n shuffle
(every original slot equally often at every position) this is Joachims et al.'s ratio of the click
counts at ``k`` and at the top; for swaps it is the ratio of the click rates of the same items at
their two positions, chained across overlapping pairs. Intervals: `revealed.bias.examination`.

Sessions are intervention sessions when any of their rows has an ``original_position``; their
other rows count as unmoved (``original_position = position``). Positions that no intervention
moves (beyond the swapped or shuffled prefix) are not identified: they are left out and warned.

>>> import ibis
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n = 40_000  # sessions, each a top-2 shuffle of its query's two items
>>> query = rng.integers(0, 50, n)
>>> swapped = rng.random(n) < 0.5
>>> original = np.stack([swapped, ~swapped], axis=1).astype(int)  # original slot of each position
>>> relevance = rng.uniform(0.2, 0.8, (50, 2))[query[:, None], original]
>>> clicked = rng.random((n, 2)) < np.array([1.0, 0.5]) * relevance  # examination 1.0 and 0.5
>>> rows = ibis.memtable({
...     "session": np.repeat(np.arange(n), 2).astype(str), "query_id": np.repeat(query, 2).astype(str),
...     "position": np.tile([0, 1], n), "original_position": original.ravel(),
...     "clicked": clicked.ravel(), "model": "ranker", "model_version": "v1", "policy": "top_n_shuffle"})
>>> found = RandomizedIntervention().estimate(rows)
>>> found.positions, round(found.examination[1], 2), found.ci_low[1] < 0.5 < found.ci_high[1]
((0, 1), 0.5, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

import ibis
import numpy as np
from scipy.special import logsumexp

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
    per_cluster,
    rankers,
)

__all__ = ["RandomizedIntervention", "intervention_counts"]

COLUMNS: Final[dict[str, Kind]] = {
    **BASE_COLUMNS,
    "original_position": "integer",
    **dict.fromkeys(RANKER, "string"),
}


def intervention_counts(table: ibis.Table) -> ibis.Table:
    """Impressions and clicks per (query, ranker identity, original slot, position) of the sessions
    that a randomised intervention touched; unmoved rows of those sessions keep their slot."""
    moved = table.filter(table.original_position.notnull()).select("session").distinct()
    rows = table.semi_join(moved, "session")
    rows = rows.mutate(original=rows.original_position.fill_null(rows.position))
    return rows.group_by(["query_id", *RANKER, "original", "position"]).aggregate(
        impressions=rows.count(), clicks=rows.clicked.cast("int64").sum()
    )


@dataclass(frozen=True, kw_only=True)
class RandomizedIntervention(ExaminationEstimator):
    """Relative examination from randomised swaps and shuffles (Joachims et al., WSDM 2017).

    ``level`` is the coverage of the intervals.
    """

    name: ClassVar[str] = "randomized"

    def estimate(self, table: ibis.Table) -> ExaminationEstimate:
        check_columns(table, COLUMNS)
        overview(table)
        seen = overview(table.filter(table.original_position.notnull()))
        if seen.rows == 0:
            raise ValueError(
                "table: no randomised interventions logged (no row has an original_position); "
                f"rankers found (model/version/policy, sessions): {rankers(table)}. Log adjacent swaps "
                "or top-n shuffles with original_position, or use InterventionHarvesting or RegressionEM"
            )
        counts = intervention_counts(table).to_pyarrow()
        group, _ = codes(*(counts.column(c) for c in ("query_id", *RANKER, "original")))
        cluster, n_queries = codes(counts.column("query_id"))
        position = numbers(counts, "position", np.int64)
        fit = fit_interventions(
            group, position, numbers(counts, "impressions"), numbers(counts, "clicks"), cluster, n_queries
        )
        return self._curve(
            fit,
            why="no intervention moved them or they got no clicks",
            sessions=seen.sessions,
            queries=n_queries,
        )


def fit_interventions(
    group: IntArray,
    position: IntArray,
    impressions: FloatArray,
    clicks: FloatArray,
    cluster: IntArray,
    n_clusters: int,
) -> PositionFit:
    """The conditional maximum-likelihood fit of ``theta`` on (group, position) cells, each in a
    cluster (its query); log relative examinations of the identified positions after the top."""
    _, group = np.unique(group, return_inverse=True)
    g, k = int(group.max()) + 1, int(position.max()) + 1
    n, c = np.zeros((g, k)), np.zeros((g, k))
    np.add.at(n, (group, position), impressions)
    np.add.at(c, (group, position), clicks)
    g_cluster = np.zeros(g, dtype=np.int64)
    g_cluster[group] = cluster
    # a group informs theta when it was shown at two positions or more and got a click
    informative = ((n > 0).sum(axis=1) >= 2) & (c.sum(axis=1) > 0)
    n, c, g_cluster = n[informative], c[informative], g_cluster[informative]
    if n[:, 0].sum() == 0:
        raise ValueError(
            "table: no intervention that moved an item into or out of position 0 (the top, the "
            "reference) got a click; log swaps or shuffles that include the top slot"
        )
    present = n > 0
    first = np.argmax(present, axis=1)
    rows, cols = np.nonzero(present)
    reach = connected_to_top(k, [(first[rows], cols)])
    seen = np.flatnonzero(np.isin(np.arange(k), np.unique(position)))
    keep = reach & (c.sum(axis=0) > 0)
    keep[0] = True
    unidentified = tuple(int(p) for p in seen if not keep[p])
    kept = np.flatnonzero(keep)
    n, c = n[:, kept], c[:, kept]
    log_n = np.where(n > 0, np.log(np.where(n > 0, n, 1.0)), -np.inf)
    total = c.sum(axis=1)

    def shares(free: FloatArray) -> FloatArray:
        logits = log_n + np.concatenate([[0.0], free])
        pi: FloatArray = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        return pi

    def objective(free: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        pi = shares(free)
        value = float(np.sum(c[n > 0] * np.log(pi[n > 0])))
        grad = (c - total[:, None] * pi).sum(axis=0)
        info = np.diag((total[:, None] * pi).sum(axis=0)) - (pi * total[:, None]).T @ pi
        return value, grad[1:], info[1:, 1:]

    free = maximize(objective, np.zeros(len(kept) - 1))
    _, _, info = objective(free)
    residual = c - total[:, None] * shares(free)
    scores = per_cluster(g_cluster, n_clusters, residual[:, 1:])
    return PositionFit(tuple(int(p) for p in kept), free, cluster_covariance(info, scores), unidentified)
