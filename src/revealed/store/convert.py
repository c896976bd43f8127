"""Rows to Arrow and back: stored rows (dicts) become one record batch per table, and journal
batches travel as schema-less Arrow IPC messages (the table's schema is known) or, for small
appends, as MessagePack rows that the seal converts to Arrow thousands at a time."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Final

import msgspec
import pyarrow as pa

from revealed.schema.arrow import SCHEMAS, TIME, journal_schema

__all__ = [
    "concat",
    "decode_rows",
    "deserialize",
    "encode_rows",
    "journal_columns",
    "rows_to_batch",
    "serialize",
    "values_to_batch",
]

_ENCODE_ROWS: Final = msgspec.msgpack.Encoder().encode
#: flat rows only (see `encode_rows`): each row decodes as a tuple of scalars
_DECODE_ROWS: Final = msgspec.msgpack.Decoder(list[tuple[list[tuple[Any, ...]], list[int]]]).decode


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


def _with_received(table: str, parsed: pa.RecordBatch | pa.Table, received: pa.Array) -> pa.RecordBatch:
    schema = SCHEMAS[table]
    columns = [
        received if f.name == "received_at" else _conform(_chunk(parsed.column(f.name)), f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _chunk(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if isinstance(column, pa.ChunkedArray) else column


def rows_to_batch(
    table: str, rows: Sequence[dict[str, object]], received_at: Sequence[int]
) -> pa.RecordBatch:
    """One record batch, in the table's exact schema, of stored rows (dicts) and their receipt times."""
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=SCHEMAS[table])
    received = pa.array(received_at, type=pa.int64()).cast(TIME)
    return _with_received(
        table, pa.RecordBatch.from_pylist(list(rows), schema=journal_schema(table)), received
    )


def values_to_batch(
    table: str, rows: Sequence[tuple[object, ...]], received_at: int | Sequence[int]
) -> pa.RecordBatch:
    """`rows_to_batch` for rows given as the values of the table's journal columns, received at
    one time or each at its own: Arrow converts the tuples as structs of the table's own column
    types in one call (no dict per row, no cast per column after it)."""
    schema = SCHEMAS[table]
    columns = pa.array(rows, type=_row_struct(table)).flatten()
    received = (
        pa.repeat(pa.scalar(received_at, TIME), len(rows))
        if isinstance(received_at, int)
        else pa.array(received_at, type=pa.int64()).cast(TIME)
    )
    columns.insert(schema.get_field_index("received_at"), received)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def encode_rows(table: str, values: Sequence[tuple[object, ...]], received_at: Sequence[int]) -> bytes:
    """Rows given as the values of a table's journal columns (scalars only: strings, numbers,
    integer times), and each one's receipt time, as one MessagePack blob for `decode_rows`.

    A small append is kept in the journal this way rather than as an Arrow batch: a one-row Arrow
    batch costs 25-30 µs to build and serialize and about 1 KB, and the seal paid 10-12 µs more
    per batch to read and concatenate it (97 ms for 8,000 single events, against 5.5 ms to decode
    the same rows from MessagePack and convert them in one call)."""
    if not _flat(table):
        raise ValueError(f"{table} has nested columns: its rows travel as Arrow batches")
    return _ENCODE_ROWS((values, received_at))


def decode_rows(table: str, blobs: Sequence[bytes]) -> pa.RecordBatch:
    """The rows of several `encode_rows` blobs, in order, as one record batch: the blobs are
    decoded in one call, as the items of one MessagePack array (`array 32`: 0xdd and a count)."""
    parts = _DECODE_ROWS(b"".join([b"\xdd", len(blobs).to_bytes(4, "big"), *blobs]))
    values = [row for rows, _ in parts for row in rows]
    received = [at for _, times in parts for at in times]
    return values_to_batch(table, values, received)


@cache
def _flat(table: str) -> bool:
    return not any(pa.types.is_nested(f.type) for f in _row_struct(table))


@cache
def journal_columns(table: str) -> tuple[str, ...]:
    """The names of the table's journal columns (all but `received_at`), in order."""
    return tuple(f.name for f in _row_struct(table))


@cache
def _row_struct(table: str) -> pa.StructType:
    """The table's columns but `received_at`, in order: times take integer microseconds as they
    are, maps their (key, value) pairs."""
    return pa.struct([f for f in SCHEMAS[table] if f.name != "received_at"])


def serialize(batch: pa.RecordBatch) -> bytes:
    return batch.serialize().to_pybytes()  # type: ignore[no-any-return]


def deserialize(table: str, blob: bytes) -> pa.RecordBatch:
    return pa.ipc.read_record_batch(pa.py_buffer(blob), SCHEMAS[table])


def concat(table: str, batches: Sequence[pa.RecordBatch]) -> pa.Table:
    """A table of batches as one contiguous chunk, in the table's schema (empty when there are
    none). Journal batches can be a row or two each (single events under load): written as they
    are, 8,000 one-row chunks took Delta's Parquet writer 330-450 ms, against 60 ms to copy them
    into one chunk and 10 ms to write that."""
    if not batches:
        return SCHEMAS[table].empty_table()
    return pa.Table.from_batches([pa.concat_batches(batches)], schema=SCHEMAS[table])
