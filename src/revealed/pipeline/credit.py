"""Multi-touch attribution credit: how much of each conversion each of its touches earns.

`credit` takes one row per (conversion, candidate touch), already limited to the touches that
may claim the conversion (the caller applies the attribution windows), and adds one float64
column ``credit_<model>`` per requested model. For every model the credits of one conversion
sum to 1; conversions without any touch are absent (organic) and the caller counts them.

=================  ===========================================================================
model id           credit of a touch
=================  ===========================================================================
``last_touch``     1 for the latest touch, 0 for the others
``first_touch``    1 for the earliest touch, 0 for the others
``linear``         1 / n
``time_decay``     proportional to ``2 ** (-(conversion_ts - touch_ts) / half_life)``
``position_based`` first and last get their weights, middle touches share the middle weight
``markov``         proportional to the channel's removal effect (`markov_removal_effects`)
``hazard``         the posterior probability that the touch caused the conversion under a fitted
                   additive hazard (`revealed.pipeline.hazard`): time-aware and data-driven
=================  ===========================================================================

Touches are ordered by ``touch_ts``, ties broken by ``touch_id`` (then ``channel``), so
"first" and "last" mean the same rows on every backend. Everything relational is a
backend-neutral Ibis expression: row numbers have an explicit, total order, and there are no
quantiles and no Python UDFs. The one step that leaves the engine is the Markov chain itself,
built in numpy from the (small) per-path counts that the engine aggregates.

>>> import datetime as dt
>>> import ibis
>>> hour = dt.timedelta(hours=1)
>>> t0 = dt.datetime(2026, 1, 1)
>>> touches = ibis.memtable(
...     {
...         "conversion_id": ["c1", "c1", "c1"],
...         "touch_id": ["t1", "t2", "t3"],
...         "touch_ts": [t0, t0 + hour, t0 + 2 * hour],
...         "conversion_ts": [t0 + 2 * hour] * 3,
...         "channel": ["email", "home_feed", "search/click"],
...     }
... )
>>> models = CreditModels(models=("last_touch", "linear", "position_based"))
>>> out = ibis.duckdb.connect().to_pyarrow(credit(touches, models).order_by("touch_ts"))
>>> [[round(x, 3) for x in out[f"credit_{m}"].to_pylist()] for m in models.models]
[[0.0, 0.0, 1.0], [0.333, 0.333, 0.333], [0.4, 0.2, 0.4]]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import ibis
import numpy as np
import numpy.typing as npt

from revealed.pipeline.hazard import AdditiveHazard

__all__ = ["MODELS", "CreditModels", "credit", "journey_paths", "markov_removal_effects"]

#: every model id `CreditModels` accepts, in a stable order
MODELS: tuple[str, ...] = (
    "last_touch",
    "first_touch",
    "linear",
    "time_decay",
    "position_based",
    "markov",
    "hazard",
)

#: the separator of channels in a journey path
PATH_SEPARATOR = " > "

_TOUCH_COLUMNS = ("conversion_id", "touch_id", "touch_ts", "conversion_ts", "channel")
_JOURNEY_COLUMNS = ("journey_id", "touch_ts", "touch_id", "channel", "converted")
_MICROS_PER_HOUR = 3_600_000_000
_TOLERANCE = 1e-9


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _require(name: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name}: expected {expected}, found {value!r}")


@dataclass(frozen=True)
class CreditModels:
    """Which credit models to compute, and their parameters (validated on construction).

    Parameters
    ----------
    models
        Model ids, any of `MODELS`, each at most once; the output gets ``credit_<id>`` columns
        in this order.
    half_life_hours
        ``time_decay``: a touch this many hours older than another earns half its weight.
    position_weights
        ``position_based``: the shares of the first touch, of all middle touches together
        (split equally) and of the last touch; non-negative, summing to 1. One touch earns 1;
        two touches split the first and last weights in proportion (half each for the default
        40/20/40, and half each when both are 0).

    >>> CreditModels(models=("linear", "time_decay"), half_life_hours=12.0).models
    ('linear', 'time_decay')
    >>> CreditModels(models=("u_shaped",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: models: expected ids among last_touch, ..., hazard, each once, found ('u_shaped',)
    """

    models: tuple[str, ...] = ("last_touch",)
    half_life_hours: float = 24.0
    position_weights: tuple[float, float, float] = (0.4, 0.2, 0.4)

    def __post_init__(self) -> None:
        models = self.models
        ok = (
            isinstance(models, tuple | list)
            and len(models) >= 1
            and all(isinstance(m, str) and m in MODELS for m in models)
            and len(set(models)) == len(models)
        )
        _require("models", models, ok, f"ids among {', '.join(MODELS)}, each once")
        object.__setattr__(self, "models", tuple(models))
        value = self.half_life_hours
        _require("half_life_hours", value, _finite(value) and value > 0, "a finite number of hours > 0")
        weights = self.position_weights
        ok = (
            isinstance(weights, tuple | list)
            and len(weights) == 3
            and all(_finite(w) and w >= 0 for w in weights)
            and abs(sum(weights) - 1.0) <= _TOLERANCE
        )
        expected = "(first, middle, last), each >= 0, summing to 1 (e.g. 0.4, 0.2, 0.4)"
        _require("position_weights", weights, ok, expected)
        object.__setattr__(self, "position_weights", tuple(float(w) for w in weights))


def _check_columns(table: ibis.Table, name: str, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in table.columns]
    _require(name, list(table.columns), not missing, f"a table with columns {', '.join(required)}")


def _check_effects(markov: Mapping[str, float] | None) -> Mapping[str, float]:
    if markov is None:
        raise ValueError(
            "markov: the 'markov' model needs each channel's removal effect; pass "
            "markov=markov_removal_effects(journey_paths(touches_all)) to credit()"
        )
    ok = isinstance(markov, Mapping) and all(
        isinstance(k, str) and _finite(v) and v >= 0 for k, v in markov.items()
    )
    _require("markov", markov, ok, "a mapping of channel -> removal effect, each a finite number >= 0")
    return markov


def credit(
    touches: ibis.Table,
    models: CreditModels,
    *,
    markov: Mapping[str, float] | None = None,
    hazard: AdditiveHazard | None = None,
) -> ibis.Table:
    """Each touch's share of its conversion under every requested model.

    Parameters
    ----------
    touches
        One row per (conversion, candidate touch) with columns ``conversion_id``, ``touch_id``,
        ``touch_ts``, ``conversion_ts`` and ``channel`` (other columns pass through), with
        ``touch_ts <= conversion_ts`` and ``touch_id`` unique within a conversion.
    models
        The models and their parameters.
    markov
        Removal effect per channel, from `markov_removal_effects`; required when ``"markov"``
        is among the models. A channel missing from it has effect 0. When every touch of a
        conversion has effect 0, that conversion's Markov credit falls back to linear.
    hazard
        The fitted additive hazard; required when ``"hazard"`` is among the models, and then
        `touches` needs a ``type`` column (the conversion's event type). A conversion none of
        whose touches has a fitted effect falls back to linear.

    Returns
    -------
    ibis.Table
        `touches` plus one float64 column ``credit_<model>`` per model, in the order of
        ``models.models``. Per conversion, each column sums to 1.
    """
    _check_columns(touches, "touches", _TOUCH_COLUMNS)
    effects = _check_effects(markov) if "markov" in models.models else {}
    if "hazard" in models.models:
        if not isinstance(hazard, AdditiveHazard):
            raise ValueError(
                "hazard: the 'hazard' model needs a fitted AdditiveHazard; fit one with "
                "revealed.pipeline.hazard.fit_additive_hazard and pass hazard= to credit()"
            )
        _check_columns(touches, "touches", (*_TOUCH_COLUMNS, "type"))
        touches = touches.mutate(_credit_log_w=hazard.log_weight(touches))
        touches = touches.mutate(_credit_log_top=touches._credit_log_w.max().over(group_by="conversion_id"))
    group = ibis.window(group_by="conversion_id")
    ordered = ibis.window(group_by="conversion_id", order_by=["touch_ts", "touch_id", "channel"])
    # window results used inside other windows are materialised first (windows cannot nest)
    t = touches.mutate(
        _credit_rank=ibis.row_number().over(ordered),  # 0-based
        _credit_n=touches.conversion_id.count().over(group),
        _credit_latest=touches.touch_ts.max().over(group),
    )
    rank, n = t._credit_rank, t._credit_n
    first, last = rank == 0, rank == n - 1
    columns: dict[str, ibis.Value] = {}
    for model in models.models:
        if model == "last_touch":
            value = ibis.ifelse(last, 1.0, 0.0)
        elif model == "first_touch":
            value = ibis.ifelse(first, 1.0, 0.0)
        elif model == "linear":
            value = 1.0 / n.cast("float64")
        elif model == "time_decay":
            # relative to the conversion's latest touch rather than to conversion_ts: the same
            # shares after normalising, and the latest weight is 1, so old touches cannot make
            # every weight underflow to 0
            age_us = t._credit_latest.delta(t.touch_ts, unit="microsecond").cast("float64")
            half_life_us = models.half_life_hours * _MICROS_PER_HOUR
            weight = (age_us * (-math.log(2.0) / half_life_us)).exp()
            value = weight / weight.sum().over(group)
        elif model == "position_based":
            w_first, w_middle, w_last = models.position_weights
            ends = w_first + w_last
            two_first, two_last = (w_first / ends, w_last / ends) if ends > 0 else (0.5, 0.5)
            value = ibis.cases(
                (n == 1, 1.0),
                (n == 2, ibis.ifelse(first, two_first, two_last)),
                (first, w_first),
                (last, w_last),
                # greatest(): no division by zero even where a backend evaluates untaken branches
                else_=w_middle / ibis.greatest(n - 2, 1).cast("float64"),
            )
        elif model == "hazard":
            # relative to the conversion's strongest touch, so no weight underflows to 0 alone
            weight = (t._credit_log_w - t._credit_log_top).exp().fill_null(0.0)
            total = weight.sum().over(group)
            value = ibis.ifelse(total > 0, weight / total, 1.0 / n.cast("float64"))
        elif effects:  # markov
            effect = t.channel.substitute({k: float(v) for k, v in effects.items()}, else_=0.0).cast(
                "float64"
            )
            total = effect.sum().over(group)
            value = ibis.ifelse(total > 0, effect / total, 1.0 / n.cast("float64"))
        else:  # markov without any effect: every conversion falls back to linear
            value = 1.0 / n.cast("float64")
        columns[f"credit_{model}"] = value.cast("float64")
    out = t.mutate(**columns)
    return out.select(*(c for c in touches.columns if not c.startswith("_credit_")), *columns)


def journey_paths(touches_all: ibis.Table) -> ibis.Table:
    """Aggregate journeys into their channel paths: one row per distinct path.

    Parameters
    ----------
    touches_all
        One row per touch of every journey, converting or not, with columns ``journey_id``,
        ``touch_ts``, ``touch_id``, ``channel`` and ``converted`` (bool, the same on every row
        of a journey; a journey converts if any of its rows says so).

    Returns
    -------
    ibis.Table
        Columns ``path`` (the journey's channels in time order, ties broken by ``touch_id``,
        joined by ``" > "``), ``conversions`` and ``non_conversions`` (int64 journey counts).

    Notes
    -----
    An ordered string aggregation (``group_concat(order_by=...)``) does not compile on
    PySpark, so the path is built portably: collect ``(touch_ts, touch_id, channel)`` structs,
    sort the array (structs sort field by field) and join the channels. Channel names must not
    contain ``" > "``.

    >>> import datetime as dt
    >>> import ibis
    >>> t0 = dt.datetime(2026, 1, 1)
    >>> touches_all = ibis.memtable(
    ...     {
    ...         "journey_id": ["j1", "j1", "j2", "j3", "j3"],
    ...         "touch_ts": [t0, t0 - dt.timedelta(hours=1), t0, t0, t0],
    ...         "touch_id": ["a", "b", "c", "e", "d"],
    ...         "channel": ["search", "email", "email", "search", "email"],
    ...         "converted": [True, True, False, False, False],
    ...     }
    ... )
    >>> paths = journey_paths(touches_all).order_by("path")
    >>> ibis.duckdb.connect().to_pyarrow(paths).to_pylist()  # doctest: +NORMALIZE_WHITESPACE
    [{'path': 'email', 'conversions': 0, 'non_conversions': 1},
     {'path': 'email > search', 'conversions': 1, 'non_conversions': 1}]
    """
    _check_columns(touches_all, "touches_all", _JOURNEY_COLUMNS)
    t = touches_all
    step = ibis.struct({"ts": t.touch_ts, "id": t.touch_id, "channel": t.channel})
    journeys = t.group_by("journey_id").aggregate(
        steps=step.collect(), converted=t.converted.cast("int64").max()
    )
    journeys = journeys.mutate(path=journeys.steps.sort().map(lambda s: s.channel).join(PATH_SEPARATOR))
    return (
        journeys.group_by("path")
        .aggregate(
            conversions=journeys.converted.sum().cast("int64"),
            non_conversions=(1 - journeys.converted).sum().cast("int64"),
        )
        .select("path", "conversions", "non_conversions")
    )


def _path_counts(paths: ibis.Table) -> list[tuple[str, int, int]]:
    """(path, conversions, non_conversions) per distinct path, aggregated in the engine."""
    if {"conversions", "non_conversions"} <= set(paths.columns) and "path" in paths.columns:
        conv, non = paths.conversions.cast("int64"), paths.non_conversions.cast("int64")
    elif {"path", "converted"} <= set(paths.columns):
        conv = paths.converted.cast("int64")
        non = 1 - conv
    else:
        raise ValueError(
            f"paths: expected columns (path, conversions, non_conversions) or (path, converted), "
            f"found {list(paths.columns)!r}"
        )
    counts = paths.group_by("path").aggregate(c=conv.sum(), u=non.sum()).to_pyarrow().to_pylist()
    out = []
    for row in counts:
        c, u = int(row["c"] or 0), int(row["u"] or 0)
        _require("paths", row, c >= 0 and u >= 0, "counts of journeys >= 0")
        if row["path"]:
            out.append((str(row["path"]), c, u))
    return out


def _conversion_probability(q: npt.NDArray[np.float64], r: npt.NDArray[np.float64]) -> float:
    """Probability of absorbing in conversion from state 0 (start): solves (I - Q) h = r."""
    h = np.linalg.solve(np.eye(len(r)) - q, r)
    return float(h[0])


def markov_removal_effects(paths: ibis.Table) -> dict[str, float]:
    """Each channel's removal effect in a first-order Markov chain of journeys, summing to 1.

    Parameters
    ----------
    paths
        Journey paths, preferably aggregated as `journey_paths` returns them: columns ``path``
        (channels in time order joined by ``" > "``), ``conversions`` and ``non_conversions``;
        one row per journey with ``path`` and ``converted`` (bool or 0/1) is accepted too.
        Rows with an empty path (no touch) are ignored.

    Returns
    -------
    dict[str, float]
        Channel -> removal effect, normalised to sum to 1, sorted by channel; all 0 when no
        journey converts; empty when there is no path.

    Notes
    -----
    The chain has states start, one per channel, conversion and null; its transition
    probabilities are the observed transition counts over all journeys (the last touch moves
    to conversion or null). Removing a channel redirects every transition into it to null; its
    removal effect is ``1 - P(conversion | removed) / P(conversion)``. Absorption
    probabilities are solved exactly with numpy; the engine only counts paths.

    >>> import ibis
    >>> paths = ibis.memtable(
    ...     {"path": ["A > B", "A", "B"], "conversions": [1, 0, 1], "non_conversions": [0, 1, 0]}
    ... )
    >>> {k: round(v, 4) for k, v in markov_removal_effects(paths).items()}
    {'A': 0.3333, 'B': 0.6667}
    """
    counted = _path_counts(paths)
    channels = sorted({ch for path, _, _ in counted for ch in path.split(PATH_SEPARATOR)})
    if not channels:
        return {}
    index = {ch: i + 1 for i, ch in enumerate(channels)}  # 0 is start
    size = len(channels) + 1
    moves = np.zeros((size, size))
    to_conversion, to_null = np.zeros(size), np.zeros(size)
    for path, conversions, non_conversions in counted:
        states = [0, *(index[ch] for ch in path.split(PATH_SEPARATOR))]
        journeys = conversions + non_conversions
        for a, b in itertools.pairwise(states):
            moves[a, b] += journeys
        to_conversion[states[-1]] += conversions
        to_null[states[-1]] += non_conversions
    out_total = moves.sum(axis=1) + to_conversion + to_null
    if out_total[0] == 0 or to_conversion.sum() == 0:
        return dict.fromkeys(channels, 0.0)
    safe = np.where(out_total > 0, out_total, 1.0)
    q, r = moves / safe[:, None], to_conversion / safe
    base = _conversion_probability(q, r)
    effects = {}
    for ch, i in index.items():
        keep = [j for j in range(size) if j != i]
        removed = _conversion_probability(q[np.ix_(keep, keep)], r[keep])
        effects[ch] = min(max(1.0 - removed / base, 0.0), 1.0)
    total = sum(effects.values())
    return {ch: (e / total if total > 0 else 0.0) for ch, e in effects.items()}
