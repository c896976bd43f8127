"""The direct method: the reward model's prediction averaged over the evaluation policy.

V = mean_i sum_a pi_e(a | x_i, k_i) q_hat(x_i, a, k_i) (divided by sum_a pi_e(a | x_i, k_i), as
OBP's ``np.average`` does; 1 for a proper policy). Unbiased only if q_hat is; no weights, so its
interval reflects the model's fit on these contexts, not its bias.

>>> import numpy as np
>>> q = np.array([[[0.2], [0.6]], [[0.4], [0.0]]])
>>> DirectMethod().estimate(reward=np.array([1.0, 0.0]), action=np.array([0, 1]),
...     action_dist=np.array([[[0.5], [0.5]], [[1.0], [0.0]]]), estimated_rewards_by_reg_model=q).value
0.4
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from revealed.ope.base import OffPolicyEstimator
from revealed.ope.data import BanditData
from revealed.ope.result import RoundTerms

__all__ = ["DirectMethod"]


@dataclass(frozen=True)
class DirectMethod(OffPolicyEstimator):
    """DM: needs ``estimated_rewards_by_reg_model`` (see `revealed.ope.fit_reward_model`)."""

    needs: ClassVar[tuple[str, ...]] = ("estimated_rewards_by_reg_model",)
    name: ClassVar[str] = "dm"

    def round_terms(self, data: BanditData) -> RoundTerms:
        return RoundTerms(offset=data.dm)
