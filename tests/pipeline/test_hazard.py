"""The additive-hazard attribution model: parameter recovery on data drawn from the model itself,
posterior credits by hand, and the engine-side inputs (exposure, union of windows) by hand."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pytest

from revealed.pipeline.attribute import hazard_inputs, window_candidates
from revealed.pipeline.credit import CreditModels, credit
from revealed.pipeline.hazard import AdditiveHazard, ChannelEffect, HazardInputs, fit_additive_hazard

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)

#: channel -> (lift, decay per hour, window hours)
TRUE = {"search/click": (0.08, 0.06, 168.0), "feed/click": (0.03, 0.2, 168.0), "feed/view": (0.01, 0.3, 24.0)}
BASELINE = 2e-4  # organic conversions per hour at risk
SPAN = 24.0 * 14  # hours of touches; the cut-off is at the end


def _union(starts: np.ndarray, ends: np.ndarray) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(zip(starts.tolist(), ends.tolist(), strict=True)):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _simulate(seed: int, pairs: int = 60_000) -> tuple[HazardInputs, np.ndarray, np.ndarray]:
    """Conversions drawn from the additive hazard with exponential kernels cut at the windows:
    returns the fit's inputs, each candidate pair's true cause flag, and its conversion key."""
    rng = np.random.default_rng(seed)
    names = list(TRUE)
    lift, decay, window = (np.array([TRUE[c][i] for c in names]) for i in range(3))
    conv_key, cand_channel, cand_hours, cand_cause = [], [], [], []
    exposure: dict[tuple[str, float], int] = {}
    at_risk, next_id = 0.0, 0
    for _p in range(pairs):
        k = rng.integers(1, 5)
        ch = rng.integers(len(names), size=k)
        t = rng.uniform(0, SPAN, size=k)
        open_h = np.minimum(window[ch], SPAN - t)
        for c, h in zip(ch, open_h, strict=True):
            key = (names[c], round(float(h) * 20) / 20)
            exposure[key] = exposure.get(key, 0) + 1
        spans = _union(t, t + open_h)
        length = sum(e - s for s, e in spans)
        at_risk += length
        # caused conversions: Poisson(lift * mass within the open window), delays truncated exponential
        mass = -np.expm1(-decay[ch] * open_h)
        caused = rng.poisson(lift[ch] * mass)
        times, causes = [], []
        for j in np.flatnonzero(caused):
            u = rng.uniform(size=caused[j])
            delay = -np.log1p(-u * mass[j]) / decay[ch[j]]
            times += (t[j] + delay).tolist()
            causes += [j] * int(caused[j])
        # organic: Poisson(baseline * at-risk length), uniform over the union
        for s, e in spans:
            m = rng.poisson(BASELINE * (e - s))
            times += rng.uniform(s, e, size=m).tolist()
            causes += [-1] * m
        for at, cause in zip(times, causes, strict=True):
            eligible = np.flatnonzero((t <= at) & (at - t <= open_h))
            for j in eligible:
                conv_key.append(next_id)
                cand_channel.append(names[ch[j]])
                cand_hours.append(at - t[j])
                cand_cause.append(j == cause)
            next_id += 1
    keys = list(exposure)
    inputs = HazardInputs(
        conversion=np.array(conv_key),
        channel=np.array(cand_channel),
        hours=np.array(cand_hours),
        exposure_channel=np.array([k[0] for k in keys]),
        exposure_hours=np.array([k[1] for k in keys]),
        exposure_touches=np.array([exposure[k] for k in keys]),
        at_risk_hours=at_risk,
    )
    return inputs, np.array(cand_cause), np.array(conv_key)


@pytest.fixture(scope="module")
def simulated() -> tuple[HazardInputs, np.ndarray, np.ndarray]:
    return _simulate(7)


def test_the_fit_recovers_lifts_and_decays_of_data_drawn_from_the_model(
    simulated: tuple[HazardInputs, np.ndarray, np.ndarray],
) -> None:
    inputs, _, _ = simulated
    fit = fit_additive_hazard(inputs)
    assert set(fit) == set(TRUE)
    for channel, (lift, decay, _) in TRUE.items():
        # views cause few conversions (~600 here) and compete with the baseline: wider tolerance
        rel = 0.25 if channel.endswith("/view") else 0.1
        assert fit[channel].lift == pytest.approx(lift, rel=rel), channel
        assert fit[channel].decay == pytest.approx(decay, rel=rel), channel
        assert fit[channel].half_life_hours == pytest.approx(math.log(2) / fit[channel].decay)


def test_credits_are_calibrated_posterior_probabilities_of_being_the_cause(
    simulated: tuple[HazardInputs, np.ndarray, np.ndarray],
) -> None:
    """Among touches credited about p (in conversions with several candidate touches), a share
    of about p are the true cause: the credit is the posterior probability of causing."""
    inputs, cause, key = simulated
    fit = fit_additive_hazard(inputs)
    lift = np.array([fit[c].lift for c in inputs.channel])
    decay = np.array([fit[c].decay for c in inputs.channel])
    w = lift * decay * np.exp(-decay * inputs.hours)
    _, conv = np.unique(key, return_inverse=True)
    share = w / np.bincount(conv, weights=w)[conv]
    # conversions with several candidates, one of which caused it (organic ones have no cause)
    several = (np.bincount(conv) >= 2) & (np.bincount(conv, weights=cause.astype(float)) > 0)
    rows = several[conv]
    assert several.sum() > 500
    bins = np.digitize(share[rows], [0.2, 0.4, 0.6, 0.8])
    for b in range(5):
        mine = bins == b
        if mine.sum() < 100:
            continue
        observed, predicted = cause[rows][mine].mean(), share[rows][mine].mean()
        se = math.sqrt(predicted * (1 - predicted) / mine.sum())
        assert abs(observed - predicted) < max(4 * se, 0.03), (b, observed, predicted, mine.sum())


def test_the_fit_is_empty_without_channels_and_ignores_channels_without_conversions() -> None:
    empty = HazardInputs(
        conversion=np.array([]),
        channel=np.array([]),
        hours=np.array([]),
        exposure_channel=np.array([]),
        exposure_hours=np.array([]),
        exposure_touches=np.array([], dtype=np.int64),
        at_risk_hours=0.0,
    )
    assert fit_additive_hazard(empty) == {}
    inputs = HazardInputs(
        conversion=np.array(["c1"]),
        channel=np.array(["a"]),
        hours=np.array([2.0]),
        exposure_channel=np.array(["a", "b"]),
        exposure_hours=np.array([24.0, 24.0]),
        exposure_touches=np.array([10, 10]),
        at_risk_hours=480.0,
    )
    fit = fit_additive_hazard(inputs)
    assert fit["b"].lift == 0.0
    assert fit["a"].lift > 0
    assert math.isfinite(fit["a"].decay)


def _touches(rows: list[tuple[str, str, float, str]]) -> ibis.Table:
    """(conversion, touch, hours before the conversion at T0 + 100 h, channel) of purchases."""
    at = T0 + 100 * HOUR
    return ibis.memtable(
        pa.Table.from_pylist(
            [
                {
                    "conversion_id": c,
                    "touch_id": t,
                    "touch_ts": at - h * HOUR,
                    "conversion_ts": at,
                    "channel": ch,
                    "type": "purchase",
                }
                for c, t, h, ch in rows
            ]
        )
    )


def _hazard_credit(touches: ibis.Table, model: AdditiveHazard) -> dict[str, float]:
    out = ibis.duckdb.connect().to_pyarrow(credit(touches, CreditModels(models=("hazard",)), hazard=model))
    return dict(zip(out["touch_id"].to_pylist(), out["credit_hazard"].to_pylist(), strict=True))


def test_credit_is_the_posterior_share_of_each_touch_by_hand() -> None:
    model = AdditiveHazard({"purchase": {"A": ChannelEffect(0.05, 0.1), "B": ChannelEffect(0.01, 0.5)}})
    got = _hazard_credit(_touches([("c", "a", 10.0, "A"), ("c", "b", 1.0, "B")]), model)
    w_a, w_b = 0.05 * 0.1 * math.exp(-1.0), 0.01 * 0.5 * math.exp(-0.5)
    assert got == pytest.approx({"a": w_a / (w_a + w_b), "b": w_b / (w_a + w_b)}, rel=1e-12)


def test_unfitted_touches_earn_nothing_and_a_conversion_without_any_falls_back_to_linear() -> None:
    model = AdditiveHazard(
        {"purchase": {"A": ChannelEffect(0.05, 0.1)}, "add_to_cart": {"B": ChannelEffect(1, 1)}}
    )
    got = _hazard_credit(
        _touches(
            [("c1", "a", 10.0, "A"), ("c1", "b", 1.0, "B"), ("c2", "x", 3.0, "B"), ("c2", "y", 1.0, "C")]
        ),
        model,
    )
    assert got == {"a": 1.0, "b": 0.0, "x": 0.5, "y": 0.5}


def test_very_old_touches_do_not_underflow_every_weight_to_zero() -> None:
    model = AdditiveHazard({"purchase": {"A": ChannelEffect(0.05, 50.0)}})
    got = _hazard_credit(_touches([("c", "a", 900.0, "A"), ("c", "b", 1000.0, "A")]), model)
    assert got["a"] == pytest.approx(1.0)
    assert got["b"] >= 0.0
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)


def test_credit_refuses_the_hazard_model_without_a_fit() -> None:
    with pytest.raises(ValueError, match="hazard: the 'hazard' model needs a fitted AdditiveHazard"):
        credit(_touches([("c", "a", 1.0, "A")]), CreditModels(models=("hazard",)))


ROWS = pa.schema(
    [
        ("decision_id", pa.string()),
        ("item_id", pa.string()),
        ("person", pa.string()),
        ("surface", pa.string()),
        ("served_at", pa.timestamp("us", tz="UTC")),
        ("viewed", pa.bool_()),
        ("first_click_at", pa.timestamp("us", tz="UTC")),
    ]
)


def test_engine_inputs_by_hand() -> None:
    """Exposure cut at the cut-off, the union of overlapping windows, and candidate delays."""
    con: Any = ibis.duckdb.connect()

    def row(decision: str, person: str | None, hours: float, click: float | None = None) -> dict[str, Any]:
        served = T0 + hours * HOUR
        clicked = None if click is None else T0 + click * HOUR
        return {"decision_id": decision, "item_id": "i1", "person": person, "surface": "s",
                "served_at": served, "viewed": True, "first_click_at": clicked}  # fmt: skip

    rows = ibis.memtable(
        pa.Table.from_pylist(
            [
                # p1/i1: views at 0 h and 10 h (24 h windows) overlap: union [0, 34) = 34 h
                row("d1", "p1", 0.0),
                row("d2", "p1", 10.0),
                # p2/i1: a view at 90 h, clicked at 91 h (48 h window), both cut at the 100 h cut-off
                row("d3", "p2", 90.0, click=91.0),
                # no person: never a touch
                row("d4", None, 0.0),
            ],
            schema=ROWS,
        )
    )
    windows = ibis.memtable(
        [
            {"event_type": "purchase", "kind": "view", "surface": "s", "hours": 24.0},
            {"event_type": "purchase", "kind": "click", "surface": "s", "hours": 48.0},
        ]
    )
    pending = ibis.memtable(
        pa.Table.from_pylist(
            [
                {"event_id": "e1", "type": "purchase", "person": "p1", "item_id": "i1",
                 "timestamp": T0 + 12 * HOUR, "amount": 5.0, "returned_amount": 0.0},
            ]
        )
    )  # fmt: skip
    candidates = window_candidates(rows, pending, windows)
    inputs = hazard_inputs(con, rows, candidates, windows, T0 + 100 * HOUR)["purchase"]
    assert inputs.at_risk_hours == pytest.approx(34.0 + 10.0)  # [90, 100): view and click cut
    exposure = sorted(
        zip(
            inputs.exposure_channel.tolist(),
            inputs.exposure_hours.tolist(),
            inputs.exposure_touches.tolist(),
            strict=True,
        )
    )
    assert exposure == [("s/click", 9.0, 1), ("s/view", 10.0, 1), ("s/view", 24.0, 2)]
    assert sorted(inputs.hours.tolist()) == [2.0, 12.0]
    assert len(set(inputs.conversion.tolist())) == 1  # both pairs are e1's (as a code, not the id)
    assert inputs.channel.tolist() == ["s/view", "s/view"]  # a categorical reads as its labels
