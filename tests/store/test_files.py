"""Bulk files at their edges: spreadsheet CSVs, NDJSON named .json, Parquet maps, versioned items."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revealed.errors import StoreError
from revealed.settings import Settings
from revealed.store import GroupCommit, Store
from revealed.store.entries import dedupe_key
from revealed.store.files import ingest_file

CLICK = {"event_id": "e1", "timestamp": 1769860800000, "type": "click", "user_id": "u1"}


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Store(Settings(data_dir=tmp_path / "data")) as s:
        yield s


def test_a_csv_with_a_byte_order_mark_is_read(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfevent_id,timestamp,type,user_id\nb1,1769860800000,click,u1\n")
    assert ingest_file(store.journal, path).counts == {"accepted": 1}


def test_csv_cells_beyond_the_header_are_rejected_not_dropped(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text("event_id,timestamp,type,user_id\nc3,1769860800000,click,u1,extra,cells\n")
    report = ingest_file(store.journal, path)
    assert report.counts == {"rejected": 1}
    assert "cells beyond the header" in report.errors[0]


def test_a_csv_cell_larger_than_the_csv_module_default_is_read(store: Store, tmp_path: Path) -> None:
    big = json.dumps({"blob": "x" * 200_000}).replace('"', '""')
    path = tmp_path / "big.csv"
    path.write_text(f'event_id,timestamp,type,user_id,properties\nb1,1769860800000,click,u1,"{big}"\n')
    assert ingest_file(store.journal, path).counts == {"accepted": 1}


def test_ndjson_in_a_json_file_is_read_as_ndjson(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps(CLICK) + "\n" + json.dumps({**CLICK, "event_id": "e2"}) + "\n")
    assert ingest_file(store.journal, path).counts == {"accepted": 2}


def test_nan_in_a_json_array_is_rejected_for_that_row_only(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text(
        '[{"event_id":"j0","timestamp":1769860800000,"type":"click","user_id":"u"},'
        '{"event_id":"j1","timestamp":1769860800000,"type":"click","user_id":"u","properties":{"x":NaN}}]'
    )
    report = ingest_file(store.journal, path)
    assert report.counts == {"accepted": 1, "rejected": 1}


def test_parquet_map_columns_are_objects(store: Store, tmp_path: Path) -> None:
    table = pa.table(
        {
            "decision_id": ["d1"],
            "timestamp": [1769860800000],
            "user_id": ["u"],
            "items": [[{"item_id": "a"}]],
            "context": pa.array([[("hour", 3.0), ("weight", 0.5)]], type=pa.map_(pa.string(), pa.float64())),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    assert ingest_file(store.journal, tmp_path / "d.parquet").counts == {"accepted": 1}
    store.seal()
    assert json.loads(store.table("decisions").to_pyarrow_table().column("context")[0].as_py()) == {
        "hour": 3.0,
        "weight": 0.5,
    }


def test_catalogue_items_are_versioned_by_valid_from(store: Store) -> None:
    v1 = {"item_id": "a", "valid_from": "2026-01-01T00:00:00Z", "features": {"price": 10}}
    v2 = {"item_id": "a", "valid_from": "2026-02-01T00:00:00Z", "features": {"price": 12}}
    assert store.ingest([v1, v2]).counts == {"accepted": 2}
    assert store.ingest([{**v1, "valid_from": 1767225600000}]).counts == {"duplicate": 1}, "the same instant"
    assert store.ingest([{**v2, "features": {"price": 13}}]).counts == {"conflict": 1}


def test_an_item_whose_id_looks_like_a_version_is_its_own_record(store: Store) -> None:
    versioned = {"item_id": "sku", "valid_from": "2026-01-01T00:00:00Z"}
    lookalikes = [
        {"item_id": "sku@1767225600000000"},
        {"item_id": "sku@1767225600000000@"},
        {"item_id": "sku@"},
    ]
    assert store.ingest([versioned]).counts == {"accepted": 1}
    assert store.ingest(lookalikes, kind="item").counts == {"accepted": 3}
    assert store.ingest([versioned, *lookalikes], kind="item").counts == {"duplicate": 4}


@given(
    ids=st.lists(
        st.tuples(st.text(alphabet="ab@-0123456789", max_size=8), st.none() | st.integers(-5, 5)),
        min_size=2,
        max_size=2,
        unique=True,
    )
)
def test_items_dedupe_keys_tell_every_id_and_version_apart(ids: list[tuple[str, int | None]]) -> None:
    (a, va), (b, vb) = ids
    assert dedupe_key("items", a, va) != dedupe_key("items", b, vb)


def test_an_integer_beyond_float64_stays_in_the_json_and_out_of_the_numeric_map(store: Store) -> None:
    huge = {"item_id": "h", "features": {"n": 10**400, "m": 2}}
    assert store.ingest([huge]).counts == {"accepted": 1}
    store.seal()
    row = store.table("items").to_pyarrow_table().to_pylist()[0]
    assert row["features_num"] == [("m", 2.0)]
    assert json.loads(row["features"])["n"] == 10**400


def test_vacuum_rounds_a_fractional_retention_up(store: Store) -> None:
    for i in range(3):
        store.ingest([{**CLICK, "event_id": f"e{i}"}])
        store.seal()
    store.compact()
    assert sum(r.files_removed for r in store.vacuum(retention_hours=0.9)) == 0


def test_group_commit_refuses_appends_after_close(store: Store) -> None:
    group = GroupCommit(store.journal)
    group.close()
    with pytest.raises(StoreError, match="closed"):
        group.append([])


def test_a_journal_from_before_received_at_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal" / "journal.sqlite"
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE journal_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, rows INTEGER NOT NULL, "
        "batch BLOB NOT NULL)"
    )
    db.commit()
    db.close()
    with Store(Settings(data_dir=tmp_path / "data")) as store:
        assert store.ingest([CLICK]).counts == {"accepted": 1}
