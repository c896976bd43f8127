"""DuckDB writes Delta tables: overwrite, and a MERGE that rewrites only the files holding a
matched key, checked against a dict model of the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable
from deltalake.transaction import CommitProperties
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revealed.pipeline.delta_files import copy_to_delta, merge_into_delta

KEYS = ("d", "i")


def _values(rows: list[tuple[str, str, int]]) -> str:
    body = ", ".join(f"('{d}', '{i}', {v})" for d, i, v in rows)
    return f"SELECT * FROM (VALUES {body}) t(d, i, v)"


def _rows(uri: str) -> dict[tuple[str, str], int]:
    table = DeltaTable(uri).to_pyarrow_table().to_pylist()
    out = {(r["d"], r["i"]): r["v"] for r in table}
    assert len(out) == len(table), "a key is stored twice"
    return out


def _files(uri: str) -> set[str]:
    return set(DeltaTable(uri).file_uris())


@pytest.fixture
def con() -> Any:
    c = duckdb.connect()
    yield c
    c.close()


def test_merge_rewrites_only_the_files_holding_a_matched_key(con: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    assert copy_to_delta(con, _values([("d1", "a", 1), ("d1", "b", 2)]), uri, CommitProperties())
    first = _files(uri)
    merge_into_delta(con, _values([("d2", "a", 3)]), uri, KEYS, CommitProperties())
    second = _files(uri) - first
    merge_into_delta(con, _values([("d3", "a", 4)]), uri, KEYS, CommitProperties())
    third = _files(uri) - first - second
    assert len(first) == len(second) == len(third) == 1

    # d2's file holds the only matched key: it alone is replaced, d1's and d3's stay as they are
    merge_into_delta(
        con, _values([("d2", "a", 30), ("d4", "a", 5)]), uri, KEYS, CommitProperties({"revealed.mode": "x"})
    )
    after = _files(uri)
    assert first | third <= after
    assert not second & after
    assert len(after) == 3
    assert _rows(uri) == {("d1", "a"): 1, ("d1", "b"): 2, ("d2", "a"): 30, ("d3", "a"): 4, ("d4", "a"): 5}
    assert DeltaTable(uri).history(1)[0]["revealed.mode"] == "x"
    # a reader pinned before the merge still reads its own version
    assert {(r["d"], r["v"]) for r in DeltaTable(uri, version=2).to_pyarrow_table().to_pylist()} == {
        ("d1", 1),
        ("d1", 2),
        ("d2", 3),
        ("d3", 4),
    }


def test_merge_keeps_the_unmatched_rows_of_a_touched_file(con: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "a table's folder")  # quoted in SQL, and the files still found
    copy_to_delta(con, _values([("d1", "a", 1), ("d1", "b", 2), ("d2", "a", 3)]), uri, CommitProperties())
    files = _files(uri)
    merge_into_delta(con, _values([("d1", "b", 20)]), uri, KEYS, CommitProperties())
    assert _rows(uri) == {("d1", "a"): 1, ("d1", "b"): 20, ("d2", "a"): 3}
    assert not files & _files(uri), "the touched file is replaced"


def test_merge_of_nothing_records_only_the_commit(con: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    copy_to_delta(con, _values([("d1", "a", 1)]), uri, CommitProperties())
    files = _files(uri)
    merge_into_delta(
        con,
        _values([("d1", "a", 1)]) + " WHERE false",
        uri,
        KEYS,
        CommitProperties({"revealed.mode": "empty"}),
    )
    table = DeltaTable(uri)
    assert table.version() == 1
    assert table.history(1)[0]["revealed.mode"] == "empty"
    assert _files(uri) == files


def test_merge_with_new_columns_rewrites_the_whole_table(con: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    copy_to_delta(con, _values([("d1", "a", 1), ("d2", "a", 2)]), uri, CommitProperties())
    wider = "SELECT *, 'x' AS note FROM (VALUES ('d2', 'a', 20)) t(d, i, v)"
    merge_into_delta(con, wider, uri, KEYS, CommitProperties())
    rows = sorted((r["d"], r["v"], r["note"]) for r in DeltaTable(uri).to_pyarrow_table().to_pylist())
    assert rows == [("d1", 1, None), ("d2", 20, "x")]


def test_a_failed_commit_leaves_no_files_behind(
    con: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "t")
    copy_to_delta(con, _values([("d1", "a", 1)]), uri, CommitProperties())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", fail)
    with pytest.raises(OSError, match="disk full"):
        merge_into_delta(con, _values([("d1", "a", 2), ("d2", "a", 3)]), uri, KEYS, CommitProperties())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet")) == before
    assert _rows(uri) == {("d1", "a"): 1}
    assert "_merge_source" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}


_ROW = st.tuples(st.sampled_from(["d1", "d2", "d3", "d4"]), st.sampled_from(["a", "b"]), st.integers(0, 99))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.lists(_ROW, min_size=1, max_size=6, unique_by=lambda r: r[:2]),
    merges=st.lists(st.lists(_ROW, max_size=5, unique_by=lambda r: r[:2]), min_size=1, max_size=4),
)
def test_merges_match_a_dict_model(
    start: list[tuple[str, str, int]], merges: list[list[tuple[str, str, int]]], tmp_path_factory: Any
) -> None:
    """Nothing lost, nothing duplicated: after each merge the table is the model's dict."""
    uri = str(tmp_path_factory.mktemp("t"))
    con = duckdb.connect()
    try:
        copy_to_delta(con, _values(start), uri, CommitProperties())
        model = {(d, i): v for d, i, v in start}
        for rows in merges:
            query = _values(rows) if rows else _values([("x", "x", 0)]) + " WHERE false"
            merge_into_delta(con, query, uri, KEYS, CommitProperties())
            model.update({(d, i): v for d, i, v in rows})
            assert _rows(uri) == model
    finally:
        con.close()


def test_merge_removes_a_file_whose_logged_path_is_percent_encoded(con: Any, tmp_path: Path) -> None:
    """Another writer's file `odd dir/x y%z.parquet` is logged encoded; its removal must match."""
    import json
    import os

    from deltalake.transaction import AddAction

    uri = str(tmp_path / "t")
    copy_to_delta(con, _values([("d1", "a", 1)]), uri, CommitProperties())
    (tmp_path / "t" / "odd dir").mkdir()
    con.execute(f"COPY ({_values([('d2', 'a', 2)])}) TO '{uri}/odd dir/x y%z.parquet' (FORMAT parquet)")
    stat = os.stat(f"{uri}/odd dir/x y%z.parquet")
    table = DeltaTable(uri)
    added = AddAction(
        "odd dir/x y%z.parquet",
        stat.st_size,
        {},
        int(stat.st_mtime * 1000),
        True,
        json.dumps({"numRecords": 1}),
    )
    table.create_write_transaction([added], mode="append", schema=table.schema())
    assert _rows(uri) == {("d1", "a"): 1, ("d2", "a"): 2}

    merge_into_delta(con, _values([("d2", "a", 20)]), uri, KEYS, CommitProperties())
    assert _rows(uri) == {("d1", "a"): 1, ("d2", "a"): 20}
    assert not any("odd dir" in f for f in _files(uri))


def test_merge_reads_older_files_by_name(con: Any, tmp_path: Path) -> None:
    """A column the table gained later (older files lack it), and a data column named `filename`."""
    import pyarrow as pa
    from deltalake import write_deltalake

    uri = str(tmp_path / "t")
    copy_to_delta(con, "SELECT 'd1' d, 'a' i, 1::BIGINT v, 'x.csv' filename", uri, CommitProperties())
    table = pa.table({"d": ["d2"], "i": ["a"], "v": [2], "filename": ["y.csv"], "w": ["x"]})
    write_deltalake(uri, table, mode="append", schema_mode="merge")
    merge_into_delta(
        con, "SELECT 'd1' d, 'a' i, 10::BIGINT v, 'z.csv' filename, 'y' w", uri, KEYS, CommitProperties()
    )
    rows = sorted(
        (r["d"], r["v"], r["filename"], r["w"]) for r in DeltaTable(uri).to_pyarrow_table().to_pylist()
    )
    assert rows == [("d1", 10, "z.csv", "y"), ("d2", 2, "y.csv", "x")]


def test_a_source_delta_cannot_store_fails_and_leaves_no_files(con: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    copy_to_delta(con, _values([("d1", "a", 1)]), uri, CommitProperties())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))
    with pytest.raises(Exception):  # noqa: B017,PT011 (DuckDB's or deltalake's error, as it comes)
        merge_into_delta(con, "SELECT 'd1' d, 'a' i, TIME '10:00' v", uri, KEYS, CommitProperties())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet")) == before
    assert _rows(uri) == {("d1", "a"): 1}
