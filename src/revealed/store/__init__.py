"""The durable store: journal (SQLite WAL) -> sealer -> Delta tables, with compaction and vacuum."""

from revealed.store.entries import Accepted, Quarantined, Status
from revealed.store.ingest import IngestReport, prepare
from revealed.store.journal import GroupCommit, Journal
from revealed.store.maintenance import DEFAULT_RETENTION_HOURS, compact, vacuum
from revealed.store.seal import SealerLease, SealReport, seal
from revealed.store.store import Store
from revealed.store.tables import Tables

__all__ = [
    "Accepted",
    "DEFAULT_RETENTION_HOURS",
    "GroupCommit",
    "IngestReport",
    "Journal",
    "Quarantined",
    "SealReport",
    "SealerLease",
    "Status",
    "Store",
    "Tables",
    "compact",
    "prepare",
    "seal",
    "vacuum",
]
