"""`revealed evaluate`: candidate policies against the logging policy, on the processed logs.

Each candidate's scores become an action distribution over every logged round's candidates
(`revealed.ope.logged`); every requested estimator estimates its value; the verdict compares
it with the logging policy by the paired per-round difference of the `primary` estimator
(`revealed.ope.verdict`), Holm-corrected across candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revealed.ope.evaluate import evaluate
from revealed.ope.logged import BanditLogs, action_distribution, bandit_logs, load_scores, unsupported_mass
from revealed.ope.result import PolicyValue
from revealed.ope.verdict import Verdict, verdicts
from revealed.store.store import Store

__all__ = ["OfflineEvaluation", "evaluate_offline"]

Source = str | Path | Callable[[Any], Any]


@dataclass
class OfflineEvaluation:
    """Every candidate's estimates, and its verdict against the logging policy."""

    rounds: int
    logged_value: float
    primary: str
    estimates: dict[str, dict[str, PolicyValue]] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    unsupported: dict[str, float] = field(default_factory=dict)

    def judge(self, logged: Any, *, ess_from: str, level: float, min_ess: float) -> OfflineEvaluation:
        """Set the verdicts: the primary estimator's per-round terms against the `logged` values of
        the same rounds, with the effective sample size of estimator `ess_from`."""
        self.verdicts = verdicts(
            {name: by[self.primary].per_round for name, by in self.estimates.items()},
            logged,
            ess={name: by[ess_from].ess for name, by in self.estimates.items()},
            unsupported=self.unsupported,
            level=level,
            min_ess=min_ess,
        )
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "logged_value": self.logged_value,
            "primary": self.primary,
            "candidates": {
                name: {
                    k: {"value": v.value, "ci": list(v.ci), "se": v.se, "ess": v.ess}
                    for k, v in by_estimator.items()
                }
                for name, by_estimator in self.estimates.items()
            },
            "verdicts": [v.as_dict() for v in self.verdicts],
        }


def evaluate_offline(
    store: Store | None,
    policies: Mapping[str, Source],
    *,
    logs: BanditLogs | None = None,
    estimators: Sequence[str] = ("ipw", "snipw", "dm", "dr"),
    primary: str | None = None,
    kind: str = "softmax",
    temperature: float = 1.0,
    surface: str | None = None,
    model_version: str | None = None,
    reward: str = "clicked",
    level: float = 0.95,
    min_ess: float = 100.0,
) -> OfflineEvaluation:
    """Estimate each candidate in `policies` (name -> scores source) on the store's logged
    bandit rounds (or on `logs`) and judge it against the logging policy."""
    if not policies:
        raise ValueError("policies: expected at least one candidate (name -> scores file or module:function)")
    estimators = list(estimators)
    primary = primary or ("dr" if "dr" in estimators else estimators[0])
    if primary not in estimators:
        estimators.append(primary)
    if "ipw" not in estimators:
        estimators.append("ipw")  # its weights give the effective sample size of the verdict
    if logs is None:
        if store is None:
            raise ValueError("store: expected a store or logged rounds")
        logs = bandit_logs(store, surface=surface, reward=reward, model_version=model_version)
    result = OfflineEvaluation(rounds=logs.n_rounds, logged_value=float(logs.reward.mean()), primary=primary)
    for name, source in policies.items():
        dist = action_distribution(load_scores(logs, source), kind=kind, temperature=temperature)
        context = logs.context if logs.context.shape[1] else None
        result.estimates[name] = evaluate(
            estimators,
            reward=logs.reward,
            action=logs.action,
            pscore=logs.pscore,
            position=logs.position,
            action_dist=dist,
            context=context,
            alpha=1.0 - level,
        )
        result.unsupported[name] = unsupported_mass(logs, dist)
    return result.judge(logs.reward, ess_from="ipw", level=level, min_ess=min_ess)
