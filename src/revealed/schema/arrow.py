"""Arrow schemas of the stored tables.

Free-form objects (`context`, `features`, `properties`, `policy`) are canonical JSON strings;
their numeric top-level entries are also kept in a `map<string, double>` for fast access.
Times are UTC microseconds.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import pyarrow as pa

__all__ = ["SCHEMAS", "TABLES", "TIME", "journal_schema"]

TIME: Final = pa.timestamp("us", tz="UTC")
_NUMERIC: Final = pa.map_(pa.string(), pa.float64())


def _f(name: str, kind: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, kind, nullable=nullable)


_SHOWN: Final = pa.struct(
    [
        _f("item_id", pa.string(), False),
        _f("position", pa.int32(), False),
        _f("original_position", pa.int32()),
        _f("score", pa.float64()),
        _f("propensity", pa.float64()),
        _f("cond_propensity", pa.float64()),
        _f("features", pa.string()),
        _f("text", pa.string()),
    ]
)
_CANDIDATE: Final = pa.struct(
    [_f("item_id", pa.string(), False), _f("score", pa.float64()), _f("features", pa.string())]
)

DECISIONS: Final = pa.schema(
    [
        _f("decision_id", pa.string(), False),
        _f("timestamp", TIME, False),
        _f("user_id", pa.string()),
        _f("anonymous_id", pa.string()),
        _f("session_id", pa.string()),
        _f("surface", pa.string(), False),
        _f("query_id", pa.string()),
        _f("request_id", pa.string()),
        _f("conversation_id", pa.string()),
        _f("parent_decision_id", pa.string()),
        _f("model", pa.string()),
        _f("model_version", pa.string()),
        _f("context", pa.string()),
        _f("context_num", _NUMERIC),
        _f("items", pa.list_(_f("element", _SHOWN, False)), False),
        _f("candidates", pa.list_(_f("element", _CANDIDATE, False))),
        _f("propensity", pa.float64()),
        _f("policy", pa.string()),
        _f("output", pa.string()),
        _f("logits", pa.list_(pa.float64())),
        _f("embedding", pa.list_(pa.float32())),
        _f("received_at", TIME, False),
    ]
)

EVENTS: Final = pa.schema(
    [
        _f("event_id", pa.string(), False),
        _f("timestamp", TIME, False),
        _f("type", pa.string(), False),
        _f("user_id", pa.string()),
        _f("anonymous_id", pa.string()),
        _f("session_id", pa.string()),
        _f("decision_id", pa.string()),
        _f("item_id", pa.string()),
        _f("order_id", pa.string()),
        _f("value", pa.float64()),
        _f("properties", pa.string()),
        _f("received_at", TIME, False),
    ]
)

ITEMS: Final = pa.schema(
    [
        _f("item_id", pa.string(), False),
        _f("valid_from", TIME),
        _f("features", pa.string()),
        _f("features_num", _NUMERIC),
        _f("text", pa.string()),
        _f("embedding", pa.list_(pa.float32())),
        _f("received_at", TIME, False),
    ]
)

QUARANTINE: Final = pa.schema(
    [
        _f("quarantine_id", pa.string(), False),
        _f("kind", pa.string(), False),
        _f("record_id", pa.string()),
        _f("reason", pa.string(), False),
        _f("errors", pa.list_(pa.string()), False),
        _f("raw", pa.string(), False),
        _f("source", pa.string()),
        _f("received_at", TIME, False),
    ]
)

TABLES: Final = ("decisions", "events", "items", "quarantine")
SCHEMAS: Final[dict[str, pa.Schema]] = {
    "decisions": DECISIONS,
    "events": EVENTS,
    "items": ITEMS,
    "quarantine": QUARANTINE,
}


def _as_journal(kind: pa.DataType) -> pa.DataType:
    if kind == TIME:
        return pa.int64()
    if pa.types.is_map(kind):
        return pa.list_(pa.struct([_f("key", pa.string(), False), _f("value", pa.float64())]))
    if pa.types.is_list(kind):
        return pa.list_(
            pa.field(kind.value_field.name, _as_journal(kind.value_type), kind.value_field.nullable)
        )
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _as_journal(f.type), f.nullable) for f in kind])
    return kind


@cache
def journal_schema(table: str) -> pa.Schema:
    """The schema of a table's rows as the journal's JSON holds them (times as int64, maps as pairs),
    without `received_at`, which the journal keeps in a column of its own."""
    return pa.schema(
        [pa.field(f.name, _as_journal(f.type), f.nullable) for f in SCHEMAS[table] if f.name != "received_at"]
    )
