"""`revealed evaluate --slates`: candidate rankers against the logging policy on logged slates.

A slate is a decision that showed K items chosen among its C logged candidates, each shown item
with its logged ``cond_propensity`` (and ``propensity``, the marginal, when the sampler knew
it). A slot's reward is its row's outcome in `interactions` (``clicked`` by default); a slate's
value is the sum over its slots. Decisions of the most common (K, C) shape are evaluated (the
others are counted and left out: slates of another length are another problem).

A candidate ranker gives scores per (decision, candidate item), as for bandits; it ranks by
Plackett-Luce with a temperature (``softmax``/``plackett_luce``) or deterministically (``topk``).
Estimators: ``sips`` (standard IPS on the joint), ``iips`` (independent IPS on per-slot
marginals; needs the logged marginal ``propensity``), ``rips`` (reward-interaction IPS on prefix
probabilities). The verdict is the paired per-slate difference of the primary estimator's terms
and the logged slate values, as for bandits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ibis
import numpy as np
import pyarrow.compute as pc

from revealed.bias.logs import open_logs
from revealed.ope.logged import FloatArray, check_reward
from revealed.ope.offline import OfflineEvaluation, Source
from revealed.ope.result import PolicyValue
from revealed.ope.slate import SlateIndependentIPS, SlateRewardInteractionIPS, SlateStandardIPS
from revealed.ope.slate_arrays import (
    LoggedSlates,
    SlatePropensities,
    plackett_luce_propensities,
    slates_from_decisions,
    top_k_propensities,
)
from revealed.pipeline.identity import dedupe
from revealed.store.store import Store

__all__ = ["SLATE_ESTIMATORS", "evaluate_slates_offline", "slate_logs"]

SLATE_ESTIMATORS = ("sips", "iips", "rips")


def slate_logs(
    store: Store, *, surface: str | None = None, model_version: str | None = None, reward: str = "clicked"
) -> tuple[LoggedSlates, FloatArray, int]:
    """The logged slates of the most common shape, their (slates, K) rewards, and how many
    decisions of other shapes were left out."""
    logs = open_logs(store)
    try:
        t = logs.interactions
        check_reward(t, reward)
        decisions = dedupe(logs.engine.table("decisions"), "decision_id")
        decisions = decisions.filter((decisions.candidates.length() > 0) & (decisions["items"].length() > 1))
        if surface is not None:
            decisions = decisions.filter(decisions.surface == surface)
        if model_version is not None:
            decisions = decisions.filter(decisions.model_version == model_version)
        shape = decisions.mutate(k=decisions["items"].length(), c=decisions.candidates.length())
        by_shape = shape.group_by(["k", "c"]).aggregate(n=shape.count())
        counts = logs.backend.to_pyarrow(by_shape.order_by([ibis.desc("n"), "k", "c"]))
        if counts.num_rows == 0:
            raise ValueError(
                "decisions: no slates (several items shown) with logged candidates"
                + (f" on surface {surface!r}" if surface else "")
            )
        k, c = counts["k"][0].as_py(), counts["c"][0].as_py()
        others = int(pc.sum(counts["n"]).as_py()) - counts["n"][0].as_py()
        chosen = shape.filter((shape.k == k) & (shape.c == c)).select("decision_id", "items", "candidates")
        table = logs.backend.to_pyarrow(chosen.order_by("decision_id"))
        outcome = logs.backend.to_pyarrow(
            t.semi_join(chosen, "decision_id").select(
                "decision_id", "item_id", value=t[reward].cast("float64")
            )
        )
    finally:
        logs.engine.close()
    slates = slates_from_decisions(table)
    lookup = {
        (d, i): v
        for d, i, v in zip(
            outcome["decision_id"].to_pylist(),
            outcome["item_id"].to_pylist(),
            outcome["value"].to_pylist(),
            strict=True,
        )
    }
    rewards = np.array(
        [
            [lookup.get((d, i)) or 0.0 for i in row]
            for d, row in zip(slates.decision_id, slates.item_id, strict=True)
        ]
    )
    return slates, rewards, others


def _scores(slates: LoggedSlates, source: Source) -> FloatArray:
    """(slates, C) scores of the candidates, from a file or a callable, as for bandits."""
    from revealed.ope.logged import BanditLogs, load_scores

    n, c = slates.candidate_id.shape
    actions = sorted({str(a) for a in slates.candidate_id.ravel()})
    index = {a: j for j, a in enumerate(actions)}
    columns = np.vectorize(index.__getitem__)(slates.candidate_id.astype(str)) if n else np.zeros((0, c), int)
    mask = np.zeros((n, len(actions)), dtype=bool)
    mask[np.arange(n)[:, None], columns] = True
    as_bandit = BanditLogs(
        decision_id=slates.decision_id,
        actions=actions,
        action=columns[:, 0],
        reward=np.zeros(n),
        pscore=np.ones(n),
        position=np.zeros(n, dtype=np.int64),
        candidates=mask,
        context=np.zeros((n, 0)),
        context_names=[],
    )
    dense = load_scores(as_bandit, source)
    out = np.take_along_axis(dense, columns, axis=1)
    if np.isnan(out).any():
        missing = int(np.isnan(out).sum())
        raise ValueError(
            f"policy: {missing} (decision, candidate) pairs have no score; score every candidate"
        )
    return out


def _as_policy_value(estimate: Any) -> PolicyValue:
    return PolicyValue(
        estimator=estimate.estimator,
        value=estimate.value,
        se=estimate.se,
        ci=estimate.ci,
        ess=estimate.ess,
        n=estimate.n_slates,
        per_round=estimate.rows,
    )


def _estimate(
    name: str, rewards: FloatArray, logging: SlatePropensities, target: SlatePropensities, alpha: float
) -> Any:
    k = rewards.shape[1]
    if name == "sips":
        return SlateStandardIPS(len_list=k).estimate(
            reward=rewards, pscore=logging.pscore, evaluation_policy_pscore=target.pscore, alpha=alpha
        )
    if name == "iips":
        if np.isnan(logging.pscore_item_position).any():
            raise ValueError("iips: the logs lack the per-slot marginal `propensity`; use sips or rips")
        return SlateIndependentIPS(len_list=k).estimate(
            reward=rewards,
            pscore_item_position=logging.pscore_item_position,
            evaluation_policy_pscore_item_position=target.pscore_item_position,
            alpha=alpha,
        )
    return SlateRewardInteractionIPS(len_list=k).estimate(
        reward=rewards,
        pscore_cascade=logging.pscore_cascade,
        evaluation_policy_pscore_cascade=target.pscore_cascade,
        alpha=alpha,
    )


def evaluate_slates_offline(
    store: Store | None,
    policies: Mapping[str, Source],
    *,
    logged: tuple[LoggedSlates, FloatArray] | None = None,
    estimators: Sequence[str] = ("sips", "rips"),
    primary: str | None = None,
    kind: str = "softmax",
    temperature: float = 1.0,
    surface: str | None = None,
    model_version: str | None = None,
    reward: str = "clicked",
    level: float = 0.95,
    min_ess: float = 100.0,
) -> OfflineEvaluation:
    """Each candidate ranker's estimated value per slate, and its verdict against the logging policy."""
    unknown = [e for e in estimators if e not in SLATE_ESTIMATORS]
    if unknown or not estimators:
        raise ValueError(
            f"estimators: expected ids among {', '.join(SLATE_ESTIMATORS)}, found {list(estimators)}"
        )
    if kind not in ("softmax", "plackett_luce", "topk"):
        raise ValueError(f"kind: expected softmax, plackett_luce or topk, found {kind!r}")
    primary = primary or ("rips" if "rips" in estimators else estimators[0])
    if logged is None:
        if store is None:
            raise ValueError("store: expected a store or logged slates")
        slates, rewards, _ = slate_logs(store, surface=surface, model_version=model_version, reward=reward)
    else:
        slates, rewards = logged
    logging = slates.logging
    seen = {str(i) for i in slates.item_id.ravel()}
    never = ~np.isin(slates.candidate_id.astype(str), list(seen))
    totals = rewards.sum(axis=1)
    result = OfflineEvaluation(rounds=len(rewards), logged_value=float(totals.mean()), primary=primary)
    for name, source in policies.items():
        scores = _scores(slates, source)
        if kind == "topk":
            target = top_k_propensities(scores, order=slates.order)
        else:
            target = plackett_luce_propensities(scores, order=slates.order, temperature=temperature)
        result.estimates[name] = {
            e: _as_policy_value(_estimate(e, rewards, logging, target, 1.0 - level)) for e in estimators
        }
        marginals = target.marginals
        result.unsupported[name] = (
            float((marginals * never[:, None, :]).sum() / marginals.sum()) if marginals is not None else 0.0
        )
    return result.judge(totals, ess_from=primary, level=level, min_ess=min_ess)
