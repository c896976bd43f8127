"""Uplift against truth: the bandit world's holdout through a real store, a synthetic world with
known heterogeneous effects, hand-computed curves, and properties of the Qini curve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import ibis
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from revealed.ope.uplift import (
    TLearner,
    UpliftData,
    XLearner,
    cross_fitted_cate,
    ipw_uplift,
    plot_uplift_curves,
    uplift_curve,
    uplift_units,
)
from revealed.pipeline.engine import connect
from revealed.schema.arrow import EVENTS
from revealed.settings import Settings
from revealed.sim.bandit import BanditConfig, BanditWorld, simulate_bandit
from revealed.sim.frame import HOUR_US
from revealed.store import Store
from revealed.store.files import ingest_file

SEED, HORIZON_H = 4, 24.0
CONFIG = BanditConfig(holdout=0.5, users=20_000)


@dataclass(frozen=True)
class Holdout:
    """The bandit experiment's units as the engine step built them, and their true effects."""

    any_click: UpliftData
    clicks: UpliftData
    #: per unit (aligned with the data): the true effect on P(any click), on expected clicks
    true_any: np.ndarray
    true_clicks: np.ndarray
    #: decisions per unit over the whole log: traffic is drawn independently of the arm
    decisions: np.ndarray


def _true_effects(sim: Any, table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit, over the rounds in its horizon: the model's expected clicks minus the default
    action's (v1 - v0 per round), and 1 - prod(1 - v) under each arm for P(any click)."""
    rounds = sim.truth.tables["rounds"].to_pandas()
    world = BanditWorld(SEED, CONFIG)
    x, q = np.stack(rounds["context"].to_numpy()), np.stack(rounds["q"].to_numpy())
    v1, v0 = (world.logging_policy(x) * q).sum(axis=1), q[:, CONFIG.default_action]
    units = table.column("unit").to_pylist()
    at = dict(zip(units, table.column("assigned_at").cast(pa.int64()).to_pylist(), strict=True))
    index = {u: i for i, u in enumerate(units)}
    users = sim.decisions.column("user_id").to_pylist()
    unit = np.array([index.get(u, -1) for u in users])
    since = sim.decisions.column("timestamp").cast(pa.int64()).to_numpy() - np.array(
        [at.get(u, 0) for u in users]
    )
    # a click lands 1-20 s after its round: rounds in the horizon's last 20 s are a rounding error
    inside = (unit >= 0) & (since >= 0) & (since < HORIZON_H * HOUR_US)
    n = table.num_rows

    def per_unit(w: np.ndarray) -> np.ndarray:
        return np.bincount(unit[inside], weights=w[inside], minlength=n)

    true_clicks = per_unit(v1 - v0)
    true_any = np.exp(per_unit(np.log1p(-v0))) - np.exp(per_unit(np.log1p(-v1)))
    decisions = np.bincount(unit[unit >= 0], minlength=n).astype(float)
    return true_any, true_clicks, decisions


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> Holdout:
    root = tmp_path_factory.mktemp("uplift")
    sim = simulate_bandit(40_000, seed=SEED, config=CONFIG)
    store = Store(Settings(data_dir=root / "data"))
    for path in sim.write(root / "sim").values():
        assert ingest_file(store.journal, path).counts.get("rejected", 0) == 0
    store.seal()
    engine = connect(store)
    events = engine.table("events")
    step = {"experiment": "bandit-v1", "treatment_arm": "model", "horizon_hours": HORIZON_H}
    any_table = uplift_units(events, **step, control_arm="holdout", aggregate="any").to_pyarrow()  # type: ignore[arg-type]
    count_table = uplift_units(events, **step, aggregate="count").to_pyarrow()  # type: ignore[arg-type]
    engine.close()
    store.close()
    assert any_table.column("unit").equals(count_table.column("unit"))
    return Holdout(
        UpliftData.from_arrow(any_table),
        UpliftData.from_arrow(count_table),
        *_true_effects(sim, any_table),
    )


def test_engine_step_gives_one_row_per_unit_with_the_logged_arm_probabilities(holdout: Holdout) -> None:
    data = holdout.any_click
    assert len(np.unique(data.unit)) == len(data.unit) > 5_000
    assert set(np.unique(data.propensity)) == {0.5}
    assert data.treatment.mean() == pytest.approx(0.5, abs=0.03)
    assert set(np.unique(data.outcome)) == {0.0, 1.0}
    assert (holdout.clicks.outcome >= data.outcome).all(), "any click <= number of clicks"


def test_ipw_uplift_on_the_holdout_covers_the_true_uplift(holdout: Holdout) -> None:
    data = holdout.any_click
    truth = holdout.true_any.mean()
    for normalize in (True, False):
        est = ipw_uplift(
            outcome=data.outcome, treatment=data.treatment, propensity=data.propensity, normalize=normalize
        )
        assert abs(est.value - truth) < 3 * est.se
        assert est.ci[0] < truth < est.ci[1]
        assert est.ci[0] > 0, "the model's uplift on P(any click) is detectable"
    # the number of clicks is heavy-tailed (a few users make most rounds): wider, still honest
    clicks = holdout.clicks
    est = ipw_uplift(outcome=clicks.outcome, treatment=clicks.treatment, propensity=clicks.propensity)
    assert abs(est.value - holdout.true_clicks.mean()) < 3 * est.se


def test_meta_learners_average_effect_agrees_with_the_truth(holdout: Holdout) -> None:
    data = holdout.any_click
    ipw = ipw_uplift(outcome=data.outcome, treatment=data.treatment, propensity=data.propensity)
    _, inverse = np.unique(holdout.decisions, return_inverse=True)
    best = np.bincount(inverse, weights=holdout.true_any) / np.bincount(inverse)
    model = HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=8, min_samples_leaf=50, random_state=0)
    for learner in (TLearner(model=model, folds=3), XLearner(model=model, folds=3)):
        est = learner.fit_predict(
            holdout.decisions[:, None],
            treatment=data.treatment,
            outcome=data.outcome,
            treatment_probability=data.treatment_probability,
        )
        assert abs(est.ate - holdout.true_any.mean()) < 3 * ipw.se, learner.name
        # the best any learner can do with this covariate: the true effect's mean per value of it
        # (most of a unit's effect comes from its rounds' contexts, which no covariate here holds)
        assert np.corrcoef(est.cate, best[inverse])[0, 1] > 0.5, learner.name


def _synthetic(n: int, seed: int) -> dict[str, np.ndarray]:
    """Known heterogeneous effects, and a design whose treatment probability depends on a
    covariate that also drives the outcome (so the unweighted difference is biased)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    tau = 0.5 + x[:, 0] + 0.5 * (x[:, 2] > 0)
    p = 0.2 + 0.6 / (1 + np.exp(-2 * x[:, 1]))
    t = (rng.random(n) < p).astype(np.int8)
    y = 2 * x[:, 1] + np.sin(x[:, 3]) + t * tau + rng.normal(0, 1, n)
    return {"x": x, "tau": tau, "p": p, "t": t, "y": y, "own": np.where(t == 1, p, 1 - p)}


def test_x_learner_recovers_heterogeneous_effects_and_ranks_better_than_random() -> None:
    w = _synthetic(4_000, 7)
    est = XLearner(folds=3).fit_predict(
        w["x"], treatment=w["t"], outcome=w["y"], treatment_probability=w["p"]
    )
    assert np.corrcoef(est.cate, w["tau"])[0, 1] > 0.8
    assert est.ate == pytest.approx(w["tau"].mean(), abs=0.1)
    ipw = ipw_uplift(outcome=w["y"], treatment=w["t"], propensity=w["own"])
    assert abs(ipw.value - w["tau"].mean()) < 3 * ipw.se
    naive = w["y"][w["t"] == 1].mean() - w["y"][w["t"] == 0].mean()
    assert abs(naive - w["tau"].mean()) > 10 * ipw.se, "without the weights the difference is biased"

    curves = {
        name: uplift_curve(score=score, treatment=w["t"], outcome=w["y"], propensity=w["own"])
        for name, score in (
            ("truth", w["tau"]),
            ("x_learner", est.cate),
            ("random", np.random.default_rng(0).random(len(w["y"]))),
        )
    }
    assert curves["truth"].qini_coefficient > curves["x_learner"].qini_coefficient > 0.1
    assert abs(curves["random"].qini_coefficient) < 0.05
    assert curves["truth"].auuc > curves["random"].auuc
    for c in curves.values():
        assert c.qini[-1] == pytest.approx(curves["truth"].qini[-1])


@pytest.mark.parametrize("normalize", [True, False])
def test_ipw_intervals_cover_the_population_effect_at_their_level(normalize: bool) -> None:
    """Over 300 draws of the synthetic world, E[tau] = 0.5 + 0 + 0.25 is inside the 95% interval
    about 95% of the time (binomial sd 1.3 points)."""
    covered = [
        (e.ci[0] < 0.75 < e.ci[1])
        for e in (
            ipw_uplift(outcome=w["y"], treatment=w["t"], propensity=w["own"], normalize=normalize)
            for w in (_synthetic(1_000, seed) for seed in range(300))
        )
    ]
    assert 0.91 <= np.mean(covered) <= 0.99


def test_cross_fitting_keeps_a_unit_out_of_the_models_that_predict_it() -> None:
    """With no effect at all, an in-sample T-learner's CATE chases each unit's own noise (+ for
    the treated, - for the controls); the out-of-fold one cannot."""
    w = _synthetic(1_000, 3)
    noise = np.random.default_rng(1).normal(size=1_000)
    own = np.where(w["t"] == 1, noise, -noise)
    model = HistGradientBoostingRegressor(max_iter=100, min_samples_leaf=5, random_state=0)
    est = TLearner(model=model, folds=4).fit_predict(w["x"], treatment=w["t"], outcome=noise)
    assert abs(np.corrcoef(est.cate, own)[0, 1]) < 0.15
    treated, control = w["t"] == 1, w["t"] == 0
    with threadpool_limits(1):
        mu1 = model.fit(w["x"][treated], noise[treated]).predict(w["x"])
        mu0 = model.fit(w["x"][control], noise[control]).predict(w["x"])
    assert np.corrcoef(mu1 - mu0, own)[0, 1] > 0.3, "in-sample fits see their own noise"


def test_qini_and_uplift_curves_by_hand() -> None:
    """Top 1: one treated with outcome 1 (no controls yet); top 2: + a control at 0; top 3: + a
    treated at 0 (treated mean 1/2); all 4: + a control at 1, the arms' means are equal."""
    c = uplift_curve(score=[0.9, 0.8, 0.7, 0.6], treatment=[1, 0, 1, 0], outcome=[1, 0, 0, 1])
    assert c.targeted.tolist() == [0, 1, 2, 3, 4]
    assert c.qini.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # n_t * (mean_t - mean_c)
    assert c.uplift.tolist() == [0.0, 1.0, 2.0, 1.5, 0.0]  # k * (mean_t - mean_c)
    # trapezoids on (k / n, qini / n), minus the random line's area (0: it ends at 0)
    assert c.qini_coefficient == pytest.approx(0.25 * (0.125 + 0.25 + 0.25 + 0.125))
    assert c.auuc == pytest.approx(0.25 * (0.125 + 0.375 + 0.4375 + 0.1875))
    # ties are targeted together: one point for the tied pair
    tied = uplift_curve(score=[1, 1, 0, 0], treatment=[1, 0, 1, 0], outcome=[1, 0, 0, 1])
    assert tied.targeted.tolist() == [0, 2, 4]
    assert tied.qini.tolist() == [0.0, 1.0, 0.0]
    # with propensities, each arm's mean is weighted by 1 / p
    w = uplift_curve(score=[3, 2, 1], treatment=[1, 1, 0], outcome=[1, 0, 0], propensity=[0.5, 0.25, 0.5])
    assert w.qini.tolist() == pytest.approx([0.0, 1.0, 2 * (2 / 6), 2 * (2 / 6)])


arms = st.lists(st.tuples(st.integers(0, 1), st.floats(-5, 5), st.floats(0.05, 1.0)), min_size=2, max_size=40)


@given(rows=arms, seed=st.integers(0, 2**16), ties=st.booleans())
@settings(max_examples=80, deadline=None)
def test_qini_curve_properties(rows: list[tuple[int, float, float]], seed: int, ties: bool) -> None:
    t, y, p = (np.array(v) for v in zip(*rows, strict=True))
    if t.min() == t.max():
        t[0] = 1 - t[0]
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 3, len(t)).astype(float) if ties else rng.normal(size=len(t))
    curve = uplift_curve(score=score, treatment=t, outcome=y, propensity=p)
    random = uplift_curve(score=rng.random(len(t)), treatment=t, outcome=y, propensity=p)
    assert curve.qini[0] == curve.uplift[0] == curve.targeted[0] == 0
    assert curve.targeted[-1] == random.targeted[-1] == len(t)
    assert curve.qini[-1] == pytest.approx(random.qini[-1], abs=1e-9)
    assert curve.uplift[-1] == pytest.approx(random.uplift[-1], abs=1e-9)
    # a ranking is all that matters: a strictly increasing transform changes nothing
    same = uplift_curve(score=np.exp(score / 3) - 7, treatment=t, outcome=y, propensity=p)
    assert np.array_equal(same.qini, curve.qini)
    # the random line joins the same end points
    assert curve.random_qini[0] == 0
    assert curve.random_qini[-1] == pytest.approx(curve.qini[-1])


def _events(rows: list[dict[str, Any]]) -> ibis.Table:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    full = [
        {
            "received_at": start,
            "user_id": None,
            "value": None,
            "properties": None,
            **row,
            "timestamp": start + timedelta(hours=row["timestamp"]),
        }
        for row in rows
    ]
    return ibis.memtable(pa.Table.from_pylist(full, schema=EVENTS))


def _assign(event_id: str, user: str, hours: float, arm: str, p: float, exp: str = "e1") -> dict[str, Any]:
    props = f'{{"arm":"{arm}","experiment":"{exp}"}}'
    return {
        "event_id": event_id,
        "type": "assignment",
        "user_id": user,
        "timestamp": hours,
        "value": p,
        "properties": props,
    }


def _event(
    event_id: str, user: str, hours: float, kind: str = "purchase", value: float = 1.0
) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "user_id": user, "timestamp": hours, "value": value}


EXAMPLE = [
    _assign("a1", "u1", 1.0, "model", 0.8),
    _assign("a1", "u1", 1.0, "model", 0.8),  # a duplicate
    _assign("a2", "u1", 5.0, "holdout", 0.2),  # a later assignment: the first one wins
    _assign("a3", "u2", 2.0, "holdout", 0.2),
    _assign("a4", "u3", 2.0, "other", 0.1),
    _assign("a5", "u4", 40.0, "model", 0.8),  # its horizon ends after the data: censored
    _assign("a6", "u5", 1.0, "model", 0.8, exp="e2"),  # another experiment
    _event("p0", "u1", 0.5, value=100.0),  # before the assignment
    _event("p1", "u1", 1.0, value=10.0),
    _event("p1", "u1", 1.0, value=10.0),  # a duplicate
    _event("p2", "u1", 12.0, value=5.0),
    _event("p3", "u1", 25.5, value=7.0),  # after the 24 h horizon
    _event("c1", "u1", 2.0, kind="click"),
    _event("p4", "u2", 3.0, value=2.5),
    _event("p5", "u4", 41.0, value=1.0),
    _event("p6", "u3", 3.0, value=4.0),
]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"aggregate": "sum"}, {"u1": (True, 0.8, 15.0), "u2": (False, 0.2, 2.5), "u3": (False, 0.1, 4.0)}),
        ({"aggregate": "count", "control_arm": "holdout"}, {"u1": (True, 0.8, 2.0), "u2": (False, 0.2, 1.0)}),
        (
            {"aggregate": "any", "outcome_types": ("click",)},
            {"u1": (True, 0.8, 1.0), "u2": (False, 0.2, 0.0), "u3": (False, 0.1, 0.0)},
        ),
        (
            {"aggregate": "sum", "drop_censored": False, "control_arm": "holdout"},
            {"u1": (True, 0.8, 15.0), "u2": (False, 0.2, 2.5), "u4": (True, 0.8, 1.0)},
        ),
    ],
)
def test_engine_step_by_hand(options: dict[str, Any], expected: dict[str, tuple[bool, float, float]]) -> None:
    kwargs: dict[str, Any] = {
        "experiment": "e1",
        "treatment_arm": "model",
        "horizon_hours": 24.0,
        "outcome_types": ("purchase",),
        **options,
    }
    table = ibis.duckdb.connect().to_pyarrow(uplift_units(_events(EXAMPLE), **kwargs))
    got = {row["unit"]: (row["treated"], row["propensity"], row["outcome"]) for row in table.to_pylist()}
    assert got == expected


def test_engine_step_joins_covariates_by_unit() -> None:
    cov = ibis.memtable({"user_id": ["u1", "u2"], "age": [30.0, 40.0]})
    step = uplift_units(
        _events(EXAMPLE), experiment="e1", treatment_arm="model", horizon_hours=24.0, covariates=cov
    )
    table = ibis.duckdb.connect().to_pyarrow(step)
    data = UpliftData.from_arrow(table)
    assert data.covariate_names == ("age",)
    assert data.covariates[:2, 0].tolist() == [30.0, 40.0]
    assert np.isnan(data.covariates[2, 0])
    assert data.treatment_probability.tolist() == pytest.approx([0.8, 0.8, 0.9])


def test_plot_writes_a_png(tmp_path: Path) -> None:
    w = _synthetic(300, 1)
    curve = uplift_curve(score=w["tau"], treatment=w["t"], outcome=w["y"], propensity=w["own"])
    path = plot_uplift_curves({"truth": curve}, out=tmp_path, name="qini")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


_Y, _T, _P = np.array([1.0, 0.0, 1.0]), np.array([1, 0, 1]), np.array([0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: ipw_uplift(outcome=_Y, treatment=[1, 1, 1], propensity=_P),
            "treatment: the control arm is empty",
        ),
        (
            lambda: ipw_uplift(outcome=_Y, treatment=[0, 0, 0], propensity=_P),
            "treatment: the treated arm is empty",
        ),
        (lambda: ipw_uplift(outcome=_Y, treatment=[1, 2, 0], propensity=_P), "treatment: expected 0/1"),
        (
            lambda: ipw_uplift(outcome=_Y, treatment=_T, propensity=[0.5, 0.0, 0.5]),
            "propensity: expected probabilities in",
        ),
        (lambda: ipw_uplift(outcome=_Y, treatment=_T, propensity=[0.5, 0.5]), "expected one value per unit"),
        (
            lambda: ipw_uplift(outcome=[1.0, np.nan, 0.0], treatment=_T, propensity=_P),
            "outcome: expected finite",
        ),
        (lambda: ipw_uplift(outcome=_Y, treatment=_T, propensity=_P, level=1.5), "level: expected"),
        (lambda: uplift_curve(score=[1.0], treatment=_T, outcome=_Y), "score: expected one finite number"),
        (lambda: XLearner(folds=1), "folds: expected at least 2"),
        (
            lambda: cross_fitted_cate(np.ones((3, 1)), treatment=_T, outcome=_Y, folds=2),
            "each arm needs at least",
        ),
        (
            lambda: cross_fitted_cate(np.ones((3, 1)), treatment=_T, outcome=_Y, learner=cast(Any, "s")),
            "learner: expected",
        ),
        (lambda: cross_fitted_cate(np.ones((2, 1)), treatment=_T, outcome=_Y), "covariates: expected an"),
        (
            lambda: uplift_units(_events(EXAMPLE), experiment="e1", treatment_arm="m", horizon_hours=0),
            "horizon_hours",
        ),
        (
            lambda: uplift_units(
                _events(EXAMPLE),
                experiment="e1",
                treatment_arm="m",
                horizon_hours=1,
                aggregate=cast(Any, "mean"),
            ),
            "aggregate: expected",
        ),
        (
            lambda: uplift_units(
                _events(EXAMPLE), experiment="e1", treatment_arm="m", horizon_hours=1, unit="who"
            ),
            "unit: expected a column",
        ),
        (
            lambda: uplift_units(
                _events(EXAMPLE), experiment="e1", treatment_arm="m", horizon_hours=1, outcome_types=()
            ),
            "outcome_types",
        ),
    ],
)
def test_invalid_inputs_name_the_field(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ("nope", "events: no assignment events found"),
        ("e1", "propensity: 1 assignment events carry no value"),
    ],
)
def test_collected_units_are_checked(experiment: str, message: str) -> None:
    rows = [*EXAMPLE, {**_assign("a9", "u9", 1.0, "model", 0.5), "value": None}]
    step = uplift_units(_events(rows), experiment=experiment, treatment_arm="model", horizon_hours=24.0)
    with pytest.raises(ValueError, match=message):
        UpliftData.from_arrow(ibis.duckdb.connect().to_pyarrow(step))


def test_one_empty_arm_is_refused_when_collected() -> None:
    step = uplift_units(
        _events(EXAMPLE), experiment="e1", treatment_arm="model", control_arm="nobody", horizon_hours=24.0
    )
    with pytest.raises(ValueError, match="treatment: the control arm is empty"):
        UpliftData.from_arrow(ibis.duckdb.connect().to_pyarrow(step))
