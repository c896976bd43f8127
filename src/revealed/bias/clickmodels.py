"""Click models fitted from engine-aggregated counts: what users examine, and what attracts them.

A click happens where a user examines a position and its item attracts (``C = E * A``); the models
differ in how examination ``E`` is decided (Chuklin, Markov & de Rijke, *Click Models for Web
Search*, 2015, with 0-based ranks; `revealed.sim.clickmodels` samples from the same five):

===========  ===========================================  ====================================
name         examination                                  fitted from (`click_counts`)
===========  ===========================================  ====================================
``pbm``      ``theta[r]``, independent of everything      `pbm_counts`, EM
``ubm``      ``gamma[r, r']``, ``r'`` = previous click    `ubm_counts`, EM
             rank + 1 (0 when none)
``cascade``  top-down until the first click, then stop    `first_last_click_counts`, closed
                                                          form (the exact MLE)
``dcm``      as cascade; after a click at ``r`` go on     `first_last_click_counts` (closed
             with ``lambda[r]``                           form), then EM over
                                                          `click_pattern_counts`
``sdbn``     a click satisfies with ``sigma[q, u]``;      `first_last_click_counts`, closed
             satisfied users stop, others go on           form (Chapelle & Zhang, 2009)
``dbn``      as sdbn, but unsatisfied users go on with    `click_pattern_counts`, EM
             ``gamma``, clicked or not
===========  ===========================================  ====================================

The DCM closed form (Guo et al., 2009) takes each session's last click as where examination
ended, which underestimates ``lambda[r]`` by the chance of clicking again below (a lot at deep
ranks), so ``dcm`` starts there and runs EM on the exact likelihood (``max_iter=0`` keeps the
closed form). SDBN's closed form makes the same approximation with ``gamma = 1``; it is kept as
the classical fast baseline, and ``dbn`` is the exact model.

Every Bernoulli parameter is estimated with pseudo-counts ``prior = (a, b)``, as ``(expected
successes + a) / (expected trials + a + b)``: the posterior mode under Beta(a + 1, b + 1), so
the default ``(1, 1)`` is Laplace smoothing, and rare pairs stay strictly inside (0, 1). PBM and
UBM identify examination and attractiveness only up to a common factor: examination is scaled
so that its largest cell is 1. EM stops when no parameter moves by ``tol`` or more; the fitted
model reports ``iterations`` and ``converged``. Fitted models and how they score held-out
sessions are described in `revealed.bias.click_likelihood`.

>>> import ibis
>>> clicks = ibis.memtable(
...     {
...         "session": ["s1", "s1", "s2", "s2", "s3", "s3"],
...         "query_id": ["q"] * 6,
...         "item_id": ["a", "b", "b", "a", "a", "b"],
...         "position": [0, 1, 0, 1, 0, 1],
...         "clicked": [False, True, True, False, False, False],
...     }
... )
>>> model = fit_click_model("cascade", clicks, ibis.duckdb.connect())
>>> model.attractiveness("q", "a"), model.attractiveness("q", "b")  # (0 + 1) / (2 + 2), (2 + 1) / (3 + 2)
(0.25, 0.6)
>>> model.examination.round(3).tolist()  # the share of sessions with no click above each rank
[1.0, 0.667]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import ibis
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from revealed.bias.click_counts import (
    PatternMatrices,
    check_clicks,
    click_pattern_counts,
    encode_pairs,
    first_last_click_counts,
    flat_pattern_pairs,
    lookup_pairs,
    pattern_matrices,
    pbm_counts,
    session_shape_errors,
    ubm_counts,
)
from revealed.bias.click_likelihood import (
    CLICK_MODEL_NAMES,
    ClickModelEvaluation,
    FittedClickModel,
    average_examination,
)

__all__ = [
    "CLICK_MODEL_NAMES",
    "ClickModelEvaluation",
    "FittedClickModel",
    "fit_cascade",
    "fit_click_model",
    "fit_dbn",
    "fit_dcm",
    "fit_pbm",
    "fit_sdbn",
    "fit_ubm",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Prior = tuple[float, float]

_TINY = 1e-300
_FIRST_LAST = (
    "impressions", "clicks", "above_first", "first_clicks", "above_last", "last_clicks", "final_clicks",
)  # fmt: skip


def fit_click_model(
    name: str,
    clicks: ibis.Table,
    backend: Any = None,
    *,
    prior: Prior = (1.0, 1.0),
    max_iter: int = 500,
    tol: float = 1e-6,
    check: bool = True,
) -> FittedClickModel:
    """Fit the model ``name`` (one of `CLICK_MODEL_NAMES`) to ``clicks``.

    The engine (``backend``, e.g. ``ibis.duckdb.connect()``; by default the one ``clicks`` is
    bound to) aggregates the model's counts and numpy fits them. With ``check``, a first query
    verifies that every session has positions ``0..n-1`` exactly once (PBM needs no check: it
    reads every row on its own).
    """
    _check(prior, max_iter, tol)
    if name not in CLICK_MODEL_NAMES:
        raise ValueError(f"name: expected one of {list(CLICK_MODEL_NAMES)}, found {name!r}")
    check_clicks(clicks)
    if check and name != "pbm":
        bad = _fetch(session_shape_errors(clicks).order_by("session").limit(1), backend)
        if len(bad):
            raise ValueError(
                f"clicks: session {bad.column('session')[0].as_py()!r} does not have positions 0..n-1 "
                "exactly once; pass one row per displayed position, numbered from 0 without gaps"
            )
    em: dict[str, Any] = {"prior": prior, "max_iter": max_iter, "tol": tol}
    if name == "pbm":
        return fit_pbm(_fetch(pbm_counts(clicks), backend), **em)
    if name == "ubm":
        return fit_ubm(_fetch(ubm_counts(clicks), backend), **em)
    if name == "dbn":
        return fit_dbn(_fetch(click_pattern_counts(clicks), backend), **em)
    counts = _fetch(first_last_click_counts(clicks), backend)
    if name == "cascade":
        return fit_cascade(counts, prior=prior)
    patterns = _fetch(click_pattern_counts(clicks), backend)
    if name == "sdbn":
        return fit_sdbn(counts, patterns, prior=prior)
    return fit_dcm(counts, patterns, **em)


def fit_pbm(
    counts: pa.Table, *, prior: Prior = (1.0, 1.0), max_iter: int = 500, tol: float = 1e-6
) -> FittedClickModel:
    """PBM by EM over fetched `pbm_counts`."""
    _check(prior, max_iter, tol)
    pair, pairs, position, shown, clicked = _cells(counts, "pbm_counts", ("impressions", "clicks"))
    k = int(position.max()) + 1
    alpha, theta, its, ok = _position_em(pair, len(pairs), position, k, shown, clicked, prior, max_iter, tol)
    impressions = _sum(pair, shown, len(pairs))
    return FittedClickModel("pbm", pairs, alpha, None, impressions, theta, np.empty(0), None, its, ok)


def fit_ubm(
    counts: pa.Table, *, prior: Prior = (1.0, 1.0), max_iter: int = 500, tol: float = 1e-6
) -> FittedClickModel:
    """UBM by EM over fetched `ubm_counts`; ``examination`` averages ``gamma`` over the sessions."""
    _check(prior, max_iter, tol)
    pair, pairs, position, shown, clicked = _cells(
        counts, "ubm_counts", ("previous_click", "impressions", "clicks")
    )
    previous = _column(counts, "previous_click").astype(np.int64)
    if np.any((previous < 0) | (previous > position)):
        raise ValueError("counts.previous_click: expected values in 0..position (previous click rank + 1)")
    k = int(position.max()) + 1
    cell = position * k + previous
    alpha, gamma, its, ok = _position_em(pair, len(pairs), cell, k * k, shown, clicked, prior, max_iter, tol)
    by_rank = _sum(position, shown * gamma[cell], k) / _sum(position, shown, k)
    by_previous = np.where(np.tri(k, dtype=np.bool_), gamma.reshape(k, k), np.nan)  # r' > r: never read
    impressions = _sum(pair, shown, len(pairs))
    return FittedClickModel(
        "ubm", pairs, alpha, None, impressions, by_rank, np.empty(0), by_previous, its, ok
    )


def fit_cascade(counts: pa.Table, *, prior: Prior = (1.0, 1.0)) -> FittedClickModel:
    """Cascade in closed form over fetched `first_last_click_counts`: first clicks / impressions
    at or above the first click. ``examination`` is the share of sessions with no click above."""
    _check(prior)
    pair, pairs, position, shown, _ = _cells(counts, "first_last_click_counts", _FIRST_LAST)
    above, n, k = _column(counts, "above_first"), len(pairs), int(position.max()) + 1
    alpha = _ratio(_sum(pair, _column(counts, "first_clicks"), n), _sum(pair, above, n), prior)
    examination = _sum(position, above, k) / _sum(position, shown, k)
    return FittedClickModel("cascade", pairs, alpha, None, _sum(pair, shown, n), examination, np.empty(0))


def fit_sdbn(counts: pa.Table, patterns: pa.Table, *, prior: Prior = (1.0, 1.0)) -> FittedClickModel:
    """Simplified DBN in closed form over fetched `first_last_click_counts`: ``alpha`` = clicks /
    impressions at or above the last click, ``sigma`` = last clicks / clicks.

    ``patterns`` (`click_pattern_counts` of the same sessions) only serve ``examination``.
    """
    _check(prior)
    pair, pairs, _, shown, clicked = _cells(counts, "first_last_click_counts", _FIRST_LAST)
    n = len(pairs)
    clicks = _sum(pair, clicked, n)
    alpha = _ratio(clicks, _sum(pair, _column(counts, "above_last"), n), prior)
    sigma = _ratio(_sum(pair, _column(counts, "last_clicks"), n), clicks, prior)
    fitted = FittedClickModel("sdbn", pairs, alpha, sigma, _sum(pair, shown, n), np.empty(0), np.ones(1))
    return replace(fitted, examination=average_examination(fitted, _aligned(patterns, pairs)))


def fit_dcm(
    counts: pa.Table,
    patterns: pa.Table,
    *,
    prior: Prior = (1.0, 1.0),
    max_iter: int = 500,
    tol: float = 1e-6,
) -> FittedClickModel:
    """DCM: the closed form over `first_last_click_counts`, refined by EM over `click_pattern_counts`.

    ``max_iter=0`` keeps the closed form: ``alpha`` = clicks / impressions at or above the last
    click, ``lambda[r]`` = 1 - last clicks / clicks at ``r`` (leaving out clicks on a session's
    final position, which say nothing about going on).
    """
    _check(prior, max_iter, tol)
    pair, pairs, position, shown, clicked = _cells(counts, "first_last_click_counts", _FIRST_LAST)
    n, k = len(pairs), int(position.max()) + 1
    alpha = _ratio(_sum(pair, clicked, n), _sum(pair, _column(counts, "above_last"), n), prior)
    went_on = _sum(position, clicked - _column(counts, "last_clicks"), k)
    lam = _ratio(went_on, _sum(position, clicked - _column(counts, "final_clicks"), k), prior)
    pm = _aligned(patterns, pairs)
    trials, by_pair = pm.per_rank(pm.clicked & (np.arange(k)[:, None] < pm.length - 1)), _impressions(pm, n)
    blocks, its, ok = pm.blocks(), 0, max_iter == 0
    for its in range(1, max_iter + 1):  # noqa: B007 (reported)
        attracted, went_on = _total(_dcm_step(b, alpha, lam) for b in blocks)
        new_alpha, new_lam = _ratio(attracted, by_pair, prior), _ratio(went_on, trials, prior)
        alpha, lam, ok = new_alpha, new_lam, _close(tol, (new_alpha, alpha), (new_lam, lam))
        if ok:
            break
    fitted = FittedClickModel(
        "dcm", pairs, alpha, None, _sum(pair, shown, n), np.empty(0), lam, None, its, ok
    )
    return replace(fitted, examination=average_examination(fitted, pm))


def fit_dbn(
    patterns: pa.Table, *, prior: Prior = (1.0, 1.0), max_iter: int = 500, tol: float = 1e-6
) -> FittedClickModel:
    """Full DBN by EM over fetched `click_pattern_counts`, started from the SDBN closed form."""
    _check(prior, max_iter, tol)
    index, pairs = encode_pairs(*flat_pattern_pairs(patterns))
    if len(pairs) == 0:
        raise ValueError("patterns: no sessions, so nothing to fit; are there any sessions in clicks?")
    pm = pattern_matrices(patterns, index)
    n, (k, rows) = len(pairs), pm.pair.shape
    rank, flat_pair, flat_w = np.arange(k)[:, None], pm.flat(pm.pair), pm.flat(pm.weight)
    by_pair, has_click = _impressions(pm, n), pm.last >= 0
    clicks = _sum(flat_pair, pm.flat(pm.clicked) * flat_w, n)
    sigma_trials = _sum(flat_pair, pm.flat(pm.clicked & (rank < pm.length - 1)) * flat_w, n)
    above = (rank <= pm.last) | ~has_click  # start from the SDBN closed form
    alpha = _ratio(clicks, _sum(flat_pair, pm.flat(above) * flat_w, n), prior)
    at_last = pm.pair[np.maximum(pm.last, 0), np.arange(rows)]
    sigma = _ratio(_sum(at_last[has_click], pm.weight[has_click], n), clicks, prior)
    gamma, blocks, its, ok = 0.9, pm.blocks(), 0, max_iter == 0
    for its in range(1, max_iter + 1):  # noqa: B007 (reported)
        attracted, satisfied, moves = _total(_dbn_step(b, alpha, sigma, gamma) for b in blocks)
        new_alpha, new_sigma = _ratio(attracted, by_pair, prior), _ratio(satisfied, sigma_trials, prior)
        new_gamma = float(_ratio(moves[:1], moves[1:], prior)[0])  # went on / had the chance
        ok = _close(tol, (new_alpha, alpha), (new_sigma, sigma), (np.array([new_gamma]), np.array([gamma])))
        alpha, sigma, gamma = new_alpha, new_sigma, new_gamma
        if ok:
            break
    fitted = FittedClickModel(
        "dbn", pairs, alpha, sigma, by_pair, np.empty(0), np.array([gamma]), None, its, ok
    )
    return replace(fitted, examination=average_examination(fitted, pm))


def _dcm_step(b: PatternMatrices, alpha: FloatArray, lam: FloatArray) -> tuple[FloatArray, FloatArray]:
    """E-step of DCM on a block: expected attractions per pair, and going on after a click per rank."""
    k, rows = b.pair.shape
    a, rank = b.gather(alpha), np.arange(k)[:, None]
    e, _ = _top_down_posterior(a, np.broadcast_to(lam[:k, None], a.shape), 1.0, b)
    attracted = _sum(b.flat(b.pair), b.flat(_attracted(a, e, b) * b.weight), len(alpha))
    below = np.vstack([e, np.zeros((1, rows))])[b.last + 1, np.arange(rows)]  # went on after the last
    went_on = np.where(rank < b.last, 1.0, np.where(rank == b.last, below, 0.0))
    return attracted, b.per_rank(went_on * (b.clicked & (rank < b.length - 1)))


def _dbn_step(
    b: PatternMatrices, alpha: FloatArray, sigma: FloatArray, gamma: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """E-step of DBN on a block: expected attractions and satisfactions per pair, and (expected
    moves to the next rank, chances to make one) for gamma."""
    k, rows = b.pair.shape
    a, at_last = b.gather(alpha), b.pair[np.maximum(b.last, 0), np.arange(rows)]
    e, tail = _top_down_posterior(a, gamma * (1.0 - b.gather(sigma)), gamma, b)
    attracted = _sum(b.flat(b.pair), b.flat(_attracted(a, e, b) * b.weight), len(alpha))
    informative = (b.last >= 0) & (b.last < b.length - 1)  # the last click has a rank below it
    satisfied = np.where(informative, sigma[at_last] / np.maximum(tail, _TINY), 0.0)  # P(S = 1 there)
    went_on = b.per_rank(e[1:]).sum()
    chances = b.per_rank(e * (np.arange(k)[:, None] < b.length - 1)).sum()
    chances -= np.einsum("r,r->", b.weight, satisfied)  # satisfied users had no chance to go on
    return attracted, _sum(at_last, b.weight * satisfied, len(alpha)), np.array([went_on, chances])


def _total(steps: Iterable[tuple[FloatArray, ...]]) -> list[FloatArray]:
    """Element-wise sums of the blocks' E-step statistics."""
    return [np.sum(part, axis=0) for part in zip(*steps, strict=True)]


def _impressions(pm: PatternMatrices, n: int) -> FloatArray:
    return _sum(pm.flat(pm.pair), pm.flat(pm.weight), n)


def _position_em(
    pair: IntArray,
    n_pairs: int,
    cell: IntArray,
    n_cells: int,
    shown: FloatArray,
    clicked: FloatArray,
    prior: Prior,
    max_iter: int,
    tol: float,
) -> tuple[FloatArray, FloatArray, int, bool]:
    """EM for ``P(click) = alpha[pair] * exam[cell]`` over aggregated (impressions, clicks).

    After each step ``exam`` is divided (and ``alpha`` multiplied) by the largest ``exam`` of a
    cell with data: the likelihood is unchanged, and EM no longer drifts along that ridge.
    """
    alpha, exam = np.full(n_pairs, 0.5), np.full(n_cells, 0.5)
    by_pair, by_cell, skipped = _sum(pair, shown, n_pairs), _sum(cell, shown, n_cells), shown - clicked
    seen = by_cell > 0
    its, ok = 0, max_iter == 0
    for its in range(1, max_iter + 1):  # noqa: B007 (reported)
        a, t = alpha[pair], exam[cell]
        missed = skipped / (1.0 - a * t)  # the posteriors given no click share this denominator
        new_alpha = _ratio(_sum(pair, clicked + missed * a * (1.0 - t), n_pairs), by_pair, prior)
        new_exam = _ratio(_sum(cell, clicked + missed * t * (1.0 - a), n_cells), by_cell, prior)
        scale = new_exam[seen].max()
        new_alpha, new_exam = new_alpha * scale, np.minimum(new_exam / scale, 1.0)
        ok = _close(tol, (new_alpha, alpha), (new_exam, exam))
        alpha, exam = new_alpha, new_exam
        if ok:
            break
    return alpha, exam, its, ok


def _top_down_posterior(
    a: FloatArray, kappa: FloatArray, rho: float, pm: PatternMatrices
) -> tuple[FloatArray, FloatArray]:
    """E-step of a top-down model: P(E_r = 1 | the whole session) per cell, and per pattern the
    probability of what follows its last click (of the whole session when there is none).

    ``kappa`` (per cell) and ``rho`` are P(go on) after a click and after a skip. Everything down
    to the last click is examined; ``below[r]`` = P(no click from r on | r examined) weighs the
    chance of having gone on below it.
    """
    k, rows = a.shape
    below = np.ones((k + 1, rows))  # a = 0 past a session's end keeps below = 1 there
    for r in range(k - 1, -1, -1):
        below[r] = (1.0 - a[r]) * (below[r + 1] if rho == 1.0 else 1.0 - rho + rho * below[r + 1])
    cols, last = np.arange(rows), pm.last
    after, rest = kappa[np.maximum(last, 0), cols], below[last + 1, cols]
    tail = np.where(last >= 0, 1.0 - after + after * rest, rest)
    first = np.where(last >= 0, after * rest / np.maximum(tail, _TINY), 1.0)  # P(E = 1 just below)
    examined = np.arange(k)[:, None] <= last
    if rho == 1.0:  # whoever goes on after the last click examines everything below it
        return np.where(examined, 1.0, first) * pm.valid, tail
    e = np.empty((k, rows))
    for r in range(k):
        further = e[r - 1] * rho * below[r] / np.maximum(1.0 - rho + rho * below[r], _TINY) if r else 0.0
        e[r] = np.where(examined[r], 1.0, np.where(r == last + 1, first, further))
    return e * pm.valid, tail


def _attracted(a: FloatArray, e: FloatArray, pm: PatternMatrices) -> FloatArray:
    """Posterior P(A = 1) per cell: 1 if clicked; if not, attracted only if it was not examined."""
    return np.where(pm.clicked, 1.0, (1.0 - e) * a)


def _fetch(expr: ibis.Table, backend: Any) -> pa.Table:
    table: pa.Table = expr.to_pyarrow() if backend is None else backend.to_pyarrow(expr)
    return table


def _cells(
    counts: pa.Table, kind: str, columns: tuple[str, ...]
) -> tuple[IntArray, pa.Table, IntArray, FloatArray, FloatArray]:
    """Pair index, distinct pairs, position, impressions and clicks of a fetched counts table."""
    required = ("query_id", "item_id", "position", *columns)
    if not isinstance(counts, pa.Table) or not set(required) <= set(counts.column_names):
        found = counts.column_names if isinstance(counts, pa.Table) else type(counts).__name__
        raise ValueError(
            f"counts: expected {kind}(clicks) as a pyarrow.Table with {list(required)}, found {found}"
        )
    if counts.num_rows == 0:
        raise ValueError("counts: no rows, so nothing to fit; are there any sessions in clicks?")
    pair, pairs = encode_pairs(counts.column("query_id"), counts.column("item_id"))
    position = _column(counts, "position").astype(np.int64)
    return pair, pairs, position, _column(counts, "impressions"), _column(counts, "clicks")


def _column(table: pa.Table, name: str) -> FloatArray:
    return np.asarray(table.column(name).to_numpy(), dtype=np.float64)


def _sum(index: IntArray, values: FloatArray, n: int) -> FloatArray:
    return np.asarray(np.bincount(index, weights=values, minlength=n), dtype=np.float64)


def _ratio(successes: FloatArray, trials: FloatArray, prior: Prior) -> FloatArray:
    """``(successes + a) / (trials + a + b)``: the posterior mode under Beta(a + 1, b + 1)."""
    a, b = prior
    return np.asarray((successes + a) / (trials + a + b), dtype=np.float64)


def _check(prior: Prior, max_iter: int = 0, tol: float = 1.0) -> None:
    try:
        ok = len(prior) == 2 and all(np.isfinite(float(x)) and float(x) > 0 for x in prior)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"prior: expected two positive pseudo-counts (successes, failures), found {prior!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter: expected a number of EM iterations >= 0, found {max_iter!r}")
    if not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(
            f"tol: expected a positive change in any parameter below which EM stops, found {tol!r}"
        )


def _close(tol: float, *pairs: tuple[FloatArray, FloatArray]) -> bool:
    return all(float(np.abs(new - old).max(initial=0.0)) < tol for new, old in pairs)


def _aligned(patterns: pa.Table, pairs: pa.Table) -> PatternMatrices:
    row = lookup_pairs(pairs, *flat_pattern_pairs(patterns))
    if np.any(row < 0):
        raise ValueError(
            "patterns: (query_id, item_id) pairs that counts does not have; compute both from the same clicks"
        )
    return pattern_matrices(patterns, row)
