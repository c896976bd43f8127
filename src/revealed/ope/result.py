"""What an estimator computes per round, and what it reports.

Every bandit estimator here is one shape of ratio of means: per round `i` it returns an
``offset`` term ``c_i``, a ``numerator`` term ``a_i`` and, for the self-normalised ones, a
``denominator`` term ``b_i`` (the importance weights), and its estimate is

    V = mean(c) + sum(a) / sum(b)        (sum(b) = n when there is no denominator)

One shape serves the point estimate, the analytic interval (the delta method gives the
linearised influence terms ``c_i + R + (a_i - R b_i) / mean(b)`` with ``R = sum(a) / sum(b)``,
whose mean is exactly V) and the bootstrap (a resample reweights the three sums).

>>> import numpy as np
>>> terms = RoundTerms(numerator=np.array([2.0, 0.0]), denominator=np.array([2.0, 1.0]))
>>> terms.value()
0.6666666666666666
>>> round(float(terms.influence().mean()), 12)
0.666666666667
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "PolicyValue", "RoundTerms"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class RoundTerms:
    """Per-round terms of V = mean(offset) + sum(numerator) / sum(denominator).

    ``weights`` are the importance weights the estimator applied (after clipping, switching or
    shrinkage), for the effective sample size; None means the estimate uses no weights.
    """

    numerator: FloatArray | None = None
    denominator: FloatArray | None = None
    offset: FloatArray | None = None
    weights: FloatArray | None = None

    @property
    def n(self) -> int:
        for part in (self.numerator, self.offset, self.denominator):
            if part is not None:
                return len(part)
        raise ValueError("terms: expected at least a numerator or an offset, found neither")

    def ratio(self) -> float:
        """sum(numerator) / sum(denominator), or 0 without a numerator."""
        if self.numerator is None:
            return 0.0
        total = float(self.numerator.sum())
        base = float(self.denominator.sum()) if self.denominator is not None else float(self.n)
        return total / base

    def value(self) -> float:
        """The point estimate."""
        off = float(self.offset.mean()) if self.offset is not None else 0.0
        return off + self.ratio()

    def influence(self) -> FloatArray:
        """Per-round terms whose mean is the estimate and whose variance / n is its delta-method variance.

        For estimators without a denominator they are the plain round terms ``c_i + a_i``; for the
        self-normalised ones the linearised terms ``c_i + R + (a_i - R b_i) / mean(b)``.
        """
        n = self.n
        out: FloatArray = (
            self.offset.astype(np.float64, copy=True) if self.offset is not None else np.zeros(n)
        )
        if self.numerator is None:
            return out
        if self.denominator is None:
            out += self.numerator
            return out
        ratio = self.ratio()
        mean_b = float(self.denominator.mean())
        out += ratio + (self.numerator - ratio * self.denominator) / mean_b
        return out

    def resampled(self, counts: npt.NDArray[np.int64]) -> float:
        """The estimate on a bootstrap resample given by how often each round was drawn."""
        weights = counts.astype(np.float64)
        n = float(counts.sum())
        off = float(weights @ self.offset) / n if self.offset is not None else 0.0
        if self.numerator is None:
            return off
        base = float(weights @ self.denominator) if self.denominator is not None else n
        return off + float(weights @ self.numerator) / base

    def effective_sample_size(self) -> float:
        """Kish's effective sample size of the weights, (sum w)^2 / sum w^2; n without weights."""
        if self.weights is None:
            return float(self.n)
        total = float(self.weights.sum())
        square = float(self.weights @ self.weights)
        return total * total / square if square > 0 else 0.0


@dataclass(frozen=True)
class PolicyValue:
    """An estimated policy value with its standard error and interval.

    ``per_round`` holds terms whose mean is ``value`` (for self-normalised estimators the
    linearised influence terms): the paired difference of two policies on the same logs is the
    difference of their ``per_round`` arrays, its standard error ``std / sqrt(n)``.

    >>> import numpy as np
    >>> v = PolicyValue.from_terms(RoundTerms(numerator=np.array([1.0, 0.0, 1.0, 0.0])), estimator="ipw")
    >>> v.value, round(v.se, 4), v.n
    (0.5, 0.2887, 4)
    """

    estimator: str
    value: float
    se: float
    ci: tuple[float, float]
    #: Kish's effective sample size of the importance weights the estimator applied
    ess: float
    n: int
    alpha: float = 0.05
    method: str = "analytic"
    per_round: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def effective_sample_size(self) -> float:
        return self.ess

    @classmethod
    def from_terms(
        cls,
        terms: RoundTerms,
        *,
        estimator: str,
        alpha: float = 0.05,
        interval: tuple[float, float] | None = None,
        method: str = "analytic",
    ) -> PolicyValue:
        """Summarise round terms: the value, its delta-method standard error and (by default) the
        normal interval at level 1 - alpha; a bootstrap `interval` replaces the latter."""
        from revealed.ope.intervals import normal_interval

        per_round = terms.influence()
        n = len(per_round)
        value = terms.value()
        se = float(per_round.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
        ci = interval if interval is not None else normal_interval(value, se, alpha)
        return cls(
            estimator=estimator,
            value=value,
            se=se,
            ci=ci,
            ess=terms.effective_sample_size(),
            n=n,
            alpha=alpha,
            method=method,
            per_round=per_round,
        )
