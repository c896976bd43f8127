"""Is there presentation and selection bias? CTR by position, exposure concentration, and the
exposure propensity of candidate items.

- **CTR by position** on viewed rows (negatives and CTRs use viewed rows only), and the CTR of
  satisfied clicks, per surface and model version, with Wilson 95% intervals.
- **Exposure concentration**: the share of impressions that go to the top 1% of items, the Gini
  coefficient of impressions over items, and the same for clicks. Clicks concentrating more than
  impressions (a higher Gini, a larger top-1% share) is the rich-get-richer loop a model trained
  on raw clicks reinforces.
- **Selection bias**: where decisions log their `candidates`, each item's exposure propensity is
  how often it was served when it was a candidate; feedback exists only for what was served, so
  candidates that are (almost) never served are invisible to a click-trained model.

Counts are aggregated by the engine; intervals and Gini are computed from the counts in numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import numpy.typing as npt

__all__ = [
    "Concentration",
    "ctr_by_position",
    "exposure_concentration",
    "exposure_propensity",
    "gini",
    "wilson",
]

_Z95 = 1.959963984540054


def wilson(successes: npt.ArrayLike, trials: npt.ArrayLike, z: float = _Z95) -> tuple[Any, Any]:
    """Wilson score interval of a binomial proportion (low, high); (0, 1) where there are no trials.

    >>> [round(float(x), 4) for x in wilson(5, 10)]
    [0.2366, 0.7634]
    """
    c = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    safe = np.where(n > 0, n, 1.0)
    p = c / safe
    denominator = 1 + z * z / safe
    center = (p + z * z / (2 * safe)) / denominator
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denominator
    return np.where(n > 0, center - half, 0.0), np.where(n > 0, center + half, 1.0)


def gini(counts: npt.ArrayLike) -> float:
    """Gini coefficient of non-negative counts (0: all equal; towards 1: all on one).

    >>> gini([1, 1, 1, 1]), round(gini([0, 0, 0, 10]), 3)
    (0.0, 0.75)
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), float(x.sum())
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


def ctr_by_position(
    served: ibis.Table, backend: Any, *, by: tuple[str, ...] = ("surface", "model_version")
) -> Any:
    """One row per (group, position): viewed rows, clicks, CTR and satisfied CTR with intervals.

    Returns a pandas DataFrame ordered by group and position."""
    viewed = served.filter(served.viewed)
    counts = (
        viewed.group_by([*by, "position"])
        .aggregate(
            viewed=viewed.count(),
            clicks=viewed.clicked.cast("int64").sum(),
            satisfied=viewed.satisfied.cast("int64").sum(),
        )
        .order_by([*by, "position"])
    )
    frame = backend.to_pyarrow(counts).to_pandas()
    frame["ctr"] = frame["clicks"] / frame["viewed"]
    frame["ctr_low"], frame["ctr_high"] = wilson(frame["clicks"], frame["viewed"])
    frame["satisfied_ctr"] = frame["satisfied"] / frame["viewed"]
    frame["satisfied_low"], frame["satisfied_high"] = wilson(frame["satisfied"], frame["viewed"])
    return frame


@dataclass(frozen=True)
class Concentration:
    """How impressions and clicks concentrate on few items (one surface, or all)."""

    items: int
    impressions: int
    clicks: int
    top_share_impressions: float
    top_share_clicks: float
    gini_impressions: float
    gini_clicks: float
    top_fraction: float = 0.01
    #: the CTR of the most exposed items over the CTR of the rest
    top_ctr_lift: float = field(default=math.nan)

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def exposure_concentration(served: ibis.Table, backend: Any, *, top_fraction: float = 0.01) -> Concentration:
    """Concentration of impressions (served rows) and clicks over items, and how much more the
    top `top_fraction` of items by impressions is clicked than the rest."""
    per_item = backend.to_pyarrow(
        served.group_by("item_id").aggregate(
            impressions=served.count(), clicks=served.clicked.cast("int64").sum()
        )
    )
    shown = per_item["impressions"].to_numpy().astype(np.float64)
    clicked = per_item["clicks"].to_numpy().astype(np.float64)
    order = np.argsort(-shown, kind="stable")
    top = max(1, math.ceil(len(shown) * top_fraction)) if len(shown) else 0
    head, tail = order[:top], order[top:]

    def share(x: npt.NDArray[np.float64], where: npt.NDArray[np.int64]) -> float:
        total = float(x.sum())
        return float(x[where].sum()) / total if total else 0.0

    head_ctr = clicked[head].sum() / max(shown[head].sum(), 1.0)
    tail_ctr = clicked[tail].sum() / max(shown[tail].sum(), 1.0)
    return Concentration(
        items=len(shown),
        impressions=int(shown.sum()),
        clicks=int(clicked.sum()),
        top_share_impressions=share(shown, head),
        top_share_clicks=share(clicked, head),
        gini_impressions=gini(shown),
        gini_clicks=gini(clicked),
        top_fraction=top_fraction,
        top_ctr_lift=float(head_ctr / tail_ctr) if tail_ctr > 0 else math.nan,
    )


def exposure_propensity(decisions: ibis.Table, backend: Any) -> Any:
    """Per item among logged candidates: how often it was a candidate, how often served, and the
    share served (its exposure propensity). A pandas DataFrame, least exposed first; empty when
    no decision logs candidates."""
    logged = decisions.filter(decisions.candidates.notnull() & (decisions.candidates.length() > 0))
    candidates = logged.select("decision_id", candidate=logged.candidates.unnest()).select(
        "decision_id", item_id=ibis._.candidate.item_id
    )
    shown = logged.select("decision_id", item=logged["items"].unnest()).select(
        "decision_id", item_id=ibis._.item.item_id
    )
    shown = shown.distinct().mutate(served=ibis.literal(1))
    joined = candidates.distinct().left_join(shown, ["decision_id", "item_id"])
    per_item = joined.group_by(joined.item_id).aggregate(
        candidate=joined.count(), served=joined.served.fill_null(0).sum()
    )
    frame = backend.to_pyarrow(per_item).to_pandas()
    frame["propensity"] = frame["served"] / frame["candidate"]
    return frame.sort_values(["propensity", "item_id"]).reset_index(drop=True)
