"""Inverse probability weighting, plain (with optional clipping) and self-normalised.

IPW: V = mean(min(w_i, lambda_) r_i), with w_i = pi_e(a_i | x_i, k_i) / pi_0(a_i | x_i, k_i).
SNIPW: V = sum(w_i r_i) / sum(w_i) (Swaminathan & Joachims 2015): biased by O(1/n) but invariant
to a constant shift of the reward and far less variable when the weights are heavy-tailed.

>>> import numpy as np
>>> arrays = dict(reward=np.array([1.0, 0.0]), action=np.array([0, 1]), pscore=np.array([0.5, 0.5]),
...               action_dist=np.array([[[1.0], [0.0]], [[0.5], [0.5]]]))
>>> InverseProbabilityWeighting().estimate(**arrays).value
1.0
>>> round(SelfNormalizedInverseProbabilityWeighting().estimate(**arrays).value, 6)
0.666667
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from revealed.ope.base import OffPolicyEstimator, check_lambda
from revealed.ope.data import BanditData
from revealed.ope.result import RoundTerms

__all__ = ["InverseProbabilityWeighting", "SelfNormalizedInverseProbabilityWeighting"]


@dataclass(frozen=True)
class InverseProbabilityWeighting(OffPolicyEstimator):
    """IPW: the mean of importance-weighted rewards; weights above `lambda_` are clipped to it."""

    name: ClassVar[str] = "ipw"
    lambda_: float = np.inf

    def __post_init__(self) -> None:
        check_lambda(self.lambda_)

    def round_terms(self, data: BanditData) -> RoundTerms:
        w = data.iw if self.lambda_ == np.inf else np.minimum(data.iw, self.lambda_)
        return RoundTerms(numerator=w * data.reward, weights=w)


@dataclass(frozen=True)
class SelfNormalizedInverseProbabilityWeighting(OffPolicyEstimator):
    """SNIPW: importance-weighted rewards divided by the sum of the weights (not by n)."""

    name: ClassVar[str] = "snipw"

    def round_terms(self, data: BanditData) -> RoundTerms:
        w = data.iw
        return RoundTerms(numerator=w * data.reward, denominator=w, weights=w)
