"""The Delta tables (`decisions`, `events`, `items`, `quarantine`) under one root."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from revealed.errors import VersionVacuumed
from revealed.schema.arrow import SCHEMAS, TABLES

__all__ = ["Tables", "WRITER_PROPERTIES"]

#: how deltalake writes the store's Delta tables: Zstandard at level 1 (`bench_store`: 0.43 of the
#: default Snappy's bytes per row, at 0.90-0.93 of its write rate)
WRITER_PROPERTIES: Final = WriterProperties(compression="ZSTD", compression_level=1)


@dataclass(frozen=True)
class Tables:
    """Opens, creates and appends to the store's Delta tables; opens the others under the same
    root too (what the pipeline and the estimators write there), for maintenance and reading.

    `root` is a local directory (object-store URIs work with deltalake's storage options, not
    exercised by the embedded default).
    """

    root: Path

    def uri(self, name: str) -> str:
        if name not in SCHEMAS and name not in self.derived():
            raise ValueError(f"table: expected one of {', '.join(self.names())}, found {name!r}")
        return str(self.root / name)

    def derived(self) -> tuple[str, ...]:
        """The other Delta tables under the root (`interactions`, `position_bias`...), sorted; a
        folder whose first commit never landed is not one."""
        if not self.root.is_dir():
            return ()
        return tuple(
            sorted(
                p.name
                for p in self.root.iterdir()
                if p.name not in SCHEMAS and (p / "_delta_log").is_dir() and DeltaTable.is_deltatable(str(p))
            )
        )

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive use of a table across threads and processes, waiting for it: whatever rewrites
        files of a table by reading it first (an incremental MERGE, compaction) holds it, since
        deltalake lets a MERGE that removes a file compaction already removed commit anyway.
        Appends need no lock."""
        folder = self.root / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def names(self) -> tuple[str, ...]:
        """The store's own tables, then the derived ones."""
        return (*TABLES, *self.derived())

    def ensure(self) -> None:
        """Create every missing table, empty, with its schema."""
        for name in TABLES:
            try:
                DeltaTable(self.uri(name))
            except TableNotFoundError:
                DeltaTable.create(self.uri(name), schema=SCHEMAS[name], mode="ignore")

    def open(self, name: str, version: int | None = None) -> DeltaTable:
        """A table at its latest version, or at a pinned one whose files must still exist."""
        table = DeltaTable(self.uri(name), version=version)
        if version is not None:
            missing = [u for u in table.file_uris() if "://" not in u and not os.path.exists(u)]
            if missing:
                raise VersionVacuumed(
                    f"{name} version {version}: {len(missing)} data files were removed by vacuum",
                    hint="pin a version newer than the vacuum retention, or raise the retention",
                )
        return table

    def watermark(self, name: str, app_id: str) -> int:
        """The last journal sequence sealed into a table by a journal (0: none)."""
        version = self.open(name).transaction_version(app_id)
        return 0 if version is None else int(version)

    def append(self, table: str | DeltaTable, data: pa.Table, *, app_id: str, through: int) -> None:
        """Append rows and record, in the same commit, that the journal is sealed through `through`.

        Given an open DeltaTable, it is updated in place to the new version."""
        write_deltalake(
            self.uri(table) if isinstance(table, str) else table,
            data,
            mode="append",
            writer_properties=WRITER_PROPERTIES,
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id=app_id, version=through)]
            ),
        )

    def count(self, name: str) -> int:
        return int(self.open(name).to_pyarrow_dataset().count_rows())
