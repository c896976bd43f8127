"""`revealed simulate` and `revealed value`: files, a running server, and true policy values."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.server.service_helpers import ServeProcess
from typer.testing import CliRunner

from revealed.cli.main import app
from revealed.settings import Settings
from revealed.sim import WORLDS
from revealed.sim.bandit import BanditWorld, policy_value
from revealed.store import Store

runner = CliRunner()


def test_help_lists_every_world() -> None:
    result = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for world in WORLDS:
        assert world in result.output


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_simulate_writes_decisions_events_items_and_truth(world: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", world, "--n", "300", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out / "decisions.parquet").num_rows >= 300
    assert pq.read_table(out / "events.parquet").num_rows > 0
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["world"] == world
    assert truth["seed"] == 3
    again = tmp_path / "again"
    runner.invoke(app, ["simulate", world, "--n", "300", "--seed", "3", "--out", str(again)])
    assert pq.read_table(again / "events.parquet").equals(pq.read_table(out / "events.parquet"))


def test_ndjson_and_drift_and_click_model_options(tmp_path: Path) -> None:
    out = tmp_path / "nd"
    args = [
        "simulate",
        "ranking",
        "--n",
        "200",
        "--format",
        "ndjson",
        "--drift",
        "20",
        "--click-model",
        "dbn",
    ]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "events.ndjson").read_text().count("\n") > 200
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["params"]["click_model"]["name"] == "dbn"
    assert len(truth["params"]["change_points_us"]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "nowhere", "--out", "x"], "expected one of"),
        (["simulate", "ranking"], "exactly one of --out DIR or --to URL"),
        (["simulate", "bandit", "--out", "x", "--click-model", "pbm"], "no click model"),
        (["simulate", "ranking", "--out", "x", "--drift", "-3"], "hours"),
        (["simulate", "ranking", "--out", "x", "--format", "csv"], "parquet or ndjson"),
    ],
)
def test_bad_options_are_refused_with_the_reason(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, and nothing in the checkout
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 2
    assert message in result.output
    assert not any(tmp_path.iterdir())


def test_value_prints_the_exact_value_of_policies() -> None:
    result = runner.invoke(app, ["value", "bandit", "--policy", "uniform", "--policy", "optimal", "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)["value"]
    assert values["uniform"] == pytest.approx(policy_value(BanditWorld(0), "uniform"))
    assert values["optimal"] > values["uniform"]
    ranking = runner.invoke(app, ["value", "ranking", "--policy", "ranker", "--policy", "random", "--json"])
    assert ranking.exit_code == 0, ranking.output
    v = json.loads(ranking.output)["value"]
    assert v["ranker"] > v["random"] > 0


def test_simulate_to_a_running_server_stores_every_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServeProcess(data).start()
    try:
        result = runner.invoke(app, ["simulate", "bandit", "--n", "400", "--to", server.url])
        assert result.exit_code == 0, result.output + server.output()
        assert "rejected 0" in result.output
    finally:
        server.stop()
    store = Store(Settings(data_dir=data))
    store.seal()
    assert store.count("decisions") == 400
    assert store.count("quarantine") == 0
    store.close()
