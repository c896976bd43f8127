"""The IPS family for slates: standard (the whole slate's probability), independent (each item's
slot marginal) and reward-interaction (each slot's prefix) IPS, sharing one kernel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

from revealed.ope.slate.inputs import check_cascade, check_joint, check_pscore, check_reward, matrices
from revealed.ope.slate.result import SlateEstimate

__all__ = ["SlateIndependentIPS", "SlateRewardInteractionIPS", "SlateStandardIPS"]


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
    m, mask, _ = matrices(
        {"reward": reward, behaviour[0]: behaviour[1], evaluation[0]: evaluation[1]}, slate_id, position
    )
    r, b, e = m["reward"], m[behaviour[0]], m[evaluation[0]]
    check_reward(r, mask)
    check_pscore(behaviour[0], b, mask, behaviour=True)
    check_pscore(evaluation[0], e, mask, behaviour=False)
    if kind == "joint":
        check_joint(behaviour[0], b, mask)
        check_joint(evaluation[0], e, mask)
    elif kind == "cascade":
        check_cascade(behaviour[0], b, mask)
        check_cascade(evaluation[0], e, mask)
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
