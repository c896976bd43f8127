"""The same steps on PySpark (local mode) give the same interactions as on DuckDB."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from revealed.pipeline import connect
from revealed.pipeline.process import Built, build
from revealed.settings import Settings
from revealed.sim.journeys import simulate_journeys
from revealed.sim.ranking import simulate_ranking
from revealed.store import Store
from revealed.store.files import ingest_file

pytestmark = pytest.mark.spark


def _normalise(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Spark hands back naive UTC times and some sums as decimals: bring them to DuckDB's types."""
    out = frame[like.columns].copy()
    for column in like.columns:
        kind = like[column].dtype
        if str(kind).startswith("datetime64") and getattr(out[column].dt, "tz", None) is None:
            out[column] = pd.to_datetime(out[column]).dt.tz_localize("UTC")
        elif kind.kind in "fi" and out[column].dtype == object:
            out[column] = out[column].astype(float)
    return out


def test_interactions_on_spark_equal_duckdb(tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a JDK (17 or 21) on the PATH")
    store = Store(Settings(data_dir=tmp_path / "data"))
    for i, sim in enumerate((simulate_ranking(400, 3), simulate_journeys(400, 3))):
        for path in sim.write(tmp_path / f"sim{i}").values():
            ingest_file(store.journal, path)
    store.seal()
    cut = datetime.now(UTC) + timedelta(hours=1)

    duck = connect(store)
    on_duck = build(duck, until=cut)
    expected = duck.backend.to_pyarrow(on_duck.interactions).to_pandas()

    spark = connect(store, engine="spark")
    on_spark = build(spark, until=cut)
    got = spark.backend.to_pyarrow(on_spark.interactions).to_pandas()

    assert on_spark.fitted.markov == pytest.approx(on_duck.fitted.markov, rel=1e-9)

    # the EM sees the same inputs up to the engines' float sums: equal to ~1e-10
    def effects(built: Built) -> dict[tuple[str, str, str], float]:
        return {
            (kind, channel, name): value
            for kind, by in built.fitted.hazard.effects.items()
            for channel, effect in by.items()
            for name, value in (("lift", effect.lift), ("decay", effect.decay))
        }

    assert effects(on_spark) == pytest.approx(effects(on_duck), rel=1e-6, abs=1e-12)
    keys = ["decision_id", "item_id"]
    assert len(got) == len(expected) > 0
    expected = expected.sort_values(keys).reset_index(drop=True)
    got = _normalise(got, expected).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-9)
    outcomes = spark.backend.to_pyarrow(on_spark.decision_outcomes).num_rows
    assert outcomes == duck.backend.to_pyarrow(on_duck.decision_outcomes).num_rows
    store.close()
