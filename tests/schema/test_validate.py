"""Field-level validation messages as tables of `(kind, raw, expected error)`; kind detection; JSON Schema."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest

from revealed.schema import EVENT_TYPES, KINDS, Kind, detect_kind, json_schema, normalise, validate

RECEIVED_US = 1_769_860_800_000_000  # 2026-01-31T12:00:00Z, when the server received the records
RECEIVED_MS = RECEIVED_US // 1000
DAY_MS = 86_400_000

CLICK: dict[str, Any] = {"event_id": "e1", "timestamp": RECEIVED_MS, "type": "click", "user_id": "u1"}
SHOWN: dict[str, Any] = {
    "decision_id": "d1",
    "timestamp": "2026-01-31T11:59:59.5Z",
    "user_id": "u1",
    "items": [{"item_id": "a"}, {"item_id": "b"}, {"item_id": "c"}, {"item_id": "d"}],
}
CATALOGUE: dict[str, Any] = {"item_id": "a", "valid_from": "2026-01-01T00:00:00Z", "features": {"price": 9.5}}


def event(**fields: Any) -> dict[str, Any]:
    """A valid click with some fields replaced (None: removed)."""
    out = {**CLICK, **fields}
    return {k: v for k, v in out.items() if v is not None}


def decision(**fields: Any) -> dict[str, Any]:
    out = {**SHOWN, "items": [dict(it) for it in SHOWN["items"]], **fields}
    return {k: v for k, v in out.items() if v is not None}


def shown(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return decision(items=list(items), **fields)


def item(**fields: Any) -> dict[str, Any]:
    out = {**CATALOGUE, **fields}
    return {k: v for k, v in out.items() if v is not None}


def with_item(index: int, **fields: Any) -> dict[str, Any]:
    d = decision()
    d["items"][index].update(fields)
    return d


def errors_of(kind: Kind, raw: Any) -> list[str]:
    checked = validate(kind, raw, received_us=RECEIVED_US)
    return [str(e) for e in checked.errors]


def assert_one_error_contains(errors: list[str], expected: str | tuple[str, ...]) -> None:
    """One error contains `expected` (every part of it, when a tuple)."""
    parts = (expected,) if isinstance(expected, str) else expected
    assert errors, f"expected an error containing {parts!r}, found a valid record"
    assert any(all(p in e for p in parts) for e in errors), f"{parts!r} not in {errors}"


#: (kind, raw as a dict that JSON can carry, what one error must contain: a string or all of a tuple)
INVALID: list[Any] = [
    # required fields and types
    pytest.param(
        "event", event(event_id=None), "event_id: expected a value, found nothing", id="missing-event_id"
    ),
    pytest.param(
        "event", event(timestamp=None), "timestamp: expected a value, found nothing", id="missing-time"
    ),
    pytest.param("event", event(type=None), "type: expected a value, found nothing", id="missing-type"),
    pytest.param(
        "decision", decision(items=None), "items: expected a value, found nothing", id="missing-items"
    ),
    pytest.param("item", {"features": {}}, "item_id: expected a value, found nothing", id="missing-item_id"),
    pytest.param("event", event(user_id=5), "user_id: expected a string, found 5", id="int-id"),
    pytest.param("event", event(value="3"), "value: expected a number, found '3'", id="string-value"),
    pytest.param("event", event(value=True), "value: expected a number, found True", id="bool-value"),
    pytest.param("event", event(properties=[1]), "properties: expected an object", id="list-properties"),
    pytest.param("decision", decision(items={"a": 1}), "items: expected an array", id="object-items"),
    pytest.param("decision", decision(context="x"), "context: expected an object", id="string-context"),
    pytest.param(
        "decision", with_item(2, position="1"), "items[2].position: expected an integer", id="str-pos"
    ),
    pytest.param(
        "decision", with_item(1, position=1.5), "items[1].position: expected an integer", id="float-pos"
    ),
    pytest.param(
        "decision",
        shown({"score": 1.0}, {"item_id": "b"}),
        "items[0].item_id: expected a value",
        id="no-item-id",
    ),
    pytest.param(
        "event", event(timestamp=[1]), "timestamp: expected an RFC 3339 string or epoch", id="list-time"
    ),
    pytest.param(
        "event", event(timestamp=True), "timestamp: expected an RFC 3339 string or epoch", id="bool-time"
    ),
    pytest.param("event", ["e1"], "expected an object, found ['e1']", id="not-an-object"),
    pytest.param("event", "just text", "expected a JSON object, found malformed JSON", id="text-not-json"),
    # unknown fields
    pytest.param(
        "event", event(bogus=1), "bogus: expected no such field (unknown field)", id="unknown-field"
    ),
    pytest.param("decision", decision(userId="u"), "userId: expected no such field", id="camel-case-field"),
    pytest.param(
        "decision", with_item(1, rank=2), "items[1].rank: expected no such field", id="unknown-item-field"
    ),
    pytest.param(
        "decision",
        decision(candidates=[{"item_id": "z", "propensity": 0.5}]),
        "candidates[0].propensity: expected no such field",
        id="unknown-candidate-field",
    ),
    # ids
    pytest.param("event", event(event_id=""), "event_id: expected a non-empty string", id="empty-id"),
    pytest.param("event", event(user_id="u" * 513), "at most 512 characters", id="long-id"),
    pytest.param(
        "decision", decision(surface=""), "surface: expected a non-empty string", id="empty-surface"
    ),
    # identities
    pytest.param(
        "event",
        event(user_id=None),
        "user_id: expected at least one identity (user_id, anonymous_id, session_id) or a decision_id",
        id="event-without-identity",
    ),
    pytest.param(
        "decision",
        decision(user_id=None),
        "user_id: expected at least one identity (user_id, anonymous_id or session_id), found none",
        id="decision-without-identity",
    ),
    # times
    pytest.param(
        "event",
        event(timestamp=RECEIVED_MS // 1000),
        "timestamp: expected a time on or after 2000-01-01, found 1769860800 "
        "(seconds? numbers are epoch milliseconds)",
        id="seconds-not-ms",
    ),
    pytest.param(
        "event", event(timestamp=RECEIVED_US), "(microseconds? numbers are epoch", id="micros-not-ms"
    ),
    pytest.param(
        "event",
        event(timestamp=RECEIVED_MS + DAY_MS + 1),
        "timestamp: expected a time at most a day after it was received",
        id="future-ms",
    ),
    pytest.param(
        "event",
        event(timestamp="2026-02-01T12:00:00.001Z"),
        "timestamp: expected a time at most a day after it was received, found '2026-02-01T12:00:00.001Z'",
        id="future-string",
    ),
    pytest.param(
        "event",
        event(timestamp="2026-01-31T12:00:00"),
        "timestamp: expected an RFC 3339 time with an offset or Z, found '2026-01-31T12:00:00'",
        id="naive-string",
    ),
    pytest.param(
        "event", event(timestamp="1999-12-31T23:59:59Z"), "on or after 2000-01-01", id="before-2000"
    ),
    pytest.param(
        "event", event(timestamp="31/01/2026"), "timestamp: expected an RFC 3339 time", id="not-a-time"
    ),
    pytest.param(
        "event", event(timestamp="2026-02-30T00:00:00Z"), "timestamp: expected an RFC 3339", id="feb-30"
    ),
    pytest.param(
        "event", event(timestamp=-1), "timestamp: expected a time on or after 2000-01-01", id="negative"
    ),
    pytest.param(
        "item", item(valid_from="2026-01-01T00:00"), "valid_from: expected an RFC 3339 time", id="vf-naive"
    ),
    pytest.param(
        "item", item(valid_from=RECEIVED_MS // 1000), "valid_from: expected a time on", id="vf-seconds"
    ),
    # decisions: items, positions, propensities
    pytest.param(
        "decision",
        with_item(3, cond_propensity=1.7),
        "items[3].cond_propensity: expected a number in (0, 1], found 1.7",
        id="cond-propensity-above-1",
    ),
    pytest.param(
        "decision", with_item(0, propensity=0), "items[0].propensity: expected a number in (0, 1]", id="p0"
    ),
    pytest.param(
        "decision", with_item(1, propensity=-0.5), "items[1].propensity: expected a number in (0, 1]", id="pn"
    ),
    pytest.param(
        "decision", decision(propensity=1.01), "propensity: expected a number in (0, 1], found 1.01", id="P"
    ),
    pytest.param(
        "decision",
        decision(items=[]),
        "items: expected at least one shown item, found an empty list",
        id="empty-items",
    ),
    pytest.param(
        "decision",
        shown({"item_id": "a"}, {"item_id": "b"}, {"item_id": "a"}),
        ("items[2].item_id: expected each item once per decision", "found 'a' again (first at items[0])"),
        id="duplicate-item_id",
    ),
    pytest.param(
        "decision",
        shown({"item_id": "a", "position": 3}, {"item_id": "b", "position": 3}),
        ("items[1].position: expected a distinct slot", "found 3 again (first at items[0])"),
        id="duplicate-positions",
    ),
    pytest.param(
        "decision",
        shown({"item_id": "a", "position": 1}, {"item_id": "b"}),
        ("items[1].position: expected a distinct slot", "found 1 again (first at items[0])"),
        id="explicit-position-claims-a-default-slot",
    ),
    pytest.param(
        "decision", with_item(0, position=-1), "items[0].position: expected an integer >= 0", id="neg-pos"
    ),
    pytest.param(
        "decision",
        with_item(2, original_position=-3),
        "items[2].original_position: expected an integer >= 0",
        id="negative-original-position",
    ),
    pytest.param(
        "decision", decision(candidates=[{"score": 1}]), "candidates[0].item_id: expected a value", id="cand"
    ),
    # policy
    pytest.param(
        "decision", decision(policy={"epsilon": 1.5}), "policy.epsilon: expected a number in [0, 1]", id="e"
    ),
    pytest.param(
        "decision", decision(policy={"epsilon": "0.1"}), "policy.epsilon: expected a number", id="e-str"
    ),
    pytest.param(
        "decision", decision(policy={"temperature": 0}), "policy.temperature: expected a number > 0", id="t"
    ),
    pytest.param(
        "decision", decision(policy={"name": 3}), "policy.name: expected a string, found 3", id="name"
    ),
    pytest.param(
        "decision",
        decision(policy={"intervention": {"type": "shuffle", "n": 2}}),
        "policy.intervention.type: expected one of swap_adjacent, top_n_shuffle, found 'shuffle'",
        id="intervention-type",
    ),
    pytest.param(
        "decision",
        decision(policy={"intervention": {"type": "top_n_shuffle", "n": 0}}),
        "policy.intervention.n: expected an integer >= 1, found 0",
        id="intervention-n",
    ),
    pytest.param(
        "decision",
        decision(policy={"intervention": "swap"}),
        "policy.intervention: expected an object",
        id="intervention-not-an-object",
    ),
    # vectors
    pytest.param(
        "decision", decision(embedding=[0.0, 1e39]), "embedding[1]: expected a finite float32", id="f32"
    ),
    pytest.param(
        "item", item(embedding=[-1e39]), "embedding[0]: expected a finite float32 number", id="item-f32"
    ),
    # events: types and values
    pytest.param(
        "event",
        event(type="clik"),
        "type: expected a known event type (add_to_cart, assignment, ",
        id="unknown-type",
    ),
    pytest.param("event", event(type="x-"), "or a custom type x-..., found 'x-'", id="bare-x-"),
    pytest.param("event", event(type="X-Custom"), "found 'X-Custom'", id="upper-case-custom"),
    pytest.param("event", event(type="x-" + "a" * 64), "type: expected a known event type", id="long-custom"),
    pytest.param("event", event(type="Click"), "found 'Click'", id="capitalised"),
    pytest.param(
        "event",
        event(type="scroll", value=1.5),
        "value: expected a scroll depth in [0, 1], found 1.5",
        id="s",
    ),
    pytest.param(
        "event", event(type="scroll", value=-0.1), "value: expected a scroll depth in [0, 1]", id="s-neg"
    ),
    pytest.param(
        "event", event(type="scroll"), "value: expected a scroll depth in [0, 1], found nothing", id="s-0"
    ),
    pytest.param(
        "event", event(type="dwell", value=-1), "value: expected dwell seconds >= 0, found -1", id="dwell"
    ),
    pytest.param(
        "event", event(type="dwell"), "value: expected dwell seconds >= 0, found nothing", id="dwell-none"
    ),
    pytest.param(
        "event", event(type="heartbeat", value=0), "value: expected the ping interval", id="heartbeat"
    ),
    pytest.param(
        "event",
        event(type="heartbeat", value=5, properties={"active": "yes"}),
        "properties.active: expected true or false, found 'yes'",
        id="heartbeat-active",
    ),
    pytest.param("event", event(type="rating"), "value: expected the rating as a finite number", id="rating"),
    pytest.param("event", event(type="skip", value=-2), "value: expected seconds consumed before", id="skip"),
    pytest.param("event", event(type="purchase", value=-5), "value: expected an amount >= 0", id="purchase"),
    pytest.param(
        "event",
        event(type="return", value=5),
        "order_id: expected the order_id of the purchase this return revokes, found nothing",
        id="return-without-order_id",
    ),
    pytest.param(
        "event",
        event(type="assignment", value=0.5, properties={"experiment": "exp1"}),
        "properties.arm: expected a non-empty string naming the arm, found nothing",
        id="assignment-without-arm",
    ),
    pytest.param(
        "event",
        event(type="assignment", value=0.5, properties={"arm": "b", "experiment": ""}),
        "properties.experiment: expected a non-empty string naming the experiment, found ''",
        id="assignment-with-empty-experiment",
    ),
    pytest.param(
        "event",
        event(type="assignment", value=1.5, properties={"experiment": "exp1", "arm": "b"}),
        "value: expected the arm's probability in (0, 1], found 1.5",
        id="assignment-probability",
    ),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), INVALID)
def test_invalid_dict_names_the_field(kind: Kind, raw: Any, expected: str | tuple[str, ...]) -> None:
    assert_one_error_contains(errors_of(kind, raw), expected)


@pytest.mark.parametrize(("kind", "raw", "expected"), INVALID)
def test_invalid_json_names_the_field(kind: Kind, raw: Any, expected: str | tuple[str, ...]) -> None:
    text = raw if isinstance(raw, str) else msgspec.json.encode(raw)
    assert_one_error_contains(errors_of(kind, text), expected)


def test_cond_propensity_message_exactly() -> None:
    assert errors_of("decision", with_item(3, cond_propensity=1.7)) == [
        "items[3].cond_propensity: expected a number in (0, 1], found 1.7"
    ]


def test_unknown_event_type_lists_every_known_type() -> None:
    (error,) = errors_of("event", event(type="clik"))
    assert error.startswith("type: expected a known event type (")
    assert error.endswith("or a custom type x-..., found 'clik'")
    listed = error[error.index("(") + 1 : error.index(")")].split(", ")
    assert listed == sorted(EVENT_TYPES)


def test_every_rule_error_of_a_record_is_reported() -> None:
    """Once a record decodes, every rule it breaks is reported, not just the first."""
    raw = shown(
        {"item_id": "a", "position": 1},
        {"item_id": "a"},
        user_id=None,
        timestamp=RECEIVED_MS // 1000,
        policy={"epsilon": 2},
    )
    paths = [e.path for e in validate("decision", raw, received_us=RECEIVED_US).errors]
    assert set(paths) == {"timestamp", "user_id", "items[1].item_id", "items[1].position", "policy.epsilon"}


# dict-only values: JSON cannot carry NaN or infinity, and a dict can hold any Python number
NON_FINITE: list[Any] = [
    pytest.param(
        "event", event(value=math.nan), "value: expected a finite number, found nan", id="nan-value"
    ),
    pytest.param(
        "event", event(value=math.inf), "value: expected a finite number, found inf", id="inf-value"
    ),
    pytest.param("event", event(type="dwell", value=math.inf), ("value: expected", "inf"), id="inf-dwell"),
    pytest.param("event", event(type="scroll", value=math.nan), ("value: expected", "nan"), id="nan-scroll"),
    pytest.param(
        "event", event(timestamp=math.nan), "timestamp: expected a finite number of epoch", id="nan-time"
    ),
    pytest.param(
        "event", event(timestamp=-math.inf), "timestamp: expected a finite number of epoch", id="inf-time"
    ),
    pytest.param(
        "decision", with_item(0, score=math.nan), "items[0].score: expected a finite number", id="nan-score"
    ),
    pytest.param(
        "decision", with_item(1, propensity=math.nan), "items[1].propensity: expected a number in", id="p"
    ),
    pytest.param(
        "decision", with_item(2, cond_propensity=math.inf), "items[2].cond_propensity: expected", id="cp"
    ),
    pytest.param(
        "decision", decision(propensity=math.nan), "propensity: expected a number in (0, 1]", id="P-nan"
    ),
    pytest.param(
        "decision", decision(logits=[1.0, math.nan]), "logits[1]: expected a finite number", id="logits"
    ),
    pytest.param(
        "decision", decision(embedding=[math.inf]), "embedding[0]: expected a finite float32", id="emb"
    ),
    pytest.param(
        "decision", decision(policy={"epsilon": math.nan}), "policy.epsilon: expected a number", id="eps"
    ),
    pytest.param(
        "decision", decision(policy={"temperature": math.inf}), "policy.temperature", id="temperature"
    ),
    pytest.param(
        "decision",
        decision(candidates=[{"item_id": "z", "score": -math.inf}]),
        "candidates[0].score: expected a finite number",
        id="candidate-score",
    ),
    pytest.param("event", event(value=10**400), "value: expected a finite number", id="huge-int-value"),
    pytest.param("event", event(timestamp=10**400), "timestamp: expected", id="huge-int-timestamp"),
    pytest.param("decision", decision(propensity=10**400), "propensity: expected a ", id="huge-P"),
    pytest.param(
        "event",
        event(properties={1: "one"}),
        "properties",  # the path names the object whose key is not a string
        id="int-key-in-properties",
    ),
    pytest.param(
        "event",
        {**event(), "bogus": None},
        "bogus: expected no such field (unknown field)",  # as it is for the same record as JSON
        id="unknown-field-set-to-null",
    ),
    pytest.param(
        "decision",
        decision(items=[{"item_id": "a", "rank": None}]),
        "items[0].rank: expected no such field (unknown field)",
        id="unknown-item-field-set-to-null",
    ),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), NON_FINITE)
def test_dict_only_values_name_the_field(kind: Kind, raw: Any, expected: str | tuple[str, ...]) -> None:
    assert_one_error_contains(errors_of(kind, raw), expected)


# raw JSON text that no dict can express
_DEEP = 10_000
RAW_JSON: list[Any] = [
    pytest.param("event", b"", "expected a JSON object, found malformed JSON", id="empty"),
    pytest.param(
        "event", b'{"event_id": "e1", ', "expected a JSON object, found malformed JSON", id="truncated"
    ),
    pytest.param(
        "event", b"{'event_id': 'e1'}", "expected a JSON object, found malformed JSON", id="single-quotes"
    ),
    pytest.param("event", b'{"event_id": "e1",}', "found malformed JSON", id="trailing-comma"),
    pytest.param("event", b"null", "expected an object, found None", id="null"),
    pytest.param("event", b"[]", "expected an object, found []", id="array"),
    pytest.param("event", b'{"value": NaN}', "found malformed JSON", id="nan-literal"),
    pytest.param("event", b'{"event_id": "\xff\xfe", "type": "click"}', "expected", id="invalid-utf8"),
    pytest.param("event", b'\xef\xbb\xbf{"event_id": "e1"}', "expected", id="utf8-bom"),
    pytest.param(
        "event", b"[" * _DEEP + b"]" * _DEEP, "found malformed JSON (maximum recursion depth", id="deep"
    ),
    pytest.param("event", b"{" * _DEEP, "found malformed JSON", id="deep-unclosed"),
    pytest.param(
        "event",
        msgspec.json.encode(event())[:-1] + b', "properties": {"a": ' + b"[" * _DEEP + b"]" * _DEEP + b"}}",
        "nested less deeply, found too deep nesting",
        id="deep-in-properties",
    ),
    pytest.param(
        "event",
        msgspec.json.encode(event())[:-1] + b', "value": 1e999}',
        "value: expected a finite number, found a number out of range",
        id="1e999-value",
    ),
    pytest.param(
        "event",
        msgspec.json.encode(event())[:-1] + b', "value": -1e999}',
        "value: expected a finite number",
        id="-1e999-value",
    ),
    pytest.param(
        "event",
        msgspec.json.encode(event(timestamp=None))[:-1] + b', "timestamp": 1e999}',
        "timestamp: expected a finite number",
        id="1e999-timestamp",
    ),
    pytest.param(
        "decision",
        msgspec.json.encode(decision())[:-1] + b', "propensity": 1e999}',
        "propensity: expected a finite number",
        id="1e999-propensity",
    ),
    pytest.param(
        "event",
        msgspec.json.encode(event())[:-1] + b', "properties": {"a": 1e999}}',
        "properties",
        id="1e999-in-properties",
    ),
    pytest.param(
        "event",
        msgspec.json.encode(event())[:-1] + b', "value": 1' + b"0" * 400 + b"}",
        "value: expected a finite number",
        id="400-digit-value",
    ),
    pytest.param(
        "event",
        msgspec.json.encode(event())[:-1] + b', "user_id": "u2"}',
        "",  # a repeated key: either the last wins or it is rejected, but nothing raises
        id="repeated-key",
    ),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), RAW_JSON)
def test_raw_json_yields_field_errors(kind: Kind, raw: bytes, expected: str) -> None:
    checked = validate(kind, raw, received_us=RECEIVED_US)
    if expected:
        assert_one_error_contains([str(e) for e in checked.errors], expected)
    assert all(e.message for e in checked.errors)


# ------------------------------------------------------------------------------------------------
# what is accepted
# ------------------------------------------------------------------------------------------------

VALID: list[Any] = [
    pytest.param("event", event(type="x-custom"), id="x-custom"),
    pytest.param("event", event(type="x-my.app_event-2"), id="x-namespaced"),
    pytest.param("event", event(type="x-" + "a" * 63), id="x-63-chars"),
    pytest.param("event", event(user_id=None, decision_id="d1"), id="decision_id-as-identity"),
    pytest.param("event", event(user_id=None, anonymous_id="anon"), id="anonymous_id-as-identity"),
    pytest.param("event", event(user_id=None, session_id="s"), id="session_id-as-identity"),
    pytest.param("event", event(timestamp=RECEIVED_MS + DAY_MS), id="exactly-a-day-ahead"),
    pytest.param("event", event(timestamp="2000-01-01T00:00:00Z"), id="2000-01-01"),
    pytest.param("event", event(timestamp="2000-01-01T01:00:00+01:00"), id="2000-01-01-at-an-offset"),
    pytest.param("event", event(timestamp="2026-01-31T12:00:00.123456+05:30"), id="micros-and-offset"),
    pytest.param("event", event(timestamp="2026-01-31T12:00:00-00:00"), id="unknown-local-offset"),
    pytest.param("event", event(timestamp="2026-01-31t12:00:00z"), id="lower-case-t-and-z"),  # RFC 3339 5.6
    pytest.param("event", event(timestamp=float(RECEIVED_MS) + 0.5), id="fractional-ms"),
    pytest.param("event", event(type="scroll", value=0), id="scroll-0"),
    pytest.param("event", event(type="scroll", value=1), id="scroll-1"),
    pytest.param("event", event(type="dwell", value=0), id="dwell-0"),
    pytest.param("event", event(type="rating", value=-2.5), id="negative-rating"),
    pytest.param("event", event(type="heartbeat", value=5, properties={"active": False}), id="heartbeat"),
    pytest.param("event", event(type="return", order_id="o1"), id="return-without-amount"),
    pytest.param(
        "event",
        event(type="assignment", value=1, properties={"experiment": "exp", "arm": "b"}),
        id="assignment",
    ),
    pytest.param("event", event(type="click", value=-3), id="click-with-any-finite-value"),
    pytest.param("decision", with_item(3, cond_propensity=1.0, propensity=1e-300), id="propensity-edges"),
    pytest.param(
        "decision",
        shown({"item_id": "a", "position": 1}, {"item_id": "b", "position": 0}),
        id="swapped-positions",
    ),
    pytest.param(
        "decision", shown({"item_id": "a", "position": 10}, {"item_id": "b"}), id="sparse-positions"
    ),
    pytest.param(
        "decision",
        decision(
            policy={"name": "pl", "epsilon": 0, "temperature": 0.1, "intervention": {"type": "swap_adjacent"}}
        ),
        id="policy",
    ),
    pytest.param("decision", decision(policy={"epsilon": 1, "custom": [1, {"x": None}]}), id="policy-extras"),
    pytest.param("decision", decision(candidates=[]), id="no-candidates"),
    pytest.param("decision", decision(embedding=[3.4e38, -1e-45]), id="float32-edges"),
    pytest.param("item", {"item_id": "a"}, id="bare-item"),
    pytest.param("item", item(valid_from=None, embedding=[0.5]), id="item-valid-since-ever"),
]


@pytest.mark.parametrize(("kind", "raw"), VALID)
def test_valid_records_are_accepted(kind: Kind, raw: dict[str, Any]) -> None:
    for given_as in (raw, msgspec.json.encode(raw)):
        checked = validate(kind, given_as, received_us=RECEIVED_US)
        assert checked.ok, [str(e) for e in checked.errors]
        assert checked.record is not None


def test_custom_type_value_is_free_but_finite() -> None:
    assert validate("event", event(type="x-custom", value=-1e300)).ok
    assert errors_of("event", event(type="x-custom", value=math.nan)) == [
        "value: expected a finite number, found nan"
    ]


def test_future_check_needs_received_us() -> None:
    """Without a receive time, only the calendar bounds apply."""
    far = event(timestamp=RECEIVED_MS + 365 * DAY_MS)
    assert validate("event", far).ok
    assert not validate("event", far, received_us=RECEIVED_US).ok


def test_times_normalise_to_utc_microseconds() -> None:
    for ts in ("2026-01-31T17:30:00+05:30", "2026-01-31T12:00:00Z", RECEIVED_MS, float(RECEIVED_MS)):
        assert normalise("event", event(timestamp=ts)).timestamp == "2026-01-31T12:00:00.000000Z"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kind: expected one of decision, event, item"):
        validate("decisions", CLICK)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# detect_kind
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (CLICK, "event"),
        ({"type": "click"}, "event"),
        ({"event_id": "e1", "decision_id": "d1", "item_id": "a"}, "event"),
        (SHOWN, "decision"),
        ({"decision_id": "d1"}, "decision"),
        ({"items": []}, "decision"),
        ({"decision_id": "d1", "items": [{"item_id": "a"}]}, "decision"),
        (CATALOGUE, "item"),
        ({"item_id": "a"}, "item"),
        ({}, None),
        ({"user_id": "u1", "timestamp": 1}, None),
    ],
)
def test_detect_kind(raw: dict[str, Any], expected: str | None) -> None:
    assert detect_kind(raw) == expected


# ------------------------------------------------------------------------------------------------
# JSON Schema
# ------------------------------------------------------------------------------------------------

CONTRACT_FIELDS = {
    "Decision": {
        "decision_id",
        "timestamp",
        "user_id",
        "anonymous_id",
        "session_id",
        "surface",
        "query_id",
        "request_id",
        "conversation_id",
        "parent_decision_id",
        "model",
        "model_version",
        "context",
        "items",
        "candidates",
        "propensity",
        "policy",
        "output",
        "logits",
        "embedding",
    },
    "DecisionItem": {
        "item_id",
        "position",
        "original_position",
        "score",
        "propensity",
        "cond_propensity",
        "features",
        "text",
    },
    "Candidate": {"item_id", "score", "features"},
    "Event": {
        "event_id",
        "timestamp",
        "type",
        "user_id",
        "anonymous_id",
        "session_id",
        "decision_id",
        "item_id",
        "order_id",
        "value",
        "properties",
    },
    "Item": {"item_id", "valid_from", "features"},
}
CONTRACT_REQUIRED = {
    "Decision": {"decision_id", "timestamp", "items"},
    "DecisionItem": {"item_id"},
    "Candidate": {"item_id"},
    "Event": {"event_id", "timestamp", "type"},
    "Item": {"item_id"},
}


def test_json_schema_is_json() -> None:
    doc = json_schema()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["$schema"].startswith("https://json-schema.org/")


@pytest.mark.parametrize("name", sorted(CONTRACT_FIELDS))
def test_json_schema_has_every_contract_field(name: str) -> None:
    spec = json_schema()["$defs"][name]
    assert CONTRACT_FIELDS[name] <= set(spec["properties"])
    assert set(spec["required"]) == CONTRACT_REQUIRED[name]
    assert spec.get("additionalProperties") is False  # unknown fields are rejected


def test_json_schema_offers_the_three_records() -> None:
    doc = json_schema()
    refs = {option["$ref"].rsplit("/", 1)[-1] for option in doc["anyOf"]}
    assert refs == {"Decision", "Event", "Item"}
    assert {"Decision", "Event", "Item"} <= set(doc["$defs"])
    items = doc["$defs"]["Decision"]["properties"]["items"]
    assert items["type"] == "array"
    assert items["items"]["$ref"].endswith("/DecisionItem")


def test_kinds() -> None:
    assert KINDS == ("decision", "event", "item")


def test_a_value_too_deep_to_repr_is_described_not_raised() -> None:
    """Error messages quote what was found; a list nested past what `repr` can walk (the server's
    deep-nesting fuzz test hit one in a worker thread) is described instead of raising."""
    from revealed.schema.timefmt import describe

    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        repr(deep)
    assert describe(deep) == "a list nested too deeply to show"
