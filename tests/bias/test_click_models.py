"""Click models against the simulator's truth, by hand on tiny logs, and as properties.

Worlds: 20 queries x 10 items with known attractiveness (and satisfaction), each session a random
ranking of 10 of its query's items, clicks drawn by `revealed.sim.clickmodels`. Each model must
recover its own world's parameters, and have the lowest held-out conditional perplexity there
among the five. Attractiveness errors are judged in standard errors from the Fisher information
of ``Bernoulli(alpha * e)`` with the true examination ``e`` of every impression, so the tolerance
follows the sample size. The file is named ``test_click_models.py`` because the tests folders
have no ``__init__.py`` and ``tests/sim/test_clickmodels.py`` already takes that module name.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, replace
from typing import Any

import ibis
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibis.config import Config

from revealed.bias.click_counts import (
    click_pattern_counts,
    first_last_click_counts,
    pbm_counts,
    session_shape_errors,
    ubm_counts,
)
from revealed.bias.click_likelihood import FittedClickModel
from revealed.bias.clickmodels import (
    CLICK_MODEL_NAMES,
    fit_cascade,
    fit_click_model,
    fit_dbn,
    fit_dcm,
    fit_pbm,
    fit_sdbn,
    fit_ubm,
)
from revealed.sim.clickmodels import ClickModel, click_model

K = 10
QUERIES, ITEMS = 20, 10
SESSIONS, HELD_OUT = 30_000, 20_000
FIVE = ("pbm", "cascade", "dcm", "ubm", "dbn")
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class World:
    """Sessions drawn from one simulator model, with everything needed to judge a fit."""

    model: ClickModel
    alpha: Floats  # (QUERIES, ITEMS)
    sigma: Floats
    query: npt.NDArray[np.int64]  # per session
    items: npt.NDArray[np.int64]  # (sessions, K): item shown at each position
    clicked: npt.NDArray[np.bool_]
    examination: Floats  # the exact marginal P(E) of every impression

    @property
    def clicks(self) -> pa.Table:
        n = len(self.query)
        return pa.table(
            {
                "session": pa.array(np.repeat(np.arange(n), K)).cast(pa.string()),
                "query_id": pa.array(np.repeat(self.query, K)).cast(pa.string()),
                "item_id": pa.array(self.items.ravel()).cast(pa.string()),
                "position": pa.array(np.tile(np.arange(K), n)),
                "clicked": pa.array(self.clicked.ravel()),
            }
        )


@functools.cache
def world(name: str, sessions: int, seed: int) -> World:
    truth = np.random.default_rng(2026)  # the same items in every world and sample
    alpha = truth.uniform(0.05, 0.9, (QUERIES, ITEMS))
    sigma = truth.uniform(0.1, 0.9, (QUERIES, ITEMS))
    rng = np.random.default_rng(seed)
    query = rng.integers(QUERIES, size=sessions)
    items = np.argsort(rng.random((sessions, ITEMS)), axis=1)[:, :K]
    a, s = alpha[query[:, None], items], sigma[query[:, None], items]
    model = click_model(name, k=K)
    clicked = model.sample(a, rng, satisfaction=s).clicked
    return World(model, alpha, sigma, query, items, clicked, model.examination(a, satisfaction=s))


@functools.cache
def fitted(model: str, world_name: str, sessions: int) -> FittedClickModel:
    return fit_click_model(model, ibis.memtable(world(world_name, sessions, 1).clicks), ibis.duckdb.connect())


@pytest.fixture(scope="module")
def con() -> Any:
    return ibis.duckdb.connect()


def _table(sessions: list[tuple[str, list[str], list[bool]]]) -> ibis.Table:
    """A clicks table from (query_id, ranking, clicked flags) per session."""
    rows = [
        {"session": f"s{i}", "query_id": q, "item_id": u, "position": r, "clicked": c}
        for i, (q, items, flags) in enumerate(sessions)
        for r, (u, c) in enumerate(zip(items, flags, strict=True))
    ]
    return ibis.memtable(pa.Table.from_pylist(rows))


TINY = [("q", ["a", "b", "c"], [False, True, True]), ("q", ["b", "a", "c"], [True, False, False])]
TINY += [("q", ["c", "b", "a"], [False, False, False])]


def _by_cell(table: pa.Table, *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(row[k] for k in keys): row for row in table.to_pylist()}


# -- the sufficient statistics, by hand -------------------------------------------------------------


def test_counts_by_hand(con: Any) -> None:
    clicks = _table(TINY)
    pbm = _by_cell(con.to_pyarrow(pbm_counts(clicks)), "item_id", "position")
    assert (pbm["b", 0]["impressions"], pbm["b", 0]["clicks"], pbm["a", 1]["clicks"]) == (1, 1, 0)
    ubm = _by_cell(con.to_pyarrow(ubm_counts(clicks)), "item_id", "position", "previous_click")
    # (item, rank, previous click + 1): s1 a@0, b@1, c@2 after the click at 1; s2 b@0, then a@1 and c@2
    # after the click at 0; s3 c@0, b@1, a@2 without clicks
    s1, s2, s3 = (
        {("a", 0, 0), ("b", 1, 0), ("c", 2, 2)},
        {("b", 0, 0), ("a", 1, 1), ("c", 2, 1)},
        {("c", 0, 0)},
    )
    assert set(ubm) == s1 | s2 | s3 | {("b", 1, 0), ("a", 2, 0)}
    assert ubm["b", 1, 0]["impressions"] == 2
    assert ubm["b", 1, 0]["clicks"] == 1
    flc = _by_cell(con.to_pyarrow(first_last_click_counts(clicks)), "item_id", "position")
    columns = ("above_first", "first_clicks", "above_last", "last_clicks", "final_clicks")
    # s1: first click 1, last 2 (final); s2: first = last = 0; s3: no click (everything "above")
    assert tuple(flc["c", 2][c] for c in columns) == (0, 0, 1, 1, 1)  # s1 (below its first click) and s2
    assert tuple(flc["b", 0][c] for c in columns) == (1, 1, 1, 1, 0)  # s2
    assert tuple(flc["a", 1][c] for c in columns) == (0, 0, 0, 0, 0)  # s2, below its only click
    assert tuple(flc["b", 1][c] for c in columns) == (2, 1, 2, 0, 0)  # s1 and s3
    patterns = con.to_pyarrow(click_pattern_counts(clicks).order_by("items")).to_pylist()
    assert [(p["items"], p["clicks"], p["sessions"]) for p in patterns] == [
        (["a", "b", "c"], [False, True, True], 1),
        (["b", "a", "c"], [True, False, False], 1),
        (["c", "b", "a"], [False, False, False], 1),
    ]


def test_closed_forms_by_hand(con: Any) -> None:
    clicks = _table(TINY)
    cascade = fit_click_model("cascade", clicks, con)
    # first clicks / impressions at or above the first click, with (1, 1) pseudo-counts
    assert [cascade.attractiveness("q", u) for u in "abc"] == pytest.approx([1 / 4, (2 + 1) / (3 + 2), 1 / 3])
    assert cascade.examination.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])  # sessions with no click above
    dcm = fit_click_model("dcm", clicks, con, max_iter=0)
    # clicks / impressions at or above the last click; lambda = went on / clicks with a rank below
    assert [dcm.attractiveness("q", u) for u in "abc"] == pytest.approx([1 / 4, 3 / 5, 2 / 4])
    assert np.allclose(dcm.continuation, [(0 + 1) / (1 + 2), (1 + 1) / (1 + 2), (0 + 1) / (0 + 2)])
    sdbn = fit_click_model("sdbn", clicks, con)
    assert sdbn.pairs.equals(dcm.pairs)  # sorted by query, item
    assert np.allclose(sdbn.alpha, dcm.alpha)
    sigma = {row["item_id"]: row["satisfaction"] for row in sdbn.relevance().to_pylist()}
    assert sigma == pytest.approx({"a": 1 / 2, "b": (1 + 1) / (2 + 2), "c": (1 + 1) / (1 + 2)})


def test_pbm_em_finds_the_parameters_behind_exact_counts() -> None:
    """Expected counts without sampling noise: EM must land on the truth (theta[0] = 1)."""
    alpha, theta, n = np.array([0.8, 0.5, 0.2]), np.array([1.0, 0.6, 0.3]), 10**8
    cells = list(itertools.product(range(3), range(3)))
    counts = pa.table(
        {
            "query_id": ["q"] * 9,
            "item_id": [f"i{u}" for u, _ in cells],
            "position": [r for _, r in cells],
            "impressions": [n] * 9,
            "clicks": [round(n * alpha[u] * theta[r]) for u, r in cells],
        }
    )
    fit = fit_pbm(counts, prior=(1e-9, 1e-9), max_iter=20_000, tol=1e-12)
    assert fit.converged
    assert np.allclose(fit.examination, theta, atol=1e-5)
    assert np.allclose([fit.attractiveness("q", f"i{u}") for u in range(3)], alpha, atol=1e-5)


# -- likelihood: exact, normalised, and the simulator's marginals ---------------------------------

RANKING = ["a", "b", "c", "d"]
ALPHA = np.array([0.7, 0.2, 0.5, 0.4])
SIGMA = np.array([0.6, 0.3, 0.9, 0.5])


def _known(name: str) -> tuple[FittedClickModel, ClickModel]:
    """A fitted model with chosen parameters, and the simulator model it should agree with."""
    k = len(RANKING)
    sim = click_model("dbn", k=k, gamma=1.0) if name == "sdbn" else click_model(name, k=k)
    params = sim.params()
    pairs = pa.table({"query_id": ["q"] * k, "item_id": RANKING})
    shared = {
        "alpha": ALPHA,
        "impressions": np.ones(k),
        "examination": np.ones(k),
        "continuation": np.empty(0),
    }
    extra: dict[str, Any] = {"sigma": None}
    if name == "pbm":
        extra["examination"] = np.array(params["theta"])
    elif name == "ubm":
        gamma = np.array(params["gamma"])
        extra["examination_by_previous_click"] = np.where(np.tri(k, dtype=bool), gamma, np.nan)
    elif name == "dcm":
        extra["continuation"] = np.array(params["continuation"])
    elif name in ("dbn", "sdbn"):
        extra.update(sigma=SIGMA, continuation=np.array([params["gamma"]]))
    return FittedClickModel(name, pairs, **{**shared, **extra}), sim


@pytest.mark.parametrize("name", CLICK_MODEL_NAMES)
def test_session_probabilities_are_exact(name: str) -> None:
    """Over all 2^4 click patterns the probabilities sum to 1, and the click rates they imply, and
    the marginal perplexity, match the simulator's exact marginals."""
    model, sim = _known(name)
    patterns = [list(p) for p in itertools.product([False, True], repeat=len(RANKING))]
    one = [model.evaluate(_patterns([p], [1.0])).log_likelihood for p in patterns]
    probability = np.exp(one)
    assert probability.sum() == pytest.approx(1.0, abs=1e-4)  # 1e-4: cascade's clipped impossibles
    truth = sim.click_probability(ALPHA[None, :], satisfaction=SIGMA[None, :])[0]
    implied = (probability[:, None] * np.array(patterns)).sum(axis=0)
    assert implied == pytest.approx(truth, abs=1e-4)
    everything = model.evaluate(_patterns(patterns, list(probability)))
    entropy = -(truth * np.log2(truth) + (1 - truth) * np.log2(1 - truth))
    assert everything.marginal_perplexity == pytest.approx(2.0**entropy, rel=1e-4)


PATTERNS = pa.schema(
    [
        ("query_id", pa.string()),
        ("items", pa.list_(pa.string())),
        ("clicks", pa.list_(pa.bool_())),
        ("sessions", pa.float64()),
    ]
)


def _patterns(flags: list[list[bool]], weights: list[float]) -> pa.Table:
    """`click_pattern_counts` of sessions that all showed `RANKING`, with (fractional) weights."""
    n = len(flags)
    columns = {"query_id": ["q"] * n, "items": [RANKING] * n, "clicks": flags, "sessions": weights}
    return pa.table(columns, schema=PATTERNS)


# -- recovery and model choice on simulated worlds ----------------------------------------------


def _z(errors: Floats, information: Floats) -> Floats:
    return np.asarray(errors * np.sqrt(information), dtype=np.float64)


@pytest.mark.parametrize("sessions", [SESSIONS, pytest.param(200_000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", FIVE)
def test_recovers_its_own_parameters(name: str, sessions: int) -> None:
    w, fit = world(name, sessions, 1), fitted(name, name, sessions)
    assert fit.converged
    top = float(np.nanmax(np.array(w.model.params()["gamma"]))) if name == "ubm" else 1.0  # UBM scale
    assert fit.examination == pytest.approx(w.examination.mean(axis=0) / top, abs=0.03)
    # attractiveness, in standard errors: info = sum over impressions of e / (alpha (1 - alpha e))
    e, a = w.examination / top, w.alpha[w.query[:, None], w.items] * top
    cell = (w.query[:, None] * ITEMS + w.items).ravel()
    info = np.bincount(cell, (e / (a * (1 - a * e))).ravel(), minlength=QUERIES * ITEMS)
    rel = fit.relevance()
    pair = np.array(rel.column("query_id").to_pylist(), int) * ITEMS + np.array(
        rel.column("item_id").to_pylist(), int
    )
    z = _z(fit.alpha - w.alpha.ravel()[pair] * top, info[pair])
    assert np.abs(z).mean() < 1.1, np.abs(z).mean()  # about 0.8 for normal errors
    assert np.abs(z).max() < 5.0, np.abs(z).max()
    if name == "ubm":
        _check_ubm_gamma(w, fit, top)
    if name == "dcm":  # lambda at every rank with one below (the last is not identified)
        lam, truth = fit.continuation[:-1], np.array(w.model.params()["continuation"])[:-1]
        trials = w.clicked[:, :-1].sum(axis=0)
        assert np.abs(_z(lam - truth, trials / (truth * (1 - truth)))).max() < 5.0
    if name == "dbn":
        assert fit.continuation[0] == pytest.approx(w.model.params()["gamma"], abs=0.01)
        clicks_above_end = np.bincount(
            cell.reshape(-1, K)[:, :-1][w.clicked[:, :-1]], minlength=QUERIES * ITEMS
        )
        s = w.sigma.ravel()[pair]
        z = _z(fit.sigma - s, clicks_above_end[pair] / (s * (1 - s)))  # type: ignore[operator]
        assert np.abs(z).mean() < 1.3, np.abs(z).mean()
        assert np.abs(z).max() < 5.0, np.abs(z).max()


def _check_ubm_gamma(w: World, fit: FittedClickModel, top: float) -> None:
    """Every gamma[r, r'] with data, in standard errors (information from the true alphas)."""
    hits = np.where(w.clicked, np.arange(1, K + 1), 0)
    previous = np.zeros_like(hits)
    previous[:, 1:] = np.maximum.accumulate(hits, axis=1)[:, :-1]
    truth = np.array(w.model.params()["gamma"]) / top
    g = truth[np.arange(K), previous]
    a = w.alpha[w.query[:, None], w.items] * top
    cell = (np.arange(K) * K + previous).ravel()
    info = np.bincount(cell, (a / (g * (1 - a * g))).ravel(), minlength=K * K).reshape(K, K)
    estimate = fit.examination_by_previous_click
    assert estimate is not None
    seen = info > 0
    assert np.abs(_z(estimate[seen] - truth[seen], info[seen])).max() < 5.0


@pytest.mark.parametrize("sessions", [SESSIONS, pytest.param(200_000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", FIVE)
def test_own_model_has_the_lowest_held_out_perplexity(name: str, sessions: int, con: Any) -> None:
    held_out = con.to_pyarrow(click_pattern_counts(ibis.memtable(world(name, HELD_OUT, 2).clicks)))
    scores = {m: fitted(m, name, sessions).evaluate(held_out) for m in FIVE}
    perplexity = {m: s.mean_conditional_perplexity for m, s in scores.items()}
    assert min(perplexity, key=perplexity.__getitem__) == name, perplexity
    assert max(scores, key=lambda m: scores[m].log_likelihood) == name
    assert all(np.isfinite(s.log_likelihood) and s.sessions == HELD_OUT for s in scores.values())


def test_dcm_closed_form_underestimates_going_on_and_em_corrects_it(con: Any) -> None:
    clicks = ibis.memtable(world("dcm", SESSIONS, 1).clicks)
    truth = np.array(world("dcm", SESSIONS, 1).model.params()["continuation"])
    closed = fit_click_model("dcm", clicks, con, max_iter=0).continuation
    exact = fitted("dcm", "dcm", SESSIONS).continuation
    assert (truth - closed)[-2] > 0.1  # at deep ranks a later click is less likely, so stops look final
    assert np.abs(exact - truth)[:-1].max() < 0.04


def test_unseen_pairs_get_the_mean_attractiveness(con: Any) -> None:
    fit = fitted("pbm", "pbm", SESSIONS)
    assert fit.attractiveness("no such query", "0") == fit.default_attractiveness
    assert 0.05 < fit.default_attractiveness < 0.9
    sessions = [("new", [f"x{r}" for r in range(K)], [r == 1 for r in range(K)])]
    result = fit.evaluate(_table(sessions), con)
    expected = (
        np.log(fit.default_attractiveness * fit.examination[1])
        + np.log(np.delete(1 - fit.default_attractiveness * fit.examination, 1)).sum()
    )
    assert result.log_likelihood == pytest.approx(expected)


def test_relevance_table() -> None:
    dbn, pbm = fitted("dbn", "dbn", SESSIONS), fitted("pbm", "pbm", SESSIONS)
    table = dbn.relevance()
    assert table.column_names == [
        "query_id",
        "item_id",
        "impressions",
        "attractiveness",
        "satisfaction",
        "relevance",
    ]
    assert np.allclose(table.column("relevance").to_numpy(), dbn.alpha * dbn.sigma)  # type: ignore[operator]
    assert sum(table.column("impressions").to_pylist()) == SESSIONS * K
    assert pbm.relevance().column("satisfaction").null_count == QUERIES * ITEMS


# -- bad input --------------------------------------------------------------------------------------

GOOD = _table(TINY)
BAD = [
    (lambda: fit_click_model("pdm", GOOD), "name: expected one of ['pbm', 'cascade'"),
    (lambda: fit_click_model("pbm", GOOD.drop("clicked")), "clicks: missing column 'clicked'"),
    (
        lambda: fit_click_model("pbm", GOOD.mutate(position=GOOD.position.cast("string"))),
        "clicks.position: expected",
    ),
    (lambda: fit_click_model("pbm", GOOD.mutate(clicked=1)), "clicks.clicked: expected a boolean column"),
    (lambda: fit_click_model("pbm", pa.table({"a": [1]})), "clicks: expected an ibis.Table"),  # type: ignore[arg-type]
    (
        lambda: fit_click_model("dcm", GOOD.filter(GOOD.position != 1)),
        "clicks: session 's0' does not have positions",
    ),
    (lambda: fit_click_model("ubm", GOOD.union(GOOD)), "does not have positions 0..n-1 exactly once"),
    (lambda: fit_click_model("pbm", GOOD, prior=(0.0, 1.0)), "prior: expected two positive pseudo-counts"),
    (lambda: fit_click_model("dbn", GOOD, max_iter=-1), "max_iter: expected a number of EM iterations"),
    (lambda: fit_click_model("ubm", GOOD, tol=0), "tol: expected a positive change"),
    (
        lambda: fit_pbm(pa.table({"query_id": ["q"]})),
        "counts: expected pbm_counts(clicks) as a pyarrow.Table",
    ),
    (
        lambda: fit_cascade(pa.table({"query_id": pa.array([], pa.string())})),
        "first_last_click_counts(clicks)",
    ),
    (lambda: fit_dbn(pa.table({"query_id": ["q"]})), "patterns: expected click_pattern_counts(clicks)"),
    (lambda: fit_dbn(_patterns([], [])), "patterns: no sessions, so nothing to fit"),
    (lambda: replace(_known("pbm")[0], name="xbm"), "name: expected one of"),
    (lambda: replace(_known("dbn")[0], sigma=None), "sigma: 'dbn' needs satisfaction"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_named(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        call()


def test_scoring_longer_sessions_than_fitted_is_refused(con: Any) -> None:
    short = fit_click_model("pbm", _table(TINY), con)
    with pytest.raises(ValueError, match="data: sessions have up to 4 positions"):
        short.evaluate(_table([("q", ["a", "b", "c", "d"], [False] * 4)]), con)


# -- properties on random small logs ----------------------------------------------------------------

session = st.tuples(
    st.sampled_from(["q1", "q2"]),
    st.permutations(["a", "b", "c", "d"]).flatmap(lambda p: st.integers(1, 4).map(lambda n: p[:n])),
    st.lists(st.booleans(), min_size=4, max_size=4),
).map(lambda s: (s[0], list(s[1]), s[2][: len(s[1])]))


@settings(max_examples=25, deadline=None)
@given(st.lists(session, min_size=1, max_size=6))
def test_any_log_gives_probabilities_and_a_finite_likelihood(sessions: list[Any]) -> None:
    con = ibis.duckdb.connect()
    clicks = _table(sessions)
    counts, patterns = (
        con.to_pyarrow(first_last_click_counts(clicks)),
        con.to_pyarrow(click_pattern_counts(clicks)),
    )
    assert len(con.to_pyarrow(session_shape_errors(clicks))) == 0
    models = [
        fit_pbm(con.to_pyarrow(pbm_counts(clicks)), max_iter=200),
        fit_ubm(con.to_pyarrow(ubm_counts(clicks)), max_iter=200),
        fit_cascade(counts),
        fit_dcm(counts, patterns, max_iter=200),
        fit_sdbn(counts, patterns),
        fit_dbn(patterns, max_iter=200),
    ]
    for m in models:
        for values in (m.alpha, m.examination, m.continuation, m.sigma if m.sigma is not None else m.alpha):
            assert np.all((values >= 0) & (values <= 1)), (m.name, values)
        result = m.evaluate(patterns)
        assert np.isfinite(result.log_likelihood)
        assert result.log_likelihood < 0
        assert np.all(np.isfinite(result.conditional_perplexity) & (result.conditional_perplexity >= 1))
        assert np.all(np.isfinite(result.marginal_perplexity) & (result.marginal_perplexity >= 1))
        assert result.sessions == len(sessions)


# -- the engine side compiles for Spark ----------------------------------------------------------


class _SparkOptions(Config):
    """What the PySpark compiler reads from `ibis.options.pyspark` (set when pyspark is imported)."""

    treat_nan_as_null: bool = False


def test_counts_compile_for_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compile-only: the expressions use nothing the PySpark backend refuses (no pyspark, no JVM)."""
    spark = pytest.importorskip("ibis.backends.sql.compilers.pyspark")
    if ibis.options.pyspark is None:
        monkeypatch.setattr(ibis.options, "pyspark", _SparkOptions())
    clicks = _table(TINY)
    sql = {
        f.__name__: spark.compiler.to_sqlglot(f(clicks)).sql(dialect="spark")
        for f in (pbm_counts, ubm_counts, first_last_click_counts, click_pattern_counts, session_shape_errors)
    }
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING" in sql["ubm_counts"]
    assert "ARRAY_SORT" in sql["click_pattern_counts"]
    assert "OVER (PARTITION BY" in sql["first_last_click_counts"]
