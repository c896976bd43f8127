"""Off-policy estimators for slates and rankings, on Open Bandit Pipeline's slate arrays.

A logged slate ``i`` shows ``K`` items with a reward ``r[i, k]`` per slot (a click); the value of a
policy is the expected sum of slot rewards per slate. Each estimator reweights the logged rewards
by a ratio of the evaluation policy's to the logging policy's probability of *part* of the logged
slate, and is unbiased under the user model that makes that part enough:

=========================== ======== ============================================= ==========================
estimator                   id       weight of ``r[i, k]``                          unbiased when
=========================== ======== ============================================= ==========================
`SlateStandardIPS`          sips     joint probability of the whole slate           always (full support)
`SlateIndependentIPS`       iips     marginal P(item in slot k)                     r[k] depends on (item,
                                                                                    k) only: position-based
`SlateRewardInteractionIPS` rips     prefix probability of slots 0..k               r[k] depends on slots
                                                                                    0..k: cascade scanning
`SlateCascadeDoublyRobust`  cascade  prefix weights with a Q-function control       as RIPS, any ``q_hat``
                            -dr      variate (Kiyohara et al., WSDM 2022)
`SlatePseudoInverse`        pi       the logging policy's slot x item moment        the slate reward is a sum
                                     matrix, pseudo-inverted (Swaminathan 2017)     of slot x item terms
=========================== ======== ============================================= ==========================

Arrays are ``(n_slates, K)`` (``q_hat`` and ``evaluation_policy_action_dist`` ``(n_slates, K,
n_actions)``), or OBP's flat rows with ``slate_id`` and ``position`` (``n_slates * K`` rows; the
IPS estimators accept slates with missing rows as OBP does). `revealed.ope.slate_arrays` derives
them from logged ``cond_propensity`` and a candidate's scores. Each ``estimate`` returns a
`SlateEstimate`: the value, its standard error and normal interval over the per-slate terms
(which it keeps, so two policies can be compared pairwise on the same logs), and the effective
sample size of the per-slate mean weight. ``estimate_policy_value`` returns the float, as OBP does.

>>> import numpy as np
>>> reward = np.array([[1.0, 0.0], [0.0, 1.0]])
>>> b = np.array([[0.5, 0.25], [0.5, 0.25]])   # prefix probabilities under the logging policy
>>> e = np.array([[1.0, 1.0], [0.0, 0.0]])     # under a deterministic evaluation policy
>>> SlateRewardInteractionIPS().estimate(reward=reward, pscore_cascade=b,
...                                      evaluation_policy_pscore_cascade=e).value
1.0
"""

from revealed.ope.slate.cascade_dr import SlateCascadeDoublyRobust
from revealed.ope.slate.ips import SlateIndependentIPS, SlateRewardInteractionIPS, SlateStandardIPS
from revealed.ope.slate.pseudo_inverse import (
    PSEUDO_INVERSE_LOGGING,
    SlatePseudoInverse,
    SlotItemMoments,
    slot_item_moments,
)
from revealed.ope.slate.result import SlateEstimate

__all__ = [
    "PSEUDO_INVERSE_LOGGING",
    "SlateCascadeDoublyRobust",
    "SlateEstimate",
    "SlateIndependentIPS",
    "SlatePseudoInverse",
    "SlateRewardInteractionIPS",
    "SlateStandardIPS",
    "SlotItemMoments",
    "slot_item_moments",
]
