"""The arrays the slate estimators take, derived from logged slates and from a candidate's scores.

A slate of ``K`` slots is shown per decision; every array here is ``(n_slates, K)`` in display order
(Open Bandit Pipeline flattens the same numbers to ``n_slates * K`` rows; `SlatePropensities.flat`
gives that form). For one policy and the *logged* slates, `SlatePropensities` holds:

- ``pscore``: the joint probability of the whole slate, the product of the per-slot conditionals,
  repeated in every slot (OBP's ``pscore``);
- ``pscore_cascade``: the prefix probability of slots ``0..k``, their running product (OBP's
  ``pscore_cascade``);
- ``pscore_item_position``: the marginal P(this item in slot k) (OBP's ``pscore_item_position``),
  with ``item_position_se`` its Monte Carlo standard error (0 where exact);
- ``action_dist`` ``(n, K, C)``: P(candidate c in slot k | the logged items above), what
  Cascade-DR calls ``evaluation_policy_action_dist``; ``marginals`` ``(n, K, C)``: P(candidate c in
  slot k), what the pseudo-inverse estimator needs. Both only for policies given by scores.

The logging policy's numbers come from the logged ``items[].cond_propensity`` and
``items[].propensity`` (`logged_propensities`); the evaluation policy's from its scores over the
logged candidates, as a Plackett-Luce (softmax with temperature) or deterministic top-k ranking
(`plackett_luce_propensities`, `top_k_propensities`).

>>> cond = np.array([[0.5, 0.5, 1.0]])
>>> b = logged_propensities(cond, propensity=np.array([[0.5, 0.5, 0.5]]))
>>> b.pscore.tolist(), b.pscore_cascade.tolist()
([[0.25, 0.25, 0.25]], [[0.5, 0.25, 0.25]])
>>> e = top_k_propensities(np.array([[2.0, 1.0, 0.0]]), order=np.array([[0, 2, 1]]))
>>> e.pscore_cascade.tolist(), e.pscore_item_position.tolist()
([[1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LoggedSlates",
    "SlatePropensities",
    "logged_propensities",
    "plackett_luce_propensities",
    "slates_from_decisions",
    "top_k_propensities",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SlatePropensities:
    """One policy's probabilities of the logged slates, ``(n_slates, K)`` each (see the module)."""

    pscore: FloatArray
    pscore_cascade: FloatArray
    pscore_item_position: FloatArray
    item_position_se: FloatArray
    action_dist: FloatArray | None = None
    marginals: FloatArray | None = None

    def flat(self, prefix: str = "") -> dict[str, FloatArray]:
        """OBP's flat arrays (``n_slates * K`` rows, slate-major), keyed with `prefix` prepended:
        ``flat("evaluation_policy_")`` gives ``evaluation_policy_pscore`` and its siblings."""
        out = {
            f"{prefix}pscore": self.pscore.ravel(),
            f"{prefix}pscore_cascade": self.pscore_cascade.ravel(),
            f"{prefix}pscore_item_position": self.pscore_item_position.ravel(),
        }
        if self.action_dist is not None:
            out[f"{prefix}action_dist"] = self.action_dist.ravel()
        return out


def _matrix(name: str, value: npt.ArrayLike, *, ndim: int = 2) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array (slates x slots), found shape {array.shape}")
    return array


def _order(order: npt.ArrayLike, n: int, c: int) -> IntArray:
    out = np.asarray(order)
    if out.ndim != 2 or out.shape[0] != n or not np.issubdtype(out.dtype, np.integer):
        raise ValueError(
            f"order: expected integer candidate indices of shape ({n}, len_list), "
            f"found {out.dtype} of shape {out.shape}"
        )
    if out.shape[1] > c or (out.size and (out.min() < 0 or out.max() >= c)):
        raise ValueError(f"order: expected at most {c} slots holding indices in [0, {c}), found {out.shape}")
    sorted_ = np.sort(out, axis=1)
    if np.any(sorted_[:, 1:] == sorted_[:, :-1]):
        raise ValueError("order: expected distinct candidates within a slate, found a repeat")
    return out.astype(np.int64)


def logged_propensities(
    cond_propensity: npt.ArrayLike, *, propensity: npt.ArrayLike | None = None, evaluation: bool = False
) -> SlatePropensities:
    """The logging policy's arrays from the logged ``items[].cond_propensity`` (and the marginal
    ``items[].propensity`` when logged; NaN where it was not, so the independent-IPS estimator
    refuses rather than guesses). With `evaluation`, the conditionals are another policy's on
    the logged slates, and may be 0.

    >>> logged_propensities([[0.5, 1.0]]).pscore_item_position.tolist()
    [[nan, nan]]
    """
    cond = _matrix("cond_propensity", cond_propensity)
    ok = ((cond >= 0) if evaluation else (cond > 0)) & (cond <= 1)
    if not np.all(ok):
        expected = "[0, 1]" if evaluation else "(0, 1] (the logging policy chose every logged item)"
        raise ValueError(f"cond_propensity: expected probabilities in {expected}, found {cond[~ok][0]}")
    cascade = np.cumprod(cond, axis=1).astype(np.float64)
    joint = np.repeat(cascade[:, -1:], cond.shape[1], axis=1)
    if propensity is None:
        marginal = np.full(cond.shape, np.nan)
    else:
        marginal = _matrix("propensity", propensity)
        if marginal.shape != cond.shape:
            raise ValueError(
                f"propensity: expected the shape of cond_propensity {cond.shape}, found {marginal.shape}"
            )
        known = marginal[~np.isnan(marginal)]
        if not np.all(((known >= 0) if evaluation else (known > 0)) & (known <= 1)):
            raise ValueError("propensity: expected marginal probabilities in (0, 1] or NaN where unknown")
    return SlatePropensities(joint, cascade, marginal, np.zeros(cond.shape))


def _scores(scores: npt.ArrayLike) -> FloatArray:
    out = _matrix("scores", scores)
    if not np.all(np.isfinite(out)):
        raise ValueError("scores: expected finite scores for every candidate (slates x candidates)")
    return out


def _conditionals(logits: FloatArray, order: IntArray, *, greedy: bool) -> tuple[FloatArray, FloatArray]:
    """Per slot, the distribution over candidates given the logged items above (n, K, C), and
    the probability of the logged item: softmax of what remains, or its argmax when `greedy`."""
    n, c = logits.shape
    k = order.shape[1]
    rows = np.arange(n)
    remaining = logits.copy()
    dist = np.zeros((n, k, c))
    for j in range(k):  # loops over slots, vectorised over slates
        if greedy:
            dist[rows, j, np.argmax(remaining, axis=1)] = 1.0
        else:
            top = remaining.max(axis=1, keepdims=True)
            weight = np.exp(remaining - top)
            dist[:, j] = weight / weight.sum(axis=1, keepdims=True)
        remaining[rows, order[:, j]] = -np.inf
    cond = np.take_along_axis(dist, order[:, :, None], axis=2)[:, :, 0]
    return dist, cond


def _from_conditionals(
    dist: FloatArray, cond: FloatArray, marginal: FloatArray, se: FloatArray, marginals: FloatArray | None
) -> SlatePropensities:
    cascade = np.cumprod(cond, axis=1).astype(np.float64)
    joint = np.repeat(cascade[:, -1:], cond.shape[1], axis=1)
    return SlatePropensities(joint, cascade, marginal, se, dist, marginals)


def top_k_propensities(scores: npt.ArrayLike, *, order: npt.ArrayLike) -> SlatePropensities:
    """A deterministic top-k ranking by `scores` ``(n, C)`` (ties to the lower candidate index),
    evaluated on the logged slates `order` ``(n, K)`` (candidate indices in display order).

    Every probability is exact. Given a logged prefix the policy would not have shown, the
    conditional is the best remaining candidate (the zero-temperature Plackett-Luce limit), so
    the prefix probability is 1 while the logged slate agrees with the top-k and 0 after.
    """
    s = _scores(scores)
    o = _order(order, *s.shape)
    dist, cond = _conditionals(s, o, greedy=True)
    k = o.shape[1]
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    marginal = (top == o).astype(np.float64)
    full = np.zeros(dist.shape)
    full[np.arange(len(s))[:, None], np.arange(k)[None, :], top] = 1.0
    return _from_conditionals(dist, cond, marginal, np.zeros(o.shape), full)


def plackett_luce_propensities(
    scores: npt.ArrayLike,
    *,
    order: npt.ArrayLike,
    temperature: float,
    n_samples: int = 1_000,
    seed: int = 0,
) -> SlatePropensities:
    """A Plackett-Luce ranking with P proportional to exp(score / temperature), evaluated on the
    logged slates `order` ``(n, K)`` over the candidates of `scores` ``(n, C)``.

    The conditionals, prefix and joint probabilities of the logged slates are exact; the per-slot
    marginals are exact in the top slot and estimated below it from `n_samples` Gumbel-top-k draws
    per distinct row of scores (decisions of the same query share them), by importance sampling
    that never gives 0 to a candidate that can be shown, with their standard error in
    ``item_position_se``.

    >>> e = plackett_luce_propensities(np.log([[2.0, 1.0, 1.0]]), order=np.array([[0, 1]]),
    ...                                temperature=1.0)
    >>> e.pscore_cascade.round(3).tolist(), float(e.pscore_item_position[0, 0])
    ([[0.5, 0.25]], 0.5)
    """
    s = _scores(scores)
    if not temperature > 0:
        raise ValueError(
            f"temperature: expected a number > 0 (use top_k_propensities for 0), found {temperature}"
        )
    if n_samples < 1:
        raise ValueError(f"n_samples: expected a positive number of Monte Carlo draws, found {n_samples}")
    o = _order(order, *s.shape)
    logits = s / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    dist, cond = _conditionals(logits, o, greedy=False)
    k = o.shape[1]
    unique, inverse = np.unique(logits, axis=0, return_inverse=True)
    mean, var = _plackett_luce_marginals(unique, k, n_samples, np.random.default_rng(seed))
    inverse = inverse.reshape(-1)
    full = mean[inverse]
    marginal = np.take_along_axis(full, o[:, :, None], axis=2)[:, :, 0]
    se = np.sqrt(np.take_along_axis(var[inverse], o[:, :, None], axis=2)[:, :, 0] / n_samples)
    return _from_conditionals(dist, cond, marginal, se, full)


def _plackett_luce_marginals(
    logits: FloatArray, k: int, n_samples: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """P(candidate c in slot j) (g, K, C) for each row of `logits` and the per-draw variance.

    For each candidate c, prefixes are drawn from Plackett-Luce *without* c and reweighted to
    Plackett-Luce with c (the step ratio is (W - w_c - S) / (W - S), S the prefix's weight); the
    draw's value at slot j is that weight times P(c next | prefix) = w_c / (W - S). The estimate
    is unbiased and positive for every candidate, even one that almost always sits above slot j,
    and exact at the top slot."""
    g, c = logits.shape
    weight = np.exp(logits)
    total = weight.sum(axis=1)
    mean, var = np.zeros((g, k, c)), np.zeros((g, k, c))
    batch = max(1, min(n_samples, 2_000_000 // max(g * c, 1)))
    for item in range(c):  # loops over candidates and batches of draws, vectorised over contexts
        masked = logits.copy()
        masked[:, item] = -np.inf
        w_c = weight[:, item]
        sums, squares = np.zeros((g, k)), np.zeros((g, k))
        for start in range(0, n_samples, batch):
            m = min(batch, n_samples - start)
            prefix = np.argsort(-(masked[None] + rng.gumbel(size=(m, g, c))), axis=2)[:, :, : max(k - 1, 0)]
            taken = np.zeros((m, g))
            ratio = np.ones((m, g))
            for j in range(k):
                left = total[None] - taken
                value = ratio * w_c[None] / left
                sums[:, j] += value.sum(axis=0)
                squares[:, j] += (value**2).sum(axis=0)
                if j < k - 1:
                    ratio = ratio * (left - w_c[None]) / left
                    taken = (
                        taken
                        + np.take_along_axis(weight[None].repeat(m, 0), prefix[:, :, j : j + 1], 2)[:, :, 0]
                    )
        mean[:, :, item] = sums / n_samples
        var[:, :, item] = np.maximum(squares / n_samples - mean[:, :, item] ** 2, 0.0)
    return mean, var


@dataclass(frozen=True)
class LoggedSlates:
    """Logged slates as ``(n_slates, K)`` arrays, candidates as ``(n_slates, C)`` arrays.

    ``order[i, k]`` is the index in ``candidate_id[i]`` of the item shown in slot ``k``;
    ``propensity`` is NaN where the decision did not log the marginal."""

    decision_id: npt.NDArray[np.object_]
    item_id: npt.NDArray[np.object_]
    order: IntArray
    cond_propensity: FloatArray
    propensity: FloatArray
    candidate_id: npt.NDArray[np.object_]
    candidate_score: FloatArray

    @property
    def logging(self) -> SlatePropensities:
        """The logging policy's arrays (`logged_propensities`)."""
        return logged_propensities(self.cond_propensity, propensity=self.propensity)


def _fixed_lists(table: pa.Table, column: str) -> tuple[pa.Table, int]:
    lists = table.column(column).combine_chunks()
    if lists.null_count:
        raise ValueError(f"{column}: expected a list on every decision, found {lists.null_count} missing")
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != lengths.max() or lengths.min() == 0):
        raise ValueError(
            f"{column}: expected the same non-zero number per decision, found {lengths.min()} to "
            f"{lengths.max()}; evaluate slates of each length separately"
        )
    width = int(lengths[0]) if len(lengths) else 0
    return pa.Table.from_struct_array(pc.list_flatten(lists)), width


def slates_from_decisions(decisions: pa.Table) -> LoggedSlates:
    """The logged slates of decisions in the v1 contract (``items`` in display order, each with
    ``cond_propensity``; ``candidates`` the items that could have been shown, with scores).

    Every decision must show the same number of items from the same number of candidates, and
    every shown item must be one of its candidates."""
    for column in ("decision_id", "items", "candidates"):
        if column not in decisions.column_names:
            raise ValueError(f"decisions: expected a column {column!r}, found {decisions.column_names}")
    items, k = _fixed_lists(decisions, "items")
    candidates, c = _fixed_lists(decisions, "candidates")
    n = decisions.num_rows
    if "cond_propensity" not in items.column_names or items.column("cond_propensity").null_count:
        raise ValueError(
            "items[].cond_propensity: expected P(item in slot | items above) on every shown item; "
            "log it from the sampler (the joint alone does not give the prefix probabilities)"
        )
    item_id = np.asarray(items.column("item_id").to_numpy(zero_copy_only=False), dtype=object).reshape(n, k)
    cand_id = np.asarray(candidates.column("item_id").to_numpy(zero_copy_only=False), dtype=object)
    cand_id = cand_id.reshape(n, c)
    match = item_id[:, :, None] == cand_id[:, None, :]
    if not match.any(axis=2).all():
        i, j = np.argwhere(~match.any(axis=2))[0]
        raise ValueError(
            f"items: expected every shown item among the decision's candidates, found {item_id[i, j]!r} "
            f"missing from the candidates of decision {decisions.column('decision_id')[int(i)]}"
        )
    order = match.argmax(axis=2).astype(np.int64)
    cond = items.column("cond_propensity").to_numpy(zero_copy_only=False).astype(np.float64).reshape(n, k)
    if "propensity" in items.column_names:
        prop = items.column("propensity").fill_null(np.nan).to_numpy(zero_copy_only=False)
        propensity = prop.astype(np.float64).reshape(n, k)
    else:
        propensity = np.full((n, k), np.nan)
    if "score" in candidates.column_names:
        score = candidates.column("score").fill_null(np.nan).to_numpy(zero_copy_only=False)
        cand_score = score.astype(np.float64).reshape(n, c)
    else:
        cand_score = np.full((n, c), np.nan)
    decision_id = np.asarray(decisions.column("decision_id").to_numpy(zero_copy_only=False), dtype=object)
    return LoggedSlates(decision_id, item_id, order, cond, propensity, cand_id, cand_score)
