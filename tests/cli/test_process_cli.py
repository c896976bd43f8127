"""`revealed process`: the summary, a spec file, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from revealed.cli.main import app
from revealed.pipeline.spec import SpecError

runner = CliRunner()
EXAMPLE = Path(__file__).parents[2] / "examples" / "reward.toml"


def _store_with_a_world(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    out = tmp_path / "sim"
    assert runner.invoke(app, ["simulate", "journeys", "--n", "600", "--out", str(out)]).exit_code == 0
    files = [str(out / f"{t}.parquet") for t in ("decisions", "events", "items")]
    assert runner.invoke(app, ["--data", str(data), "ingest", *files]).exit_code == 0
    return data


def test_process_prints_a_summary_and_json(tmp_path: Path) -> None:
    data = _store_with_a_world(tmp_path)
    shown = runner.invoke(
        app, ["--data", str(data), "process", "--spec", str(EXAMPLE)], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    for heading in ("interactions", "attributed conversions", "purchase credit", "step seconds"):
        assert heading in shown.output
    result = runner.invoke(app, ["--data", str(data), "process", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"] > 0
    assert report["attributed"]["purchase"]["window"] > 0
    assert set(report["seconds"]) >= {"attribute", "interpret", "write"}
    again = runner.invoke(app, ["--data", str(data), "process", "--incremental", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["rows"] == 0, "nothing new, nothing open: nothing to rebuild"


def test_a_bad_spec_or_cut_off_is_refused_with_the_reason(tmp_path: Path) -> None:
    data = _store_with_a_world(tmp_path)
    spec = tmp_path / "bad.toml"
    spec.write_text("[reward]\nweights = { clickd = 1.0 }\n")
    result = runner.invoke(app, ["--data", str(data), "process", "--spec", str(spec)])
    assert isinstance(result.exception, SpecError)
    assert "did you mean 'clicked'" in str(result.exception)
    bad = runner.invoke(app, ["--data", str(data), "process", "--until", "yesterday"], env={"COLUMNS": "200"})
    assert bad.exit_code == 2
    assert "RFC 3339" in bad.output
