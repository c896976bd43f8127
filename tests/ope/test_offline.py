"""From processed logs to a verdict: candidates evaluated on the bandit world against its truth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from revealed.cli.main import app
from revealed.ope.logged import BanditLogs, action_distribution, bandit_logs, load_scores
from revealed.ope.offline import evaluate_offline
from revealed.pipeline.process import process
from revealed.settings import Settings
from revealed.sim.bandit import BanditConfig, BanditWorld, policy_value, simulate_bandit
from revealed.store import Store
from revealed.store.files import ingest_file

SEED = 21
CONFIG = BanditConfig(holdout=0.0)
TEMPERATURE = 0.5


def _logits(rows: pd.DataFrame, sign: float) -> np.ndarray:
    """The world's true logit of each (round, candidate) row, times `sign`."""
    weights, bias, _ = BanditWorld(SEED, CONFIG).parameters()
    x = rows[[f"x{j}" for j in range(weights.shape[2])]].to_numpy()
    a = rows["item_id"].str[1:].astype(int).to_numpy()
    return np.asarray(sign * (np.einsum("nd,nd->n", x, weights[0][a]) + bias[a]))


def better(rows: pd.DataFrame) -> np.ndarray:
    return _logits(rows, 1.0)


def worse(rows: pd.DataFrame) -> np.ndarray:
    return _logits(rows, -1.0)


def _true_value(sign: float) -> float:
    world = BanditWorld(SEED, CONFIG)
    weights, bias, _ = world.parameters()

    def pi(x: np.ndarray) -> np.ndarray:
        z = sign * (np.einsum("nd,ad->na", x, weights[0]) + bias) / TEMPERATURE
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(z / z.sum(axis=1, keepdims=True))

    return policy_value(world, pi)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, BanditLogs]]:
    root = tmp_path_factory.mktemp("ope")
    store = Store(Settings(data_dir=root / "data"))
    sim = simulate_bandit(30_000, SEED, config=CONFIG)
    for path in sim.write(root / "sim").values():
        ingest_file(store.journal, path)
    store.seal()
    process(store)
    yield store, bandit_logs(store)
    store.close()


def test_logged_rounds_follow_obp_conventions(logged: tuple[Store, BanditLogs]) -> None:
    _, logs = logged
    assert logs.n_rounds == 30_000
    assert logs.actions == [f"a{i}" for i in range(10)]
    assert logs.candidates.all(), "the bandit world logs every action as a candidate"
    assert ((logs.pscore > 0) & (logs.pscore <= 1)).all()
    assert logs.context_names == [f"x{j}" for j in range(5)]
    assert set(np.unique(logs.reward)) <= {0.0, 1.0}
    dist = action_distribution(load_scores(logs, better), temperature=TEMPERATURE)
    assert dist.shape == (logs.n_rounds, 10, 1)
    assert np.allclose(dist.sum(axis=1), 1.0)


def test_a_better_and_a_worse_candidate_are_judged_so_and_estimated_near_their_truth(
    logged: tuple[Store, BanditLogs],
) -> None:
    _, logs = logged
    result = evaluate_offline(
        None,
        {"better": better, "worse": worse},
        logs=logs,
        temperature=TEMPERATURE,
        estimators=["snipw", "dr"],
    )
    verdict = {v.candidate: v.verdict for v in result.verdicts}
    assert verdict == {"better": "better", "worse": "worse"}, result.verdicts
    for name, sign in (("better", 1.0), ("worse", -1.0)):
        truth = _true_value(sign)
        for estimator in ("snipw", "dr"):
            estimate = result.estimates[name][estimator]
            assert abs(estimate.value - truth) < 3 * estimate.se + 0.01, (name, estimator, estimate, truth)


def test_a_low_ctr_world_gives_not_enough_evidence(tmp_path: Path) -> None:
    """Rare rewards (~1%) and a candidate close to the logger: the interval cannot exclude zero."""
    rng = np.random.default_rng(3)
    n, actions = 20_000, 10
    pscore = np.full(n, 1 / actions)
    logs = BanditLogs(
        decision_id=np.array([f"d{i}" for i in range(n)], dtype=object),
        actions=[f"a{i}" for i in range(actions)],
        action=rng.integers(0, actions, n),
        reward=(rng.random(n) < 0.01).astype(float),
        pscore=pscore,
        position=np.zeros(n, dtype=np.int64),
        candidates=np.ones((n, actions), dtype=bool),
        context=np.zeros((n, 0)),
        context_names=[],
    )

    def slightly_different(rows: Any) -> np.ndarray:
        return np.where(rows["item_id"] == "a0", 0.3, 0.0)

    result = evaluate_offline(None, {"c": slightly_different}, logs=logs, estimators=["ipw", "snipw"])
    assert result.verdicts[0].verdict == "not enough evidence"


def test_cli_evaluate_prints_verdicts_and_writes_json(
    logged: tuple[Store, BanditLogs], tmp_path: Path
) -> None:
    store, logs = logged
    rows = logs.candidate_rows()
    scores = rows[["decision_id", "item_id"]].assign(score=better(rows))
    path = tmp_path / "better.parquet"
    scores.to_parquet(path)
    out = tmp_path / "result.json"
    result = CliRunner().invoke(
        app,
        [
            "--data", str(store.root), "evaluate", "--policy", f"mine={path}",
            "--policy", "tests.ope.test_offline:worse", "--temperature", str(TEMPERATURE),
            "--estimators", "ipw,snipw", "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mine" in result.output
    assert "better" in result.output
    doc = json.loads(out.read_text())
    assert {v["candidate"]: v["verdict"] for v in doc["verdicts"]} == {"mine": "better", "worse": "worse"}
    bad = CliRunner().invoke(app, ["--data", str(store.root), "evaluate", "--policy", "nowhere.parquet"])
    assert bad.exit_code == 2
    assert "no such file" in bad.output


def test_rounds_of_a_deterministic_holdout_count_as_unsupported(logged: tuple[Store, BanditLogs]) -> None:
    """A fixed arm (propensity 1) shows nothing about other actions: IPW would be biased low."""
    _, logs = logged
    n = logs.n_rounds
    fixed = np.arange(n) < n // 5
    held = BanditLogs(
        decision_id=logs.decision_id,
        actions=logs.actions,
        action=np.where(fixed, 0, logs.action),
        reward=logs.reward,
        pscore=np.where(fixed, 1.0, logs.pscore),
        position=logs.position,
        candidates=logs.candidates,
        context=logs.context,
        context_names=logs.context_names,
    )
    result = evaluate_offline(
        None, {"better": better}, logs=held, temperature=TEMPERATURE, estimators=["ipw"]
    )
    assert result.unsupported["better"] > 0.1
    assert result.verdicts[0].verdict == "not enough evidence"
    assert "never show" in result.verdicts[0].reason
