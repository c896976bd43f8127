"""Marginalized inverse propensity score (MIPS; Saito & Joachims 2022) for large action spaces.

Actions are described by discrete embeddings (item categories, clusters...): ``p_e_a[a, c, d]``
is the probability that action a has category c in embedding dimension d, and
``action_embed[i, d]`` the categories logged at round i. The weight marginalises the actions
out: w(x_i, e_i) = sum_a pi_e(a | x_i) p(e_i | a) / sum_a pi_b(a | x_i) p(e_i | a), with
p(e | a) = prod_d p_e_a[a, e_d, d]. It needs the logging policy's whole distribution ``pi_b``
(OBP's argument). Unbiased when the reward depends on the action only through its embedding,
with much smaller weights than IPW when many actions share an embedding.

>>> import numpy as np
>>> p_e_a = np.array([[[1.0]], [[1.0]]])         # both actions share one category
>>> MarginalizedInverseProbabilityWeighting().estimate(
...     reward=np.array([1.0, 0.0]), action=np.array([0, 1]), action_embed=np.array([[0], [0]]),
...     action_dist=np.array([[[1.0], [0.0]], [[1.0], [0.0]]]), p_e_a=p_e_a,
...     pi_b=np.full((2, 2, 1), 0.5)).value
0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

import numpy as np

from revealed.ope.base import OffPolicyEstimator
from revealed.ope.data import BanditData
from revealed.ope.result import FloatArray, RoundTerms

__all__ = [
    "MarginalizedInverseProbabilityWeighting",
    "SelfNormalizedMarginalizedInverseProbabilityWeighting",
    "marginal_weights",
]

CHUNK_ROWS: Final = 32_768


def marginal_weights(data: BanditData, estimator: str = "mipw") -> FloatArray:
    """w(x_i, e_i): the policies' probabilities of the logged embedding, evaluation over logging."""
    pi_b = data.require("pi_b", estimator)
    p_e_a = data.require("p_e_a", estimator)
    embed = data.require("action_embed", estimator)
    dims = np.arange(p_e_a.shape[2])
    out = np.empty(data.n)
    for start in range(0, data.n, CHUNK_ROWS):
        stop = min(data.n, start + CHUNK_ROWS)
        rows, pos = np.arange(start, stop), data.position[start:stop]
        # p(e_i | a) for every action: (rows, n_actions)
        p_e = p_e_a[:, embed[start:stop], dims].prod(axis=2).T
        num = np.einsum("ij,ij->i", data.action_dist[rows, :, pos], p_e)
        den = np.einsum("ij,ij->i", pi_b[rows, :, pos], p_e)
        out[start:stop] = num / den
    return out


@dataclass(frozen=True)
class MarginalizedInverseProbabilityWeighting(OffPolicyEstimator):
    """MIPS (OBP's ``mipw``): the mean of rewards weighted by the marginal embedding weights."""

    needs: ClassVar[tuple[str, ...]] = ("pi_b", "action_embed", "p_e_a")
    name: ClassVar[str] = "mipw"

    def round_terms(self, data: BanditData) -> RoundTerms:
        w = marginal_weights(data, self.name)
        return RoundTerms(numerator=w * data.reward, weights=w)


@dataclass(frozen=True)
class SelfNormalizedMarginalizedInverseProbabilityWeighting(OffPolicyEstimator):
    """Self-normalised MIPS (OBP's ``snmipw``)."""

    needs: ClassVar[tuple[str, ...]] = ("pi_b", "action_embed", "p_e_a")
    name: ClassVar[str] = "snmipw"

    def round_terms(self, data: BanditData) -> RoundTerms:
        w = marginal_weights(data, self.name)
        return RoundTerms(numerator=w * data.reward, denominator=w, weights=w)
