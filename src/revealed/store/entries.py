"""What an append carries: each record's outcome before the journal decides on its id.

A record is either `Accepted` (valid: its row, dedupe key and digest) or `Quarantined` (kept with
its errors). The journal takes them as one `Prepared` append: per table, the accepted rows
column-wise (`TableRows`: positions, keys, digests and one Arrow batch), plus the quarantined
entries with their positions. The service's hot path builds `TableRows` straight from decoded
records, without an `Accepted` per row; everything else goes through `Prepared.of(entries)`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import accumulate
from typing import Any, Final

import msgspec
import pyarrow as pa

from revealed.store.convert import journal_columns, rows_to_batch, values_to_batch

__all__ = [
    "Accepted",
    "Entry",
    "Prepared",
    "Quarantined",
    "Status",
    "TableRows",
    "conflict_error",
    "dedupe_key",
    "raw_text",
]

_ENCODE: Final = msgspec.json.Encoder().encode


class Status(StrEnum):
    """What became of one appended record."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


def conflict_error(table: str, record_id: str) -> str:
    """The field-level error of a record whose id is known with another payload."""
    return (
        f"{table.removesuffix('s')}_id: expected the same payload as the first copy of {record_id!r} "
        "or a new id, found a different payload"
    )


def raw_text(raw: object) -> str:
    """A record as sent, as text: bytes decoded (bad UTF-8 escaped), objects as JSON in their key order."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="backslashreplace")
    if isinstance(raw, str):
        return raw.encode("utf-8", errors="backslashreplace").decode()
    try:
        return _ENCODE(raw).decode()
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        try:
            return repr(raw).encode("utf-8", errors="backslashreplace").decode()
        except RecursionError:
            return f"<{type(raw).__name__} nested too deeply to keep>"


#: the end of an id that a versioned key could also end with ("@", then the version's digits)
_VERSION_LIKE: Final = re.compile(r"@-?[0-9]*\Z")


def dedupe_key(table: str, record_id: str, version: int | None) -> str:
    """The id index's key of a record: its id, or for a versioned item `id@version`. An item
    id that ends like a version (`@`, a sign, digits) gets one more `@`, so no unversioned item
    can take a versioned one's key; other ids keep their own (as keys were before this rule).
    Decisions and events have no versions: their key is their id, whatever it ends with.

    >>> dedupe_key("items", "sku", 1767225600000000), dedupe_key("items", "sku@1767225600000000", None)
    ('sku@1767225600000000', 'sku@1767225600000000@')
    >>> dedupe_key("items", "ann@example.com", None), dedupe_key("events", "e@1", None)
    ('ann@example.com', 'e@1')
    """
    if version is not None:
        return f"{record_id}@{version}"
    if table == "items" and _VERSION_LIKE.search(record_id):
        return record_id + "@"
    return record_id


def _sent_bytes(raw: object) -> int:
    """The size of a row as sent: its JSON's, or a kilobyte for a row sent as an object."""
    return len(raw) if isinstance(raw, bytes | str) else 1024


class Accepted(msgspec.Struct, frozen=True):
    """A valid record ready to append: its table, id, the digest of its stored row and the row
    (without received_at).

    `raw` and `source` are kept only to quarantine the record as sent should its id conflict."""

    table: str
    record_id: str
    digest: bytes
    row: dict[str, Any]
    received_at: int
    raw: object = None
    source: str | None = None
    #: catalogue items are versioned: (item_id, valid_from) is their identity
    version: int | None = None

    @property
    def key(self) -> str:
        """The dedupe key: the id, with the version for versioned items (`dedupe_key`)."""
        return dedupe_key(self.table, self.record_id, self.version)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record kept with its error instead of being dropped.

    Its id is a digest of what was sent and why it was refused, so sending the same bad record
    twice keeps it once (and ingesting a file twice changes nothing the second time).
    """

    kind: str
    record_id: str | None
    reason: str
    errors: Sequence[str]
    raw: str
    source: str | None
    received_at: int

    @property
    def quarantine_id(self) -> str:
        return hashlib.blake2b(f"{self.kind}\0{self.reason}\0{self.raw}".encode(), digest_size=16).hexdigest()

    def row(self) -> dict[str, Any]:
        return {
            "quarantine_id": self.quarantine_id,
            "kind": self.kind,
            "record_id": self.record_id,
            "reason": self.reason,
            "errors": list(self.errors),
            "raw": self.raw,
            "source": self.source,
        }


Entry = Accepted | Quarantined


@dataclass(frozen=True, slots=True)
class TableRows:
    """The accepted rows of one table in an append, column-wise and in the order they were sent.

    Row `j` is record `positions[j]` of the append; `keys[j]` is what it is deduplicated on (the
    id, with the version for items) and `digests[j]` the digest of its stored row. `raws`,
    `sources` and `received` are kept only to quarantine a row as sent should its id conflict.

    The rows are one Arrow `batch`, or, for a small append of events, their `values` (a tuple
    per row of the table's journal columns): a commit group of small appends keeps them in the
    journal as MessagePack, and the seal converts thousands of them to Arrow in one call
    (`built` converts them here, where a batch is needed now). Converted one by one, a single
    event cost 80-160 µs of the event loop's CPU in the service, most of what preparing it cost.
    """

    positions: list[int]
    ids: list[str]
    keys: list[str]
    digests: list[bytes]
    batch: pa.RecordBatch | None
    raws: Sequence[object]
    sources: list[str | None]
    received: list[int]
    values: list[tuple[Any, ...]] | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def built(self, table: str) -> TableRows:
        """These rows with their Arrow batch (converted from `values` if need be)."""
        if self.batch is not None:
            return self
        assert self.values is not None
        return replace(self, batch=values_to_batch(table, self.values, self.received), values=None)

    def column(self, table: str, name: str) -> list[Any]:
        """One column's values, from `values` when the batch is not built yet."""
        if self.values is not None:
            index = journal_columns(table).index(name)
            return [row[index] for row in self.values]
        assert self.batch is not None
        return self.batch.column(name).to_pylist()  # type: ignore[no-any-return]

    @classmethod
    def of(cls, table: str, entries: Sequence[tuple[int, Accepted]]) -> TableRows:
        accepted = [e for _, e in entries]
        received = [e.received_at for e in accepted]
        return cls(
            [i for i, _ in entries],
            [e.record_id for e in accepted],
            [e.key for e in accepted],
            [e.digest for e in accepted],
            rows_to_batch(table, [e.row for e in accepted], received),
            [e.raw if e.raw is not None else e.row for e in accepted],
            [e.source for e in accepted],
            received,
        )

    @classmethod
    def concat(cls, table: str, parts: Sequence[tuple[int, TableRows]]) -> TableRows:
        """The rows of several appends as one, each part's positions shifted by its offset; small
        appends' values stay values (`built` converts them in one call)."""
        if len(parts) == 1 and parts[0][0] == 0:
            return parts[0][1]
        values: list[tuple[Any, ...]] | None = None
        batch: pa.RecordBatch | None = None
        if all(rows.values is not None for _, rows in parts):
            values = [x for _, rows in parts for x in rows.values or ()]
        else:
            batch = pa.concat_batches([rows.built(table).batch for _, rows in parts])
        return cls(
            [i + offset for offset, rows in parts for i in rows.positions],
            [x for _, rows in parts for x in rows.ids],
            [x for _, rows in parts for x in rows.keys],
            [x for _, rows in parts for x in rows.digests],
            batch,
            [x for _, rows in parts for x in rows.raws],
            [x for _, rows in parts for x in rows.sources],
            [x for _, rows in parts for x in rows.received],
            values,
        )

    def conflict(self, table: str, j: int) -> Quarantined:
        """Row `j` as sent, quarantined: its id is known with a different payload."""
        return Quarantined(
            kind=table.removesuffix("s"),
            record_id=self.ids[j],
            reason="id_conflict",
            errors=[conflict_error(table, self.ids[j])],
            raw=raw_text(self.raws[j]),
            source=self.sources[j],
            received_at=self.received[j],
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """One append: `size` records, the accepted ones by table and the quarantined ones by position."""

    size: int
    tables: dict[str, TableRows]
    quarantined: list[tuple[int, Quarantined]]

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> Prepared:
        """The append of entries made one by one (encoded to Arrow here, outside any lock)."""
        by_table: dict[str, list[tuple[int, Accepted]]] = {}
        quarantined: list[tuple[int, Quarantined]] = []
        for i, e in enumerate(entries):
            if isinstance(e, Accepted):
                by_table.setdefault(e.table, []).append((i, e))
            else:
                quarantined.append((i, e))
        tables = {table: TableRows.of(table, mine) for table, mine in by_table.items()}
        return cls(len(entries), tables, quarantined)

    @classmethod
    def merge(cls, appends: Sequence[Prepared]) -> Prepared:
        """Several appends as one, in order: record `i` of the second is record
        `appends[0].size + i` of the merged one (split its statuses with `offsets`)."""
        if len(appends) == 1:
            return appends[0]
        offsets = cls.offsets(appends)
        by_table: dict[str, list[tuple[int, TableRows]]] = {}
        for offset, prepared in zip(offsets, appends, strict=False):
            for table, rows in prepared.tables.items():
                by_table.setdefault(table, []).append((offset, rows))
        return cls(
            offsets[-1],
            {table: TableRows.concat(table, parts) for table, parts in by_table.items()},
            [(i + o, q) for o, p in zip(offsets, appends, strict=False) for i, q in p.quarantined],
        )

    def built(self) -> Prepared:
        """This append with every table's Arrow batch (see `TableRows.built`)."""
        if all(rows.batch is not None for rows in self.tables.values()):
            return self
        tables = {table: rows.built(table) for table, rows in self.tables.items()}
        return Prepared(self.size, tables, self.quarantined)

    @property
    def nbytes(self) -> int:
        """About how many bytes the append writes to the journal: its Arrow batches' buffers, a
        small append's rows as they were sent, and the raw text of its quarantined rows."""
        tables = sum(
            rows.batch.nbytes if rows.batch is not None else sum(map(_sent_bytes, rows.raws))
            for rows in self.tables.values()
        )
        return tables + sum(len(q.raw) for _, q in self.quarantined)

    @staticmethod
    def offsets(appends: Sequence[Prepared]) -> list[int]:
        """Where each append starts in their merge, and (last) the merge's size."""
        return [0, *accumulate(p.size for p in appends)]
