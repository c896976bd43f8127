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


def test_compaction_and_vacuum_cover_the_tables_the_pipeline_writes(tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    with Store(Settings(data_dir=tmp_path)) as store:
        uri = tmp_path / "tables" / "interactions"
        for v in range(3):  # an overwrite leaves stale files; appends leave small ones
            write_deltalake(uri, pa.table({"v": [v]}), mode="overwrite" if v == 0 else "append")
        write_deltalake(uri, pa.table({"v": [7, 8]}), mode="overwrite")
        write_deltalake(uri, pa.table({"v": [9]}), mode="append")
        (tmp_path / "tables" / "notes").mkdir()  # a folder that is not a Delta table is left alone
        assert store.tables.names() == ("decisions", "events", "items", "quarantine", "interactions")
        with pytest.raises(
            ValueError, match="expected one of decisions, events, items, quarantine, interactions"
        ):
            store.table("notes")

        reports = {r.table: r for r in store.compact()}
        assert (reports["interactions"].files_removed, reports["interactions"].files_added) == (2, 1)
        assert sorted(DeltaTable(uri).to_pyarrow_table().column("v").to_pylist()) == [7, 8, 9]
        on_disk = len(list(uri.glob("*.parquet")))
        removed = {r.table: r.files_removed for r in store.vacuum(retention_hours=0)}
        assert removed["interactions"] == on_disk - 1 == 5
        assert sorted(DeltaTable(uri).to_pyarrow_table().column("v").to_pylist()) == [7, 8, 9]


def test_a_folder_without_a_first_commit_is_not_a_table(tmp_path: Path) -> None:
    with Store(Settings(data_dir=tmp_path)) as store:
        (tmp_path / "tables" / "half_created" / "_delta_log").mkdir(
            parents=True
        )  # an interrupted first write
        assert store.tables.names() == ("decisions", "events", "items", "quarantine")
        assert [r.table for r in store.compact()] == ["decisions", "events", "items", "quarantine"]


def test_compaction_waits_for_a_table_in_use(tmp_path: Path) -> None:
    """A MERGE holds the table's lock; compacting it meanwhile would keep the replaced rows."""
    import threading

    import pyarrow as pa
    from deltalake import write_deltalake

    with Store(Settings(data_dir=tmp_path)) as store:
        uri = tmp_path / "tables" / "interactions"
        for v in range(2):
            write_deltalake(uri, pa.table({"v": [v]}), mode="append")
        done = threading.Event()
        with store.tables.lock("interactions"):
            worker = threading.Thread(target=lambda: (store.compact(), done.set()))
            worker.start()
            assert not done.wait(0.5), "compaction ran while the table was in use"
        assert done.wait(30)
        worker.join()
        assert len(store.table("interactions").file_uris()) == 1
