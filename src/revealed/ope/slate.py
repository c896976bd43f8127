"""Off-policy estimators for slates and rankings, on Open Bandit Pipeline's slate arrays.

A logged slate ``i`` shows ``K`` items with a reward ``r[i, k]`` per slot (a click); the value of a
policy is the expected sum of slot rewards per slate. Each estimator reweights the logged rewards
by a ratio of the evaluation policy's to the logging policy's probability of *part* of the logged
slate, and is unbiased under the user model that makes that part enough:

=========================== ======== ============================================= ==========================
estimator                   id       weight of ``r[i, k]``                          unbiased when
=========================== ======== ============================================= ==========================
`SlateStandardIPS`          sips     joint probability of the whole slate           always (full support)
`SlateIndependentIPS`       iips     marginal P(item in slot k)                     r[k] depends on (item,
                                                                                    k) only: position-based
`SlateRewardInteractionIPS` rips     prefix probability of slots 0..k               r[k] depends on slots
                                                                                    0..k: cascade scanning
`SlateCascadeDoublyRobust`  cascade  prefix weights with a Q-function control       as RIPS, any ``q_hat``
                            -dr      variate (Kiyohara et al., WSDM 2022)
`SlatePseudoInverse`        pi       the logging policy's slot x item moment        the slate reward is a sum
                                     matrix, pseudo-inverted (Swaminathan 2017)     of slot x item terms
=========================== ======== ============================================= ==========================

Arrays are ``(n_slates, K)`` (``q_hat`` and ``evaluation_policy_action_dist`` ``(n_slates, K,
n_actions)``), or OBP's flat rows with ``slate_id`` and ``position`` (``n_slates * K`` rows; the
IPS estimators accept slates with missing rows as OBP does). `revealed.ope.slate_arrays` derives
them from logged ``cond_propensity`` and a candidate's scores. Each ``estimate`` returns a
`SlateEstimate`: the value, its standard error and normal interval over the per-slate terms
(which it keeps, so two policies can be compared pairwise on the same logs), and the effective
sample size of the per-slate mean weight. ``estimate_policy_value`` returns the float, as OBP does.

>>> reward = np.array([[1.0, 0.0], [0.0, 1.0]])
>>> b = np.array([[0.5, 0.25], [0.5, 0.25]])   # prefix probabilities under the logging policy
>>> e = np.array([[1.0, 1.0], [0.0, 0.0]])     # under a deterministic evaluation policy
>>> SlateRewardInteractionIPS().estimate(reward=reward, pscore_cascade=b,
...                                      evaluation_policy_pscore_cascade=e).value
1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from revealed.ope.slate_arrays import FloatArray, IntArray

__all__ = [
    "PSEUDO_INVERSE_LOGGING",
    "SlateCascadeDoublyRobust",
    "SlateEstimate",
    "SlateIndependentIPS",
    "SlatePseudoInverse",
    "SlateRewardInteractionIPS",
    "SlateStandardIPS",
    "SlotItemMoments",
    "slot_item_moments",
]

_RTOL: float = 1e-9


@dataclass(frozen=True)
class SlateEstimate:
    """A slate estimator's estimate of a policy's value (expected summed slot reward per slate).

    ``rows`` holds the per-slate terms whose mean is ``value``; ``se`` is their standard error and
    ``ci`` the normal interval at level ``1 - alpha``; ``ess`` the effective sample size
    ``(sum w)^2 / sum w^2`` of each slate's mean weight over its slots."""

    estimator: str
    value: float
    se: float
    ci: tuple[float, float]
    n_slates: int
    ess: float
    rows: FloatArray = field(repr=False)

    @classmethod
    def from_rows(
        cls, rows: FloatArray, weights: FloatArray, *, estimator: str, alpha: float
    ) -> SlateEstimate:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha: expected a significance level in (0, 1), found {alpha}")
        n = len(rows)
        if n == 0:
            raise ValueError("reward: expected at least one logged slate, found none")
        value = float(rows.mean())
        se = float(rows.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        z = float(stats.norm.ppf(1 - alpha / 2))
        w = weights.mean(axis=1) if weights.ndim == 2 else weights
        ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
        return cls(estimator, value, se, (value - z * se, value + z * se), n, ess, rows)


# -- input handling -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where OBP's flat rows go in the (n_slates, K) matrices."""

    slate: IntArray
    slot: IntArray
    shape: tuple[int, int]

    @classmethod
    def of(cls, slate_id: npt.ArrayLike, position: npt.ArrayLike | None, rows: int) -> _Layout:
        ids = np.asarray(slate_id)
        if ids.shape != (rows,):
            raise ValueError(f"slate_id: expected one id per row ({rows},), found shape {ids.shape}")
        if position is None:
            raise ValueError(
                "position: expected the slot of each row (0 = top) alongside slate_id, found None"
            )
        pos = np.asarray(position)
        if pos.shape != (rows,) or not np.issubdtype(pos.dtype, np.integer) or (rows and pos.min() < 0):
            raise ValueError(
                f"position: expected non-negative integer slots of shape ({rows},), "
                f"found {pos.dtype} of shape {pos.shape}"
            )
        _, slate = np.unique(ids, return_inverse=True)
        slate = slate.reshape(-1).astype(np.int64)
        k = int(pos.max()) + 1 if rows else 0
        shape = (int(slate.max()) + 1 if rows else 0, k)
        key = slate * max(k, 1) + pos
        if len(np.unique(key)) != rows:
            raise ValueError(
                "position: expected each slot at most once per slate, found a repeated (slate_id, position)"
            )
        return cls(slate, pos.astype(np.int64), shape)

    def matrix(self, name: str, value: npt.ArrayLike, fill: float) -> FloatArray:
        flat = np.asarray(value, dtype=np.float64)
        if flat.shape != self.slate.shape:
            raise ValueError(
                f"{name}: expected one value per row {self.slate.shape}, found shape {flat.shape}"
            )
        out = np.full(self.shape, fill)
        out[self.slate, self.slot] = flat
        return out

    def cube(self, name: str, value: npt.ArrayLike, n_actions: int | None) -> FloatArray:
        flat = np.asarray(value, dtype=np.float64)
        if flat.ndim == 1:
            if n_actions is None or flat.size != self.slate.size * n_actions:
                raise ValueError(
                    f"{name}: expected n_rows * n_unique_action = {self.slate.size} * {n_actions} values "
                    f"(set n_unique_action), found {flat.size}"
                )
            flat = flat.reshape(self.slate.size, n_actions)
        if flat.ndim != 2 or flat.shape[0] != self.slate.size:
            raise ValueError(f"{name}: expected ({self.slate.size}, n_actions), found shape {flat.shape}")
        out = np.full((*self.shape, flat.shape[1]), np.nan)
        out[self.slate, self.slot] = flat
        return out

    @property
    def complete(self) -> bool:
        return self.slate.size == self.shape[0] * self.shape[1]


def _check_matrix(name: str, value: FloatArray, shape: tuple[int, ...] | None) -> FloatArray:
    if value.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-d array (slates x slots), or flat rows with slate_id and position; "
            f"found shape {value.shape}"
        )
    if shape is not None and value.shape != shape:
        raise ValueError(f"{name}: expected the shape of reward {shape}, found {value.shape}")
    return value


def _matrices(
    arrays: dict[str, npt.ArrayLike],
    slate_id: npt.ArrayLike | None,
    position: npt.ArrayLike | None,
) -> tuple[dict[str, FloatArray], FloatArray, _Layout | None]:
    """The arrays as (n_slates, K) matrices and a mask of the rows that were logged."""
    if slate_id is None:
        out: dict[str, FloatArray] = {}
        shape: tuple[int, ...] | None = None
        for name, value in arrays.items():
            out[name] = _check_matrix(name, np.asarray(value, dtype=np.float64), shape)
            shape = out[name].shape
        assert shape is not None
        return out, np.ones(shape), None
    first = np.asarray(next(iter(arrays.values())))
    if first.ndim != 1:
        raise ValueError(f"reward: expected flat rows (n_rows,) with slate_id, found shape {first.shape}")
    layout = _Layout.of(slate_id, position, len(first))
    mask = layout.matrix("slate_id", np.ones(len(first)), 0.0)
    return {name: layout.matrix(name, value, np.nan) for name, value in arrays.items()}, mask, layout


def _check_reward(reward: FloatArray, mask: FloatArray) -> None:
    if not np.all(np.isfinite(reward[mask > 0])):
        raise ValueError("reward: expected finite slot rewards, found NaN or infinity")


def _check_pscore(name: str, value: FloatArray, mask: FloatArray, *, behaviour: bool) -> None:
    v = value[mask > 0]
    ok = (v > 0) & (v <= 1) if behaviour else (v >= 0) & (v <= 1)
    if not np.all(ok):
        bad = v[~ok][0]
        if behaviour and np.isnan(bad):
            hint = "; the marginal was not logged: compute it (slate_arrays) or use another estimator"
        elif behaviour:
            hint = " (the logging policy chose every logged slate, so its probability is positive)"
        else:
            hint = ""
        raise ValueError(
            f"{name}: expected probabilities in {'(0, 1]' if behaviour else '[0, 1]'}, found {bad}{hint}"
        )


def _check_joint(name: str, value: FloatArray, mask: FloatArray) -> None:
    """The joint is one number per slate, repeated in its slots (OBP: unique in each slate)."""
    filled = np.where(mask > 0, value, np.nan)
    if not np.allclose(np.nanmax(filled, axis=1), np.nanmin(filled, axis=1), rtol=_RTOL, atol=0):
        raise ValueError(
            f"{name}: expected the probability of the whole slate, equal in every slot of a slate, found "
            "it varying; prefix probabilities go to SlateRewardInteractionIPS (pscore_cascade)"
        )


def _check_cascade(name: str, value: FloatArray, mask: FloatArray) -> None:
    """A prefix probability cannot grow as the prefix gets longer."""
    if value.shape[1] > 1 and mask.all() and np.any(np.diff(value, axis=1) > _RTOL * value[:, :-1]):
        raise ValueError(
            f"{name}: expected prefix probabilities of slots 0..k, non-increasing along the slots, "
            "found one that grows; pass the running product of cond_propensity"
        )


# -- the IPS family -------------------------------------------------------------------------------


def _ips(
    name: str,
    *,
    reward: npt.ArrayLike,
    behaviour: tuple[str, npt.ArrayLike],
    evaluation: tuple[str, npt.ArrayLike],
    slate_id: npt.ArrayLike | None,
    position: npt.ArrayLike | None,
    alpha: float,
    kind: Literal["joint", "cascade", "item_position"],
) -> SlateEstimate:
    m, mask, _ = _matrices(
        {"reward": reward, behaviour[0]: behaviour[1], evaluation[0]: evaluation[1]}, slate_id, position
    )
    r, b, e = m["reward"], m[behaviour[0]], m[evaluation[0]]
    _check_reward(r, mask)
    _check_pscore(behaviour[0], b, mask, behaviour=True)
    _check_pscore(evaluation[0], e, mask, behaviour=False)
    if kind == "joint":
        _check_joint(behaviour[0], b, mask)
        _check_joint(evaluation[0], e, mask)
    elif kind == "cascade":
        _check_cascade(behaviour[0], b, mask)
        _check_cascade(evaluation[0], e, mask)
    w = np.where(mask > 0, e / np.where(mask > 0, b, 1.0), 0.0)
    rows = (w * np.where(mask > 0, r, 0.0)).sum(axis=1)
    return SlateEstimate.from_rows(rows, w, estimator=name, alpha=alpha)


@dataclass(frozen=True)
class SlateStandardIPS:
    """Standard IPS: each slot's reward weighted by the ratio of whole-slate probabilities.

    Unbiased under any user model, with a variance that grows with the slate space.

    >>> SlateStandardIPS().estimate_policy_value(reward=[[1.0, 1.0]], pscore=[[0.25, 0.25]],
    ...                                          evaluation_policy_pscore=[[0.5, 0.5]])
    4.0
    """

    name: ClassVar[str] = "sips"
    len_list: int | None = None

    def estimate(
        self,
        *,
        reward: npt.ArrayLike,
        pscore: npt.ArrayLike,
        evaluation_policy_pscore: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        alpha: float = 0.05,
    ) -> SlateEstimate:
        return _ips(
            self.name,
            reward=reward,
            behaviour=("pscore", pscore),
            evaluation=("evaluation_policy_pscore", evaluation_policy_pscore),
            slate_id=slate_id,
            position=position,
            alpha=alpha,
            kind="joint",
        )

    def estimate_policy_value(
        self,
        *,
        reward: npt.ArrayLike,
        pscore: npt.ArrayLike,
        evaluation_policy_pscore: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
    ) -> float:
        return self.estimate(
            reward=reward,
            pscore=pscore,
            evaluation_policy_pscore=evaluation_policy_pscore,
            slate_id=slate_id,
            position=position,
        ).value


@dataclass(frozen=True)
class SlateIndependentIPS:
    """Independent IPS (Li et al. 2018): each slot's reward weighted by the ratio of the item's
    marginal probabilities of being in that slot.

    Unbiased when a slot's reward depends only on its item and position (a position-based
    model), whatever else the slate holds.

    >>> SlateIndependentIPS().estimate_policy_value(reward=[[1.0, 0.0]],
    ...     pscore_item_position=[[0.5, 0.5]], evaluation_policy_pscore_item_position=[[1.0, 1.0]])
    2.0
    """

    name: ClassVar[str] = "iips"
    len_list: int | None = None

    def estimate(
        self,
        *,
        reward: npt.ArrayLike,
        pscore_item_position: npt.ArrayLike,
        evaluation_policy_pscore_item_position: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        alpha: float = 0.05,
    ) -> SlateEstimate:
        return _ips(
            self.name,
            reward=reward,
            behaviour=("pscore_item_position", pscore_item_position),
            evaluation=("evaluation_policy_pscore_item_position", evaluation_policy_pscore_item_position),
            slate_id=slate_id,
            position=position,
            alpha=alpha,
            kind="item_position",
        )

    def estimate_policy_value(
        self,
        *,
        reward: npt.ArrayLike,
        pscore_item_position: npt.ArrayLike,
        evaluation_policy_pscore_item_position: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
    ) -> float:
        return self.estimate(
            reward=reward,
            pscore_item_position=pscore_item_position,
            evaluation_policy_pscore_item_position=evaluation_policy_pscore_item_position,
            slate_id=slate_id,
            position=position,
        ).value


@dataclass(frozen=True)
class SlateRewardInteractionIPS:
    """Reward-interaction IPS (McInerney et al. 2020): each slot's reward weighted by the ratio
    of the probabilities of the prefix of slots 0..k.

    Unbiased when a slot's reward depends on its item and the items above it only (users who
    scan down, as in the cascade, DCM and DBN models; the position-based model too).

    >>> SlateRewardInteractionIPS().estimate_policy_value(reward=[[1.0, 1.0]],
    ...     pscore_cascade=[[0.5, 0.25]], evaluation_policy_pscore_cascade=[[1.0, 0.5]])
    4.0
    """

    name: ClassVar[str] = "rips"
    len_list: int | None = None

    def estimate(
        self,
        *,
        reward: npt.ArrayLike,
        pscore_cascade: npt.ArrayLike,
        evaluation_policy_pscore_cascade: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        alpha: float = 0.05,
    ) -> SlateEstimate:
        return _ips(
            self.name,
            reward=reward,
            behaviour=("pscore_cascade", pscore_cascade),
            evaluation=("evaluation_policy_pscore_cascade", evaluation_policy_pscore_cascade),
            slate_id=slate_id,
            position=position,
            alpha=alpha,
            kind="cascade",
        )

    def estimate_policy_value(
        self,
        *,
        reward: npt.ArrayLike,
        pscore_cascade: npt.ArrayLike,
        evaluation_policy_pscore_cascade: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
    ) -> float:
        return self.estimate(
            reward=reward,
            pscore_cascade=pscore_cascade,
            evaluation_policy_pscore_cascade=evaluation_policy_pscore_cascade,
            slate_id=slate_id,
            position=position,
        ).value


# -- Cascade-DR -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlateCascadeDoublyRobust:
    """Cascade doubly robust (Kiyohara et al., WSDM 2022), OBP's ``SlateCascadeDoublyRobust``.

    Per slate, ``sum_k w[k] (r[k] - q_hat[k, a_k]) + w[k-1] sum_a pi_e(a | a_0..a_{k-1}) q_hat[k, a]``
    with ``w[k]`` the ratio of prefix probabilities (``w[-1] = 1``) and ``q_hat[k, a]`` an estimate
    of the expected reward of slots k.. given the logged prefix and ``a`` in slot ``k``. Unbiased
    under the same assumption as RIPS for any ``q_hat``; a good ``q_hat`` lowers the variance.
    ``action`` indexes the last axis of ``q_hat`` and ``evaluation_policy_action_dist`` (the
    logged candidates: ``LoggedSlates.order``); flat inputs need ``n_unique_action``.

    >>> est = SlateCascadeDoublyRobust()
    >>> est.estimate_policy_value(action=[[0]], reward=[[1.0]], pscore_cascade=[[0.5]],
    ...     evaluation_policy_pscore_cascade=[[0.5]], q_hat=[[[0.8, 0.2]]],
    ...     evaluation_policy_action_dist=[[[0.5, 0.5]]])
    0.7
    """

    name: ClassVar[str] = "cascade-dr"
    len_list: int | None = None
    n_unique_action: int | None = None

    def estimate(
        self,
        *,
        action: npt.ArrayLike,
        reward: npt.ArrayLike,
        pscore_cascade: npt.ArrayLike,
        evaluation_policy_pscore_cascade: npt.ArrayLike,
        q_hat: npt.ArrayLike,
        evaluation_policy_action_dist: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        alpha: float = 0.05,
    ) -> SlateEstimate:
        arrays = {
            "reward": reward,
            "action": action,
            "pscore_cascade": pscore_cascade,
            "evaluation_policy_pscore_cascade": evaluation_policy_pscore_cascade,
        }
        m, mask, layout = _matrices(arrays, slate_id, position)
        if layout is None:
            q = np.asarray(q_hat, dtype=np.float64)
            pi = np.asarray(evaluation_policy_action_dist, dtype=np.float64)
        else:
            if not layout.complete:
                raise ValueError(
                    "slate_id: Cascade-DR needs every slot of every slate (the prefix weights chain "
                    f"slot to slot), found {layout.slate.size} rows for {layout.shape[0]} slates x "
                    f"{layout.shape[1]} slots"
                )
            q = layout.cube("q_hat", q_hat, self.n_unique_action)
            pi = layout.cube(
                "evaluation_policy_action_dist", evaluation_policy_action_dist, self.n_unique_action
            )
        r, b, e = m["reward"], m["pscore_cascade"], m["evaluation_policy_pscore_cascade"]
        n, k = r.shape
        for name, cube in (("q_hat", q), ("evaluation_policy_action_dist", pi)):
            if cube.ndim != 3 or cube.shape[:2] != (n, k):
                raise ValueError(f"{name}: expected shape ({n}, {k}, n_actions), found {cube.shape}")
        if q.shape != pi.shape:
            raise ValueError(
                f"evaluation_policy_action_dist: expected the shape of q_hat {q.shape}, found {pi.shape}"
            )
        if not np.all(np.isfinite(q)):
            raise ValueError(
                "q_hat: expected finite estimates for every slot and action, found NaN or infinity"
            )
        if not (np.all(pi >= 0) and np.allclose(pi.sum(axis=2), 1.0, atol=1e-6)):
            raise ValueError(
                "evaluation_policy_action_dist: expected a distribution over actions in every slot "
                "(non-negative, summing to 1)"
            )
        a = m["action"]
        if not np.all((a == np.round(a)) & (a >= 0) & (a < q.shape[2])):
            raise ValueError(
                f"action: expected integer indices in [0, {q.shape[2]}) (the last axis of q_hat)"
            )
        _check_reward(r, mask)
        _check_pscore("pscore_cascade", b, mask, behaviour=True)
        _check_pscore("evaluation_policy_pscore_cascade", e, mask, behaviour=False)
        _check_cascade("pscore_cascade", b, mask)
        _check_cascade("evaluation_policy_pscore_cascade", e, mask)
        w = e / b
        w_prev = np.ones_like(w)
        w_prev[:, 1:] = w[:, :-1]
        q_logged = np.take_along_axis(q, a.astype(np.int64)[:, :, None], axis=2)[:, :, 0]
        q_expected = (pi * q).sum(axis=2)
        rows = (w * (r - q_logged) + w_prev * q_expected).sum(axis=1)
        return SlateEstimate.from_rows(rows, w, estimator=self.name, alpha=alpha)

    def estimate_policy_value(
        self,
        *,
        action: npt.ArrayLike,
        reward: npt.ArrayLike,
        pscore_cascade: npt.ArrayLike,
        evaluation_policy_pscore_cascade: npt.ArrayLike,
        q_hat: npt.ArrayLike,
        evaluation_policy_action_dist: npt.ArrayLike,
        slate_id: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
    ) -> float:
        return self.estimate(
            action=action,
            reward=reward,
            pscore_cascade=pscore_cascade,
            evaluation_policy_pscore_cascade=evaluation_policy_pscore_cascade,
            q_hat=q_hat,
            evaluation_policy_action_dist=evaluation_policy_action_dist,
            slate_id=slate_id,
            position=position,
        ).value


# -- pseudo-inverse -------------------------------------------------------------------------------

#: logging policies whose slot x item moments revealed can compute, and how
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
