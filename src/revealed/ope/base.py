"""The shared shape of a bandit estimator: a short id and one method from data to round terms.

Subclasses implement `round_terms`; `estimate` (revealed's result with interval), and OBP's
`estimate_policy_value` and `estimate_interval` (so OBP code switches by changing imports) all
derive from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from revealed.ope.data import BanditData, bandit_data
from revealed.ope.intervals import bootstrap_interval, bootstrap_values
from revealed.ope.result import PolicyValue, RoundTerms
from revealed.ope.validate import Validation

__all__ = ["Interval", "OffPolicyEstimator", "summarise"]

Interval = Literal["analytic", "bootstrap"]


def check_lambda(value: float, *, name: str = "lambda_") -> None:
    if not isinstance(value, int | float) or value != value or value < 0:
        raise ValueError(f"{name}: expected a number >= 0 (np.inf for none), found {value!r}")


def summarise(
    terms: RoundTerms,
    *,
    estimator: str,
    ci: Interval = "analytic",
    alpha: float = 0.05,
    n_bootstrap: int = 1_000,
    seed: int = 0,
) -> PolicyValue:
    """A `PolicyValue` from round terms, with an analytic or a bootstrap interval."""
    if ci == "analytic":
        return PolicyValue.from_terms(terms, estimator=estimator, alpha=alpha)
    if ci == "bootstrap":
        interval = bootstrap_interval(terms, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
        return PolicyValue.from_terms(
            terms, estimator=estimator, alpha=alpha, interval=interval, method="bootstrap"
        )
    raise ValueError(f"ci: expected 'analytic' or 'bootstrap', found {ci!r}")


class OffPolicyEstimator(ABC):
    """Base of the bandit estimators: `name` keys results; `round_terms` is the algorithm."""

    name: ClassVar[str]
    #: the optional arrays this estimator cannot do without
    needs: ClassVar[tuple[str, ...]] = ("pscore",)

    def check(self, data: BanditData) -> None:
        """Raise a `ValidationFailed` naming the first array in `needs` that `data` lacks."""
        for field in self.needs:
            data.require(field, self.name)

    @abstractmethod
    def round_terms(self, data: BanditData) -> RoundTerms:
        """Per-round terms whose ratio-of-means is the estimate (see `revealed.ope.result`)."""

    def estimate(
        self,
        *,
        reward: npt.ArrayLike,
        action: npt.ArrayLike,
        action_dist: npt.ArrayLike,
        pscore: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        estimated_rewards_by_reg_model: npt.ArrayLike | None = None,
        ci: Interval = "analytic",
        alpha: float = 0.05,
        n_bootstrap: int = 1_000,
        seed: int = 0,
        validate: Validation = "sample",
        **arrays: Any,
    ) -> PolicyValue:
        """The estimate with its standard error, interval and effective sample size."""
        data = bandit_data(
            reward=reward,
            action=action,
            action_dist=action_dist,
            pscore=pscore,
            position=position,
            estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
            validate=validate,
            **arrays,
        )
        self.check(data)
        return summarise(
            self.round_terms(data),
            estimator=self.name,
            ci=ci,
            alpha=alpha,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )

    def estimate_policy_value(self, **arrays: Any) -> float:
        """OBP's method: the point estimate from the same keyword arrays."""
        data = bandit_data(**arrays)
        self.check(data)
        return self.round_terms(data).value()

    def estimate_interval(
        self,
        *,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 10_000,
        random_state: int | None = None,
        **arrays: Any,
    ) -> dict[str, float]:
        """OBP's method: the bootstrap mean and percentile interval, keyed as OBP keys them."""
        data = bandit_data(**arrays)
        self.check(data)
        terms = self.round_terms(data)
        values = bootstrap_values(terms, n_bootstrap=n_bootstrap_samples, seed=random_state or 0)
        low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
        level = 100 * (1.0 - alpha)
        return {
            "mean": float(values.mean()),
            f"{level}% CI (lower)": float(low),
            f"{level}% CI (upper)": float(high),
        }
