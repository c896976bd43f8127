"""Validate raw records and append them to the journal: accepted, duplicate, conflict or rejected.

Nothing a client sent is dropped: invalid records (and records of no known kind) are appended to
the quarantine stream with the raw payload and every field error, in the same transaction as the
valid ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeGuard, cast

import msgspec
import pyarrow.compute as pc

from revealed.schema.records import EVENT_TYPES, Event, Kind
from revealed.schema.rows import TABLE_OF, event_values, record_id, row_digest, row_digests, to_row
from revealed.schema.timefmt import now_us
from revealed.schema.validate import (
    Checked,
    accepts_event_at,
    check,
    detect_kind,
    latest_ms,
    validate,
    validate_many,
)
from revealed.store.convert import values_to_batch
from revealed.store.entries import (
    Accepted,
    Entry,
    Prepared,
    Quarantined,
    Status,
    TableRows,
    conflict_error,
    raw_text,
)

__all__ = [
    "CUSTOM_TYPE_LABEL",
    "Appender",
    "IngestReport",
    "Raw",
    "RowResults",
    "append_rows",
    "ingest",
    "prepare",
    "prepare_batch",
    "prepare_many",
    "row_results",
]

Raw = bytes | str | Mapping[str, Any]
_GENERIC: Final = msgspec.json.Decoder()
_EVENT: Final = msgspec.json.Decoder(Event)
_MAX_ERRORS: Final = 20
#: appends of up to this many events keep their rows as values, journaled as MessagePack and
#: converted to Arrow by the seal (`TableRows`); larger ones are converted where they are prepared
_SMALL_ROWS: Final = 64


class Appender(Protocol):
    def append(self, entries: Sequence[Entry] | Prepared) -> list[Status]: ...


def _raw_id(raw: Raw) -> str | None:
    obj: object = raw
    if isinstance(raw, bytes | str):
        try:
            obj = _GENERIC.decode(raw)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, UnicodeEncodeError):
            return None
    if isinstance(obj, Mapping):
        for key in ("event_id", "decision_id", "item_id"):
            value = obj.get(key)
            if isinstance(value, str):
                return value
    return None


def prepare(kind: Kind | None, raw: Raw, *, received_us: int, source: str | None = None) -> Entry:
    """The journal entry for one raw record: accepted with its digest, or quarantined with its errors."""
    if kind is None:
        obj: object = raw
        if isinstance(raw, bytes | str):
            try:
                obj = _GENERIC.decode(raw)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, UnicodeEncodeError) as exc:
                return Quarantined(
                    "unknown",
                    None,
                    "invalid",
                    [f"expected a JSON object, found malformed JSON ({exc})"],
                    raw_text(raw),
                    source,
                    received_us,
                )
        detected = detect_kind(obj) if isinstance(obj, Mapping) else None
        if detected is None:
            return Quarantined(
                "unknown",
                None,
                "unknown_kind",
                [
                    "expected a decision (decision_id, items), an event (event_id, type) "
                    "or an item (item_id), found none of their fields"
                ],
                raw_text(raw),
                source,
                received_us,
            )
        kind = detected
    return _entry(validate(kind, raw, received_us=received_us), raw, received_us, source)


def _entry(checked: Checked, raw: Raw, received_us: int, source: str | None) -> Entry:
    kind = checked.kind
    if not checked.ok:
        return Quarantined(
            kind,
            _raw_id(raw),
            "invalid",
            [str(e) for e in checked.errors],
            raw_text(raw),
            source,
            received_us,
        )
    assert checked.record is not None
    row = to_row(checked)
    digest = row_digest(tuple(row.values()))
    identity = record_id(kind, checked.record)
    version = checked.times.get("valid_from")
    return Accepted(TABLE_OF[kind], identity, digest, row, received_us, raw, source, version)


def _is_body(raws: Iterable[Raw], sources: Iterable[str] | None) -> TypeGuard[list[bytes]]:
    """Whether a batch is a request body's rows: JSON bytes from one source."""
    return sources is None and isinstance(raws, list) and all(type(r) is bytes for r in raws)


def prepare_many(
    kind: Kind | None,
    raws: Iterable[Raw],
    *,
    received_us: int | None = None,
    source: str | None = None,
    sources: Iterable[str] | None = None,
) -> list[Entry]:
    """Entries for a batch received at one time; `sources` gives each row's origin, else `source` all."""
    received = now_us() if received_us is None else received_us
    if kind is not None and _is_body(raws, sources):
        checked = validate_many(kind, raws, received_us=received)  # one call for a request body's rows
        return [_entry(c, raw, received, source) for c, raw in zip(checked, raws, strict=True)]
    pairs = ((raw, source) for raw in raws) if sources is None else zip(raws, sources, strict=True)
    return [prepare(kind, raw, received_us=received, source=src) for raw, src in pairs]


def prepare_batch(
    kind: Kind | None,
    raws: Iterable[Raw],
    *,
    received_us: int | None = None,
    source: str | None = None,
    sources: Iterable[str] | None = None,
) -> Prepared:
    """`Prepared.of(prepare_many(...))`, the append of a batch; a body of JSON events (the
    service's hot path) goes from decoded records to row tuples, without an entry per row."""
    received = now_us() if received_us is None else received_us
    if kind == "event" and _is_body(raws, sources):
        return _prepare_events(raws, received, source)
    return Prepared.of(prepare_many(kind, raws, received_us=received, source=source, sources=sources))


_UNDECODABLE: Final = (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError)


def _decoded(raw: bytes) -> Event | None:
    """One line as an event, or None when it does not decode as one (`validate` says why)."""
    try:
        return _EVENT.decode(raw)
    except _UNDECODABLE:
        return None


def _prepare_events(raws: list[bytes], received_us: int, source: str | None) -> Prepared:
    """Each line is decoded on its own (a bad line never hides behind a neighbour), and a row
    `accepts_event_at` vouches for goes straight to its stored values; the rest take `_entry` for
    their exact outcome. When every line decodes and is vouched for (the common case), each step
    runs over the whole body at once. The accepted rows become one Arrow batch and their digests
    one list."""
    decode = _EVENT.decode
    try:
        records: list[Event | None] = [decode(raw) for raw in raws]
    except _UNDECODABLE:
        records = [_decoded(raw) for raw in raws]
    latest = latest_ms(received_us)
    micros = [None if r is None else accepts_event_at(r, latest) for r in records]
    values: list[tuple[Any, ...]] = []
    positions: list[int] = []
    quarantined: list[tuple[int, Quarantined]] = []
    if None not in micros:  # then no record is None either
        values = list(map(event_values, cast("list[Event]", records), cast("list[int]", micros)))
        positions = list(range(len(raws)))
    else:
        for i, (raw, record, at) in enumerate(zip(raws, records, micros, strict=True)):
            if at is not None and record is not None:
                values.append(event_values(record, at))
                positions.append(i)
                continue
            checked = (
                validate("event", raw, received_us=received_us)
                if record is None
                else check("event", record, received_us)
            )
            entry = _entry(checked, raw, received_us, source)
            if isinstance(entry, Accepted):
                values.append(tuple(entry.row.values()))
                positions.append(i)
            else:
                quarantined.append((i, entry))
    if not positions:
        return Prepared(len(raws), {}, quarantined)
    ids = [row[0] for row in values]
    n = len(positions)
    small = n <= _SMALL_ROWS  # journaled as values, converted to Arrow by the seal with many more
    rows = TableRows(
        positions,
        ids,
        ids,
        row_digests(values),  # the digest `_entry` gives, for every row in one loop
        None if small else values_to_batch("events", values, received_us),
        raws if n == len(raws) else [raws[i] for i in positions],
        [source] * n,
        [received_us] * n,
        values if small else None,
    )
    return Prepared(len(raws), {"events": rows}, quarantined)


@dataclass
class IngestReport:
    """Counts by outcome and table, and the first few errors."""

    counts: Counter[str] = field(default_factory=Counter)
    by_table: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, prepared: Prepared, statuses: Sequence[Status]) -> None:
        self.counts.update(s.value for s in statuses)
        errors: list[tuple[int, str]] = []
        for table, rows in prepared.tables.items():
            self.by_table.update(f"{table}.{statuses[i].value}" for i in rows.positions)
            errors += [
                (i, f"{rows.ids[j]}: id_conflict (a different payload under a known id)")
                for j, i in enumerate(rows.positions)
                if statuses[i] is Status.CONFLICT
            ]
        for i, q in prepared.quarantined:
            where = f"{q.source}: " if q.source else ""
            errors.append((i, f"{where}{q.kind} {q.record_id or '?'}: {'; '.join(q.errors)}"))
        room = max(0, _MAX_ERRORS - len(self.errors))
        self.errors += [message for _, message in sorted(errors)[:room]]

    def merge(self, other: IngestReport) -> None:
        self.counts.update(other.counts)
        self.by_table.update(other.by_table)
        self.errors.extend(other.errors[: max(0, _MAX_ERRORS - len(self.errors))])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            **{s.value: self.counts.get(s.value, 0) for s in Status},
            "total": self.total,
            "by_table": dict(sorted(self.by_table.items())),
            "errors": list(self.errors),
        }


def ingest(
    journal: Appender,
    kind: Kind | None,
    raws: Iterable[Raw],
    *,
    source: str | None = None,
    sources: Sequence[str] | None = None,
    received_us: int | None = None,
) -> IngestReport:
    """Validate and append one batch durably; returns after the commit.

    `source` names where the whole batch came from, `sources` each row's origin (file:line)."""
    prepared = prepare_batch(kind, raws, received_us=received_us, source=source, sources=sources)
    report = IngestReport()
    report.add(prepared, journal.append(prepared))
    return report


@dataclass(frozen=True)
class RowResults:
    """Per-row outcome of one appended batch, in the order the rows were sent."""

    statuses: list[Status]
    #: the errors of rejected and conflicting rows, by row index
    errors: dict[int, list[str]]
    #: rows by (table, event type or "-", status), for metrics; rejected rows count in the table sent to
    tally: Counter[tuple[str, str, str]]

    def counts(self) -> dict[str, int]:
        return {s.value: self.statuses.count(s) for s in Status}


def append_rows(
    journal: Appender, kind: Kind | None, raws: Sequence[Raw], *, source: str | None = None
) -> RowResults:
    """Validate, encode and durably append one batch; returns after the commit, with each row's outcome."""
    prepared = prepare_batch(kind, raws, source=source)
    return row_results(kind, prepared, journal.append(prepared))


#: the metrics label of every custom event type (`x-...`): clients name those freely, and a
#: label per name would let one ingest key grow the server's metric series without bound
CUSTOM_TYPE_LABEL: Final = "x-*"


def _type_label(event_type: str) -> str:
    return event_type if event_type in EVENT_TYPES else CUSTOM_TYPE_LABEL


def _labels(table: str, rows: TableRows) -> dict[str, int]:
    """Rows by event type, custom types under one label (events), or all under "-" (other tables)."""
    if table != "events":
        return {"-": len(rows)}
    by_type: Iterable[tuple[str, int]]
    if rows.batch is None or len(rows) <= 64:  # a few rows: Python counts them faster than Arrow
        by_type = Counter(rows.column(table, "type")).items()
    else:
        found = pc.value_counts(rows.batch.column("type"))
        by_type = zip(found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=True)
    counts: Counter[str] = Counter()
    for event_type, n in by_type:
        counts[_type_label(event_type)] += n
    return dict(counts)


def row_results(kind: Kind | None, prepared: Prepared, statuses: list[Status]) -> RowResults:
    """Each row's outcome of a committed append, with the errors to report and the metric tally."""
    errors: dict[int, list[str]] = {}
    tally: Counter[tuple[str, str, str]] = Counter()
    for i, q in prepared.quarantined:
        tally[(TABLE_OF.get(kind or q.kind, "unknown"), "-", Status.REJECTED.value)] += 1  # type: ignore[call-overload]
        errors[i] = list(q.errors)
    for table, rows in prepared.tables.items():
        mine = [statuses[i] for i in rows.positions]
        outcomes = set(mine)
        if len(outcomes) == 1:  # the common case: counted by type in Arrow, not row by row
            (status,) = outcomes
            for label, n in _labels(table, rows).items():
                tally[(table, label, status.value)] += n
        else:
            labels = (
                list(map(_type_label, rows.column(table, "type"))) if table == "events" else ["-"] * len(rows)
            )
            for (label, status), n in Counter(zip(labels, mine, strict=True)).items():
                tally[(table, label, status.value)] += n
        if Status.CONFLICT in outcomes:
            for j, status in enumerate(mine):
                if status is Status.CONFLICT:
                    errors[rows.positions[j]] = [f"{conflict_error(table, rows.ids[j])} (quarantined)"]
    return RowResults(statuses, dict(sorted(errors.items())), tally)
