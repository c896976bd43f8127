"""Logged bandit rounds from the store, and a candidate policy's action distribution on them.

A round is a decision that showed one item chosen among its logged `candidates`, with that
item's logged propensity and its outcome from `interactions` (``clicked`` by default, or the
spec's ``reward``). Actions are the distinct candidate item ids. The context is the decision's
numeric context (``context_num``), for reward regressions and for candidate policies.

A candidate is given as scores per (decision, item): a Parquet or CSV file with columns
``decision_id``, ``item_id``, ``score``, or a Python callable ``module:function`` that takes the
rounds' candidate rows (a pandas DataFrame: decision_id, item_id and the context columns) and
returns one score per row. Scores become an action distribution over each round's candidates by
``softmax`` (with a temperature; a Plackett-Luce choice of one item is the same) or ``topk``
(deterministic: all mass on the highest score, ties split).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from revealed.bias.logs import open_logs
from revealed.pipeline.identity import dedupe
from revealed.store.store import Store

__all__ = [
    "BanditLogs",
    "action_distribution",
    "bandit_logs",
    "check_reward",
    "load_scores",
    "unsupported_mass",
]

FloatArray = npt.NDArray[np.float64]


@dataclass
class BanditLogs:
    """Rounds in Open Bandit Pipeline's array conventions, plus what maps them back to the logs."""

    decision_id: npt.NDArray[Any]
    actions: list[str]
    action: npt.NDArray[np.int64]
    reward: FloatArray
    pscore: FloatArray
    position: npt.NDArray[np.int64]
    #: (rounds, actions): which actions were candidates in each round
    candidates: npt.NDArray[np.bool_]
    context: FloatArray
    context_names: list[str]

    @property
    def n_rounds(self) -> int:
        return len(self.action)

    def candidate_rows(self) -> Any:
        """One row per (round, candidate action): decision_id, item_id and the context columns."""
        import pandas as pd

        rows, cols = np.nonzero(self.candidates)
        frame = pd.DataFrame(
            {"decision_id": self.decision_id[rows], "item_id": np.asarray(self.actions)[cols]}
        )
        for j, name in enumerate(self.context_names):
            frame[name] = self.context[rows, j]
        return frame


def check_reward(interactions: Any, reward: str) -> None:
    """The reward must be a column of `interactions` (``clicked``, ``reward``, a signal...)."""
    if reward not in interactions.columns:
        raise ValueError(
            f"reward: expected a column of interactions such as clicked or reward, found {reward!r}"
        )


def bandit_logs(
    store: Store, *, surface: str | None = None, reward: str = "clicked", model_version: str | None = None
) -> BanditLogs:
    """The single-item decisions with logged candidates and propensity, from `interactions`
    (only those of `model_version`, if given: e.g. leave a deterministic holdout arm out)."""
    logs = open_logs(store)
    try:
        t = logs.interactions
        check_reward(t, reward)
        rows = t.filter((t.n_shown == 1) & t.propensity.notnull() & (t.propensity > 0))
        if surface is not None:
            rows = rows.filter(rows.surface == surface)
        if model_version is not None:
            rows = rows.filter(rows.model_version == model_version)
        rows = rows.select("decision_id", "item_id", "propensity", outcome=rows[reward].cast("float64"))
        decisions = dedupe(logs.engine.table("decisions"), "decision_id")
        decisions = decisions.filter(decisions.candidates.length() > 0).select(
            "decision_id", "candidates", "context_num"
        )
        joined = logs.backend.to_pyarrow(rows.join(decisions, "decision_id").order_by("decision_id"))
    finally:
        logs.engine.close()
    if joined.num_rows == 0:
        raise ValueError(
            "interactions: no single-item decisions with logged candidates and a propensity > 0"
            + (f" on surface {surface!r}" if surface else "")
            + "; off-policy evaluation of a bandit needs both"
        )
    flat = pc.list_flatten(joined["candidates"])
    names = pc.struct_field(flat, "item_id")
    actions = sorted(set(names.to_pylist()) | set(joined["item_id"].to_pylist()))
    index = {a: i for i, a in enumerate(actions)}
    n = joined.num_rows
    owner = np.repeat(np.arange(n), pc.list_value_length(joined["candidates"]).to_numpy())
    candidates = np.zeros((n, len(actions)), dtype=bool)
    candidates[owner, np.array([index[a] for a in names.to_pylist()], dtype=np.int64)] = True
    action = np.array([index[a] for a in joined["item_id"].to_pylist()], dtype=np.int64)
    candidates[np.arange(n), action] = True
    context, context_names = _context(joined["context_num"])
    return BanditLogs(
        decision_id=np.asarray(joined["decision_id"].to_pylist(), dtype=object),
        actions=actions,
        action=action,
        reward=np.nan_to_num(joined["outcome"].to_numpy(zero_copy_only=False).astype(np.float64)),
        pscore=joined["propensity"].to_numpy(zero_copy_only=False).astype(np.float64),
        position=np.zeros(n, dtype=np.int64),
        candidates=candidates,
        context=context,
        context_names=context_names,
    )


def _context(column: pa.ChunkedArray) -> tuple[FloatArray, list[str]]:
    """The numeric context as a dense matrix (missing keys are 0)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if values.null_count == len(values):
        return np.zeros((len(values), 0)), []
    keys = values.keys  # a MapArray: flattened keys and items, with one offset per row
    names = sorted(set(keys.to_pylist()))
    where = {k: j for j, k in enumerate(names)}
    lengths = np.diff(values.offsets.to_numpy())
    owner = np.repeat(np.arange(len(values)), lengths)
    out = np.zeros((len(values), len(names)))
    out[owner, [where[k] for k in keys.to_pylist()]] = values.items.to_numpy(zero_copy_only=False)
    return out, names


def load_scores(logs: BanditLogs, source: str | Path | Callable[[Any], Any]) -> FloatArray:
    """(rounds, actions) scores of a candidate, NaN where an action was not a candidate or has no
    score. `source`: a Parquet/CSV file (decision_id, item_id, score), ``module:function``, or a
    callable taking `BanditLogs.candidate_rows`."""
    import pandas as pd

    frame: Any
    if callable(source):
        rows = logs.candidate_rows()
        frame = rows[["decision_id", "item_id"]].assign(score=np.asarray(source(rows), dtype=np.float64))
    elif isinstance(source, str) and ":" in source and not Path(source).exists():
        from revealed.sim.world import load_function

        return load_scores(logs, load_function(source))
    else:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"policy: no such file or module:function, found {str(source)!r}")
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
        missing = {"decision_id", "item_id", "score"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"policy: {path} lacks the columns {sorted(missing)} (decision_id, item_id, score)"
            )
    rounds = {d: i for i, d in enumerate(logs.decision_id)}
    actions = {a: j for j, a in enumerate(logs.actions)}
    i = frame["decision_id"].map(rounds)
    j = frame["item_id"].map(actions)
    keep = i.notna() & j.notna()
    scores = np.full(logs.candidates.shape, np.nan)
    scores[i[keep].astype(int).to_numpy(), j[keep].astype(int).to_numpy()] = frame["score"][keep].to_numpy()
    scores[~logs.candidates] = np.nan
    return scores


def action_distribution(scores: FloatArray, *, kind: str = "softmax", temperature: float = 1.0) -> FloatArray:
    """(rounds, actions, 1) probabilities from scores (NaN: not a candidate, probability 0).

    >>> action_distribution(np.array([[0.0, np.nan, 0.0]]))[:, :, 0].tolist()
    [[0.5, 0.0, 0.5]]
    >>> action_distribution(np.array([[1.0, 3.0, 2.0]]), kind="topk")[:, :, 0].tolist()
    [[0.0, 1.0, 0.0]]
    """
    if kind not in ("softmax", "plackett_luce", "topk"):
        raise ValueError(f"kind: expected softmax, plackett_luce or topk, found {kind!r}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a number > 0, found {temperature!r}")
    allowed = ~np.isnan(scores)
    if not allowed.any(axis=1).all():
        raise ValueError("scores: some rounds have no scored candidate")
    filled = np.where(allowed, scores, -np.inf)
    top = filled.max(axis=1, keepdims=True)
    if kind == "topk":
        weight = (filled == top).astype(np.float64)
    else:
        weight = np.where(allowed, np.exp((filled - top) / temperature), 0.0)
    out: FloatArray = (weight / weight.sum(axis=1, keepdims=True))[:, :, None]
    return out


def unsupported_mass(logs: BanditLogs, action_dist: FloatArray) -> float:
    """The share of the candidate's probability on actions the logging policy could not have
    shown: actions never chosen in any round, and, in rounds logged deterministically
    (propensity 1, e.g. a holdout's fixed action), every action but the logged one.

    >>> logs = BanditLogs(np.array(["d0", "d1"]), ["a", "b"], np.array([0, 0]), np.zeros(2),
    ...                   np.array([1.0, 0.5]), np.zeros(2, dtype=np.int64), np.ones((2, 2), bool),
    ...                   np.zeros((2, 0)), [])
    >>> unsupported_mass(logs, np.full((2, 2, 1), 0.5))
    0.5
    """
    n = logs.n_rounds
    seen = np.bincount(logs.action, minlength=len(logs.actions)) > 0
    mass = action_dist[:, :, 0]
    never = mass[:, ~seen].sum(axis=1)
    fixed = logs.pscore >= 1.0
    off_logged = 1.0 - mass[np.arange(n), logs.action]
    # a never-chosen action is counted once, not again as "off the logged action"
    unsupported = np.where(fixed, np.maximum(never, off_logged), never)
    return float(unsupported.sum() / mass.sum())
