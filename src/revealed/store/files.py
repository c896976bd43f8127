"""Bulk files: NDJSON, JSON arrays, Parquet and CSV, read in batches of raw records.

Text formats report progress in bytes, Parquet in rows. In CSV cells and Parquet string
columns, nested fields (`items`, `context`, `features`...) may be JSON text; CSV numbers are
parsed for numeric fields, and empty cells are absent values.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from revealed.errors import UnsupportedFile
from revealed.schema.records import Kind
from revealed.store.ingest import Appender, IngestReport, Raw, ingest

__all__ = [
    "Batch",
    "FORMATS",
    "detect_format",
    "ingest_file",
    "progress_total",
    "read_batches",
]

FORMATS: Final = ("ndjson", "json", "parquet", "csv")
_SUFFIXES: Final = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
}
_NUMBERS: Final = frozenset(
    {"value", "propensity", "score", "cond_propensity", "position", "original_position"}
)
_TIMES: Final = frozenset({"timestamp", "valid_from"})
_MAPS: Final = frozenset({"context", "policy", "properties", "features"})
_RAW_ARRAY: Final = msgspec.json.Decoder(list[msgspec.Raw])
_ANY: Final = msgspec.json.Decoder()
_OBJECTS: Final = frozenset(
    {"items", "candidates", "context", "policy", "properties", "features", "logits", "embedding"}
)


@dataclass(frozen=True)
class Batch:
    records: list[Raw]
    #: where each record came from, e.g. `events.ndjson:12`
    sources: list[str]
    #: progress made by this batch, in the unit of `progress_total`
    progress: int


def detect_format(path: Path) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        with path.open("rb") as fh:
            head = fh.read(64).lstrip()
        if head.startswith(b"PAR1"):
            return "parquet"
        if head.startswith(b"["):
            return "json"
        if head.startswith(b"{"):
            return "ndjson"
        raise UnsupportedFile(
            f"{path}: expected NDJSON, JSON, Parquet or CSV, found {path.suffix or 'no suffix'}",
            hint="name the file .ndjson, .json, .parquet or .csv",
        )
    return fmt


def progress_total(path: Path) -> int:
    """Bytes for text formats, rows for Parquet."""
    if detect_format(path) == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return path.stat().st_size


def _ndjson(path: Path, size: int) -> Iterator[Batch]:
    records: list[Raw] = []
    sources: list[str] = []
    done = 0
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            done += len(line)
            stripped = line.strip()
            if not stripped:
                continue
            records.append(stripped)
            sources.append(f"{path.name}:{n}")
            if len(records) == size:
                yield Batch(records, sources, done)
                records, sources, done = [], [], 0
    if records or done:
        yield Batch(records, sources, done)


def _json_array(path: Path, size: int) -> Iterator[Batch]:
    """Each element keeps its own raw JSON, so a bad element is quarantined on its own (NaN
    included: it is not JSON). A .json file that holds NDJSON is read as NDJSON."""
    text = path.read_bytes()
    head = text.lstrip()[:1]
    if head == b"{":
        try:
            _ANY.decode(text)
        except (msgspec.DecodeError, RecursionError):
            yield from _ndjson(path, size)
            return
        rows = [text.strip()]
    elif head == b"[":
        try:
            rows = [bytes(raw) for raw in _RAW_ARRAY.decode(text)]
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            try:  # Python's parser takes NaN and Infinity: those rows are then rejected one by one
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                raise UnsupportedFile(
                    f"{path}: expected a JSON array of records, found malformed JSON ({exc})"
                ) from exc
            rows = [json.dumps(element).encode() for element in parsed]
    else:
        raise UnsupportedFile(f"{path}: expected a JSON array or object, found {head!r}")
    for start in range(0, len(rows), size):
        end = start + len(rows[start : start + size])
        yield Batch(
            list(rows[start:end]),
            [f"{path.name}[{i}]" for i in range(start, end)],
            len(text) * end // len(rows) - len(text) * start // len(rows),
        )


def _parquet(path: Path, size: int) -> Iterator[Batch]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
        records: list[Raw] = [
            {k: _parquet_value(k, v) for k, v in r.items() if v is not None} for r in batch.to_pylist()
        ]
        yield Batch(records, [f"{path.name}#{row + i}" for i in range(len(records))], len(records))
        row += len(records)


def _parquet_value(name: str, value: Any) -> Any:
    """JSON text in string columns, and Parquet maps (lists of key/value pairs) as objects."""
    if isinstance(value, str):
        return _cell(name, value)
    if name in _MAPS and isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return dict(value)
    return value


def _cell(name: str, text: str) -> Any:
    if (
        name in _OBJECTS
        or (name in _TIMES and text.lstrip("-").replace(".", "", 1).isdigit())
        or name in _NUMBERS
    ):
        try:
            return json.loads(text)
        except ValueError:
            return text  # validation reports it, naming the field
    return text


def _csv(path: Path, size: int) -> Iterator[Batch]:
    csv.field_size_limit(1 << 30)  # large JSON cells (items, properties) are legitimate
    # utf-8-sig: spreadsheets start CSV files with a byte-order mark
    with path.open("r", encoding="utf-8-sig", newline="", errors="backslashreplace") as fh:
        counter = _Counting(fh)
        reader = csv.DictReader(counter)
        records: list[Raw] = []
        sources: list[str] = []
        for row in reader:
            record = {k: _cell(k, v) for k, v in row.items() if k is not None and v not in ("", None)}
            if (
                None in row
            ):  # cells beyond the header: kept, so validation names them instead of dropping them
                record["(cells beyond the header)"] = row[None]
            records.append(record)
            sources.append(f"{path.name}:{reader.line_num}")
            if len(records) == size:
                yield Batch(records, sources, counter.take())
                records, sources = [], []
        yield Batch(records, sources, counter.take())


class _Counting(io.TextIOBase):
    """Counts characters read, for progress."""

    def __init__(self, inner: io.TextIOBase | Any) -> None:
        self._inner = inner
        self._count = 0

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        for line in self._inner:
            self._count += len(line)
            yield line

    def take(self) -> int:
        count, self._count = self._count, 0
        return count


def read_batches(path: Path, *, size: int = 5_000) -> Iterator[Batch]:
    """Raw records of a bulk file, `size` at a time."""
    fmt = detect_format(path)
    readers = {"ndjson": _ndjson, "json": _json_array, "parquet": _parquet, "csv": _csv}
    yield from readers[fmt](path, size)


def ingest_file(
    journal: Appender,
    path: Path,
    *,
    kind: Kind | None = None,
    batch_size: int = 5_000,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Validate and durably append every record of a bulk file, one transaction per batch."""
    report = IngestReport()
    for batch in read_batches(path, size=batch_size):
        if batch.records:
            report.merge(ingest(journal, kind, batch.records, sources=batch.sources))
        if on_progress is not None:
            on_progress(batch.progress)
    return report
