"""The examination estimators against the ranking simulator's truth, and their input checks.

Each estimator runs on 200k simulated sessions of 10 positions under its own assumptions: a PBM
world without bots or accidental clicks (the pipeline's quality step removes those), logged
by randomised interventions over all 10 slots (`RandomizedIntervention`), or by the production
ranker and three historical rankers that disagree (`InterventionHarvesting`, and `RegressionEM`
with relevance features that determine relevance: the true grade, one-hot, plus two catalogue
features that do not matter). The interactions rows are built straight from the simulation's
Arrow decisions and click events in DuckDB, which is what the pipeline's `interactions` hold.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from typing import Any

import duckdb
import ibis
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from revealed.bias.examination import (
    ExaminationEstimate,
    ExaminationEstimator,
    ExaminationNotIdentified,
    ExaminationWarning,
    FewQueries,
)
from revealed.bias.harvest import InterventionHarvesting
from revealed.bias.randomized import RandomizedIntervention
from revealed.bias.regression_em import RegressionEM
from revealed.sim.ranking import RankingConfig, simulate_ranking
from revealed.sim.world import Simulation

SESSIONS = 200_000
TOLERANCE = 0.03
GRADES = ("g1", "g2", "g3", "g4")
FEATURES = (*GRADES, "f0", "rating")
RANDOMISED_MIX = {"ranker": 0.5, "swap_adjacent": 0.25, "top_n_shuffle": 0.25}
LOGGED_MIX = {"ranker": 0.4, "historical": 0.6}


def _config(mix: dict[str, float], **changes: Any) -> RankingConfig:
    settings: dict[str, Any] = {"bots": 0, "accidental_clicks": 0.0, "intervention_n": 10, **changes}
    return RankingConfig(policy_mix=mix, **settings)


def interactions(sim: Simulation) -> pa.Table:
    """One row per served item with the interactions columns, plus relevance features: the true
    grade one-hot (g1..g4) and two catalogue features (f0, rating)."""
    decisions = sim.decisions
    items = decisions.column("items").combine_chunks()
    parent = pc.list_parent_indices(items)
    shown = pc.list_flatten(items)
    policy = decisions.column("policy").combine_chunks().dictionary_encode()
    names = pa.array([msgspec.json.decode(doc)["name"] for doc in policy.dictionary.to_pylist()])
    catalogue = sim.items
    features = [msgspec.json.decode(doc) for doc in catalogue.column("features").to_pylist()]
    rows = pa.table(
        {
            "session": decisions.column("decision_id").take(parent),
            "query_id": decisions.column("query_id").take(parent),
            "item_id": shown.field("item_id"),
            "position": shown.field("position").cast(pa.int64()),
            "original_position": shown.field("original_position").cast(pa.int64()),
            "model": decisions.column("model").take(parent),
            "model_version": decisions.column("model_version").take(parent),
            "policy": names.take(policy.indices).take(parent),
        }
    )
    events = sim.events
    clicks = events.filter(pc.equal(events.column("type"), "click")).select(["decision_id", "item_id"])
    relevance = sim.truth.tables["relevance"]
    item_features = pa.table(
        {
            "item_id": catalogue.column("item_id"),
            "f0": pa.array([f["f0"] for f in features]),
            "rating": pa.array([f["rating"] for f in features]),
        }
    )
    con = duckdb.connect()
    for name, table in (("r", rows), ("c", clicks), ("g", relevance), ("f", item_features)):
        con.register(name, table)
    grades = ", ".join(f"(g.grade = {j})::double as g{j}" for j in range(1, 5))
    return con.sql(
        f"""
        select r.*, c.decision_id is not null as clicked, {grades}, f.f0, f.rating
        from r
        left join (select distinct decision_id, item_id from c) c
          on c.decision_id = r.session and c.item_id = r.item_id
        join g on g.query = cast(split_part(r.query_id, ':', 2) as bigint) and g.item_id = r.item_id
        join f on f.item_id = r.item_id
        """
    ).to_arrow_table()


def truth(sim: Simulation) -> np.ndarray:
    return np.asarray(sim.truth.tables["examination"].column("relative_examination").to_numpy())


@pytest.fixture(scope="module")
def randomised() -> tuple[ibis.Table, np.ndarray]:
    sim = simulate_ranking(SESSIONS, 11, config=_config(RANDOMISED_MIX))
    return ibis.memtable(interactions(sim)), truth(sim)


@pytest.fixture(scope="module")
def logged() -> tuple[ibis.Table, np.ndarray]:
    sim = simulate_ranking(SESSIONS, 12, config=_config(LOGGED_MIX))
    return ibis.memtable(interactions(sim)), truth(sim)


def _top2(n: int = 4_000, queries: int = 40, *, seed: int = 0, shuffle: bool = True) -> ibis.Table:
    """Top-2 shuffles of each query's two items, examination (1.0, 0.5); `x` is relevance-ish."""
    rng = np.random.default_rng(seed)
    query = rng.integers(0, queries, n)
    swapped = (rng.random(n) < 0.5) & shuffle
    original = np.stack([swapped, ~swapped], axis=1).astype(np.int64)
    relevance = rng.uniform(0.2, 0.8, (queries, 2))[query[:, None], original]
    clicked = rng.random((n, 2)) < np.array([1.0, 0.5]) * relevance
    session = np.repeat(np.arange(n), 2)
    return ibis.memtable(
        {
            "session": session.astype(str),
            "query_id": np.repeat(query, 2).astype(str),
            "item_id": (np.repeat(query, 2) * 2 + original.ravel()).astype(str),
            "position": np.tile([0, 1], n),
            "original_position": original.ravel(),
            "clicked": clicked.ravel(),
            "model": "ranker",
            "model_version": "v1",
            "policy": "top_n_shuffle" if shuffle else "ranker",
            "x": relevance.ravel() + rng.normal(0, 0.1, 2 * n),
        }
    )


ESTIMATORS: list[ExaminationEstimator] = [
    RandomizedIntervention(),
    InterventionHarvesting(),
    RegressionEM(features=("x",)),
]


# --- against the truth ------------------------------------------------------------------------------


def _check_curve(found: ExaminationEstimate, true: np.ndarray) -> None:
    assert found.positions == tuple(range(10))
    assert found.unidentified == ()
    estimate, low, high = (np.array(v) for v in (found.examination, found.ci_low, found.ci_high))
    assert estimate[0] == low[0] == high[0] == 1.0
    assert np.all(low <= estimate)
    assert np.all(estimate <= high)
    error = np.abs(estimate - true)
    assert error.max() <= TOLERANCE, f"max abs error {error.max():.4f} at position {error.argmax()}"
    covered = (low <= true) & (true <= high)
    assert covered[1:].sum() >= 7, f"the intervals miss the truth at positions {np.flatnonzero(~covered)}"


@pytest.mark.filterwarnings("error::revealed.bias.examination.ExaminationWarning")
def test_randomized_recovers_the_true_examination(randomised: tuple[ibis.Table, np.ndarray]) -> None:
    table, true = randomised
    found = RandomizedIntervention().estimate(table)
    _check_curve(found, true)
    assert found.method == "randomized"
    assert found.sessions == pytest.approx(SESSIONS / 2, rel=0.02)  # only the intervention sessions


@pytest.mark.filterwarnings("error::revealed.bias.examination.ExaminationWarning")
def test_harvest_recovers_the_true_examination_without_randomisation(
    logged: tuple[ibis.Table, np.ndarray],
) -> None:
    table, true = logged
    assert table.original_position.notnull().sum().to_pyarrow().as_py() == 0
    found = InterventionHarvesting().estimate(table)
    _check_curve(found, true)
    assert (found.sessions, found.queries) == (SESSIONS, 300)


@pytest.mark.filterwarnings("error::revealed.bias.examination.ExaminationWarning")
def test_regression_em_recovers_the_true_examination(logged: tuple[ibis.Table, np.ndarray]) -> None:
    table, true = logged
    found = RegressionEM(features=FEATURES).estimate(table)
    _check_curve(found, true)
    assert found.position_r2 is not None
    assert found.position_r2 < 0.3


def test_regression_em_warns_when_position_is_predictable_from_the_features(
    logged: tuple[ibis.Table, np.ndarray],
) -> None:
    table, _ = logged
    table = table.mutate(slot=table.position.cast("float64") + 0.01 * table.f0)
    with pytest.warns(ExaminationNotIdentified, match=r"explain 100\.0% of the variance of position"):
        found = RegressionEM(features=(*GRADES, "slot")).estimate(table)
    assert found.position_r2 is not None
    assert found.position_r2 > 0.99


def test_randomized_leaves_out_positions_no_intervention_moves() -> None:
    sim = simulate_ranking(20_000, 3, config=_config(RANDOMISED_MIX, intervention_n=5))
    with pytest.warns(ExaminationNotIdentified, match=r"positions \[5, 6, 7, 8, 9\] are not identified"):
        found = RandomizedIntervention().estimate(ibis.memtable(interactions(sim)))
    assert found.positions == (0, 1, 2, 3, 4)
    assert found.unidentified == (5, 6, 7, 8, 9)


def test_randomized_says_which_rankers_it_found_when_nothing_was_randomised(
    logged: tuple[ibis.Table, np.ndarray],
) -> None:
    table, _ = logged
    with pytest.raises(ValueError, match="no randomised interventions logged") as raised:
        RandomizedIntervention().estimate(table)
    assert "ranker/v1/ranker" in str(raised.value)
    assert "ranker-legacy/h1/historical" in str(raised.value)


def test_harvest_needs_an_item_at_two_positions() -> None:
    with pytest.raises(ValueError, match=r"no item was shown at two positions.*ranker/v1/ranker \(4000\)"):
        InterventionHarvesting().estimate(_top2(shuffle=False))


# --- every estimator ---------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.name)
def test_estimate_document(estimator: ExaminationEstimator) -> None:
    found = estimator.estimate(_top2(20_000))
    doc = found.to_dict()
    assert doc["method"] == estimator.name
    assert doc["positions"] == [0, 1]
    assert doc["examination"][0] == 1.0
    assert doc["ci_low"][1] < doc["examination"][1] < doc["ci_high"][1]
    assert abs(doc["examination"][1] - 0.5) < 0.05
    assert msgspec.json.decode(msgspec.json.encode(doc)) == doc
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.method = "other"  # type: ignore[misc]


def test_names_are_distinct() -> None:
    assert len({e.name for e in ESTIMATORS}) == len(ESTIMATORS)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.name)
def test_few_queries_warn(estimator: ExaminationEstimator) -> None:
    with pytest.warns(FewQueries, match="only 5 queries"):
        estimator.estimate(_top2(4_000, queries=5))


def test_warnings_share_a_base() -> None:
    assert issubclass(ExaminationNotIdentified, ExaminationWarning)
    assert issubclass(FewQueries, ExaminationWarning)
    assert issubclass(ExaminationWarning, UserWarning)


def _invalid_tables() -> list[tuple[ExaminationEstimator, Any, type[Exception], str]]:
    rows = _top2()
    none = rows.filter(rows.position < 0)
    return [
        (
            RandomizedIntervention(),
            rows.drop("original_position"),
            ValueError,
            "'original_position'.*missing",
        ),
        (InterventionHarvesting(), rows.drop("item_id"), ValueError, "'item_id' \\(string\\) is missing"),
        (RegressionEM(features=("y",)), rows, ValueError, "'y' \\(numeric\\) is missing"),
        (
            RandomizedIntervention(),
            rows.mutate(position=rows.position.cast("string")),
            ValueError,
            "'position' should be integer, found string",
        ),
        (
            InterventionHarvesting(),
            rows.mutate(clicked=rows.clicked.cast("int64")),
            ValueError,
            "'clicked' should be boolean",
        ),
        (RegressionEM(features=("x",)), rows.mutate(x=rows.model), ValueError, "'x' should be numeric"),
        (InterventionHarvesting(), rows.mutate(position=rows.position - 1), ValueError, "0-based ranks"),
        (RandomizedIntervention(), none, ValueError, "no randomised interventions logged.*found.*: none"),
        (InterventionHarvesting(), none, ValueError, "no rows"),
        (RegressionEM(features=("x",)), none, ValueError, "no rows"),
        (
            RegressionEM(features=("x",)),
            rows.mutate(x=(rows.position == 0).ifelse(ibis.null("float64"), rows.x)),
            ValueError,
            r"found nulls in \['x'\]",
        ),
        (RegressionEM(features=("x",)), rows.mutate(x=ibis.literal(1.0)), ValueError, "take a single value"),
        (
            InterventionHarvesting(),
            rows.mutate(clicked=(rows.position == 0).ifelse(ibis.null("boolean"), rows.clicked)),
            ValueError,
            "clicked: expected a value in every row, found 4000 nulls",
        ),
        (
            RandomizedIntervention(),
            rows.mutate(clicked=ibis.literal(False)),
            ValueError,
            "no intervention that moved an item into or out of position 0",
        ),
        (RandomizedIntervention(), pa.table({"session": ["s"]}), TypeError, "expected an ibis.Table"),
    ]


@pytest.mark.parametrize(("estimator", "table", "error", "message"), _invalid_tables())
def test_invalid_tables(
    estimator: ExaminationEstimator, table: Any, error: type[Exception], message: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExaminationWarning)
        with pytest.raises(error, match=message):
            estimator.estimate(table)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RandomizedIntervention(level=1.0), r"level: expected a coverage in \(0, 1\)"),
        (lambda: InterventionHarvesting(level=0), r"level: expected a coverage in \(0, 1\)"),
        (lambda: RegressionEM(features=()), "features: expected a non-empty tuple"),
        (lambda: RegressionEM(features="g1"), "features: expected a non-empty tuple"),  # type: ignore[arg-type]
        (lambda: RegressionEM(features=("g1", "g1")), "features: expected distinct feature columns"),
        (lambda: RegressionEM(features=("position",)), "features: expected distinct feature columns"),
        (lambda: RegressionEM(features=("g1",), max_r2=0.0), r"max_r2: expected a share in \(0, 1\]"),
        (lambda: RegressionEM(features=("g1",), em_iterations=-1), "em_iterations: expected an integer"),
    ],
)
def test_invalid_configuration(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_features_may_be_any_sequence() -> None:
    assert RegressionEM(features=["g1", "g2"]).features == ("g1", "g2")  # type: ignore[arg-type]


# --- coverage over seeds -----------------------------------------------------------------------------


@pytest.mark.slow
def test_intervals_cover_the_truth_in_most_seeds() -> None:
    """Pooled over 6 seeds and the 9 positions below the top, each method's 95% intervals cover the
    truth at least 85% of the time, and every seed is within the tolerance everywhere."""
    covered: dict[str, list[bool]] = {"randomized": [], "harvest": [], "em": []}
    for seed in range(100, 106):
        for mix, estimators in (
            (RANDOMISED_MIX, [RandomizedIntervention()]),
            (LOGGED_MIX, [InterventionHarvesting(), RegressionEM(features=FEATURES)]),
        ):
            sim = simulate_ranking(SESSIONS, seed, config=_config(mix))
            table, true = ibis.memtable(interactions(sim)), truth(sim)
            for estimator in estimators:
                found = estimator.estimate(table)
                low, high = np.array(found.ci_low), np.array(found.ci_high)
                assert np.abs(np.array(found.examination) - true).max() <= TOLERANCE, (estimator.name, seed)
                covered[estimator.name] += ((low <= true) & (true <= high))[1:].tolist()
    for name, hits in covered.items():
        assert np.mean(hits) >= 0.85, f"{name}: intervals cover the truth {np.mean(hits):.0%} of the time"


# --- the same estimates on Spark -----------------------------------------------------------------------


@pytest.mark.spark
def test_spark_gives_the_duckdb_estimates() -> None:
    """The count tables are backend-neutral Ibis: on Spark (local mode) every estimate is DuckDB's."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a JDK (17 or 21)")
    from revealed.pipeline.engine import spark_session

    mix = {"ranker": 0.3, "historical": 0.3, "swap_adjacent": 0.2, "top_n_shuffle": 0.2}
    rows = interactions(simulate_ranking(20_000, 5, config=_config(mix)))
    backend: Any = ibis.pyspark.connect(spark_session())
    backend._session.createDataFrame(rows.to_pandas()).createOrReplaceTempView("examination_rows")
    on_spark = backend.table("examination_rows")
    # pandas turns a nullable integer column into floats on the way in
    on_spark = on_spark.mutate(original_position=on_spark.original_position.cast("int64"))
    for estimator in (RandomizedIntervention(), InterventionHarvesting(), RegressionEM(features=FEATURES)):
        duck, spark = estimator.estimate(ibis.memtable(rows)), estimator.estimate(on_spark)
        assert spark.positions == duck.positions
        assert spark.sessions == duck.sessions
        for field in ("examination", "ci_low", "ci_high"):
            assert getattr(spark, field) == pytest.approx(getattr(duck, field), rel=1e-9), (
                estimator.name,
                field,
            )
