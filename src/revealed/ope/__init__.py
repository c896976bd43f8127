"""Off-policy evaluation: what would a candidate policy have earned on logs collected by another?

Bandit estimators take Open Bandit Pipeline's arrays (``reward``, ``action``, ``position``,
``pscore``, ``action_dist`` and ``estimated_rewards_by_reg_model`` of shape
``(n_rounds, n_actions, len_list)``) and carry OBP's class names and ids, so OBP code switches by
changing imports. `evaluate` runs several on the same arrays, checked and gathered once, and
returns a `PolicyValue` per id: ``value``, ``se``, ``ci``, ``ess`` (effective sample size) and
``per_round`` terms for paired comparisons. Slate estimators (`SlateStandardIPS`,
`SlateIndependentIPS`, `SlateRewardInteractionIPS`, `SlateCascadeDoublyRobust`,
`SlatePseudoInverse`) take OBP's slate arrays, derived from logged ``cond_propensity`` by
`logged_propensities`. `evaluate_offline` (``revealed evaluate``) judges candidates against the
logging policy on the store's logs (`verdicts`); `ipw_uplift`, `TLearner` and `XLearner` measure
uplift from ``assignment`` events (`uplift_units`), with Qini curves (`uplift_curve`).

>>> import numpy as np
>>> out = evaluate(["ipw"], reward=np.array([1.0, 0.0]), action=np.array([0, 1]),
...                pscore=np.array([0.5, 0.5]), action_dist=np.array([[[1.0], [0.0]], [[0.5], [0.5]]]))
>>> out["ipw"].value
1.0
"""

from revealed.ope.base import OffPolicyEstimator
from revealed.ope.data import BanditData, bandit_data
from revealed.ope.dm import DirectMethod
from revealed.ope.dr import (
    DoublyRobust,
    DoublyRobustWithShrinkage,
    SelfNormalizedDoublyRobust,
    SwitchDoublyRobust,
)
from revealed.ope.evaluate import ESTIMATORS, estimator, evaluate
from revealed.ope.ipw import InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting
from revealed.ope.logged import BanditLogs, action_distribution, bandit_logs
from revealed.ope.mips import (
    MarginalizedInverseProbabilityWeighting,
    SelfNormalizedMarginalizedInverseProbabilityWeighting,
    marginal_weights,
)
from revealed.ope.offline import OfflineEvaluation, evaluate_offline
from revealed.ope.regression import fit_reward_model
from revealed.ope.result import PolicyValue, RoundTerms
from revealed.ope.slate import (
    SlateCascadeDoublyRobust,
    SlateEstimate,
    SlateIndependentIPS,
    SlatePseudoInverse,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
)
from revealed.ope.slate_arrays import (
    logged_propensities,
    plackett_luce_propensities,
    slates_from_decisions,
    top_k_propensities,
)
from revealed.ope.uplift import (
    TLearner,
    UpliftCurve,
    UpliftEstimate,
    XLearner,
    ipw_uplift,
    uplift_curve,
    uplift_units,
)
from revealed.ope.verdict import Verdict, holm, verdicts

__all__ = [
    "BanditData",
    "BanditLogs",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "ESTIMATORS",
    "InverseProbabilityWeighting",
    "MarginalizedInverseProbabilityWeighting",
    "OffPolicyEstimator",
    "OfflineEvaluation",
    "PolicyValue",
    "RoundTerms",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedInverseProbabilityWeighting",
    "SelfNormalizedMarginalizedInverseProbabilityWeighting",
    "SlateCascadeDoublyRobust",
    "SlateEstimate",
    "SlateIndependentIPS",
    "SlatePseudoInverse",
    "SlateRewardInteractionIPS",
    "SlateStandardIPS",
    "SwitchDoublyRobust",
    "TLearner",
    "UpliftCurve",
    "UpliftEstimate",
    "Verdict",
    "XLearner",
    "action_distribution",
    "bandit_data",
    "bandit_logs",
    "estimator",
    "evaluate",
    "evaluate_offline",
    "fit_reward_model",
    "holm",
    "ipw_uplift",
    "logged_propensities",
    "marginal_weights",
    "plackett_luce_propensities",
    "slates_from_decisions",
    "top_k_propensities",
    "uplift_curve",
    "uplift_units",
    "verdicts",
]
