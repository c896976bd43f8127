"""The pseudo-inverse slate estimator (Swaminathan et al., 2017) and the logging policy's slot x
item moments it needs, where revealed can compute them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from revealed.ope.slate.result import SlateEstimate
from revealed.ope.slate_arrays import FloatArray, IntArray

__all__ = ["PSEUDO_INVERSE_LOGGING", "SlatePseudoInverse", "SlotItemMoments", "slot_item_moments"]

PSEUDO_INVERSE_LOGGING = {
    "uniform": "exact: a uniformly random ordered slate of distinct candidates",
    "plackett_luce": "Monte Carlo from the logged candidate scores and temperature",
}


@dataclass(frozen=True)
class SlotItemMoments:
    """The logging policy's second moments ``E[1_s 1_s^T]`` over slot x item indicators, pseudo-
    inverted: ``pinv[g]`` for each context group ``g``, ``group[i]`` the group of slate ``i``."""

    pinv: FloatArray
    group: IntArray
    len_list: int
    n_candidates: int
    source: str


def _uniform_moments(k: int, c: int) -> FloatArray:
    slot = np.repeat(np.arange(k), c)
    item = np.tile(np.arange(c), k)
    same_slot = slot[:, None] == slot[None, :]
    same_item = item[:, None] == item[None, :]
    gamma = np.where(same_slot & same_item, 1.0 / c, 0.0)
    both = ~same_slot & ~same_item
    gamma[both] = 1.0 / (c * (c - 1)) if c > 1 else 0.0
    return gamma


def slot_item_moments(
    logging_policy: str,
    *,
    len_list: int,
    n_candidates: int,
    n_slates: int,
    scores: npt.ArrayLike | None = None,
    temperature: float | None = None,
    n_samples: int = 20_000,
    seed: int = 0,
) -> SlotItemMoments:
    """The logging policy's slot x item moments for `SlatePseudoInverse`, where they are known.

    ``"uniform"``: exact. ``"plackett_luce"``: by `n_samples` Gumbel-top-k draws per distinct row
    of `scores` ``(n_slates, n_candidates)`` at `temperature`. Any other policy is refused with
    the reason (its pairwise slot x item probabilities are not known to revealed).

    >>> slot_item_moments("uniform", len_list=2, n_candidates=3, n_slates=4).pinv.shape
    (1, 6, 6)
    """
    if len_list < 1 or n_candidates < len_list:
        raise ValueError(f"len_list: expected 1 <= len_list <= n_candidates={n_candidates}, found {len_list}")
    if logging_policy == "uniform":
        gamma = _uniform_moments(len_list, n_candidates)[None]
        group = np.zeros(n_slates, dtype=np.int64)
        return SlotItemMoments(
            np.linalg.pinv(gamma, hermitian=True).astype(np.float64), group, len_list, n_candidates, "exact"
        )
    if logging_policy == "plackett_luce":
        if scores is None or temperature is None or not temperature > 0:
            raise ValueError(
                "scores, temperature: the Plackett-Luce logging policy's moments need the logged "
                f"candidate scores and a temperature > 0, found temperature={temperature}"
            )
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (n_slates, n_candidates) or not np.all(np.isfinite(s)):
            raise ValueError(
                f"scores: expected finite scores of shape ({n_slates}, {n_candidates}), found {s.shape}"
            )
        logits = s / temperature
        logits = logits - logits.max(axis=1, keepdims=True)
        unique, inverse = np.unique(logits, axis=0, return_inverse=True)
        g, kc = len(unique), len_list * n_candidates
        gamma = np.zeros((g, kc, kc))
        rng = np.random.default_rng(seed)
        offset = np.arange(len_list) * n_candidates
        rows = np.arange(g)[:, None, None]
        for _ in range(n_samples):  # loops over draws, vectorised over distinct contexts
            top = np.argsort(-(unique + rng.gumbel(size=unique.shape)), axis=1)[:, :len_list]
            hot = top + offset  # (g, K) indices of the drawn slate's indicators
            gamma[rows, hot[:, :, None], hot[:, None, :]] += 1.0
        gamma /= n_samples
        pinv = np.linalg.pinv(gamma, hermitian=True).astype(np.float64)
        return SlotItemMoments(
            pinv, inverse.reshape(-1).astype(np.int64), len_list, n_candidates, "monte carlo"
        )
    raise ValueError(
        f"logging_policy: the pseudo-inverse estimator needs the logging policy's slot x item "
        f"marginals and their pairwise moments, known for {', '.join(map(repr, PSEUDO_INVERSE_LOGGING))}; "
        f"found {logging_policy!r}. Use SlateIndependentIPS (marginals only) or SlateStandardIPS instead"
    )


@dataclass(frozen=True)
class SlatePseudoInverse:
    """The pseudo-inverse estimator (Swaminathan et al., NeurIPS 2017).

    Per slate, ``r_i * theta_i^T Gamma_i^+ 1_{s_i}``: ``r_i`` the slate's summed reward,
    ``theta_i`` the evaluation policy's slot x item marginals ``(K, C)``
    (``SlatePropensities.marginals``), ``Gamma_i`` the logging policy's slot x item second moments
    (`slot_item_moments`, which refuses policies whose moments are unknown), ``1_{s_i}`` the
    indicator of the logged slate. Unbiased when the expected slate reward is a sum of slot x item
    terms, with a far smaller variance than standard IPS.
    """

    name: ClassVar[str] = "pi"

    def estimate(
        self,
        *,
        reward: npt.ArrayLike,
        action: npt.ArrayLike,
        evaluation_policy_marginals: npt.ArrayLike,
        moments: SlotItemMoments,
        alpha: float = 0.05,
    ) -> SlateEstimate:
        r = np.asarray(reward, dtype=np.float64)
        a = np.asarray(action)
        theta = np.asarray(evaluation_policy_marginals, dtype=np.float64)
        k, c = moments.len_list, moments.n_candidates
        if r.ndim == 2:
            r = r.sum(axis=1)
        n = len(r)
        if r.shape != (n,) or not np.all(np.isfinite(r)):
            raise ValueError(
                f"reward: expected finite rewards (n_slates, {k}) or per slate, found shape {r.shape}"
            )
        if a.shape != (n, k) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= c:
            raise ValueError(
                f"action: expected candidate indices in [0, {c}) of shape ({n}, {k}), found {a.shape}"
            )
        if theta.shape != (n, k, c):
            raise ValueError(
                f"evaluation_policy_marginals: expected shape ({n}, {k}, {c}), found {theta.shape}"
            )
        if moments.group.shape != (n,):
            raise ValueError(f"moments: expected moments for {n} slates, found {moments.group.shape[0]}")
        hot = a.astype(np.int64) + np.arange(k) * c  # (n, K)
        # Gamma^+ 1_s: the sum of the K columns of the slate's indicators (n, K*C)
        pinv = moments.pinv
        if len(pinv) == 1:
            cols = pinv[0][:, hot].transpose(1, 2, 0).sum(axis=1)
        else:
            cols = pinv[moments.group[:, None], :, hot].sum(axis=1)
        w = (theta.reshape(n, k * c) * cols).sum(axis=1)
        return SlateEstimate.from_rows(r * w, w, estimator=self.name, alpha=alpha)
