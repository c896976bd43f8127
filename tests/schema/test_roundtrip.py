"""Property tests of the v1 contract: `normalise` is idempotent, `read(store(validate(x))) == normalise(x)`,
and no raw input, however broken, makes validation or ingest raise.

The strategies below generate records from the contract in ARCHITECTURE.md ("The data contract (v1)"),
not from the implementation, so they also catch drift between the two.
"""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from revealed.schema import (
    EVENT_TYPES,
    KINDS,
    Kind,
    format_time,
    from_row,
    normalise,
    now_us,
    validate,
    validate_many,
)
from revealed.schema.arrow import SCHEMAS
from revealed.schema.records import INTERVENTION_TYPES, Event
from revealed.schema.rows import EVENT_COLUMNS, event_row
from revealed.store import Accepted, Quarantined, Store, prepare
from revealed.store.convert import decode_rows, encode_rows
from revealed.store.entries import Prepared
from revealed.store.ingest import prepare_batch, prepare_many

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z
NOW_US = now_us()
MAX_US = NOW_US - 60_000_000  # a minute of slack: generated times are never in the future
INT32_MAX = 2**31 - 1
FLOAT32_MAX = 3.4028234663852886e38
ID_FIELD: dict[Kind, str] = {"decision": "decision_id", "event": "event_id", "item": "item_id"}
TABLE: dict[Kind, str] = {"decision": "decisions", "event": "events", "item": "items"}

STORE_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FAST_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------
# valid records
# --------------------------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=12) | st.just("i" * 512)  # ids are non-empty, at most 512 characters
texts = st.text(max_size=24)
finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = finite | st.integers(min_value=-(2**53), max_value=2**53)
probabilities = st.floats(min_value=0.0, max_value=1.0, exclude_min=True) | st.just(1)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | finite
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
#: free-form objects: context, features, properties, policy extras (unicode keys, nested values)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


utc_micros = st.integers(min_value=MIN_US, max_value=MAX_US)


def rfc3339(micros: int, *, offset_minutes: int, digits: int, zulu: bool) -> str:
    """`micros` written in local time at an offset, with `digits` fraction digits (truncated)."""
    local = EPOCH + timedelta(microseconds=micros, minutes=offset_minutes)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    if offset_minutes == 0 and zulu:
        return text + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


@st.composite
def time_strings(draw: st.DrawFn) -> str:
    return rfc3339(
        draw(utc_micros),
        offset_minutes=draw(
            st.sampled_from([0, 0, 60, -300, 330, 345, -570, 840, -720]) | st.integers(-1439, 1439)
        ),
        digits=draw(st.sampled_from([0, 3, 6]) | st.integers(0, 6)),
        zulu=draw(st.booleans()),
    )


times = (
    time_strings()
    | st.integers(min_value=MIN_US // 1000, max_value=MAX_US // 1000)
    | st.floats(min_value=MIN_US / 1000, max_value=MAX_US / 1000)
)


def maybe(draw: st.DrawFn, record: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]) -> None:
    """Set `record[key]` from `strategy`, or leave it absent (sometimes explicitly null)."""
    choice = draw(st.sampled_from(["absent", "present", "present", "null"]))
    if choice == "present":
        record[key] = draw(strategy)
    elif choice == "null":
        record[key] = None


def identities(draw: st.DrawFn, record: dict[str, Any], names: tuple[str, ...]) -> None:
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    for name in chosen:
        record[name] = draw(ids)


@st.composite
def shown_items(draw: st.DrawFn) -> list[dict[str, Any]]:
    item_ids = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    n = len(item_ids)
    mode = draw(st.sampled_from(["index", "permutation", "sparse"]))
    if mode == "index":
        positions = list(range(n))
    elif mode == "permutation":
        positions = draw(st.permutations(range(n)))
    else:
        positions = draw(
            st.lists(st.integers(0, INT32_MAX), min_size=n, max_size=n, unique=True).filter(
                # an absent position means the list index: never let another item claim it
                lambda ps: all(p >= n or p == i for i, p in enumerate(ps))
            )
            | st.lists(st.integers(n, INT32_MAX), min_size=n, max_size=n, unique=True)
        )
    items = []
    for i, (item_id, position) in enumerate(zip(item_ids, positions, strict=True)):
        item: dict[str, Any] = {"item_id": item_id}
        if position != i or draw(st.booleans()):
            item["position"] = position
        maybe(draw, item, "original_position", st.integers(0, INT32_MAX))
        maybe(draw, item, "score", numbers)
        maybe(draw, item, "propensity", probabilities)
        maybe(draw, item, "cond_propensity", probabilities)
        maybe(draw, item, "features", objects)
        maybe(draw, item, "text", texts)
        items.append(item)
    return items


@st.composite
def candidates(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for item_id in draw(st.lists(ids, max_size=5)):
        cand: dict[str, Any] = {"item_id": item_id}
        maybe(draw, cand, "score", numbers)
        maybe(draw, cand, "features", objects)
        out.append(cand)
    return out


policies = st.fixed_dictionaries(
    {},
    optional={
        "name": ids,
        "epsilon": st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([0, 1]),
        "temperature": st.floats(min_value=0.0, exclude_min=True, allow_infinity=False) | st.integers(1, 100),
        "intervention": st.fixed_dictionaries(
            {"type": st.sampled_from(INTERVENTION_TYPES)}, optional={"n": st.integers(1, 1000)}
        ),
        "seed": json_values,
    },
)


@st.composite
def decisions(draw: st.DrawFn) -> dict[str, Any]:
    d: dict[str, Any] = {"decision_id": draw(ids), "timestamp": draw(times), "items": draw(shown_items())}
    identities(draw, d, ("user_id", "anonymous_id", "session_id"))
    for name in (
        "surface",
        "query_id",
        "request_id",
        "conversation_id",
        "parent_decision_id",
        "model",
        "model_version",
    ):
        maybe(draw, d, name, ids)
    maybe(draw, d, "context", objects)
    maybe(draw, d, "candidates", candidates())
    maybe(draw, d, "propensity", probabilities)
    maybe(draw, d, "policy", policies)
    maybe(draw, d, "output", texts)
    maybe(draw, d, "logits", st.lists(numbers, max_size=5))
    maybe(
        draw,
        d,
        "embedding",
        st.lists(
            st.floats(-FLOAT32_MAX, FLOAT32_MAX) | st.floats(width=32, allow_infinity=False, allow_nan=False),
            max_size=5,
        ),
    )
    return d


#: the contract's meaning of `value` by type: (required, low, low_open, high)
VALUE_RULES: dict[str, tuple[bool, float | None, bool, float | None]] = {
    "dwell": (True, 0.0, False, None),
    "heartbeat": (True, 0.0, True, None),
    "scroll": (True, 0.0, False, 1.0),
    "skip": (False, 0.0, False, None),
    "purchase": (False, 0.0, False, None),
    "return": (False, 0.0, False, None),
    "rating": (True, None, False, None),
    "assignment": (True, 0.0, True, 1.0),
}
custom_types = st.from_regex(r"\Ax-[a-z0-9][a-z0-9_.-]{0,20}\Z")
event_types = st.sampled_from(sorted(EVENT_TYPES)) | custom_types


def values_for(event_type: str) -> st.SearchStrategy[float | int]:
    _, low, low_open, high = VALUE_RULES.get(event_type, (False, None, False, None))
    floats = st.floats(
        min_value=low,
        max_value=high,
        exclude_min=low_open and low is not None,
        allow_nan=False,
        allow_infinity=False,
    )
    ints = st.integers(
        min_value=None if low is None else math.floor(low) + (1 if low_open else 0),
        max_value=None if high is None else math.floor(high),
    )
    return floats | ints


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(event_types)
    e: dict[str, Any] = {"event_id": draw(ids), "timestamp": draw(times), "type": event_type}
    identities(draw, e, ("user_id", "anonymous_id", "session_id", "decision_id"))
    maybe(draw, e, "item_id", ids)
    if event_type == "return":
        e["order_id"] = draw(ids)
    else:
        maybe(draw, e, "order_id", ids)
    required = VALUE_RULES.get(event_type, (False,))[0]
    if required:
        e["value"] = draw(values_for(event_type))
    else:
        maybe(draw, e, "value", values_for(event_type))
    props = draw(st.none() | objects)
    if event_type == "assignment":
        props = {**(props or {}), "experiment": draw(ids), "arm": draw(ids)}
    if event_type == "heartbeat" and draw(st.booleans()):
        props = {**(props or {}), "active": draw(st.booleans())}
    if event_type == "heartbeat" and props is not None and "active" in props:
        props["active"] = bool(props["active"])
    if props is not None or draw(st.booleans()):
        e["properties"] = props
    return e


@st.composite
def catalogue_items(draw: st.DrawFn) -> dict[str, Any]:
    it: dict[str, Any] = {"item_id": draw(ids)}
    maybe(draw, it, "valid_from", times)
    maybe(draw, it, "features", objects)
    maybe(draw, it, "text", texts)
    maybe(
        draw,
        it,
        "embedding",
        st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=6),
    )
    return it


RECORDS: dict[Kind, st.SearchStrategy[dict[str, Any]]] = {
    "decision": decisions(),
    "event": events(),
    "item": catalogue_items(),
}


def batches(kind: Kind) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(RECORDS[kind], min_size=1, max_size=20, unique_by=lambda r: r[ID_FIELD[kind]])


def encode(raw: dict[str, Any]) -> bytes:
    return msgspec.json.encode(raw)


# --------------------------------------------------------------------------------------------
# the generators make what the contract calls valid
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@FAST_SETTINGS
@given(data=st.data())
def test_generated_records_are_valid(kind: Kind, data: st.DataObject) -> None:
    raw = data.draw(RECORDS[kind])
    for given_as in (raw, encode(raw)):
        checked = validate(kind, given_as, received_us=NOW_US)
        assert checked.ok, [str(e) for e in checked.errors]


@FAST_SETTINGS
@given(micros=utc_micros, offset=st.integers(-1439, 1439), digits=st.integers(0, 6), zulu=st.booleans())
@example(micros=MIN_US, offset=-1439, digits=0, zulu=False)
@example(micros=MIN_US, offset=0, digits=6, zulu=True)
def test_time_strings_normalise_to_the_instant(micros: int, offset: int, digits: int, zulu: bool) -> None:
    text = rfc3339(micros, offset_minutes=offset, digits=digits, zulu=zulu)
    truncated = micros - micros % 10 ** (6 - digits)
    event = {"event_id": "e", "timestamp": text, "type": "click", "user_id": "u"}
    assert normalise("event", event).timestamp == format_time(truncated)


@FAST_SETTINGS
@given(ms=st.integers(min_value=MIN_US // 1000, max_value=MAX_US // 1000))
def test_epoch_milliseconds_normalise_to_the_instant(ms: int) -> None:
    event = {"event_id": "e", "timestamp": ms, "type": "click", "user_id": "u"}
    assert normalise("event", event).timestamp == format_time(ms * 1000)
    assert (
        normalise("event", event).timestamp == normalise("event", {**event, "timestamp": float(ms)}).timestamp
    )


# --------------------------------------------------------------------------------------------
# normalise is idempotent, and does not depend on how the record was given
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "json"])
@pytest.mark.parametrize("kind", KINDS)
@FAST_SETTINGS
@given(data=st.data())
def test_normalise_is_idempotent(kind: Kind, as_bytes: bool, data: st.DataObject) -> None:
    raw = data.draw(RECORDS[kind])
    once = normalise(kind, encode(raw) if as_bytes else raw)
    builtins = msgspec.to_builtins(once)
    assert normalise(kind, builtins) == once
    assert normalise(kind, encode(builtins)) == once


@pytest.mark.parametrize("kind", KINDS)
@FAST_SETTINGS
@given(data=st.data())
def test_normalise_is_the_same_for_dicts_and_json(kind: Kind, data: st.DataObject) -> None:
    raw = data.draw(RECORDS[kind])
    assert normalise(kind, raw) == normalise(kind, encode(raw))
    assert normalise(kind, raw) == normalise(kind, encode(raw).decode())


def test_nulls_inside_free_form_objects_survive_dict_input() -> None:
    """Regression: a dict record loses `null` values nested in context/properties/features."""
    event = {
        "event_id": "e1",
        "timestamp": "2026-01-31T12:00:00Z",
        "type": "click",
        "user_id": "u",
        "properties": {"coupon": None, "cart": [{"sku": "a", "discount": None}]},
    }
    from_json = normalise("event", encode(event))
    assert from_json.properties == event["properties"]
    assert normalise("event", event) == from_json


# --------------------------------------------------------------------------------------------
# read(store(validate(x))) == normalise(x)
# --------------------------------------------------------------------------------------------


def _fresh_store(tmp_path: Any) -> Store:
    return Store.open(tempfile.mkdtemp(dir=tmp_path))


def _read(store: Store, kind: Kind) -> dict[str, Any]:
    rows = store.table(TABLE[kind]).to_pyarrow_table().to_pylist()
    records = [from_row(TABLE[kind], row) for row in rows]
    by_id = {getattr(r, ID_FIELD[kind]): r for r in records}
    assert len(by_id) == len(records), "an id was stored twice"
    return by_id


@pytest.mark.parametrize("as_bytes", [False, True], ids=["dict", "json"])
@STORE_SETTINGS
@given(
    decision_batch=batches("decision"),
    event_batch=batches("event"),
    item_batch=batches("item"),
    detect=st.booleans(),
)
def test_store_round_trip(
    tmp_path: Any,
    as_bytes: bool,
    decision_batch: list[dict[str, Any]],
    event_batch: list[dict[str, Any]],
    item_batch: list[dict[str, Any]],
    detect: bool,
) -> None:
    batches_by_kind: dict[Kind, list[dict[str, Any]]] = {
        "decision": decision_batch,
        "event": event_batch,
        "item": item_batch,
    }
    with _fresh_store(tmp_path) as store:
        for kind, raws in batches_by_kind.items():
            given_as = [encode(r) for r in raws] if as_bytes else raws
            report = store.ingest(given_as, kind=None if detect else kind)
            assert report.counts["accepted"] == len(raws), report.errors
        sealed = store.seal()
        assert sealed.sealed.get("quarantine", 0) == 0
        for kind, raws in batches_by_kind.items():
            stored = _read(store, kind)
            assert len(stored) == len(raws)
            for raw in raws:
                expected = normalise(kind, encode(raw) if as_bytes else raw)
                assert stored[raw[ID_FIELD[kind]]] == expected


@STORE_SETTINGS
@given(batch=batches("event"))
def test_store_round_trip_of_a_retried_batch(tmp_path: Any, batch: list[dict[str, Any]]) -> None:
    """A retry (same payloads, as JSON this time) is all duplicates and changes nothing stored."""
    with _fresh_store(tmp_path) as store:
        store.ingest(batch, kind="event")
        retry = store.ingest([encode(r) for r in batch], kind="event")
        assert retry.counts["duplicate"] == len(batch)
        store.seal()
        stored = _read(store, "event")
        assert stored == {r["event_id"]: normalise("event", r) for r in batch}


def test_store_round_trip_at_the_int32_position_limit(tmp_path: Any) -> None:
    decision = {
        "decision_id": "d1",
        "timestamp": "2026-01-31T12:00:00Z",
        "user_id": "u",
        "items": [{"item_id": "a", "position": INT32_MAX, "original_position": INT32_MAX}],
    }
    with _fresh_store(tmp_path) as store:
        store.ingest([decision], kind="decision")
        store.seal()
        assert _read(store, "decision")["d1"] == normalise("decision", decision)


def test_position_beyond_int32_is_rejected_not_a_poison_row(tmp_path: Any) -> None:
    """Regression: a position the int32 column cannot hold passes validation, then every seal fails.

    Either validation rejects it with a field error (and it goes to quarantine), or the store keeps it;
    the sealer must never be blocked by an acknowledged row.
    """
    decision = {
        "decision_id": "d1",
        "timestamp": "2026-01-31T12:00:00Z",
        "user_id": "u",
        "items": [{"item_id": "a", "position": 2**40}],
    }
    event = {"event_id": "e1", "timestamp": "2026-01-31T12:00:00Z", "type": "click", "user_id": "u"}
    with _fresh_store(tmp_path) as store:
        store.ingest([decision])
        store.ingest([event])
        store.seal()  # must not raise
        assert store.count("events") == 1
        assert store.count("decisions") + store.count("quarantine") == 1


# --------------------------------------------------------------------------------------------
# invalid input: field-level errors, never an exception
# --------------------------------------------------------------------------------------------

#: field names and their JSON types, from the contract
FIELD_TYPES: dict[Kind, dict[str, str]] = {
    "decision": {
        "decision_id": "str",
        "timestamp": "time",
        "user_id": "str",
        "anonymous_id": "str",
        "session_id": "str",
        "surface": "str",
        "query_id": "str",
        "request_id": "str",
        "conversation_id": "str",
        "parent_decision_id": "str",
        "model": "str",
        "model_version": "str",
        "context": "object",
        "items": "list",
        "candidates": "list",
        "propensity": "number",
        "policy": "object",
        "output": "str",
        "logits": "list",
        "embedding": "list",
    },
    "event": {
        "event_id": "str",
        "timestamp": "time",
        "type": "str",
        "user_id": "str",
        "anonymous_id": "str",
        "session_id": "str",
        "decision_id": "str",
        "item_id": "str",
        "order_id": "str",
        "value": "number",
        "properties": "object",
    },
    "item": {
        "item_id": "str",
        "valid_from": "time",
        "features": "object",
        "text": "str",
        "embedding": "list",
    },
}
SHOWN_ITEM_TYPES = {
    "item_id": "str",
    "position": "int",
    "original_position": "int",
    "score": "number",
    "propensity": "number",
    "cond_propensity": "number",
    "features": "object",
    "text": "str",
}
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "decision": ("decision_id", "timestamp", "items"),
    "event": ("event_id", "timestamp", "type"),
    "item": ("item_id",),
}
ALL_FIELDS = sorted({f for fields in FIELD_TYPES.values() for f in fields} | set(SHOWN_ITEM_TYPES))

small_dicts = st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
small_lists = st.lists(st.integers(), max_size=2)
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "str": st.integers() | st.booleans() | finite | small_lists | small_dicts,
    "int": st.text() | st.booleans() | small_lists | small_dicts,
    "number": st.text() | st.booleans() | small_lists | small_dicts,
    "object": st.text() | st.integers() | st.booleans() | small_lists,
    "list": st.text() | st.integers() | st.booleans() | small_dicts,
    "time": st.booleans() | small_lists | small_dicts,
}
bad_probabilities = (
    st.sampled_from([0, 0.0, -0.0, -1, 1.0000001, 1.7, 2, 1e300])
    | st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1.0, exclude_min=True, allow_nan=False, allow_infinity=False)
)
bad_times = (
    st.integers(min_value=0, max_value=MIN_US // 1000 - 1)  # seconds, or before 2000
    | st.integers(min_value=NOW_US // 1000 + 86_400_000 + 60_000, max_value=10**30)  # future, or microseconds
    | st.sampled_from(
        [
            "2026-01-31T12:00:00",  # naive
            "2026-01-31 12:00",
            "1999-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "",
            "9999-12-31T23:59:59Z",
        ]
    )
)
field_names = st.from_regex(r"\A[a-z_]{1,12}\Z").filter(lambda f: f not in ALL_FIELDS)
BAD_VALUES: dict[str, st.SearchStrategy[float]] = {
    "dwell": st.floats(max_value=0.0, exclude_max=True, allow_nan=False, allow_infinity=False),
    "heartbeat": st.floats(max_value=0.0, allow_nan=False, allow_infinity=False),
    "scroll": st.floats(min_value=1.0, exclude_min=True, allow_nan=False, allow_infinity=False)
    | st.floats(max_value=0.0, exclude_max=True, allow_nan=False, allow_infinity=False),
    "skip": st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    "purchase": st.integers(max_value=-1),
    "return": st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    "assignment": st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1.0, exclude_min=True, allow_nan=False, allow_infinity=False),
}


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Kind, dict[str, Any], str]:
    """A valid record broken in one field: (kind, record, the path the error must name)."""
    kind: Kind = draw(st.sampled_from(KINDS))
    raw = draw(RECORDS[kind])
    ops = ["drop", "wrong_type", "unknown_field"]
    if kind != "item":
        ops += ["bad_time", "no_identity"]
    else:
        ops += ["bad_valid_from"]
    if kind == "decision":
        ops += ["wrong_item_type", "bad_propensity", "bad_policy", "duplicate_item", "empty_items"]
    if kind == "event":
        ops += ["bad_value", "bad_type", "return_without_order", "assignment_without_arm"]
    op = draw(st.sampled_from(ops))
    if op == "drop":
        field = draw(st.sampled_from(REQUIRED[kind]))
        del raw[field]
        return kind, raw, field
    if op == "wrong_type":
        field, type_ = draw(st.sampled_from(sorted(FIELD_TYPES[kind].items())))
        raw[field] = draw(WRONG[type_])
        return kind, raw, field
    if op == "unknown_field":
        field = draw(field_names)
        raw[field] = draw(json_values.filter(lambda v: v is not None))  # null: see test_validate
        return kind, raw, field
    if op in ("bad_time", "bad_valid_from"):
        field = "timestamp" if op == "bad_time" else "valid_from"
        raw[field] = draw(bad_times)
        return kind, raw, field
    if op == "no_identity":
        for name in ("user_id", "anonymous_id", "session_id", "decision_id" if kind == "event" else ""):
            raw.pop(name, None)
        return kind, raw, "user_id"
    if op == "wrong_item_type":
        i = draw(st.integers(0, len(raw["items"]) - 1))
        field, type_ = draw(st.sampled_from(sorted(SHOWN_ITEM_TYPES.items())))
        raw["items"][i][field] = draw(WRONG[type_])
        return kind, raw, f"items[{i}].{field}"
    if op == "bad_propensity":
        value = draw(bad_probabilities)
        if draw(st.booleans()):
            raw["propensity"] = value
            return kind, raw, "propensity"
        i = draw(st.integers(0, len(raw["items"]) - 1))
        field = draw(st.sampled_from(["propensity", "cond_propensity"]))
        raw["items"][i][field] = value
        return kind, raw, f"items[{i}].{field}"
    if op == "bad_policy":
        key, value = draw(
            st.sampled_from(
                ["epsilon", "temperature", "intervention.type", "intervention.n", "name"]
            ).flatmap(
                lambda k: st.tuples(
                    st.just(k),
                    {
                        "epsilon": st.floats(min_value=1.0, exclude_min=True, allow_infinity=False)
                        | st.floats(max_value=-1e-9, allow_infinity=False)
                        | st.text(),
                        "temperature": st.floats(max_value=0.0, allow_infinity=False) | st.text(),
                        "intervention.type": st.text().filter(lambda t: t not in INTERVENTION_TYPES),
                        "intervention.n": st.integers(max_value=0) | finite | st.text(),
                        "name": st.integers() | small_lists,
                    }[k],
                )
            )
        )
        policy = dict(raw.get("policy") or {})
        if key.startswith("intervention."):
            intervention = dict(policy.get("intervention") or {"type": "swap_adjacent", "n": 1})
            intervention[key.split(".")[1]] = value
            policy["intervention"] = intervention
        else:
            policy[key] = value
        raw["policy"] = policy
        return kind, raw, f"policy.{key}"
    if op == "duplicate_item":
        used = {it.get("position", i) for i, it in enumerate(raw["items"])}
        free = next(p for p in range(len(used) + 1) if p not in used)
        raw["items"].append({"item_id": raw["items"][0]["item_id"], "position": free})
        return kind, raw, f"items[{len(raw['items']) - 1}].item_id"
    if op == "empty_items":
        raw["items"] = []
        return kind, raw, "items"
    if op == "bad_value":
        event_type = draw(st.sampled_from(sorted(BAD_VALUES)))
        raw.update(type=event_type, value=draw(BAD_VALUES[event_type]), order_id="o1")
        raw["properties"] = {"experiment": "exp", "arm": "a"}
        return kind, raw, "value"
    if op == "bad_type":
        raw["type"] = draw(
            st.text(max_size=10).filter(lambda t: t not in EVENT_TYPES and not t.startswith("x-"))
            | st.sampled_from(["x-", "x-UPPER", "X-custom", "Click", "x-" + "a" * 64])
        )
        return kind, raw, "type"
    if op == "return_without_order":
        raw.update(type="return")
        raw.pop("order_id", None)
        raw.pop("value", None)
        return kind, raw, "order_id"
    raw.update(type="assignment", value=0.5, properties={"experiment": "exp"})
    return kind, raw, "properties.arm"


def assert_field_errors(messages: list[str] | tuple[str, ...]) -> None:
    assert messages, "invalid, yet no error"
    for message in messages:
        assert isinstance(message, str)
        assert message.strip()
        assert not message.rstrip().endswith(":"), f"an error with no message: {message!r}"


def never_raises(raw: Any) -> None:
    """Validate and prepare `raw` in every way a client can send it; nothing may escape."""
    for kind in KINDS:
        checked = validate(kind, raw, received_us=NOW_US)
        if checked.ok:
            assert checked.record is not None
        else:
            assert checked.record is None
            assert all(e.message.strip() for e in checked.errors)
            assert_field_errors([str(e) for e in checked.errors])
    for kind in (None, *KINDS):
        entry = prepare(kind, raw, received_us=NOW_US)
        assert isinstance(entry, Accepted | Quarantined)
        if isinstance(entry, Quarantined):
            assert_field_errors(entry.errors)
            assert isinstance(entry.raw, str)


def encodable(raw: Any) -> bytes | None:
    try:
        return msgspec.json.encode(raw)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        return None


huge_numbers = st.sampled_from([10**400, -(10**400), 2**64, -(2**63) - 1, 2**1000, 1e308, -1e308])
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_numbers | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(ALL_FIELDS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=16,
)
record_like = st.dictionaries(st.sampled_from(ALL_FIELDS) | st.text(max_size=8), anything, max_size=10)


@st.composite
def valid_with_overrides(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    return {**draw(RECORDS[kind]), **draw(record_like)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=anything | record_like | valid_with_overrides())
@example(raw={"event_id": "e", "timestamp": 10**400, "type": "click", "user_id": "u"})
@example(raw={"decision_id": "d", "timestamp": 0, "items": [{"item_id": "a", "score": 10**400}]})
def test_anything_yields_field_errors_never_an_exception(raw: Any) -> None:
    never_raises(raw)
    as_json = encodable(raw)
    if as_json is not None:
        never_raises(as_json)
        never_raises(as_json.decode())


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64) | st.binary(max_size=16).map(lambda b: b'{"event_id": "' + b + b'"}'))
@example(raw=b'{"event_id": "\xff", "timestamp": 1769860800000, "type": "click", "user_id": "u"}')
def test_any_bytes_yield_field_errors_never_an_exception(raw: bytes) -> None:
    never_raises(raw)


@FAST_SETTINGS
@given(mutation=mutations())
def test_a_broken_field_is_named_by_its_error(mutation: tuple[Kind, dict[str, Any], str]) -> None:
    kind, raw, path = mutation
    for given_as in (raw, encode(raw)):
        checked = validate(kind, given_as, received_us=NOW_US)
        assert not checked.ok, f"{path} broken, yet valid: {raw!r}"
        assert_field_errors([str(e) for e in checked.errors])
        assert path in [e.path for e in checked.errors], [str(e) for e in checked.errors]
        entry = prepare(kind, given_as, received_us=NOW_US)
        assert isinstance(entry, Quarantined)
        assert any(err.startswith(f"{path}: ") for err in entry.errors), entry.errors
        detected = prepare(None, given_as, received_us=NOW_US)
        assert isinstance(detected, Quarantined)
        assert_field_errors(detected.errors)


def _nested(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        node.append([])
        node = node[0]
    return root


CLICK = {"event_id": "e1", "timestamp": 1769860800000, "type": "click", "user_id": "u"}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({**CLICK, "user_id": "\ud800"}, id="lone-surrogate-in-an-id"),
        pytest.param({**CLICK, "properties": {"\udc80": 1}}, id="lone-surrogate-in-a-key"),
        pytest.param({**CLICK, "bogus": "\ud800"}, id="lone-surrogate-in-an-unknown-field"),
        pytest.param('{"event_id": "\ud800"}', id="lone-surrogate-in-json-text"),
        pytest.param({**CLICK, "properties": {"a": {1: "one"}}}, id="int-key-nested"),
        pytest.param({**CLICK, "properties": {1: "one"}}, id="int-key"),
        pytest.param({**CLICK, "properties": {"a": _nested(10_000)}}, id="deep-nesting-in-properties"),
        pytest.param({**CLICK, "bogus": _nested(10_000)}, id="deep-nesting-in-an-unknown-field"),
        pytest.param({**CLICK, "timestamp": 10**400}, id="huge-int-timestamp"),
        pytest.param({**CLICK, "timestamp": -(10**400)}, id="huge-negative-int-timestamp"),
    ],
)
def test_python_values_yield_field_errors_never_an_exception(raw: Any) -> None:
    """Dicts from Python clients can hold what JSON cannot; they are quarantined, never raised."""
    never_raises(raw)


@pytest.mark.parametrize("kind", KINDS)
@FAST_SETTINGS
@given(data=st.data())
def test_validating_a_batch_equals_validating_each_row(kind: Kind, data: st.DataObject) -> None:
    """The batch path a request body takes gives every row the outcome it would get alone."""
    rows = data.draw(
        st.lists(
            RECORDS[kind].map(encode)
            | mutations().map(lambda m: encode(m[1]))
            | st.binary(max_size=32)
            | st.just(b'{"a": [1'),
            max_size=8,
        )
    )
    assert validate_many(kind, rows, received_us=NOW_US) == [
        validate(kind, row, received_us=NOW_US) for row in rows
    ]


def _edge_timestamps(received_us: int) -> st.SearchStrategy[Any]:
    """Epoch milliseconds on and around both limits, and times that are not integers."""
    low, high = MIN_US // 1000, (received_us + 86_400_000_000) // 1000
    return (
        st.integers(min_value=low - 2, max_value=low + 2)
        | st.integers(min_value=high - 2, max_value=high + 2)
        | st.sampled_from([True, 1.5e12, float(high), "2026-01-31T12:00:00Z", None, 10**30])
    )


@FAST_SETTINGS
@given(data=st.data())
def test_the_event_hot_path_decides_as_each_row_alone(data: st.DataObject) -> None:
    """`prepare_batch` takes a short path for JSON events (the service's hot path); every row must
    still get exactly the outcome, stored row and digest the general path gives it alone."""
    received = NOW_US - data.draw(st.integers(min_value=0, max_value=10**9))
    edge = events().flatmap(lambda e: _edge_timestamps(received).map(lambda t: {**e, "timestamp": t}))
    heartbeat = events().map(lambda e: {**e, "type": "heartbeat", "value": 1.0, "properties": {"active": 1}})
    rows = data.draw(
        st.lists(
            RECORDS["event"].map(encode)
            | edge.map(encode)
            | heartbeat.map(encode)
            | mutations().filter(lambda m: m[0] == "event").map(lambda m: encode(m[1]))
            | st.binary(max_size=32),
            max_size=8,
        )
    )
    one_by_one = [prepare("event", row, received_us=received, source="http") for row in rows]
    fast = prepare_batch("event", rows, received_us=received, source="http")
    assert fast.built() == Prepared.of(one_by_one)
    assert prepare_many("event", rows, received_us=received, source="http") == one_by_one
    if "events" in fast.tables:  # a small append: journaled as MessagePack, the seal's Arrow alike
        values = fast.tables["events"]
        assert values.values is not None
        blob = encode_rows("events", values.values, values.received)
        built = fast.built().tables["events"].batch
        assert decode_rows("events", [blob, blob]) == pa.concat_batches([built, built])


def test_only_flat_rows_are_journaled_as_values() -> None:
    """MessagePack rows decode as tuples of scalars: a table with nested columns must not use them."""
    with pytest.raises(ValueError, match="nested"):
        encode_rows("decisions", [], [])


def test_an_events_stored_values_follow_its_tables_columns() -> None:
    """`event_values` is written out by hand for speed and the batch is built by position: every
    value must sit under the column of its name (and the digest is over this order)."""
    fields = {f: f"<{f}>" for f in Event.__struct_fields__}
    record = Event(**{**fields, "timestamp": 1769860800000, "value": 2.5, "properties": {"b": 1, "a": 2}})
    row = event_row(record, 1769860800000000)
    assert tuple(row) == EVENT_COLUMNS == tuple(f for f in SCHEMAS["events"].names if f != "received_at")
    expected = {**fields, "timestamp": 1769860800000000, "value": 2.5, "properties": '{"a":2,"b":1}'}
    assert row == expected
