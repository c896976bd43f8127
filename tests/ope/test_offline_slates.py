"""Rankers judged on logged slates: the logging policy evaluated on its own logs is exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from revealed.cli.main import app
from revealed.ope.offline_slates import evaluate_slates_offline, slate_logs
from revealed.pipeline.process import process
from revealed.settings import Settings
from revealed.sim.ranking import RankingConfig, simulate_ranking
from revealed.store import Store
from revealed.store.files import ingest_file

TEMPERATURE = 0.5


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path, Path]]:
    root = tmp_path_factory.mktemp("slates")
    store = Store(Settings(data_dir=root / "data"))
    config = RankingConfig(policy_mix={"plackett_luce": 1.0}, temperature=TEMPERATURE, bots=0)
    sim = simulate_ranking(3_000, 5, config=config)
    for path in sim.write(root / "sim").values():
        ingest_file(store.journal, path)
    store.seal()
    process(store)
    candidates = sim.decisions.select(["decision_id", "candidates"])
    lengths = pc.list_value_length(candidates["candidates"]).to_numpy()
    flat = pc.list_flatten(candidates["candidates"])
    ids = np.repeat(candidates["decision_id"].to_numpy(zero_copy_only=False), lengths)
    score = pc.struct_field(flat, "score").to_numpy(zero_copy_only=False)
    same, reverse = root / "same.parquet", root / "reverse.parquet"
    item = pc.struct_field(flat, "item_id")
    pq.write_table(pa.table({"decision_id": ids, "item_id": item, "score": score}), same)
    pq.write_table(pa.table({"decision_id": ids, "item_id": item, "score": -score}), reverse)
    yield store, same, reverse
    store.close()


def test_the_logging_policy_on_its_own_logs_is_estimated_exactly_and_not_called_better(
    shop: tuple[Store, Path, Path],
) -> None:
    store, same, reverse = shop
    slates, rewards, others = slate_logs(store)
    assert others == 0
    assert rewards.shape == slates.order.shape
    result = evaluate_slates_offline(
        None,
        {"same": str(same), "reverse": str(reverse)},
        logged=(slates, rewards),
        kind="plackett_luce",
        temperature=TEMPERATURE,
        estimators=["sips", "rips"],
    )
    for estimator in ("sips", "rips"):
        # identical probabilities: every weight is 1, so the estimate is the logged mean
        assert result.estimates["same"][estimator].value == pytest.approx(result.logged_value, rel=1e-6)
    verdict = {v.candidate: v for v in result.verdicts}
    assert verdict["same"].verdict == "not enough evidence"
    assert result.estimates["reverse"]["rips"].value < result.logged_value
    assert verdict["reverse"].verdict in ("worse", "not enough evidence")
    with pytest.raises(ValueError, match="iips: the logs lack the per-slot marginal"):
        evaluate_slates_offline(None, {"same": str(same)}, logged=(slates, rewards), estimators=["iips"])


def test_cli_evaluates_slates(shop: tuple[Store, Path, Path]) -> None:
    store, same, _ = shop
    result = CliRunner().invoke(
        app,
        ["--data", str(store.root), "evaluate", "--slates", "--policy", f"same={same}",
         "--kind", "plackett_luce", "--temperature", str(TEMPERATURE)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "logged slates" in result.output
    assert "rips" in result.output
    bad = CliRunner().invoke(
        app, ["--data", str(store.root), "evaluate", "--slates", "--policy", str(same), "--estimators", "dr"]
    )
    assert bad.exit_code == 2
    assert "estimators" in bad.output
