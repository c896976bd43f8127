"""A fitted click model, and the probability it gives to sessions: log-likelihood and perplexity.

`FittedClickModel` holds what `revealed.bias.clickmodels` estimated; `FittedClickModel.evaluate`
scores held-out sessions from their `click_pattern_counts` (every model's likelihood is a
function of the ranking and the click pattern):

- ``log_likelihood``: natural log, summed over sessions, of ``prod_r P(C_r = c_r | C_<r)``,
  the probability of each session's clicks (Chuklin, Markov & de Rijke, 2015, sec. 5.1);
- ``conditional_perplexity[r]``: ``2 ** -mean(log2 P(C_r = c_r | C_<r))`` over the sessions
  with a rank ``r``, the click given the clicks above it;
- ``marginal_perplexity[r]``: the same with the full probability ``P(C_r = c_r)``, as Dupret &
  Piwowarski (2008) and Chuklin et al. (sec. 5.2) define perplexity. It cannot tell apart
  models that predict the same click rates per rank (PBM and UBM on PBM data, cascade and DCM on
  cascade data); the conditional one can, so model choice uses it.

Probabilities are clipped to ``[1e-6, 1 - 1e-6]``: an event a model deems impossible (a
second click under cascade) costs about 20 bits instead of an infinite perplexity. A (query,
item) pair absent from the training sessions gets the impression-weighted mean attractiveness
(and satisfaction).

>>> import numpy as np, pyarrow as pa
>>> pairs = pa.table({"query_id": ["q", "q"], "item_id": ["a", "b"]})
>>> model = FittedClickModel(
...     "pbm", pairs, alpha=np.array([0.5, 0.25]), sigma=None, impressions=np.array([1.0, 1.0]),
...     examination=np.array([1.0, 0.5]), continuation=np.empty(0),
... )
>>> one = {"query_id": ["q"], "items": [["a", "b"]], "clicks": [[True, False]], "sessions": [1]}
>>> result = model.evaluate(pa.table(one))
>>> bool(np.isclose(result.log_likelihood, np.log(0.5) + np.log(1 - 0.25 * 0.5)))
True
>>> result.conditional_perplexity.round(4).tolist()  # 2 ** -log2(0.5), 2 ** -log2(0.875)
[2.0, 1.1429]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import ibis
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from revealed.bias.click_counts import (
    PatternMatrices,
    click_pattern_counts,
    flat_pattern_pairs,
    lookup_pairs,
    pattern_matrices,
)

__all__ = [
    "CLICK_MODEL_NAMES",
    "ClickModelEvaluation",
    "FittedClickModel",
    "average_examination",
    "examination_probabilities",
]

FloatArray = npt.NDArray[np.float64]

#: every model `revealed.bias.clickmodels` fits, by short id
CLICK_MODEL_NAMES: Final = ("pbm", "cascade", "dcm", "ubm", "sdbn", "dbn")

_EPS: Final = 1e-6
_TINY: Final = 1e-300


@dataclass(frozen=True)
class ClickModelEvaluation:
    """How well a fitted model predicts held-out sessions (see the module docstring).

    Per-rank arrays cover the sessions long enough to have that rank; the ``mean_*`` properties
    average them over ranks, the usual single-number perplexity.
    """

    name: str
    sessions: int
    log_likelihood: float
    conditional_perplexity: FloatArray
    marginal_perplexity: FloatArray

    @property
    def mean_conditional_perplexity(self) -> float:
        return float(self.conditional_perplexity.mean())

    @property
    def mean_marginal_perplexity(self) -> float:
        return float(self.marginal_perplexity.mean())


@dataclass(frozen=True, eq=False)
class FittedClickModel:
    """A click model's parameters, estimated from one set of sessions.

    ``examination[r]``: PBM's ``theta``; for the other models the implied probability of
    examining rank ``r``, averaged over the training sessions given the clicks above them.
    ``examination_by_previous_click[r, r']``: UBM's ``gamma`` (``r'`` = previous click rank + 1,
    0 for none; NaN where ``r' > r``, cells no session reaches). ``continuation``: DCM's
    ``lambda`` per rank, ``(gamma,)`` for DBN, ``(1.0,)`` for SDBN, empty otherwise. ``alpha``,
    ``sigma`` (DBN, SDBN) and ``impressions`` are per row of ``pairs`` (``query_id``,
    ``item_id``); `relevance` returns them as one table.
    """

    name: str
    pairs: pa.Table = field(repr=False)
    alpha: FloatArray = field(repr=False)
    sigma: FloatArray | None = field(repr=False)
    impressions: FloatArray = field(repr=False)
    examination: FloatArray
    continuation: FloatArray
    examination_by_previous_click: FloatArray | None = field(default=None, repr=False)
    iterations: int = 0
    converged: bool = True

    def __post_init__(self) -> None:
        if self.name not in CLICK_MODEL_NAMES:
            raise ValueError(f"name: expected one of {list(CLICK_MODEL_NAMES)}, found {self.name!r}")
        if (self.sigma is None) == (self.name in ("sdbn", "dbn")):
            raise ValueError(
                f"sigma: {self.name!r} {'needs' if self.sigma is None else 'takes no'} satisfaction"
            )

    @property
    def default_attractiveness(self) -> float:
        """What an unseen (query, item) pair gets: the impression-weighted mean attractiveness."""
        return float(np.average(self.alpha, weights=self.impressions))

    @property
    def default_satisfaction(self) -> float:
        return 1.0 if self.sigma is None else float(np.average(self.sigma, weights=self.impressions))

    def attractiveness(self, query_id: str, item_id: str) -> float:
        """The fitted attractiveness of one pair (`default_attractiveness` for an unseen pair)."""
        row = lookup_pairs(self.pairs, pa.array([query_id]), pa.array([item_id]))[0]
        return float(self.alpha[row]) if row >= 0 else self.default_attractiveness

    def relevance(self) -> pa.Table:
        """Per pair: ``impressions``, ``attractiveness``, ``satisfaction`` and ``relevance``.

        Relevance is attractiveness times satisfaction for DBN and SDBN, attractiveness otherwise;
        ``satisfaction`` is null for the models without it.
        """
        sigma = pa.nulls(len(self.alpha), pa.float64()) if self.sigma is None else pa.array(self.sigma)
        return pa.table(
            {
                "query_id": self.pairs.column("query_id"),
                "item_id": self.pairs.column("item_id"),
                "impressions": pa.array(self.impressions.astype(np.int64)),
                "attractiveness": pa.array(self.alpha),
                "satisfaction": sigma,
                "relevance": pa.array(self.alpha if self.sigma is None else self.alpha * self.sigma),
            }
        )

    def evaluate(self, data: ibis.Table | pa.Table, backend: Any = None) -> ClickModelEvaluation:
        """Score held-out sessions: ``clicks`` aggregated on ``backend`` (by default the one the
        table is bound to), or `click_pattern_counts` already fetched as a pyarrow.Table."""
        if isinstance(data, ibis.Table):
            expr = click_pattern_counts(data)
            data = expr.to_pyarrow() if backend is None else backend.to_pyarrow(expr)
        row = lookup_pairs(self.pairs, *flat_pattern_pairs(data))
        pm = pattern_matrices(data, np.where(row >= 0, row, len(self.alpha)))  # unseen: the default
        if pm.pair.shape[0] > self.examination.shape[0]:
            raise ValueError(
                f"data: sessions have up to {pm.pair.shape[0]} positions, but the {self.name!r} model was "
                f"fitted on at most {self.examination.shape[0]}; fit it on sessions as long as these"
            )
        a = pm.gather(self.alpha, self.default_attractiveness)
        conditional, marginal = examination_probabilities(self, pm, a)
        log_p = _log_probability(a * conditional, pm)
        return ClickModelEvaluation(
            name=self.name,
            sessions=int(pm.weight.sum()),
            log_likelihood=float(pm.per_rank(log_p).sum()),
            conditional_perplexity=_perplexity(log_p, pm),
            marginal_perplexity=_perplexity(_log_probability(a * marginal, pm), pm),
        )


def average_examination(model: FittedClickModel, pm: PatternMatrices) -> FloatArray:
    """P(E_r = 1 | the clicks above r) per rank, averaged over the sessions of ``pm``."""
    conditional, _ = examination_probabilities(model, pm, pm.gather(model.alpha))
    return pm.per_rank(conditional * pm.valid) / pm.per_rank(pm.valid)


def examination_probabilities(
    model: FittedClickModel, pm: PatternMatrices, a: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """P(E_r = 1 | the clicks above r) and P(E_r = 1) per cell, given attractiveness ``a`` per cell."""
    k, rows = a.shape
    if model.name == "pbm":
        theta = np.broadcast_to(model.examination[:k, None], a.shape)
        return theta, theta
    if model.name == "ubm":
        gamma = model.examination_by_previous_click
        assert gamma is not None
        hits = np.where(pm.clicked, np.arange(1, k + 1)[:, None], 0)
        previous = np.zeros(a.shape, dtype=np.int64)
        previous[1:] = np.maximum.accumulate(hits, axis=0)[:-1]
        state = np.zeros((k + 1, rows))  # P(previous click rank + 1 = s) before rank r
        state[0] = 1.0
        marginal = np.empty(a.shape)
        for r in range(k):
            seen = state[: r + 1] * gamma[r, : r + 1, None]
            marginal[r] = seen.sum(axis=0)
            hit = seen * a[r]
            state[: r + 1] -= hit
            state[r + 1] = hit.sum(axis=0)
        return gamma[np.arange(k)[:, None], previous], marginal
    kappa, rho = _continuations(model, pm)
    conditional, marginal = np.ones(a.shape), np.ones(a.shape)
    for r in range(k - 1):
        b, ar = conditional[r], a[r]
        unseen = b * (1.0 - ar) / np.maximum(1.0 - ar * b, _TINY)  # P(E_r = 1 | no click at r)
        conditional[r + 1] = np.where(pm.clicked[r], kappa[r], rho[r] * unseen)
        marginal[r + 1] = marginal[r] * (ar * kappa[r] + (1.0 - ar) * rho[r])
    return conditional, marginal


def _continuations(model: FittedClickModel, pm: PatternMatrices) -> tuple[FloatArray, FloatArray]:
    """P(go on | click at r) and P(go on | examined, no click at r) per cell of a top-down model."""
    shape, k = pm.pair.shape, pm.pair.shape[0]
    if model.name == "cascade":
        return np.zeros(shape), np.ones(shape)
    if model.name == "dcm":
        return np.broadcast_to(model.continuation[:k, None], shape), np.ones(shape)
    assert model.sigma is not None  # sdbn and dbn, checked on construction
    gamma = float(model.continuation[0])
    return gamma * (1.0 - pm.gather(model.sigma, model.default_satisfaction)), np.full(shape, gamma)


def _log_probability(p: FloatArray, pm: PatternMatrices) -> FloatArray:
    """ln P(the observed click or skip) per cell, 0 past a session's end."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.where(pm.valid, np.log(np.where(pm.clicked, p, 1.0 - p)), 0.0)


def _perplexity(log_p: FloatArray, pm: PatternMatrices) -> FloatArray:
    bits = pm.per_rank(log_p) / np.log(2.0)
    return np.asarray(2.0 ** (-bits / pm.per_rank(pm.valid)), dtype=np.float64)
