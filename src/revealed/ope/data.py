"""The logged arrays in Open Bandit Pipeline's conventions, checked once, with cached gathers.

One round is one logged (impression, position) row: ``reward[i]``, ``action[i]``,
``position[i]`` (0 when absent) and ``pscore[i]``, the logging policy's probability of that
action there. ``action_dist`` and ``estimated_rewards_by_reg_model`` are
``(n_rounds, n_actions, len_list)``; the evaluation policy's probability of the logged action is
``action_dist[i, action[i], position[i]]``. Each gathered array (importance weights, the reward
model's prediction at the logged action, the direct-method term) is computed at most once per
`BanditData`, however many estimators use it.

>>> import numpy as np
>>> data = bandit_data(reward=np.array([1.0, 0.0]), action=np.array([0, 1]),
...                    pscore=np.array([0.5, 0.5]), action_dist=np.array([[[1.0], [0.0]], [[0.5], [0.5]]]))
>>> data.iw.tolist()
[2.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt

from revealed.errors import ValidationFailed
from revealed.ope.result import FloatArray
from revealed.ope.validate import (
    Validation,
    as_index,
    check_distribution,
    check_finite,
    check_index,
    check_probabilities,
    check_shape,
)

__all__ = ["BanditData", "bandit_data", "gather", "policy_average"]

#: rounds per chunk when a (n, n_actions) slice is materialised (the direct-method term)
CHUNK_ROWS: Final = 32_768


def gather(array: np.ndarray, action: np.ndarray, position: np.ndarray) -> FloatArray:
    """``array[i, action[i], position[i]]`` for every round, as float64 (one flat take when contiguous)."""
    n, n_actions, len_list = array.shape
    if array.flags.c_contiguous:
        flat = (np.arange(n, dtype=np.int64) * n_actions + action) * len_list + position
        taken: FloatArray = np.take(array.reshape(-1), flat).astype(np.float64, copy=False)
        return taken
    return np.asarray(array[np.arange(n), action, position], dtype=np.float64)


def policy_average(action_dist: np.ndarray, values: np.ndarray, position: np.ndarray) -> FloatArray:
    """sum_a pi(a | i, k_i) v(i, a, k_i) / sum_a pi(a | i, k_i): OBP's ``np.average`` of the
    values over the policy at each round's position, in chunks of rows (no n x n_actions copy)."""
    n, _, len_list = action_dist.shape
    out = np.empty(n)
    if len_list == 1:
        pi, q = action_dist[:, :, 0], values[:, :, 0]
        for start in range(0, n, CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            p = pi[rows]
            out[rows] = np.einsum("ij,ij->i", p, q[rows]) / p.sum(axis=1)
        return out
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        idx = np.arange(start, stop)
        p = action_dist[idx, :, position[start:stop]]
        out[start:stop] = np.einsum("ij,ij->i", p, values[idx, :, position[start:stop]]) / p.sum(axis=1)
    return out


@dataclass(frozen=True, eq=False)
class BanditData:
    """Checked arrays (build with `bandit_data`); gathered quantities are cached properties."""

    reward: FloatArray
    action: np.ndarray
    position: np.ndarray
    action_dist: np.ndarray
    pscore: FloatArray | None = None
    estimated_rewards_by_reg_model: np.ndarray | None = None
    pi_b: np.ndarray | None = None
    action_embed: np.ndarray | None = None
    p_e_a: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.reward)

    @property
    def n_actions(self) -> int:
        return int(self.action_dist.shape[1])

    @property
    def len_list(self) -> int:
        return int(self.action_dist.shape[2])

    def require(self, field: str, estimator: str) -> np.ndarray:
        value = getattr(self, field)
        if value is None:
            raise ValidationFailed(
                [f"{field}: estimator {estimator!r} needs it, found None"],
                hint=(
                    "fit one with revealed.ope.fit_reward_model (or pass context= to evaluate)"
                    if field == "estimated_rewards_by_reg_model"
                    else f"pass {field}= or drop {estimator!r}"
                ),
            )
        array: np.ndarray = value
        return array

    @cached_property
    def pi_e(self) -> FloatArray:
        """The evaluation policy's probability of the logged action at the logged position."""
        return gather(self.action_dist, self.action, self.position)

    @cached_property
    def iw(self) -> FloatArray:
        """Importance weights pi_e(a_i | x_i, k_i) / pscore_i."""
        pscore: FloatArray = self.require("pscore", "an importance-weighted estimator")
        weights: FloatArray = self.pi_e / pscore
        return weights

    @cached_property
    def q_factual(self) -> FloatArray:
        """The reward model's prediction at the logged action and position."""
        q = self.require("estimated_rewards_by_reg_model", "a model-based estimator")
        return gather(q, self.action, self.position)

    @cached_property
    def dm(self) -> FloatArray:
        """The direct-method term: the reward model averaged over the evaluation policy."""
        q = self.require("estimated_rewards_by_reg_model", "a model-based estimator")
        return policy_average(self.action_dist, q, self.position)


def _floats(name: str, values: npt.ArrayLike, n: int | None) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    check_shape(name, array, (n,))
    return array


def bandit_data(
    *,
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    action_dist: npt.ArrayLike,
    pscore: npt.ArrayLike | None = None,
    position: npt.ArrayLike | None = None,
    estimated_rewards_by_reg_model: npt.ArrayLike | None = None,
    pi_b: npt.ArrayLike | None = None,
    action_embed: npt.ArrayLike | None = None,
    p_e_a: npt.ArrayLike | None = None,
    validate: Validation = "sample",
) -> BanditData:
    """Check the arrays (see `revealed.ope.validate` for what `validate` covers) and wrap them."""
    if validate not in ("sample", "full", "none"):
        raise ValueError(f"validate: expected 'sample', 'full' or 'none', found {validate!r}")
    dist = np.asarray(action_dist)
    check_shape("action_dist", dist, (None, None, None))
    n, n_actions, len_list = dist.shape
    if n == 0:
        raise ValidationFailed(["action_dist: expected at least one round, found none"])
    rew = _floats("reward", reward, n)
    act = as_index("action", action)
    check_shape("action", act, (n,))
    pos = np.zeros(n, dtype=np.int64) if position is None else as_index("position", position)
    check_shape("position", pos, (n,))
    if validate != "none":
        check_finite("reward", rew)
        check_index("action", act, n_actions, "action")
        check_index("position", pos, len_list, "position")
    ps = None
    if pscore is not None:
        ps = _floats("pscore", pscore, n)
        if validate != "none":
            check_probabilities("pscore", ps, low_open=True)
    q = None
    if estimated_rewards_by_reg_model is not None:
        q = np.asarray(estimated_rewards_by_reg_model)
        check_shape("estimated_rewards_by_reg_model", q, dist.shape)
    pb = None
    if pi_b is not None:
        pb = np.asarray(pi_b)
        check_shape("pi_b", pb, dist.shape)
    embed = pea = None
    if p_e_a is not None or action_embed is not None:
        if p_e_a is None or action_embed is None:
            raise ValidationFailed(
                [
                    "action_embed, p_e_a: expected both (embeddings per round and their distribution "
                    "per action), found one"
                ]
            )
        pea = np.asarray(p_e_a, dtype=np.float64)
        check_shape("p_e_a", pea, (n_actions, None, None))
        embed = np.asarray(action_embed)
        check_shape("action_embed", embed, (n, pea.shape[2]))
        if validate != "none":
            for d in range(embed.shape[1]):
                check_index(f"action_embed[:, {d}]", embed[:, d], pea.shape[1], "embedding category")
            check_finite("p_e_a", pea)
    data = BanditData(rew, act, pos, dist, ps, q, pb, embed, pea)
    if validate != "none":
        check_probabilities("action_dist[i, action[i], position[i]]", data.pi_e)
        check_distribution("action_dist", dist, validate)
        if q is not None:
            check_finite("estimated_rewards_by_reg_model[i, action[i], position[i]]", data.q_factual)
            check_distribution("estimated_rewards_by_reg_model", q, validate, policy=False)
        if pb is not None:
            check_distribution("pi_b", pb, validate)
    return data
