"""Journal rows to Arrow: the JSON payloads are parsed column-wise by Arrow's C++ JSON reader."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pyarrow as pa
import pyarrow.json as pa_json

from revealed.schema.arrow import SCHEMAS, TIME, journal_schema
from revealed.store.journal import JournalRow

__all__ = ["rows_to_arrow"]


@cache
def _parse_options(table: str) -> pa_json.ParseOptions:
    return pa_json.ParseOptions(explicit_schema=journal_schema(table), unexpected_field_behavior="error")


def _to_map(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    chunks = [
        pa.MapArray.from_arrays(
            chunk.offsets,
            chunk.values.field("key"),
            chunk.values.field("value"),
            type=kind,
            mask=chunk.is_null(),
        )
        for chunk in column.chunks
    ]
    return pa.chunked_array(chunks, type=kind)


def _conform(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    if column.type == kind:
        return column
    if pa.types.is_map(kind):
        return _to_map(column, kind)
    return column.cast(kind)


def rows_to_arrow(table: str, rows: Sequence[JournalRow]) -> pa.Table:
    """The Arrow table, in the table's exact schema, of journal rows of one stream."""
    schema = SCHEMAS[table]
    if not rows:
        return schema.empty_table()
    data = b"\n".join(r.payload for r in rows)
    longest = max(len(r.payload) for r in rows)
    parsed = pa_json.read_json(
        pa.py_buffer(data),
        read_options=pa_json.ReadOptions(block_size=max(1 << 22, 2 * longest + 2)),
        parse_options=_parse_options(table),
    )
    received = pa.array([r.received_at for r in rows], type=pa.int64()).cast(TIME)
    columns = [
        pa.chunked_array([received]) if f.name == "received_at" else _conform(parsed.column(f.name), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
