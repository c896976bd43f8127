"""Rows to Arrow and back: JSON payloads are parsed column-wise by Arrow's C++ JSON reader, and
journal batches travel as schema-less Arrow IPC messages (the table's schema is known)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pyarrow as pa
import pyarrow.json as pa_json

from revealed.schema.arrow import SCHEMAS, TIME, journal_schema

__all__ = ["concat", "deserialize", "payloads_to_batch", "serialize"]


@cache
def _parse_options(table: str) -> pa_json.ParseOptions:
    return pa_json.ParseOptions(explicit_schema=journal_schema(table), unexpected_field_behavior="error")


def _to_map(column: pa.Array, kind: pa.DataType) -> pa.Array:
    return pa.MapArray.from_arrays(
        column.offsets,
        column.values.field("key"),
        column.values.field("value"),
        type=kind,
        mask=column.is_null(),
    )


def _conform(column: pa.Array, kind: pa.DataType) -> pa.Array:
    if column.type == kind:
        return column
    if pa.types.is_map(kind):
        return _to_map(column, kind)
    return column.cast(kind)


def payloads_to_batch(table: str, payloads: Sequence[bytes], received_at: Sequence[int]) -> pa.RecordBatch:
    """One record batch, in the table's exact schema, of JSON row payloads and their receipt times."""
    schema = SCHEMAS[table]
    if not payloads:
        return pa.RecordBatch.from_pylist([], schema=schema)
    longest = max(map(len, payloads))
    data = b"\n".join(payloads)
    parsed = pa_json.read_json(
        pa.py_buffer(data),
        # Arrow's thread pool costs more than it saves on the small bodies of single requests
        read_options=pa_json.ReadOptions(
            block_size=max(1 << 22, 2 * longest + 2), use_threads=len(data) > 1 << 20
        ),
        parse_options=_parse_options(table),
    ).combine_chunks()
    received = pa.array(received_at, type=pa.int64()).cast(TIME)
    columns = [
        received if f.name == "received_at" else _conform(parsed.column(f.name).chunk(0), f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def serialize(batch: pa.RecordBatch) -> bytes:
    return batch.serialize().to_pybytes()  # type: ignore[no-any-return]


def deserialize(table: str, blob: bytes) -> pa.RecordBatch:
    return pa.ipc.read_record_batch(pa.py_buffer(blob), SCHEMAS[table])


def concat(table: str, batches: Sequence[pa.RecordBatch]) -> pa.Table:
    """A table of batches, in the table's schema (empty when there are none)."""
    if not batches:
        return SCHEMAS[table].empty_table()
    return pa.Table.from_batches(batches, schema=SCHEMAS[table])
