"""The `revealed` command: schema, ingest (NDJSON, JSON, Parquet, CSV), stats, compact."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from revealed.cli.main import app
from revealed.store import Store

T0 = "2026-01-31T12:00:00Z"
T0_MS = 1_769_860_800_000

EVENTS: list[dict[str, Any]] = [
    {
        "event_id": "e1",
        "timestamp": T0,
        "type": "click",
        "user_id": "u1",
        "decision_id": "d1",
        "item_id": "a",
    },
    {"event_id": "e2", "timestamp": T0_MS + 1000, "type": "dwell", "value": 12.5, "user_id": "u1"},
    {"event_id": "e3", "timestamp": "2026-01-31T13:00:00+01:00", "type": "click", "anonymous_id": "anon"},
    {
        "event_id": "e4",
        "timestamp": "2026-01-31T12:00:05.250Z",
        "type": "purchase",
        "value": 20,
        "order_id": "o1",
        "user_id": "u2",
        "properties": {"currency": "EUR"},
    },
]
DECISIONS: list[dict[str, Any]] = [
    {
        "decision_id": "d1",
        "timestamp": "2026-01-31T11:59:59Z",
        "user_id": "u1",
        "surface": "search",
        "query_id": "q1",
        "model": "ranker",
        "model_version": "v2",
        "context": {"device": "ios"},
        "items": [{"item_id": "a", "score": 2.0, "propensity": 0.8}, {"item_id": "b", "score": 1.0}],
        "policy": {"name": "pl", "temperature": 1.0},
    },
    {
        "decision_id": "d2",
        "timestamp": T0_MS - 5000,
        "session_id": "s1",
        "items": [{"item_id": "c"}],
    },
]
ITEMS: list[dict[str, Any]] = [
    {"item_id": "a", "valid_from": "2026-01-01T00:00:00Z", "features": {"price": 9.5}},
]
GOOD = DECISIONS + EVENTS + ITEMS
BAD: list[dict[str, Any]] = [
    {"event_id": "bad1", "timestamp": T0, "type": "scroll", "value": 1.5, "user_id": "u1"},
    {
        "decision_id": "bad2",
        "timestamp": T0,
        "user_id": "u1",
        "items": [
            {"item_id": "a"},
            {"item_id": "b"},
            {"item_id": "c"},
            {"item_id": "d", "cond_propensity": 1.7},
        ],
    },
    {"user_id": "u1", "timestamp": T0},  # no kind at all
]
COUNTS = {"decisions": len(DECISIONS), "events": len(EVENTS), "items": len(ITEMS)}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.delenv("REVEALED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # never touch ./revealed-data of the repository
    return CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "store"


Invoke = Callable[..., Any]


@pytest.fixture
def invoke(runner: CliRunner, data: Path) -> Invoke:
    def run(*args: str, ok: bool = True, env: dict[str, str] | None = None, store: bool = True) -> Any:
        argv = ["--data", str(data), *args] if store else list(args)
        result = runner.invoke(app, argv, env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def as_json(result: Any) -> Any:
    return json.loads(result.stdout)


def write_ndjson(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def write_json(path: Path, records: list[Any]) -> Path:
    path.write_text(json.dumps(records, indent=1))
    return path


def cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    columns = sorted({k for r in records for k in r})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for r in records:
            writer.writerow({k: cell(r.get(k)) for k in columns})
    return path


def stats(invoke: Invoke) -> dict[str, Any]:
    result: dict[str, Any] = as_json(invoke("stats", "--json"))
    return result


def top_counts(result: dict[str, Any]) -> dict[str, int]:
    return {k: result[k] for k in ("decisions", "events", "items", "quarantine")}


def quarantine(data: Path) -> list[dict[str, Any]]:
    with Store.open(data) as store:
        rows: list[dict[str, Any]] = store.table("quarantine").to_pyarrow_table().to_pylist()
    return rows


# ------------------------------------------------------------------------------------------------
# schema
# ------------------------------------------------------------------------------------------------


def test_schema_json_prints_the_json_schema(invoke: Invoke) -> None:
    doc = as_json(invoke("schema", "--json", store=False))
    assert {"Decision", "Event", "Item"} <= set(doc["$defs"])
    assert "cond_propensity" in doc["$defs"]["DecisionItem"]["properties"]


def test_schema_prints_tables(invoke: Invoke) -> None:
    out = invoke("schema", store=False).stdout
    for word in ("Decision", "Event", "Item", "decision_id", "cond_propensity", "valid_from"):
        assert word in out


def test_no_command_prints_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert "ingest" in result.output
    assert "stats" in result.output


# ------------------------------------------------------------------------------------------------
# ingest
# ------------------------------------------------------------------------------------------------


def test_ingest_ndjson_prints_a_summary(invoke: Invoke, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "mixed.ndjson", [*GOOD, *BAD, "this is not json"])
    out = invoke("ingest", str(path)).stdout
    assert "ingested 1 file(s)" in out
    for column in ("accepted", "duplicate", "conflict", "rejected", "total"):
        assert column in out
    assert "first errors" in out
    assert "scroll depth" in out


def test_ingest_ndjson_json_summary(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "mixed.ndjson", [*GOOD, *BAD, "this is not json", ""])
    summary = as_json(invoke("ingest", "--json", str(path)))
    assert {k: summary[k] for k in ("accepted", "duplicate", "conflict", "rejected", "total")} == {
        "accepted": len(GOOD),
        "duplicate": 0,
        "conflict": 0,
        "rejected": len(BAD) + 1,
        "total": len(GOOD) + len(BAD) + 1,
    }
    assert summary["by_table"] == {f"{t}.accepted": n for t, n in sorted(COUNTS.items())}
    assert summary["sealed"] == {**COUNTS, "quarantine": len(BAD) + 1}
    assert any(
        e.startswith("mixed.ndjson:8: event bad1: value: expected a scroll depth") for e in summary["errors"]
    )
    assert top_counts(stats(invoke)) == {**COUNTS, "quarantine": len(BAD) + 1}


def test_rejected_rows_are_quarantined_with_raw_record_and_error(
    invoke: Invoke, data: Path, tmp_path: Path
) -> None:
    lines = [json.dumps(r) for r in [*GOOD, *BAD]] + ["this is not json"]
    path = write_ndjson(tmp_path / "mixed.ndjson", lines)
    invoke("ingest", str(path))
    rows = {r["record_id"] or r["raw"]: r for r in quarantine(data)}
    assert len(rows) == len(BAD) + 1

    scroll = rows["bad1"]
    assert (scroll["kind"], scroll["reason"]) == ("event", "invalid")
    assert scroll["raw"] == json.dumps(BAD[0])  # the line exactly as sent
    assert scroll["errors"] == ["value: expected a scroll depth in [0, 1], found 1.5"]
    assert scroll["source"] == f"mixed.ndjson:{len(GOOD) + 1}"
    assert scroll["received_at"] is not None

    shown = rows["bad2"]
    assert shown["kind"] == "decision"
    assert shown["errors"] == ["items[3].cond_propensity: expected a number in (0, 1], found 1.7"]
    assert json.loads(shown["raw"]) == BAD[1]

    unknown = rows[json.dumps(BAD[2])]
    assert (unknown["kind"], unknown["reason"], unknown["record_id"]) == ("unknown", "unknown_kind", None)
    assert unknown["errors"]
    assert "expected a decision" in unknown["errors"][0]

    garbage = rows["this is not json"]
    assert garbage["reason"] == "invalid"
    assert "malformed JSON" in garbage["errors"][0]


def test_ingest_json_array(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "records.json", [*GOOD, *BAD[:2], 42])
    summary = as_json(invoke("ingest", "--json", str(path)))
    assert (summary["accepted"], summary["rejected"], summary["total"]) == (len(GOOD), 3, len(GOOD) + 3)
    sources = {r["source"] for r in quarantine(data)}
    assert sources == {
        f"records.json[{len(GOOD)}]",
        f"records.json[{len(GOOD) + 1}]",
        f"records.json[{len(GOOD) + 2}]",
    }
    assert top_counts(stats(invoke)) == {**COUNTS, "quarantine": 3}


def test_ingest_parquet(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    events = pa.table(
        {
            "event_id": ["p1", "p2", "p3"],
            "timestamp": pa.array(
                [datetime(2026, 1, 31, 12, 0, 0, 123000, tzinfo=UTC)] * 3, type=pa.timestamp("ms", tz="UTC")
            ),
            "type": ["click", "scroll", "scroll"],
            "user_id": ["u1", None, "u3"],
            "session_id": [None, "s2", None],
            "value": [None, 0.5, 7.0],  # 7.0 is no scroll depth
            "properties": ['{"a": 1}', None, None],
        }
    )
    decisions = pa.table(
        {
            "decision_id": ["pd1"],
            "timestamp": ["2026-01-31T12:00:00Z"],
            "user_id": ["u1"],
            "model": ["ranker"],
            "model_version": ["v3"],
            "items": pa.array(
                [[{"item_id": "a", "score": 1.5}, {"item_id": "b", "score": None}]],
                type=pa.list_(pa.struct([("item_id", pa.string()), ("score", pa.float64())])),
            ),
            "context": ['{"device": "web"}'],
        }
    )
    pq.write_table(events, tmp_path / "events.parquet")
    pq.write_table(decisions, tmp_path / "decisions.parquet")
    summary = as_json(
        invoke("ingest", "--json", str(tmp_path / "events.parquet"), str(tmp_path / "decisions.parquet"))
    )
    assert (summary["accepted"], summary["rejected"], summary["total"]) == (3, 1, 4)
    assert summary["by_table"] == {"decisions.accepted": 1, "events.accepted": 2}
    (bad,) = quarantine(data)
    assert bad["source"] == "events.parquet#2"
    assert bad["errors"] == ["value: expected a scroll depth in [0, 1], found 7.0"]
    with Store.open(data) as store:
        rows = {r["event_id"]: r for r in store.table("events").to_pyarrow_table().to_pylist()}
        (decision,) = store.table("decisions").to_pyarrow_table().to_pylist()
    assert rows["p1"]["timestamp"] == datetime(2026, 1, 31, 12, 0, 0, 123000, tzinfo=UTC)
    assert rows["p1"]["properties"] == '{"a":1}'
    assert rows["p2"]["value"] == 0.5
    assert [(it["item_id"], it["position"], it["score"]) for it in decision["items"]] == [
        ("a", 0, 1.5),
        ("b", 1, None),
    ]
    assert decision["context"] == '{"device":"web"}'
    result = stats(invoke)
    assert result["decisions_by_model_version"] == {"ranker / v3": 1}


def test_ingest_csv_with_json_cells(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    records = [
        {"event_id": "c1", "timestamp": T0, "type": "click", "user_id": "007", "item_id": "a"},
        {"event_id": "c2", "timestamp": T0_MS, "type": "dwell", "user_id": "u1", "value": 3.5},
        {"event_id": "c3", "timestamp": T0, "type": "rating", "user_id": "u1", "value": "five"},
        {
            "decision_id": "cd1",
            "timestamp": T0,
            "user_id": "u1",
            "surface": "email",
            "items": [{"item_id": "a", "position": 1}, {"item_id": "b", "position": 0, "propensity": 0.5}],
            "context": {"campaign": "jan", "n": 2},
        },
    ]
    path = write_csv(tmp_path / "mixed.csv", records)
    summary = as_json(invoke("ingest", "--json", str(path)))
    assert (summary["accepted"], summary["rejected"]) == (3, 1)
    assert summary["by_table"] == {"decisions.accepted": 1, "events.accepted": 2}
    (bad,) = quarantine(data)
    assert bad["record_id"] == "c3"
    assert bad["errors"] == ["value: expected a number, found 'five'"]
    assert "five" in bad["raw"]
    with Store.open(data) as store:
        events = {r["event_id"]: r for r in store.table("events").to_pyarrow_table().to_pylist()}
        (decision,) = store.table("decisions").to_pyarrow_table().to_pylist()
    assert events["c1"]["user_id"] == "007"  # ids stay strings
    assert events["c2"]["value"] == 3.5
    assert events["c2"]["timestamp"] == events["c1"]["timestamp"]
    assert [(it["item_id"], it["position"], it["propensity"]) for it in decision["items"]] == [
        ("a", 1, None),
        ("b", 0, 0.5),
    ]
    assert decision["context"] == '{"campaign":"jan","n":2}'
    assert stats(invoke)["decisions_by_surface"] == {"email": 1}


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda p: write_ndjson(p.with_suffix(".ndjson"), GOOD), id="ndjson"),
        pytest.param(lambda p: write_json(p.with_suffix(".json"), GOOD), id="json"),
        pytest.param(lambda p: write_csv(p.with_suffix(".csv"), GOOD), id="csv"),
    ],
)
def test_ingesting_a_file_twice_gives_duplicates(
    invoke: Invoke, tmp_path: Path, write: Callable[[Path], Path]
) -> None:
    path = write(tmp_path / "good")
    first = as_json(invoke("ingest", "--json", str(path)))
    assert first["accepted"] == len(GOOD)
    before = stats(invoke)
    assert top_counts(before) == {**COUNTS, "quarantine": 0}

    again = as_json(invoke("ingest", "--json", str(path)))
    assert {k: again[k] for k in ("accepted", "duplicate", "conflict", "rejected")} == {
        "accepted": 0,
        "duplicate": len(GOOD),
        "conflict": 0,
        "rejected": 0,
    }
    assert again["by_table"] == {f"{t}.duplicate": n for t, n in sorted(COUNTS.items())}
    assert top_counts(stats(invoke)) == top_counts(before)


def test_a_changed_record_under_a_known_id_is_a_conflict(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    invoke("ingest", str(write_ndjson(tmp_path / "a.ndjson", EVENTS)))
    changed = [{**EVENTS[0], "item_id": "z"}, EVENTS[1]]
    summary = as_json(invoke("ingest", "--json", str(write_ndjson(tmp_path / "b.ndjson", changed))))
    assert {k: summary[k] for k in ("accepted", "duplicate", "conflict", "rejected")} == {
        "accepted": 0,
        "duplicate": 1,
        "conflict": 1,
        "rejected": 0,
    }
    (row,) = quarantine(data)
    assert (row["kind"], row["record_id"], row["reason"]) == ("event", "e1", "id_conflict")
    assert json.loads(row["raw"])["item_id"] == "z", "the conflicting record is kept as sent"
    assert top_counts(stats(invoke)) == {"decisions": 0, "events": len(EVENTS), "items": 0, "quarantine": 1}


def test_conflict_quarantine_keeps_the_record_as_sent(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    """Like every quarantined row, an id_conflict keeps the raw record as sent and where it came from."""
    invoke("ingest", str(write_ndjson(tmp_path / "a.ndjson", EVENTS)))
    changed = {**EVENTS[0], "item_id": "z"}
    invoke("ingest", str(write_ndjson(tmp_path / "b.ndjson", [changed])))
    (row,) = quarantine(data)
    assert row["errors"]
    assert json.loads(row["raw"]) == changed
    assert row["source"] == "b.ndjson:1"


def test_kind_forces_the_table(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", EVENTS)
    forced = as_json(invoke("ingest", "--json", "--kind", "decision", str(path)))
    assert (forced["accepted"], forced["rejected"]) == (0, len(EVENTS))
    rows = quarantine(data)
    assert {r["kind"] for r in rows} == {"decision"}
    assert all(
        any(e.startswith("decision_id: ") or e.startswith("event_id: ") for e in r["errors"]) for r in rows
    )

    kept = as_json(invoke("ingest", "--json", "--kind", "event", str(path)))
    assert kept["accepted"] == len(EVENTS)


def test_kind_forces_items_that_look_like_nothing_else(invoke: Invoke, data: Path, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "items.ndjson", [{"item_id": f"i{n}", "text": "t"} for n in range(3)])
    assert as_json(invoke("ingest", "--json", "--kind", "item", str(path)))["accepted"] == 3
    assert stats(invoke)["items"] == 3


def test_bad_kind_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", EVENTS)
    result = invoke("ingest", "--kind", "events", str(path), ok=False)
    assert result.exit_code == 2
    assert "expected decision, event or item" in result.output


def test_missing_file_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("ingest", str(tmp_path / "nope.ndjson"), ok=False)
    assert result.exit_code == 2


def test_env_selects_the_store(runner: CliRunner, tmp_path: Path) -> None:
    store = tmp_path / "from-env"
    path = write_ndjson(tmp_path / "events.ndjson", EVENTS)
    env = {"REVEALED_DATA": str(store)}
    assert runner.invoke(app, ["ingest", str(path)], env=env).exit_code == 0
    result = runner.invoke(app, ["stats", "--json"], env=env)
    assert json.loads(result.stdout)["events"] == len(EVENTS)
    assert (store / "tables" / "events").is_dir()
    assert not (tmp_path / "revealed-data").exists()


def test_data_option_beats_env(runner: CliRunner, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", EVENTS)
    result = runner.invoke(
        app,
        ["--data", str(tmp_path / "opt"), "ingest", str(path)],
        env={"REVEALED_DATA": str(tmp_path / "env")},
    )
    assert result.exit_code == 0
    assert (tmp_path / "opt" / "tables").is_dir()
    assert not (tmp_path / "env").exists()


# ------------------------------------------------------------------------------------------------
# stats, seal, compact
# ------------------------------------------------------------------------------------------------


def test_stats_json_reports_the_store(invoke: Invoke, tmp_path: Path) -> None:
    invoke("ingest", str(write_ndjson(tmp_path / "all.ndjson", [*GOOD, *BAD])))
    result = stats(invoke)
    assert top_counts(result) == {**COUNTS, "quarantine": len(BAD)}
    assert result["events_by_type"] == {"click": 2, "dwell": 1, "purchase": 1}
    assert result["decisions_by_surface"] == {"default": 1, "search": 1}
    assert result["decisions_by_model_version"] == {"- / -": 1, "ranker / v2": 1}
    assert result["quarantine_by_reason"] == {
        "decision / invalid": 1,
        "event / invalid": 1,
        "unknown / unknown_kind": 1,
    }
    assert result["time_range"]["events"] == ["2026-01-31T12:00:00Z", "2026-01-31T12:00:05.250000Z"]
    assert result["time_range"]["decisions"] == ["2026-01-31T11:59:55Z", "2026-01-31T11:59:59Z"]
    lo, hi = result["time_range"]["received"]
    assert lo <= hi
    assert result["journal_unsealed"] == {"decisions": 0, "events": 0, "items": 0, "quarantine": 0}


def test_stats_of_an_empty_store(invoke: Invoke) -> None:
    result = stats(invoke)
    assert top_counts(result) == {"decisions": 0, "events": 0, "items": 0, "quarantine": 0}
    assert result["events_by_type"] == {}
    assert result["time_range"]["events"] == [None, None]


def test_unsealed_rows_are_counted_then_sealed(invoke: Invoke, tmp_path: Path) -> None:
    invoke("ingest", "--no-seal", str(write_ndjson(tmp_path / "all.ndjson", [*GOOD, BAD[0]])))
    result = stats(invoke)
    assert top_counts(result) == {**COUNTS, "quarantine": 1}  # acknowledged rows count before sealing
    assert result["journal_unsealed"] == {**COUNTS, "quarantine": 1}
    assert "sealed" in invoke("seal").stdout
    result = stats(invoke)
    assert top_counts(result) == {**COUNTS, "quarantine": 1}
    assert result["journal_unsealed"] == {"decisions": 0, "events": 0, "items": 0, "quarantine": 0}


def test_stats_table_output(invoke: Invoke, tmp_path: Path) -> None:
    invoke("ingest", str(write_ndjson(tmp_path / "all.ndjson", GOOD)))
    out = invoke("stats").stdout
    for word in ("decisions", "events", "quarantine", "events by type", "dwell", "search", "ranker / v2"):
        assert word in out


def test_compact_runs(invoke: Invoke, tmp_path: Path) -> None:
    for n in range(3):  # three appends: small files to compact
        invoke(
            "ingest", str(write_ndjson(tmp_path / f"part{n}.ndjson", [{**EVENTS[0], "event_id": f"x{n}"}]))
        )
    out = invoke("compact").stdout
    assert "compacted events: 3 files -> 1" in out
    assert "vacuumed events" in out
    out = invoke("compact", "--no-vacuum").stdout
    assert "compacted events" in out
    assert "vacuumed" not in out
    assert stats(invoke)["events"] == 3


def test_compact_and_vacuum_keep_every_row(invoke: Invoke, tmp_path: Path) -> None:
    invoke("ingest", str(write_ndjson(tmp_path / "a.ndjson", GOOD)))
    invoke("ingest", str(write_ndjson(tmp_path / "b.ndjson", [{**EVENTS[0], "event_id": "late"}])))
    invoke("compact", "--retention-hours", "0")
    assert top_counts(stats(invoke)) == {**COUNTS, "events": COUNTS["events"] + 1, "quarantine": 0}


# ------------------------------------------------------------------------------------------------
# end to end, through the installed script
# ------------------------------------------------------------------------------------------------


def test_installed_script_end_to_end(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "revealed"
    if not script.exists():
        pytest.skip(f"no installed script next to {sys.executable}")
    path = write_ndjson(tmp_path / "all.ndjson", [*GOOD, *BAD])
    env = {**os.environ, "REVEALED_DATA": str(tmp_path / "store"), "NO_COLOR": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(script), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    summary = json.loads(run("ingest", "--json", str(path)).stdout)
    assert (summary["accepted"], summary["rejected"]) == (len(GOOD), len(BAD))
    assert top_counts(json.loads(run("stats", "--json").stdout)) == {**COUNTS, "quarantine": len(BAD)}
