"""The Store facade: one data directory holding the journal and the Delta tables.

<data>/journal/journal.sqlite   durable journal (SQLite WAL), one stream per table
<data>/journal/seal.lock        the sealer lease
<data>/tables/<name>/           Delta tables: decisions, events, items, quarantine
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import pyarrow as pa
from deltalake import DeltaTable

from revealed.schema.arrow import TABLES
from revealed.schema.records import Kind
from revealed.schema.timefmt import now_us
from revealed.settings import Settings
from revealed.store.convert import concat
from revealed.store.ingest import IngestReport, Raw, ingest
from revealed.store.journal import GroupCommit, Journal
from revealed.store.maintenance import MaintenanceReport, compact, vacuum
from revealed.store.seal import SealerLease, SealReport, seal
from revealed.store.tables import Tables

__all__ = ["Store"]


class Store:
    """Open (creating if needed) the store in `settings.data_dir`.

    >>> import tempfile
    >>> with Store(Settings(data_dir=Path(tempfile.mkdtemp()))) as store:
    ...     report = store.ingest([{"event_id": "e1", "timestamp": "2026-01-31T12:00:00Z",
    ...                             "type": "click", "user_id": "u1"}])
    ...     sealed = store.seal()
    ...     store.count("events"), report.counts["accepted"]
    (1, 1)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir)
        self.journal = Journal(self.root / "journal" / "journal.sqlite")
        self.tables = Tables(self.root / "tables")
        self.tables.ensure()
        self._lease = SealerLease(self.root / "journal" / "seal.lock")
        self._group: GroupCommit | None = None
        #: the Delta tables as the last seal left them (and the version each was opened at), kept
        #: open for the next one
        self._sealing: dict[str, tuple[DeltaTable, int]] = {}

    @classmethod
    def open(cls, data_dir: Path | str) -> Store:
        return cls(Settings(data_dir=Path(data_dir)))

    def group_commit(self) -> GroupCommit:
        """A coalescing appender for many concurrent writers in this process (started on first use)."""
        if self._group is None:
            self._group = GroupCommit(self.journal, window_s=self.settings.commit_window_s)
        return self._group

    def ingest(
        self, raws: Iterable[Raw], *, kind: Kind | None = None, source: str | None = None
    ) -> IngestReport:
        """Validate and durably append one batch; returns after its commit."""
        return ingest(self.journal, kind, raws, source=source)

    def seal(self) -> SealReport:
        """Move committed journal rows into the Delta tables (StoreLocked if another process seals)."""
        return seal(
            self.journal,
            self.tables,
            self._lease,
            batch_rows=self.settings.seal_batch_rows,
            open_tables=self._sealing,
        )

    def compact(self) -> list[MaintenanceReport]:
        """Compact the Delta tables and forget ids older than the id retention."""
        self.journal.prune_ids(before_us=now_us() - int(self.settings.id_retention_days * 86_400e6))
        return compact(self.tables)

    def vacuum(self, retention_hours: float | None = None) -> list[MaintenanceReport]:
        hours = self.settings.vacuum_retention_hours if retention_hours is None else retention_hours
        return vacuum(self.tables, retention_hours=hours)

    def table(self, name: str, version: int | None = None) -> DeltaTable:
        return self.tables.open(name, version)

    def count(self, name: str) -> int:
        return self.tables.count(name)

    def tail(self, name: str, after: int | None = None) -> pa.Table:
        """Committed journal rows of a table after a watermark (default: the latest sealed one)."""
        if after is None:
            after = self.tables.watermark(name, self.journal.app_id)
        return concat(name, [b.batch for b in self.journal.read(name, after=after, limit=2**62)])

    def seal_due(self) -> bool:
        """Whether a seal is due: the oldest unsealed row has waited `seal_max_lag_s`, or
        `seal_after_rows` rows wait. Judged on the journal alone, without opening a table: sealed
        rows are trimmed from it right after their seal."""
        oldest = self.journal.oldest()
        if oldest is None:
            return False
        if now_us() - oldest >= self.settings.seal_max_lag_s * 1e6:
            return True
        return sum(self.journal.pending().values()) >= self.settings.seal_after_rows

    def seal_lag_s(self) -> float:
        """Seconds since the oldest acknowledged row not yet sealed was committed (0 when none)."""
        watermarks = {name: self.tables.watermark(name, self.journal.app_id) for name in TABLES}
        oldest = self.journal.oldest(watermarks)
        return 0.0 if oldest is None else max(0.0, (now_us() - oldest) / 1e6)

    def unsealed(self) -> dict[str, int]:
        """Rows per table committed to the journal but not yet sealed."""
        return self.journal.pending(
            {name: self.tables.watermark(name, self.journal.app_id) for name in TABLES}
        )

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
        self.journal.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
