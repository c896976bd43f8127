"""The cascade doubly robust slate estimator (Kiyohara et al., WSDM 2022)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from revealed.ope.slate.inputs import check_cascade, check_pscore, check_reward, matrices
from revealed.ope.slate.result import SlateEstimate

__all__ = ["SlateCascadeDoublyRobust"]


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
        m, mask, layout = matrices(arrays, slate_id, position)
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
        check_reward(r, mask)
        check_pscore("pscore_cascade", b, mask, behaviour=True)
        check_pscore("evaluation_policy_pscore_cascade", e, mask, behaviour=False)
        check_cascade("pscore_cascade", b, mask)
        check_cascade("evaluation_policy_pscore_cascade", e, mask)
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
