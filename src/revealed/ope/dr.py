"""Doubly robust estimators: the direct method plus an importance-weighted correction.

With w_i the importance weight, q_i = q_hat(x_i, a_i, k_i) and dm_i the direct-method term:

- DR (Dudik et al. 2014): V = mean(dm_i + w_i (r_i - q_i)); `lambda_` clips w (pessimistic shrinkage).
- SNDR: V = mean(dm_i) + sum(w_i (r_i - q_i)) / sum(w_i).
- Switch-DR (Wang et al. 2017, OBP's form): the correction only where w_i <= lambda_.
- DRos, DR with optimistic shrinkage (Su et al. 2020): w_i replaced by lambda_ w_i / (w_i^2 + lambda_).

>>> import numpy as np
>>> arrays = dict(reward=np.array([1.0, 0.0]), action=np.array([0, 1]), pscore=np.array([0.5, 0.5]),
...               action_dist=np.array([[[1.0], [0.0]], [[0.5], [0.5]]]),
...               estimated_rewards_by_reg_model=np.full((2, 2, 1), 0.5))
>>> DoublyRobust().estimate(**arrays).value
0.75
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from revealed.ope.base import OffPolicyEstimator, check_lambda
from revealed.ope.data import BanditData
from revealed.ope.result import RoundTerms

__all__ = [
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "SelfNormalizedDoublyRobust",
    "SwitchDoublyRobust",
]


def _residual(data: BanditData) -> np.ndarray:
    residual: np.ndarray = data.reward - data.q_factual
    return residual


@dataclass(frozen=True)
class DoublyRobust(OffPolicyEstimator):
    """DR: unbiased when either the propensities or the reward model are right."""

    needs: ClassVar[tuple[str, ...]] = ("pscore", "estimated_rewards_by_reg_model")
    name: ClassVar[str] = "dr"
    lambda_: float = np.inf

    def __post_init__(self) -> None:
        check_lambda(self.lambda_)

    def round_terms(self, data: BanditData) -> RoundTerms:
        w = data.iw if self.lambda_ == np.inf else np.minimum(data.iw, self.lambda_)
        return RoundTerms(numerator=w * _residual(data), offset=data.dm, weights=w)


@dataclass(frozen=True)
class SelfNormalizedDoublyRobust(OffPolicyEstimator):
    """SNDR: the correction term normalised by the sum of the weights."""

    needs: ClassVar[tuple[str, ...]] = ("pscore", "estimated_rewards_by_reg_model")
    name: ClassVar[str] = "sndr"

    def round_terms(self, data: BanditData) -> RoundTerms:
        w = data.iw
        return RoundTerms(numerator=w * _residual(data), denominator=w, offset=data.dm, weights=w)


@dataclass(frozen=True)
class SwitchDoublyRobust(OffPolicyEstimator):
    """Switch-DR: DM everywhere, plus the DR correction on rounds whose weight is at most `lambda_`."""

    needs: ClassVar[tuple[str, ...]] = ("pscore", "estimated_rewards_by_reg_model")
    name: ClassVar[str] = "switch-dr"
    lambda_: float = np.inf

    def __post_init__(self) -> None:
        check_lambda(self.lambda_)

    def round_terms(self, data: BanditData) -> RoundTerms:
        w = np.where(data.iw <= self.lambda_, data.iw, 0.0)
        return RoundTerms(numerator=w * _residual(data), offset=data.dm, weights=w)


@dataclass(frozen=True)
class DoublyRobustWithShrinkage(OffPolicyEstimator):
    """DRos: weights shrunk to lambda_ w / (w^2 + lambda_); lambda_ = 0 is DM, np.inf is DR.

    The default `lambda_` (10) is a fixed middle ground, not tuned on the data.
    """

    needs: ClassVar[tuple[str, ...]] = ("pscore", "estimated_rewards_by_reg_model")
    name: ClassVar[str] = "dr-os"
    lambda_: float = 10.0

    def __post_init__(self) -> None:
        check_lambda(self.lambda_)

    def round_terms(self, data: BanditData) -> RoundTerms:
        iw = data.iw
        w = iw if self.lambda_ == np.inf else self.lambda_ * iw / (iw * iw + self.lambda_)
        return RoundTerms(numerator=w * _residual(data), offset=data.dm, weights=w)
