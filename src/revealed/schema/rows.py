"""The mapping between validated records and stored rows, and the canonical form it defines.

`to_row` turns a validated record into the row the store keeps (times as UTC microseconds,
free-form objects as canonical JSON, positions filled in, embeddings as float32); `from_row`
turns a stored row back into a record. `normalise(x)` is `from_row(to_row(validate(x)))`, so the
store's round trip `read(store(validate(x))) == normalise(x)` holds by construction as long as
the store keeps rows exactly, and `normalise` is idempotent.

>>> n = normalise("event", {"event_id": "e1", "timestamp": 1769860800000, "type": "click",
...                         "user_id": "u", "properties": {"b": 1, "a": 2}})
>>> n.timestamp, list(n.properties)
('2026-01-31T12:00:00.000000Z', ['a', 'b'])
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from xxhash import xxh3_128_digest

from revealed.errors import ValidationFailed
from revealed.schema.arrow import journal_schema
from revealed.schema.records import Candidate, Decision, DecisionItem, Event, Item, Kind, Record
from revealed.schema.timefmt import format_time
from revealed.schema.validate import Checked, validate

__all__ = [
    "EVENT_COLUMNS",
    "TABLE_OF",
    "canonical_json",
    "event_row",
    "event_values",
    "from_row",
    "normalise",
    "numeric_entries",
    "record_id",
    "row_digest",
    "row_digests",
    "to_row",
]

TABLE_OF: Final[dict[Kind, str]] = {"decision": "decisions", "event": "events", "item": "items"}
_ID_FIELD: Final[dict[Kind, str]] = {"decision": "decision_id", "event": "event_id", "item": "item_id"}
_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_PLAIN: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
Row = dict[str, Any]
#: beyond this an integer has no float64 value (it stays in the canonical JSON only)
_F64_MAX: Final = 1.7976931348623157e308


def canonical_json(obj: Mapping[str, Any] | None) -> str | None:
    """Sorted keys, no whitespace: equal objects give equal strings.

    >>> canonical_json({"b": [1, {"d": 1, "c": 2}], "a": None})
    '{"a":null,"b":[1,{"c":2,"d":1}]}'
    """
    return None if obj is None else _ENCODER.encode(obj).decode()


def numeric_entries(obj: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """The finite numeric top-level entries of an object, as (key, value) pairs sorted by key."""
    if not obj:
        return None
    pairs = [
        {"key": k, "value": float(v)}
        for k, v in sorted(obj.items())
        if isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= _F64_MAX and math.isfinite(v)
    ]
    return pairs or None


def _f32(values: list[float] | None) -> list[float] | None:
    return None if values is None else array("f", values).tolist()


def record_id(kind: Kind, record: Record) -> str:
    value: str = getattr(record, _ID_FIELD[kind])
    return value


#: the stored columns of an event, in the order of its table (without received_at)
EVENT_COLUMNS: Final = tuple(journal_schema("events").names)


def event_values(r: Event, timestamp: int) -> tuple[Any, ...]:
    """The stored row of a valid event whose timestamp is `timestamp` (UTC microseconds), as the
    values of `EVENT_COLUMNS` (the service's hot path builds its Arrow batch from these)."""
    return (
        r.event_id,
        timestamp,
        r.type,
        r.user_id,
        r.anonymous_id,
        r.session_id,
        r.decision_id,
        r.item_id,
        r.order_id,
        r.value,
        canonical_json(r.properties),
    )


def event_row(r: Event, timestamp: int) -> Row:
    """The stored row of a valid event whose timestamp is `timestamp` (UTC microseconds)."""
    return dict(zip(EVENT_COLUMNS, event_values(r, timestamp), strict=True))


def row_digest(values: tuple[Any, ...]) -> bytes:
    """The digest a stored row is known by: XXH3-128 of its values' JSON, in column order (16 bytes).

    A retry of a record is a duplicate exactly when its stored row is the same. The digest only
    tells payloads under one id apart (the first copy's against a retry's), so it needs no
    resistance to crafted collisions: whoever could craft one chooses the id anyway. XXH3 costs
    less than half of BLAKE2b per row, the largest single cost of the ingest hot path.

    >>> row_digest(("e1", 1)) == row_digest(tuple({"event_id": "e1", "timestamp": 1}.values()))
    True
    >>> row_digest(("e1", 1)) != row_digest(("e1", 2))
    True
    """
    return xxh3_128_digest(_PLAIN.encode(values))


def row_digests(rows: Sequence[tuple[Any, ...]]) -> list[bytes]:
    """`row_digest` of each row, in one loop (the service's hot path).

    >>> row_digests([("e1", 1)]) == [row_digest(("e1", 1))]
    True
    """
    encode = _PLAIN.encode
    return [xxh3_128_digest(encode(values)) for values in rows]


def to_row(checked: Checked) -> Row:
    """The stored row of a valid record, without `received_at`."""
    r = checked.record
    if isinstance(r, Decision):
        return {
            "decision_id": r.decision_id,
            "timestamp": checked.times["timestamp"],
            "user_id": r.user_id,
            "anonymous_id": r.anonymous_id,
            "session_id": r.session_id,
            "surface": "default" if r.surface is None else r.surface,
            "query_id": r.query_id,
            "request_id": r.request_id,
            "conversation_id": r.conversation_id,
            "parent_decision_id": r.parent_decision_id,
            "model": r.model,
            "model_version": r.model_version,
            "context": canonical_json(r.context),
            "context_num": numeric_entries(r.context),
            "items": [
                {
                    "item_id": it.item_id,
                    "position": i if it.position is None else it.position,
                    "original_position": it.original_position,
                    "score": it.score,
                    "propensity": it.propensity,
                    "cond_propensity": it.cond_propensity,
                    "features": canonical_json(it.features),
                    "text": it.text,
                }
                for i, it in enumerate(r.items)
            ],
            "candidates": None
            if r.candidates is None
            else [
                {"item_id": c.item_id, "score": c.score, "features": canonical_json(c.features)}
                for c in r.candidates
            ],
            "propensity": r.propensity,
            "policy": canonical_json(r.policy),
            "output": r.output,
            "logits": r.logits,
            "embedding": _f32(r.embedding),
        }
    if isinstance(r, Event):
        return event_row(r, checked.times["timestamp"])  # type: ignore[arg-type]
    if isinstance(r, Item):
        return {
            "item_id": r.item_id,
            "valid_from": checked.times.get("valid_from"),
            "features": canonical_json(r.features),
            "features_num": numeric_entries(r.features),
            "text": r.text,
            "embedding": _f32(r.embedding),
        }
    raise ValueError(f"checked: expected a valid record, found errors {[str(e) for e in checked.errors]}")


def _time(value: int | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = (value - _EPOCH) // timedelta(microseconds=1)
    return format_time(value)


def _obj(text: str | None) -> dict[str, Any] | None:
    return None if text is None else _DECODER.decode(text)


def from_row(table: str, row: Mapping[str, Any]) -> Record:
    """The normalised record a stored row holds (times as canonical RFC 3339 strings)."""
    if table == "decisions":
        return Decision(
            decision_id=row["decision_id"],
            timestamp=_time(row["timestamp"]) or "",
            user_id=row["user_id"],
            anonymous_id=row["anonymous_id"],
            session_id=row["session_id"],
            surface=row["surface"],
            query_id=row["query_id"],
            request_id=row["request_id"],
            conversation_id=row["conversation_id"],
            parent_decision_id=row["parent_decision_id"],
            model=row["model"],
            model_version=row["model_version"],
            context=_obj(row["context"]),
            items=[
                DecisionItem(
                    item_id=it["item_id"],
                    position=it["position"],
                    original_position=it["original_position"],
                    score=it["score"],
                    propensity=it["propensity"],
                    cond_propensity=it["cond_propensity"],
                    features=_obj(it["features"]),
                    text=it["text"],
                )
                for it in row["items"]
            ],
            candidates=None
            if row["candidates"] is None
            else [
                Candidate(item_id=c["item_id"], score=c["score"], features=_obj(c["features"]))
                for c in row["candidates"]
            ],
            propensity=row["propensity"],
            policy=_obj(row["policy"]),
            output=row["output"],
            logits=row["logits"],
            embedding=row["embedding"],
        )
    if table == "events":
        return Event(
            event_id=row["event_id"],
            timestamp=_time(row["timestamp"]) or "",
            type=row["type"],
            user_id=row["user_id"],
            anonymous_id=row["anonymous_id"],
            session_id=row["session_id"],
            decision_id=row["decision_id"],
            item_id=row["item_id"],
            order_id=row["order_id"],
            value=row["value"],
            properties=_obj(row["properties"]),
        )
    if table == "items":
        return Item(
            item_id=row["item_id"],
            valid_from=_time(row["valid_from"]),
            features=_obj(row["features"]),
            text=row["text"],
            embedding=row["embedding"],
        )
    raise ValueError(f"table: expected decisions, events or items, found {table!r}")


def normalise(kind: Kind, raw: bytes | str | Mapping[str, Any]) -> Record:
    """The canonical form of a raw record: what the store gives back. Raises ValidationFailed."""
    checked = validate(kind, raw)
    if not checked.ok:
        raise ValidationFailed([str(e) for e in checked.errors])
    return from_row(TABLE_OF[kind], to_row(checked))
