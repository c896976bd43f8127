"""One entry point: evaluate a policy with several estimators on the same logged arrays.

The arrays are checked and gathered once (`revealed.ope.data`), then each estimator reads the
cached gathers; intervals are analytic by default (O(n): CLT, delta method for the
self-normalised estimators), the percentile bootstrap with ``ci="bootstrap"``. When an estimator
needs a reward model and none is given, ``context`` lets `evaluate` cross-fit one
(`revealed.ope.fit_reward_model`).

Estimator ids: ``dm``, ``dr``, ``dr-os``, ``ipw``, ``mipw``, ``sndr``, ``snipw``, ``snmipw``,
``switch-dr``; pass an instance (``InverseProbabilityWeighting(lambda_=20)``) to set its
hyperparameters.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n, actions = 10_000, 4
>>> action = rng.integers(0, actions, n)
>>> reward = (rng.random(n) < np.where(action == 2, 0.6, 0.2)).astype(float)
>>> target = np.zeros((n, actions, 1)); target[:, 2] = 1.0     # always action 2
>>> out = evaluate(["ipw", "snipw"], reward=reward, action=action, pscore=np.full(n, 0.25),
...                action_dist=target)
>>> sorted(out), round(out["snipw"].value, 2), out["ipw"].ci[0] < 0.6 < out["ipw"].ci[1]
(['ipw', 'snipw'], 0.6, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from revealed.ope.base import Interval, OffPolicyEstimator, summarise
from revealed.ope.data import bandit_data
from revealed.ope.dm import DirectMethod
from revealed.ope.dr import (
    DoublyRobust,
    DoublyRobustWithShrinkage,
    SelfNormalizedDoublyRobust,
    SwitchDoublyRobust,
)
from revealed.ope.ipw import InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting
from revealed.ope.mips import (
    MarginalizedInverseProbabilityWeighting,
    SelfNormalizedMarginalizedInverseProbabilityWeighting,
)
from revealed.ope.regression import fit_reward_model
from revealed.ope.result import PolicyValue
from revealed.ope.validate import Validation, check_shape

__all__ = ["ESTIMATORS", "estimator", "evaluate"]

#: every bandit estimator by id, with its default hyperparameters
ESTIMATORS: Final[dict[str, type[OffPolicyEstimator]]] = {
    cls.name: cls
    for cls in (
        DirectMethod,
        DoublyRobust,
        DoublyRobustWithShrinkage,
        InverseProbabilityWeighting,
        MarginalizedInverseProbabilityWeighting,
        SelfNormalizedDoublyRobust,
        SelfNormalizedInverseProbabilityWeighting,
        SelfNormalizedMarginalizedInverseProbabilityWeighting,
        SwitchDoublyRobust,
    )
}
_MODEL_BASED: Final = frozenset({"dm", "dr", "sndr", "switch-dr", "dr-os"})


def estimator(spec: str | OffPolicyEstimator) -> OffPolicyEstimator:
    """An estimator from its id (default hyperparameters) or as given."""
    if isinstance(spec, OffPolicyEstimator):
        return spec
    if spec not in ESTIMATORS:
        raise ValueError(f"estimators: expected ids among {', '.join(sorted(ESTIMATORS))}, found {spec!r}")
    return ESTIMATORS[spec]()


def evaluate(
    estimators: Sequence[str | OffPolicyEstimator] = ("ipw", "snipw", "dm", "dr"),
    *,
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    action_dist: npt.ArrayLike,
    pscore: npt.ArrayLike | None = None,
    position: npt.ArrayLike | None = None,
    estimated_rewards_by_reg_model: npt.ArrayLike | None = None,
    context: npt.ArrayLike | None = None,
    pi_b: npt.ArrayLike | None = None,
    action_embed: npt.ArrayLike | None = None,
    p_e_a: npt.ArrayLike | None = None,
    ci: Interval = "analytic",
    alpha: float = 0.05,
    n_bootstrap: int = 1_000,
    seed: int = 0,
    validate: Validation = "sample",
) -> dict[str, PolicyValue]:
    """Estimate the evaluation policy's value with each estimator, keyed by estimator id.

    Arrays follow OBP (see `revealed.ope.data`). ``context`` (n_rounds x d) is used only to
    cross-fit a reward model when a model-based estimator is asked for and
    ``estimated_rewards_by_reg_model`` is not given. ``validate`` is ``"sample"`` (default),
    ``"full"`` or ``"none"`` (see `revealed.ope.validate`).
    """
    if isinstance(estimators, str):
        estimators = [estimators]
    chosen = [estimator(spec) for spec in estimators]
    names = [e.name for e in chosen]
    if not chosen or len(set(names)) != len(names):
        raise ValueError(f"estimators: expected distinct estimator ids, found {names}")
    if ci not in ("analytic", "bootstrap"):
        raise ValueError(f"ci: expected 'analytic' or 'bootstrap', found {ci!r}")
    if estimated_rewards_by_reg_model is None and context is not None and _MODEL_BASED.intersection(names):
        action_dist = np.asarray(action_dist)
        check_shape("action_dist", action_dist, (None, None, None))
        shape = action_dist.shape
        estimated_rewards_by_reg_model = fit_reward_model(
            context,
            action,
            reward,
            n_actions=int(shape[1]),
            position=position,
            len_list=int(shape[2]),
            seed=seed,
        )
    data = bandit_data(
        reward=reward,
        action=action,
        action_dist=action_dist,
        pscore=pscore,
        position=position,
        estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
        pi_b=pi_b,
        action_embed=action_embed,
        p_e_a=p_e_a,
        validate=validate,
    )
    for e in chosen:
        e.check(data)
    return {
        e.name: summarise(
            e.round_terms(data), estimator=e.name, ci=ci, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed
        )
        for e in chosen
    }
