"""Attribution properties on random touches and conversions: windows hold, credits sum to 1,
returns revoke purchases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revealed.pipeline.attribute import attribute, net_amounts
from revealed.pipeline.credit import CreditModels

T0 = datetime(2026, 2, 1, tzinfo=UTC)
TIME = pa.timestamp("us", tz="UTC")
MODELS = CreditModels(models=("last_touch", "first_touch", "linear", "time_decay", "position_based"))
ROWS = pa.schema(
    [
        ("decision_id", pa.string()),
        ("item_id", pa.string()),
        ("person", pa.string()),
        ("surface", pa.string()),
        ("served_at", TIME),
        ("viewed", pa.bool_()),
        ("first_click_at", TIME),
    ]
)
EVENTS = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("decision_id", pa.string()),
        ("item_id", pa.string()),
        ("order_id", pa.string()),
        ("person", pa.string()),
        ("timestamp", TIME),
        ("value", pa.float64()),
    ]
)
WINDOWS = pa.schema(
    [("event_type", pa.string()), ("kind", pa.string()), ("surface", pa.string()), ("hours", pa.float64())]
)


@pytest.fixture(scope="module")
def con() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


touch = st.tuples(
    st.sampled_from(["p1", "p2"]),  # person
    st.sampled_from(["i1", "i2"]),  # item
    st.sampled_from(["search", "email"]),
    st.integers(0, 20 * 24),  # served, hours after T0
    st.booleans(),  # viewed
    st.one_of(st.none(), st.integers(0, 60)),  # clicked this many minutes after serving
)
purchase = st.tuples(
    st.sampled_from(["p1", "p2", "p3"]),
    st.sampled_from(["i1", "i2"]),
    st.integers(0, 30 * 24),  # hours after T0
    st.floats(1, 500),
    st.one_of(st.none(), st.floats(0, 600)),  # returned amount
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    touches=st.lists(touch, min_size=1, max_size=12),
    purchases=st.lists(purchase, min_size=1, max_size=8),
    click_hours=st.floats(1, 200),
    view_hours=st.floats(0.5, 48),
)
def test_credits_stay_in_their_windows_sum_to_one_and_returns_revoke(
    con: ibis.BaseBackend,
    touches: list[tuple[str, str, str, int, bool, int | None]],
    purchases: list[tuple[str, str, int, float, float | None]],
    click_hours: float,
    view_hours: float,
) -> None:
    rows = pa.Table.from_pylist(
        [
            {
                "decision_id": f"d{i}",
                "item_id": item,
                "person": person,
                "surface": surface,
                "served_at": T0 + timedelta(hours=h),
                "viewed": seen,
                "first_click_at": None if click is None else T0 + timedelta(hours=h, minutes=click),
            }
            for i, (person, item, surface, h, seen, click) in enumerate(touches)
        ],
        schema=ROWS,
    )
    events = []
    for j, (person, item, h, amount, returned) in enumerate(purchases):
        at = T0 + timedelta(hours=h)
        events.append(
            {
                "event_id": f"p{j}",
                "type": "purchase",
                "item_id": item,
                "order_id": f"o{j}",
                "person": person,
                "timestamp": at,
                "value": amount,
            }
        )
        if returned is not None:
            events.append(
                {
                    "event_id": f"r{j}",
                    "type": "return",
                    "item_id": item,
                    "order_id": f"o{j}",
                    "person": person,
                    "timestamp": at + timedelta(days=40),
                    "value": returned,
                }
            )
    windows = pa.Table.from_pylist(
        [
            {"event_type": e, "kind": k, "surface": s, "hours": click_hours if k == "click" else view_hours}
            for e in ("purchase", "add_to_cart")
            for k in ("click", "view")
            for s in ("search", "email")
        ],
        schema=WINDOWS,
    )
    conversions = net_amounts(ibis.memtable(pa.Table.from_pylist(events, schema=EVENTS)))
    result = attribute(ibis.memtable(rows), conversions, ibis.memtable(windows), models=MODELS)
    credited = con.to_pyarrow(result.credited).to_pylist()
    organic = con.to_pyarrow(result.organic).to_pylist()
    net = {r["event_id"]: r for r in con.to_pyarrow(conversions).to_pylist()}

    by_touch = {(f"d{i}", t[1]): t for i, t in enumerate(touches)}
    sums: dict[str, dict[str, float]] = {}
    for c in credited:
        person, item, _surface, h, seen, click = by_touch[(c["decision_id"], c["item_id"])]
        converted = net[c["conversion_id"]]
        assert person == converted["person"]
        assert item == converted["item_id"]
        age_h = (converted["timestamp"] - (T0 + timedelta(hours=h))).total_seconds() / 3600
        in_view = seen and 0 <= age_h <= view_hours
        click_age = None if click is None else age_h - click / 60
        in_click = click_age is not None and 0 <= click_age <= click_hours
        assert in_view or in_click, "nothing is credited outside its window"
        for m in MODELS.models:
            sums.setdefault(c["conversion_id"], {}).setdefault(m, 0.0)
            sums[c["conversion_id"]][m] += c[f"credit_{m}"]
    for per_model in sums.values():
        for total in per_model.values():
            assert total == pytest.approx(1.0, abs=1e-9)
    assert not set(sums) & {o["event_id"] for o in organic}, "organic means no touch"
    for r in net.values():
        assert r["amount"] >= 0, "a returned purchase never stays positive"
        assert r["amount"] == pytest.approx(max(r["gross"] - r["returned_amount"], 0.0))


def test_a_conversion_naming_an_unserved_decision_or_item_falls_back_to_the_window(
    con: ibis.BaseBackend,
) -> None:
    rows = pa.Table.from_pylist(
        [
            {"decision_id": "d1", "item_id": "i1", "person": "p1", "surface": "search",
             "served_at": T0, "viewed": True, "first_click_at": None},
        ],
        schema=ROWS,
    )  # fmt: skip
    at = T0 + timedelta(hours=2)
    events = [
        # an unknown decision, and an item d1 did not show: neither joins directly
        {"event_id": "e1", "type": "purchase", "decision_id": "dX", "item_id": "i1", "person": "p1",
         "timestamp": at, "value": 10.0},
        {"event_id": "e2", "type": "purchase", "decision_id": "d1", "item_id": "i2", "person": "p1",
         "timestamp": at, "value": 10.0},
        # the direct one
        {"event_id": "e3", "type": "purchase", "decision_id": "d1", "item_id": "i1", "person": "p1",
         "timestamp": at, "value": 10.0},
        # no decision and no person: nothing to match, organic
        {"event_id": "e4", "type": "purchase", "decision_id": None, "item_id": "i1", "person": None,
         "timestamp": at, "value": 10.0},
    ]  # fmt: skip
    windows = pa.Table.from_pylist(
        [{"event_type": "purchase", "kind": "view", "surface": "search", "hours": 24.0}], schema=WINDOWS
    )
    conversions = net_amounts(ibis.memtable(pa.Table.from_pylist(events, schema=EVENTS)))
    result = attribute(ibis.memtable(rows), conversions, ibis.memtable(windows), models=MODELS)
    credited = {r["conversion_id"]: r["how"] for r in con.to_pyarrow(result.credited).to_pylist()}
    organic = {r["event_id"] for r in con.to_pyarrow(result.organic).to_pylist()}
    assert credited == {"e1": "window", "e3": "direct"}
    assert organic == {"e2", "e4"}, "no conversion vanishes: credited or counted organic"


def test_purchase_lines_of_one_order_and_item_share_its_returns_in_proportion(
    con: ibis.BaseBackend,
) -> None:
    def event(event_id: str, kind: str, value: float, order: str = "o1") -> dict[str, object]:
        return {"event_id": event_id, "type": kind, "decision_id": None, "item_id": "i1", "order_id": order,
                "person": "p1", "timestamp": T0, "value": value}  # fmt: skip

    events = [
        event("a", "purchase", 10.0),
        event("b", "purchase", 30.0),
        event("r", "return", 20.0),
        event("c", "purchase", 50.0, order="o2"),  # another order: untouched
    ]
    net = con.to_pyarrow(net_amounts(ibis.memtable(pa.Table.from_pylist(events, schema=EVENTS))))
    got = {r["event_id"]: (r["returned_amount"], r["amount"]) for r in net.to_pylist()}
    assert got == {"a": (5.0, 5.0), "b": (15.0, 15.0), "c": (0.0, 50.0)}
