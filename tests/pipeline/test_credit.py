"""Multi-touch credit: hand-computed shares per model, the Markov chain against an independent
calculation, a synthetic world with a known causal channel, and properties on random tables."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibis.config import Config

from revealed.pipeline.credit import (
    MODELS,
    CreditModels,
    credit,
    journey_paths,
    markov_removal_effects,
)
from revealed.pipeline.hazard import AdditiveHazard, ChannelEffect

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
RULE_BASED = ("last_touch", "first_touch", "linear", "time_decay", "position_based")
TOUCH_SCHEMA = pa.schema(
    [
        ("conversion_id", pa.string()),
        ("touch_id", pa.string()),
        ("touch_ts", pa.timestamp("us", tz="UTC")),
        ("conversion_ts", pa.timestamp("us", tz="UTC")),
        ("channel", pa.string()),
    ]
)


@pytest.fixture(scope="module")
def con() -> Any:
    return ibis.duckdb.connect()


def _touches(rows: list[tuple[str, str, dt.datetime, dt.datetime, str]]) -> ibis.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in TOUCH_SCHEMA.names]
    return ibis.memtable(pa.table([list(c) for c in columns], schema=TOUCH_SCHEMA)).mutate(
        type=ibis.literal("purchase")
    )


def _hazard(effects: dict[str, tuple[float, float]]) -> AdditiveHazard:
    """A purchase hazard with (lift, decay per hour) per channel."""
    return AdditiveHazard({"purchase": {c: ChannelEffect(*e) for c, e in effects.items()}})


def _journey(channels_at: list[tuple[str, str, float]], *, convert_after: float = 0.0) -> ibis.Table:
    """One conversion "c"; each touch is (touch_id, channel, hours before the latest touch)."""
    latest = T0 + 10 * HOUR
    return _touches(
        [
            ("c", touch_id, latest - hours * HOUR, latest + convert_after * HOUR, channel)
            for touch_id, channel, hours in channels_at
        ]
    )


def _credits(con: Any, touches: ibis.Table, models: CreditModels, **kw: Any) -> dict[str, dict[str, float]]:
    """model -> touch_id -> credit, for a table holding one conversion."""
    rows = con.to_pyarrow(credit(touches, models, **kw)).to_pylist()
    return {m: {r["touch_id"]: r[f"credit_{m}"] for r in rows} for m in models.models}


def _approx(expected: dict[str, float]) -> Any:
    return pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_one_touch_earns_everything_in_every_model(con: Any) -> None:
    got = _credits(
        con,
        _journey([("t1", "email", 0)]),
        CreditModels(models=MODELS),
        markov={"email": 0.0},
        hazard=_hazard({}),
    )
    assert got == {m: {"t1": 1.0} for m in MODELS}


def test_two_touches(con: Any) -> None:
    touches = _journey([("t2", "email", 1.0), ("t1", "search", 0.0)], convert_after=5.0)
    got = _credits(con, touches, CreditModels(models=RULE_BASED, half_life_hours=1.0))
    assert got["last_touch"] == {"t2": 0.0, "t1": 1.0}
    assert got["first_touch"] == {"t2": 1.0, "t1": 0.0}
    assert got["linear"] == {"t2": 0.5, "t1": 0.5}
    assert got["position_based"] == {"t2": 0.5, "t1": 0.5}
    # ages 6 h and 5 h at conversion, half-life 1 h: weights 1/64 and 1/32
    assert got["time_decay"] == _approx({"t2": 1 / 3, "t1": 2 / 3})


def test_three_touches(con: Any) -> None:
    touches = _journey([("a", "email", 2.0), ("b", "home_feed", 1.0), ("c", "search", 0.0)])
    got = _credits(con, touches, CreditModels(models=RULE_BASED, half_life_hours=1.0))
    assert got["last_touch"] == {"a": 0.0, "b": 0.0, "c": 1.0}
    assert got["first_touch"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert got["linear"] == _approx(dict.fromkeys("abc", 1 / 3))
    assert got["position_based"] == _approx({"a": 0.4, "b": 0.2, "c": 0.4})
    assert got["time_decay"] == _approx({"a": 1 / 7, "b": 2 / 7, "c": 4 / 7})  # weights 1/4, 1/2, 1


def test_five_touches_ordered_by_time_not_by_id(con: Any) -> None:
    # ids deliberately in the opposite order of time; ages 8, 6, 4, 2, 0 h, half-life 2 h
    touches = _journey([(f"t{5 - i}", f"ch{i}", 8.0 - 2 * i) for i in range(5)], convert_after=3.0)
    got = _credits(con, touches, CreditModels(models=RULE_BASED, half_life_hours=2.0))
    assert got["first_touch"] == {"t5": 1.0, "t4": 0.0, "t3": 0.0, "t2": 0.0, "t1": 0.0}
    assert got["last_touch"] == {"t5": 0.0, "t4": 0.0, "t3": 0.0, "t2": 0.0, "t1": 1.0}
    assert got["linear"] == _approx(dict.fromkeys(["t5", "t4", "t3", "t2", "t1"], 0.2))
    middle = 0.2 / 3
    assert got["position_based"] == _approx({"t5": 0.4, "t4": middle, "t3": middle, "t2": middle, "t1": 0.4})
    assert got["time_decay"] == _approx(
        {"t5": 1 / 31, "t4": 2 / 31, "t3": 4 / 31, "t2": 8 / 31, "t1": 16 / 31}
    )


def test_sub_second_ages_count_in_time_decay(con: Any) -> None:
    half = dt.timedelta(microseconds=1_800)  # half-life of 0.5 ms
    touches = _touches([("c", "old", T0, T0 + half, "a"), ("c", "new", T0 + half, T0 + half, "b")])
    got = _credits(con, touches, CreditModels(models=("time_decay",), half_life_hours=1.8e-3 / 3600))
    assert got["time_decay"] == _approx({"old": 1 / 3, "new": 2 / 3})


def test_ties_in_time_are_broken_by_touch_id_whatever_the_row_order(con: Any) -> None:
    rows = [("c", "b", T0, T0 + HOUR, "x"), ("c", "a", T0, T0 + HOUR, "y"), ("c", "c", T0, T0 + HOUR, "z")]
    models = CreditModels(models=RULE_BASED)
    got = _credits(con, _touches(rows), models)
    assert got == _credits(con, _touches(rows[::-1]), models)
    assert got["first_touch"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert got["last_touch"] == {"a": 0.0, "b": 0.0, "c": 1.0}
    assert got["position_based"] == _approx({"a": 0.4, "b": 0.2, "c": 0.4})
    assert got["time_decay"] == _approx(dict.fromkeys("abc", 1 / 3))  # equal ages, equal weights


@pytest.mark.parametrize(
    ("weights", "two", "three"),
    [
        ((0.3, 0.1, 0.6), (1 / 3, 2 / 3), (0.3, 0.1, 0.6)),
        ((0.0, 1.0, 0.0), (0.5, 0.5), (0.0, 1.0, 0.0)),
        ((0.5, 0.0, 0.5), (0.5, 0.5), (0.5, 0.0, 0.5)),
    ],
)
def test_position_weights(
    con: Any, weights: tuple[float, float, float], two: tuple[float, ...], three: tuple[float, ...]
) -> None:
    models = CreditModels(models=("position_based",), position_weights=weights)
    for expected in (two, three):
        touches = _journey([(f"t{i}", "x", float(len(expected) - i)) for i in range(len(expected))])
        got = _credits(con, touches, models)["position_based"]
        assert got == _approx({f"t{i}": w for i, w in enumerate(expected)})


def test_conversions_are_credited_independently_and_columns_pass_through(con: Any) -> None:
    shared = ("c1", "t1", T0, T0 + 3 * HOUR, "email")
    rows = [shared, ("c1", "t2", T0 + HOUR, T0 + 3 * HOUR, "search"), ("c2", "t1", T0, T0 + HOUR, "email")]
    touches = _touches(rows).mutate(extra=ibis.literal("kept"))
    out = credit(touches, CreditModels(models=("linear", "last_touch")))
    assert out.columns == (*touches.columns, "credit_linear", "credit_last_touch")
    assert out.schema()["credit_linear"] == out.schema()["credit_last_touch"] == ibis.dtype("float64")
    got = {(r["conversion_id"], r["touch_id"]): r for r in con.to_pyarrow(out).to_pylist()}
    assert {k: r["credit_linear"] for k, r in got.items()} == {
        ("c1", "t1"): 0.5,
        ("c1", "t2"): 0.5,
        ("c2", "t1"): 1,
    }
    assert {k: r["credit_last_touch"] for k, r in got.items()} == {
        ("c1", "t1"): 0,
        ("c1", "t2"): 1,
        ("c2", "t1"): 1,
    }
    assert {r["extra"] for r in got.values()} == {"kept"}
    assert con.to_pyarrow(credit(_touches([]), CreditModels())).num_rows == 0


def test_markov_credit_is_proportional_to_removal_effects(con: Any) -> None:
    touches = _journey([("a", "A", 2.0), ("b1", "B", 1.0), ("b2", "B", 0.0)])
    models = CreditModels(models=("markov",))
    got = _credits(con, touches, models, markov={"A": 0.75, "B": 0.25})["markov"]
    assert got == _approx({"a": 0.6, "b1": 0.2, "b2": 0.2})
    unknown = _credits(con, touches, models, markov={"A": 0.75})["markov"]  # B absent: effect 0
    assert unknown == _approx({"a": 1.0, "b1": 0.0, "b2": 0.0})
    for effects in ({"A": 0.0, "B": 0.0}, {}, {"C": 1.0}):  # nothing to share: linear
        assert _credits(con, touches, models, markov=effects)["markov"] == _approx(
            dict.fromkeys(["a", "b1", "b2"], 1 / 3)
        )


def test_markov_needs_removal_effects() -> None:
    touches = _journey([("a", "A", 0.0)])
    with pytest.raises(ValueError, match=r"markov:.*markov_removal_effects"):
        credit(touches, CreditModels(models=("linear", "markov")))
    with pytest.raises(ValueError, match="markov: expected a mapping"):
        credit(touches, CreditModels(models=("markov",)), markov={"A": -0.5})
    with pytest.raises(ValueError, match="touches: expected a table with columns"):
        credit(touches.drop("channel"), CreditModels())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"models": ("last_touch", "u_shaped")}, "models"),
        ({"models": ()}, "models"),
        ({"models": ("linear", "linear")}, "models"),
        ({"models": "linear"}, "models"),
        ({"half_life_hours": -1.0}, "half_life_hours"),
        ({"half_life_hours": 0.0}, "half_life_hours"),
        ({"half_life_hours": math.inf}, "half_life_hours"),
        ({"half_life_hours": True}, "half_life_hours"),
        ({"position_weights": (0.5, 0.2, 0.4)}, "position_weights"),
        ({"position_weights": (0.6, -0.2, 0.6)}, "position_weights"),
        ({"position_weights": (0.5, 0.5)}, "position_weights"),
        ({"position_weights": (math.nan, 0.5, 0.5)}, "position_weights"),
    ],
)
def test_invalid_credit_models_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: expected"):
        CreditModels(**kwargs)


def test_markov_removal_effects_by_hand() -> None:
    # start -> A 2/3, start -> B 1/3; A -> B 1/2, A -> null 1/2; B -> conversion 1.
    # P(conv) = 2/3 * 1/2 + 1/3 = 2/3; without A: 1/3 (effect 1/2); without B: 0 (effect 1).
    aggregated = ibis.memtable(
        {"path": ["A > B", "A", "B"], "conversions": [1, 0, 1], "non_conversions": [0, 1, 0]}
    )
    assert markov_removal_effects(aggregated) == pytest.approx({"A": 1 / 3, "B": 2 / 3}, rel=1e-12)
    per_journey = ibis.memtable({"path": ["B", "A", "A > B"], "converted": [True, False, True]})
    assert markov_removal_effects(per_journey) == pytest.approx({"A": 1 / 3, "B": 2 / 3}, rel=1e-12)


def _brute_force_effects(counts: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Removal effects by raising the full stochastic matrix to a huge power (no linear solve)."""
    channels = sorted({c for path in counts for c in path.split(" > ")})
    states = ["(start)", *channels, "(conversion)", "(null)"]
    at = {s: i for i, s in enumerate(states)}
    flows = np.zeros((len(states), len(states)))
    for path, (conv, non) in counts.items():
        walk = ["(start)", *path.split(" > ")]
        for a, b in itertools.pairwise(walk):
            flows[at[a], at[b]] += conv + non
        flows[at[walk[-1]], at["(conversion)"]] += conv
        flows[at[walk[-1]], at["(null)"]] += non
    flows[at["(conversion)"], at["(conversion)"]] = flows[at["(null)"], at["(null)"]] = 1

    def p_conversion(removed: str | None) -> float:
        f = flows.copy()
        if removed is not None:
            f[:, at["(null)"]] += f[:, at[removed]]
            f[:, at[removed]] = 0
            f[at[removed], :] = 0
            f[at[removed], at["(null)"]] = 1
        p = f / f.sum(axis=1, keepdims=True)
        for _ in range(60):  # p ** (2 ** 60)
            p = p @ p
        return float(p[at["(start)"], at["(conversion)"]])

    base = p_conversion(None)
    effects = {c: 1 - p_conversion(c) / base for c in channels}
    return {c: e / sum(effects.values()) for c, e in effects.items()}


def test_markov_removal_effects_match_a_brute_force_chain() -> None:
    counts = {
        "A > B > A": (3, 1),
        "A > C": (1, 4),
        "C > C > B": (2, 2),
        "B": (1, 6),
        "C > A > B > C": (2, 0),
        "A": (0, 5),
        "D > A": (0, 3),
    }
    paths = ibis.memtable(
        {
            "path": list(counts),
            "conversions": [c for c, _ in counts.values()],
            "non_conversions": [n for _, n in counts.values()],
        }
    )
    got = markov_removal_effects(paths)
    assert list(got) == ["A", "B", "C", "D"]
    assert got == pytest.approx(_brute_force_effects(counts), rel=1e-9, abs=1e-12)
    assert sum(got.values()) == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    counts=st.dictionaries(
        st.lists(st.sampled_from("ABCD"), min_size=1, max_size=5).map(" > ".join),
        st.tuples(st.integers(0, 20), st.integers(0, 20)).filter(lambda c: sum(c) > 0),
        min_size=1,
        max_size=8,
    )
)
def test_markov_removal_effects_match_brute_force_on_random_paths(counts: dict[str, tuple[int, int]]) -> None:
    paths = ibis.memtable(
        {
            "path": list(counts),
            "conversions": [c for c, _ in counts.values()],
            "non_conversions": [n for _, n in counts.values()],
        }
    )
    got = markov_removal_effects(paths)
    assert all(0.0 <= e <= 1.0 for e in got.values())
    if any(c for c, _ in counts.values()):
        assert got == pytest.approx(_brute_force_effects(counts), rel=1e-9, abs=1e-12)
    else:
        assert set(got.values()) == {0.0}


def test_markov_removal_effects_edge_cases() -> None:
    none_convert = ibis.memtable({"path": ["A > B", "B"], "conversions": [0, 0], "non_conversions": [3, 1]})
    assert markov_removal_effects(none_convert) == {"A": 0.0, "B": 0.0}
    empty = ibis.memtable({"path": ["", None], "conversions": [1, 1], "non_conversions": [0, 0]})
    assert markov_removal_effects(empty) == {}
    with pytest.raises(ValueError, match="paths: expected columns"):
        markov_removal_effects(ibis.memtable({"journey": ["A"], "converted": [True]}))
    negative = ibis.memtable({"path": ["A"], "conversions": [-1], "non_conversions": [0]})
    with pytest.raises(ValueError, match="paths: expected counts"):
        markov_removal_effects(negative)


def test_journey_paths_orders_touches_and_counts_journeys(con: Any) -> None:
    rows = [  # journey_id, hours, touch_id, channel, converted
        ("j1", 2, "x", "search/click", True),
        ("j1", 0, "y", "email", True),
        ("j1", 1, "b", "home_feed", True),
        ("j1", 1, "a", "email", True),  # ties j1's "b" at 1 h: "a" first
        ("j2", 0, "p", "email", False),
        ("j2", 1, "q", "home_feed", False),
        ("j2", 1, "a", "email", False),
        ("j2", 2, "r", "search/click", False),
        ("j3", 5, "s", "email", True),
        ("j4", 0, "t", "email", False),
    ]
    touches_all = ibis.memtable(
        pa.table(
            {
                "journey_id": [r[0] for r in rows],
                "touch_ts": pa.array([T0 + r[1] * HOUR for r in rows], pa.timestamp("us", tz="UTC")),
                "touch_id": [r[2] for r in rows],
                "channel": [r[3] for r in rows],
                "converted": [r[4] for r in rows],
            }
        )
    )
    paths = journey_paths(touches_all)
    assert paths.columns == ("path", "conversions", "non_conversions")
    got = {r["path"]: (r["conversions"], r["non_conversions"]) for r in con.to_pyarrow(paths).to_pylist()}
    assert got == {"email > email > home_feed > search/click": (1, 1), "email": (1, 1)}
    assert set(markov_removal_effects(paths)) == {"email", "home_feed", "search/click"}


def _causal_world(journeys: int, seed: int) -> tuple[ibis.Table, ibis.Table, float]:
    """Channel A causes conversions (5% -> 60%); B does nothing but often comes last.

    Returns every journey's touches, the converting journeys' touches, and the true share of
    conversions caused by A (converted, but would not have without A: common random numbers)."""
    rng = np.random.default_rng(seed)
    saw_a, saw_b = rng.random(journeys) < 0.5, rng.random(journeys) < 0.8
    u = rng.random(journeys)
    converted = u < np.where(saw_a, 0.6, 0.05)
    caused_by_a = converted & ~(u < 0.05)
    rows: list[tuple[str, str, dt.datetime, str, bool]] = []
    for j in np.flatnonzero(saw_a | saw_b):
        at = T0 + float(rng.uniform(0, 24)) * HOUR
        if saw_a[j]:
            rows.append((f"j{j}", f"j{j}-a", at, "A", bool(converted[j])))
            at += float(rng.uniform(1, 48)) * HOUR
        if saw_b[j]:
            rows.append((f"j{j}", f"j{j}-b", at, "B", bool(converted[j])))
    touches_all = ibis.memtable(
        pa.table(
            {
                "journey_id": [r[0] for r in rows],
                "touch_id": [r[1] for r in rows],
                "touch_ts": pa.array([r[2] for r in rows], pa.timestamp("us", tz="UTC")),
                "channel": [r[3] for r in rows],
                "converted": [r[4] for r in rows],
            }
        )
    )
    last = touches_all.touch_ts.max().over(ibis.window(group_by="journey_id"))
    touches = touches_all.filter(touches_all.converted).select(
        conversion_id=touches_all.journey_id,
        touch_id=touches_all.touch_id,
        touch_ts=touches_all.touch_ts,
        conversion_ts=last + ibis.interval(hours=1),
        channel=touches_all.channel,
    )
    touched = saw_a | saw_b
    return touches_all, touches, float(caused_by_a[touched].sum() / converted[touched].sum())


def test_markov_is_closer_than_last_touch_to_the_causal_channel(con: Any) -> None:
    touches_all, touches, truth = _causal_world(3_000, seed=7)
    effects = markov_removal_effects(journey_paths(touches_all))
    assert effects["A"] > 0.3  # B does nothing, but a first-order chain still sees B before conversions
    out = con.to_pyarrow(credit(touches, CreditModels(models=("last_touch", "markov")), markov=effects))
    rows = out.to_pylist()
    conversions = len({r["conversion_id"] for r in rows})
    last_touch, markov = (
        sum(r[f"credit_{m}"] for r in rows if r["channel"] == "A") / conversions
        for m in ("last_touch", "markov")
    )
    assert truth > 0.8
    assert last_touch < 0.3
    assert abs(markov - truth) < abs(last_touch - truth) - 0.2


@st.composite
def _random_touches(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, str, dt.datetime, dt.datetime, str]], dict[str, float]]:
    channels = ["email", "home_feed", "search/click", "push"]
    rows = []
    for c in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 6))
        ids = draw(st.permutations([f"t{i}" for i in range(n)]))
        conversion_ts = T0 + dt.timedelta(microseconds=draw(st.integers(0, 10**9)))
        for touch_id in ids:
            age = draw(st.one_of(st.integers(0, 2), st.integers(0, 30 * 86_400 * 10**6)))
            rows.append(
                (
                    f"c{c}",
                    touch_id,
                    conversion_ts - dt.timedelta(microseconds=age),
                    conversion_ts,
                    draw(st.sampled_from(channels)),
                )
            )
    effects = draw(st.dictionaries(st.sampled_from(channels), st.floats(0.0, 1.0)))
    return rows, effects


@settings(max_examples=40, deadline=None)
@given(
    data=_random_touches(),
    hazard=st.dictionaries(
        st.sampled_from(["email", "home_feed", "search/click", "push"]),
        st.tuples(st.floats(0.0, 10.0), st.floats(1e-6, 100.0)),
    ),
    half_life=st.floats(1e-4, 1e5),
    weights=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0)).filter(
        lambda w: sum(w) > 0.01
    ),
)
def test_credits_are_shares_that_sum_to_one(
    con: Any,
    data: tuple[list[tuple[str, str, dt.datetime, dt.datetime, str]], dict[str, float]],
    hazard: dict[str, tuple[float, float]],
    half_life: float,
    weights: tuple[float, float, float],
) -> None:
    rows, effects = data
    total = sum(weights)
    position = (weights[0] / total, weights[1] / total, weights[2] / total)
    models = CreditModels(models=MODELS, half_life_hours=half_life, position_weights=position)
    out = con.to_pyarrow(credit(_touches(rows), models, markov=effects, hazard=_hazard(hazard))).to_pylist()
    assert len(out) == len(rows)
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for row in out:
        for model in MODELS:
            value = row[f"credit_{model}"]
            assert math.isfinite(value), (model, row)
            assert 0.0 <= value <= 1.0, (model, row)
            sums[(model, row["conversion_id"])] += value
    assert all(abs(s - 1.0) <= 1e-9 for s in sums.values()), sums


class _SparkOptions(Config):
    """What the PySpark compiler reads from `ibis.options.pyspark` (set when pyspark is imported)."""

    treat_nan_as_null: bool = False


def test_steps_compile_for_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compile-only: the expressions use nothing the PySpark backend refuses (no pyspark, no JVM)."""
    spark = pytest.importorskip("ibis.backends.sql.compilers.pyspark")
    if ibis.options.pyspark is None:
        monkeypatch.setattr(ibis.options, "pyspark", _SparkOptions())
    touches = _journey([("a", "A", 1.0), ("b", "B", 0.0)])
    out = credit(
        touches, CreditModels(models=MODELS), markov={"A": 0.5, "B": 0.5}, hazard=_hazard({"A": (0.1, 0.2)})
    )
    sql = spark.compiler.to_sqlglot(out).sql(dialect="spark")
    assert "ROW_NUMBER() OVER (PARTITION BY" in sql
    touches_all = touches.select(
        journey_id="conversion_id",
        touch_ts="touch_ts",
        touch_id="touch_id",
        channel="channel",
        converted=True,
    )
    assert "ARRAY_SORT" in spark.compiler.to_sqlglot(journey_paths(touches_all)).sql(dialect="spark")
