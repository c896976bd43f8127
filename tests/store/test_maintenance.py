"""Compaction, vacuum with a stated retention, and pinned versions whose files were vacuumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from revealed.errors import VersionVacuumed
from revealed.settings import Settings
from revealed.store import DEFAULT_RETENTION_HOURS, Store

T0 = 1_767_225_600_000


def test_compaction_merges_small_files_and_keeps_every_row(tmp_path: Path) -> None:
    with Store(Settings(data_dir=tmp_path)) as store:
        for b in range(6):
            store.ingest(
                [
                    {"event_id": f"e{b}-{i}", "timestamp": T0, "type": "click", "user_id": "u"}
                    for i in range(50)
                ]
            )
            store.seal()
        before = len(store.table("events").file_uris())
        reports = {r.table: r for r in store.compact()}
        assert before == 6
        assert reports["events"].files_removed == 6
        assert reports["events"].files_added == 1
        assert len(store.table("events").file_uris()) == 1
        assert store.count("events") == 300


def test_vacuum_keeps_files_within_retention_and_pinned_old_versions_fail_clearly(tmp_path: Path) -> None:
    assert DEFAULT_RETENTION_HOURS == 168
    with Store(Settings(data_dir=tmp_path)) as store:
        for b in range(3):
            store.ingest([{"event_id": f"e{b}", "timestamp": T0, "type": "click", "user_id": "u"}])
            store.seal()
        pinned = store.table("events").version() - 1
        store.compact()
        assert sum(r.files_removed for r in store.vacuum()) == 0, "nothing is older than 7 days"
        assert store.table("events", pinned).to_pyarrow_table().num_rows == 2
        assert sum(r.files_removed for r in store.vacuum(retention_hours=0)) == 3
        with pytest.raises(VersionVacuumed, match="removed by vacuum") as info:
            store.table("events", pinned)
        assert info.value.status == 410
        assert store.count("events") == 3


def _codecs(files: list[str]) -> set[str]:
    import pyarrow.parquet as pq

    codecs = set()
    for uri in files:
        meta = pq.read_metadata(uri.removeprefix("file://"))
        codecs |= {meta.row_group(0).column(c).compression for c in range(meta.num_columns)}
    return codecs


def test_sealed_and_compacted_files_are_zstd(tmp_path: Path) -> None:
    with Store(Settings(data_dir=tmp_path)) as store:
        for b in range(2):
            store.ingest([{"event_id": f"e{b}", "timestamp": T0, "type": "click", "user_id": "u"}])
            store.seal()
        assert _codecs(store.table("events").file_uris()) == {"ZSTD"}
        store.compact()
        assert len(store.table("events").file_uris()) == 1
        assert _codecs(store.table("events").file_uris()) == {"ZSTD"}
