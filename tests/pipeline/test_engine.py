"""The engine opens sealed tables (and, on request, the journal tail) as Ibis tables on DuckDB, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from revealed.pipeline import connect, store_stats
from revealed.settings import Settings
from revealed.store import Store

T0 = 1_767_225_600_000


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Store(Settings(data_dir=tmp_path)) as s:
        s.ingest(
            [
                {
                    "decision_id": "d1",
                    "timestamp": T0,
                    "user_id": "u",
                    "surface": "search",
                    "model": "m",
                    "model_version": "1",
                    "context": {"hour": 3, "device": "ios"},
                    "items": [
                        {"item_id": "a", "cond_propensity": 0.5},
                        {"item_id": "b", "cond_propensity": 1.0},
                    ],
                }
            ]
        )
        s.ingest(
            [
                {"event_id": f"e{i}", "timestamp": T0 + i, "type": t, "user_id": "u", "decision_id": "d1"}
                for i, t in enumerate(["click", "click", "save"])
            ]
        )
        s.seal()
        s.ingest([{"event_id": "late", "timestamp": T0 + 9, "type": "click", "user_id": "u"}])
        yield s


def test_sealed_tables_are_ibis_tables_with_typed_columns(store: Store) -> None:
    engine = connect(store)
    decisions = engine.table("decisions")
    assert decisions.count().execute() == 1
    items = decisions.select(item=decisions["items"].unnest()).execute()
    assert [row["item_id"] for row in items["item"]] == ["a", "b"]
    assert [row["position"] for row in items["item"]] == [0, 1]
    ctx = decisions.select(hour=decisions.context_num["hour"]).execute()
    assert ctx["hour"].tolist() == [3.0]
    assert engine.table("events").count().execute() == 3, "the journal tail is excluded by default"


def test_the_journal_tail_is_included_on_request(store: Store) -> None:
    engine = connect(store, include_journal=True)
    assert engine.table("events").count().execute() == 4
    assert "late" in engine.table("events").event_id.execute().tolist()


def test_duckdb_never_downloads_extensions(store: Store) -> None:
    engine = connect(store)
    settings = engine.backend.raw_sql(
        "SELECT current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions')"
    ).fetchall()
    assert settings == [(False, False)]


def test_tables_can_be_pinned_to_a_version(store: Store) -> None:
    v = store.table("events").version()
    store.seal()
    assert connect(store, versions={"events": v}).table("events").count().execute() == 3
    assert connect(store).table("events").count().execute() == 4


def test_stats(store: Store) -> None:
    stats = store_stats(store)
    assert {k: stats[k] for k in ("decisions", "events", "items", "quarantine")} == {
        "decisions": 1,
        "events": 4,
        "items": 0,
        "quarantine": 0,
    }
    assert stats["events_by_type"] == {"click": 3, "save": 1}
    assert stats["decisions_by_surface"] == {"search": 1}
    assert stats["decisions_by_model_version"] == {"m / 1": 1}
    assert stats["journal_unsealed"]["events"] == 1
    assert stats["time_range"]["events"] == ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.009000Z"]


def test_views_have_the_declared_schema_with_or_without_files(store: Store) -> None:
    """Each table is the declared schema, then the snapshot's Parquet files (DuckDB's reader)."""
    from revealed.schema.arrow import SCHEMAS

    engine = connect(store)
    for name, schema in SCHEMAS.items():
        assert engine.table(name).schema().names == tuple(schema.names)
    assert engine.table("quarantine").count().execute() == 0  # no files yet: still a typed table
    assert engine.table("events").schema()["timestamp"].is_timestamp()


def test_overwrite_delta_writes_duckdb_files_and_commits_them(store: Store, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    engine = connect(store)
    events = engine.table("events")
    uri = str(tmp_path / "out")
    engine.overwrite_delta(events.select("event_id", "timestamp", "type"), uri, {"revealed.mode": "full"})
    first = DeltaTable(uri)
    assert sorted(first.to_pyarrow_table()["event_id"].to_pylist()) == ["e0", "e1", "e2"]
    assert first.history(1)[0]["revealed.mode"] == "full"
    assert first.to_pyarrow_table().schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    for file in first.file_uris():  # DuckDB writes Zstandard, as deltalake does for the store
        meta = pq.read_metadata(file.removeprefix("file://"))
        assert {meta.row_group(0).column(c).compression for c in range(meta.num_columns)} == {"ZSTD"}

    # a new schema and fewer rows replace the table; no rows still record the schema
    engine.overwrite_delta(
        events.filter(events.type == "save").select("event_id"), uri, {"revealed.mode": "x"}
    )
    assert DeltaTable(uri).to_pyarrow_table().to_pylist() == [{"event_id": "e2"}]
    engine.overwrite_delta(events.filter(events.type == "none").select("type"), uri, {})
    empty = DeltaTable(uri)
    assert empty.version() == 2
    assert empty.to_pyarrow_table().num_rows == 0
    assert [f.name for f in empty.schema().fields] == ["type"]


def test_handoff_lowers_the_budget_and_restores_it(store: Store) -> None:
    engine = connect(store)
    con = engine.backend.con

    def limit() -> str:
        return str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])

    before = limit()
    with engine.handoff():
        during = limit()
    assert during != before
    assert limit() == before


def test_merge_delta_replaces_matched_keys_inserts_new_ones_and_keeps_the_rest(
    store: Store, tmp_path: Path
) -> None:
    import ibis
    from deltalake import DeltaTable

    engine = connect(store)
    uri = str(tmp_path / "merged")
    engine.overwrite_delta(
        engine.sql("SELECT * FROM (VALUES ('d1', 'a', 1), ('d1', 'b', 2), ('d2', 'a', 3)) t(d, i, v)"),
        uri,
        {},
    )
    update = engine.sql("SELECT * FROM (VALUES ('d1', 'b', 20), ('d3', 'a', 30)) t(d, i, v)")
    engine.merge_delta(update, uri, ("d", "i"), {"revealed.mode": "incremental"})
    table = DeltaTable(uri)
    rows = sorted((r["d"], r["i"], r["v"]) for r in table.to_pyarrow_table().to_pylist())
    assert rows == [("d1", "a", 1), ("d1", "b", 20), ("d2", "a", 3), ("d3", "a", 30)]
    assert table.history(1)[0]["revealed.mode"] == "incremental"

    nothing = update.filter(ibis.literal(False))
    engine.merge_delta(nothing, uri, ("d", "i"), {"revealed.mode": "empty"})
    after = DeltaTable(uri)
    assert after.version() == table.version() + 1, "no new rows still records the run"
    assert after.history(1)[0]["revealed.mode"] == "empty"
    assert after.to_pyarrow_table().num_rows == 4
