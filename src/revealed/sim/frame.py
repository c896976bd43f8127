"""Columnar records in the v1 contract, built from numpy arrays without a Python loop per row.

Every world produces three Arrow tables shaped as a client would send them (`DECISIONS`,
`EVENTS`, `ITEMS`): times as UTC timestamps, free-form objects as JSON text (which the bulk
reader accepts), shown items as a list of structs. `revealed ingest` reads them as they are.

>>> import numpy as np
>>> log = EventLog()
>>> log.add("click", np.array([START_US + 5, START_US]), user_id=ids("u", np.array([1, 2])))
>>> t = log.table(prefix="e0-")
>>> t.column("event_id").to_pylist(), t.column("user_id").to_pylist()
(['e0-0', 'e0-1'], ['u2', 'u1'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DECISIONS",
    "EVENTS",
    "HOUR_US",
    "ITEMS",
    "MINUTE_US",
    "SECOND_US",
    "START_US",
    "DAY_US",
    "EventLog",
    "candidate_lists",
    "decisions_table",
    "ids",
    "items_table",
    "json_column",
    "keep",
    "shown_items",
    "take",
    "timestamps",
]

#: 2026-01-05T00:00:00Z, a Monday: every world starts here unless told otherwise (in the past, so
#: the store's "not more than a day in the future" rule never rejects simulated data)
START_US: Final = 1_767_571_200_000_000
SECOND_US: Final = 1_000_000
MINUTE_US: Final = 60 * SECOND_US
HOUR_US: Final = 60 * MINUTE_US
DAY_US: Final = 24 * HOUR_US

_TIME: Final = pa.timestamp("us", tz="UTC")
_STR: Final = pa.string()
_SHOWN: Final = pa.struct(
    [
        pa.field("item_id", _STR, nullable=False),
        pa.field("position", pa.int32()),
        pa.field("original_position", pa.int32()),
        pa.field("score", pa.float64()),
        pa.field("propensity", pa.float64()),
        pa.field("cond_propensity", pa.float64()),
    ]
)
_CANDIDATE: Final = pa.struct([pa.field("item_id", _STR, nullable=False), pa.field("score", pa.float64())])

DECISIONS: Final = pa.schema(
    [
        pa.field("decision_id", _STR, nullable=False),
        pa.field("timestamp", _TIME, nullable=False),
        *(
            pa.field(name, _STR)
            for name in (
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
            )
        ),
        pa.field("context", _STR),
        pa.field("items", pa.list_(_SHOWN), nullable=False),
        pa.field("candidates", pa.list_(_CANDIDATE)),
        pa.field("propensity", pa.float64()),
        pa.field("policy", _STR),
        pa.field("output", _STR),
    ]
)
EVENTS: Final = pa.schema(
    [
        pa.field("event_id", _STR, nullable=False),
        pa.field("timestamp", _TIME, nullable=False),
        pa.field("type", _STR, nullable=False),
        *(
            pa.field(name, _STR)
            for name in ("user_id", "anonymous_id", "session_id", "decision_id", "item_id", "order_id")
        ),
        pa.field("value", pa.float64()),
        pa.field("properties", _STR),
    ]
)
ITEMS: Final = pa.schema(
    [
        pa.field("item_id", _STR, nullable=False),
        pa.field("valid_from", _TIME),
        pa.field("features", _STR),
        pa.field("text", _STR),
    ]
)
_ENCODE: Final = msgspec.json.Encoder(order="sorted").encode

Column: TypeAlias = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[Any] | str | float | int | None


def ids(prefix: str, numbers: np.ndarray | pa.Array) -> pa.Array:
    """String ids `prefix + number`, built in Arrow (no Python string per row).

    >>> ids("u", np.array([3, 14])).to_pylist()
    ['u3', 'u14']
    """
    digits = pc.cast(pa.array(numbers, type=pa.int64()), _STR)
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def take(array: pa.Array, index: np.ndarray) -> pa.Array:
    """The rows of `array` at the (numpy) positions `index`."""
    return array.take(pa.array(np.asarray(index, dtype=np.int64), type=pa.int64()))


def keep(array: pa.Array, where: np.ndarray) -> pa.Array:
    """`array` where `where` is true, null elsewhere.

    >>> keep(pa.array(["a", "b"]), np.array([True, False])).to_pylist()
    ['a', None]
    """
    return pc.if_else(pa.array(where, type=pa.bool_()), array, pa.scalar(None, type=array.type))


def json_column(objects: Iterable[Mapping[str, Any] | None]) -> pa.Array:
    """JSON text per row (sorted keys), null where the object is None."""
    return pa.array([None if o is None else _ENCODE(o).decode() for o in objects], type=_STR)


def _column(value: Column, n: int, kind: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(n, type=kind)
    if isinstance(value, str | int | float):
        return pa.array(np.full(n, value) if not isinstance(value, str) else [value] * n, type=kind)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    array = value if isinstance(value, pa.Array) else pa.array(value, type=kind)
    if len(array) != n:
        raise ValueError(f"column: expected {n} values, found {len(array)}")
    return array if array.type == kind else array.cast(kind)


def timestamps(micros: np.ndarray) -> pa.Array:
    """UTC timestamps from integer microseconds."""
    return pa.array(np.asarray(micros, dtype=np.int64), type=pa.int64()).cast(_TIME)


class EventLog:
    """Events of many types, added as columns, assembled into one `EVENTS` table sorted by time.

    Event ids are given after sorting, so they follow time order and depend only on the seed.
    """

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []

    def add(
        self,
        type: str | pa.Array | np.ndarray,
        timestamp: np.ndarray,
        *,
        user_id: Column = None,
        anonymous_id: Column = None,
        session_id: Column = None,
        decision_id: Column = None,
        item_id: Column = None,
        order_id: Column = None,
        value: Column = None,
        properties: Column = None,
    ) -> None:
        n = len(timestamp)
        if n == 0:
            return
        given = {
            "type": type,
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "session_id": session_id,
            "decision_id": decision_id,
            "item_id": item_id,
            "order_id": order_id,
            "value": value,
            "properties": properties,
        }
        columns = [pa.nulls(n, type=_STR), timestamps(timestamp)]
        columns += [_column(given[f.name], n, f.type) for f in EVENTS if f.name in given]
        self._parts.append(pa.Table.from_arrays(columns, schema=EVENTS))

    def table(self, *, prefix: str) -> pa.Table:
        if not self._parts:
            return EVENTS.empty_table()
        events = pa.concat_tables(self._parts)
        order = np.argsort(events.column("timestamp").cast(pa.int64()).to_numpy(), kind="stable")
        events = events.take(pa.array(order))
        return events.set_column(0, EVENTS.field("event_id"), ids(prefix, np.arange(len(events))))


def _floats(values: np.ndarray | None, n: int) -> pa.Array:
    """float64 values, null where None or NaN (NaN means "not known")."""
    if values is None:
        return pa.nulls(n, type=pa.float64())
    array = np.asarray(values, dtype=np.float64)
    return pa.array(array, type=pa.float64(), mask=np.isnan(array))


def shown_items(
    item_id: pa.Array,
    *,
    k: int,
    score: np.ndarray | None = None,
    propensity: np.ndarray | None = None,
    cond_propensity: np.ndarray | None = None,
    original_position: np.ndarray | None = None,
) -> pa.Array:
    """The `items` list column of decisions that each show `k` items: inputs are flat (n * k), in
    display order; `original_position` < 0 and NaN probabilities mean none."""
    total = len(item_id)
    if total % k:
        raise ValueError(f"item_id: expected a multiple of k={k} values, found {total}")
    n = total // k
    position = np.tile(np.arange(k, dtype=np.int32), n)
    if original_position is None:
        original = pa.nulls(total, type=pa.int32())
    else:
        op = np.asarray(original_position, dtype=np.int32)
        original = pa.array(op, type=pa.int32(), mask=op < 0)
    fields = [
        item_id,
        pa.array(position, type=pa.int32()),
        original,
        *(_floats(v, total) for v in (score, propensity, cond_propensity)),
    ]
    structs = pa.StructArray.from_arrays(fields, fields=list(_SHOWN))
    offsets = pa.array(np.arange(0, total + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, structs, type=pa.list_(_SHOWN))


def candidate_lists(item_id: pa.Array, score: np.ndarray, *, k: int) -> pa.Array:
    """The `candidates` list column: flat (n * k) item ids and scores, k per decision."""
    total = len(item_id)
    structs = pa.StructArray.from_arrays(
        [item_id, pa.array(np.asarray(score, dtype=np.float64))], fields=list(_CANDIDATE)
    )
    offsets = pa.array(np.arange(0, total + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, structs, type=pa.list_(_CANDIDATE))


def decisions_table(
    decision_id: pa.Array,
    timestamp: np.ndarray,
    items: pa.Array,
    **columns: Column,
) -> pa.Table:
    """A `DECISIONS` table; columns not given are null."""
    unknown = set(columns) - set(DECISIONS.names)
    if unknown:
        raise ValueError(f"columns: expected fields of DECISIONS, found {sorted(unknown)}")
    n = len(decision_id)
    given: dict[str, Column] = {"decision_id": decision_id, "items": items, **columns}
    arrays = [
        timestamps(timestamp) if f.name == "timestamp" else _column(given.get(f.name), n, f.type)
        for f in DECISIONS
    ]
    return pa.Table.from_arrays(arrays, schema=DECISIONS)


def items_table(
    item_id: pa.Array, *, features: Column = None, text: Column = None, valid_from: Column = None
) -> pa.Table:
    """An `ITEMS` table (the catalogue); `valid_from` in UTC microseconds or null."""
    n = len(item_id)
    valid = (
        pa.nulls(n, type=_TIME)
        if valid_from is None
        else timestamps(np.asarray(valid_from))
        if not isinstance(valid_from, pa.Array)
        else valid_from
    )
    return pa.Table.from_arrays(
        [item_id, valid, _column(features, n, _STR), _column(text, n, _STR)], schema=ITEMS
    )
