"""Statistical self-tests of the click models: sampler, exact marginals and definitions agree.

Frequencies from 160,000 seeded sessions are compared with the probability they estimate within
five binomial standard errors, so a wrong sampler or a wrong marginal fails while the tests stay
deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from revealed.sim.clickmodels import (
    CLICK_MODELS,
    CascadeModel,
    ClickModel,
    Clicks,
    DependentClickModel,
    DynamicBayesianNetwork,
    PositionBasedModel,
    UserBrowsingModel,
    click_model,
)

K = 10
N = 160_000
ROWS = 8  # distinct sessions, each repeated N / ROWS times
NAMES = sorted(CLICK_MODELS)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def assert_frequency(hits: npt.ArrayLike, p: npt.ArrayLike, what: str) -> None:
    """Column means of Bernoulli ``hits`` (m, ...) agree with the mean of their probabilities ``p``."""
    hits = np.asarray(hits, dtype=np.bool_)
    p = np.broadcast_to(np.asarray(p, dtype=np.float64), hits.shape)
    m = hits.shape[0]
    assert m > 0, f"{what}: no data"
    observed, expected = hits.mean(axis=0), p.mean(axis=0)
    tolerance = 5.0 * np.sqrt((p * (1.0 - p)).mean(axis=0) / m) + 1e-9
    assert np.all(np.abs(observed - expected) <= tolerance), (
        f"{what}: observed {np.round(observed, 4)}, expected {np.round(expected, 4)}, "
        f"tolerance {np.round(tolerance, 4)}"
    )


@pytest.fixture(scope="module")
def inputs() -> tuple[Floats, Floats]:
    rng = np.random.default_rng(20260105)
    alpha = np.tile(rng.uniform(0.05, 0.95, (ROWS, K)), (N // ROWS, 1))
    sigma = np.tile(rng.uniform(0.1, 0.9, (ROWS, K)), (N // ROWS, 1))
    return alpha, sigma


@pytest.fixture(scope="module")
def samples(inputs: tuple[Floats, Floats]) -> dict[str, tuple[ClickModel, Clicks]]:
    alpha, sigma = inputs
    out = {}
    for seed, name in enumerate(NAMES):
        model = click_model(name, k=K)
        out[name] = model, model.sample(alpha, np.random.default_rng(seed), satisfaction=sigma)
    return out


# --- 1. the sampler matches the exact marginals ------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_sampled_rates_match_exact_marginals(
    name: str, inputs: tuple[Floats, Floats], samples: dict[str, tuple[ClickModel, Clicks]]
) -> None:
    alpha, sigma = inputs
    model, clicks = samples[name]
    assert clicks.clicked.shape == clicks.examined.shape == (N, K)
    assert clicks.clicked.dtype == clicks.examined.dtype == np.bool_
    assert not np.any(clicks.clicked & ~clicks.examined), "a click on an unexamined position"
    assert_frequency(clicks.clicked, model.click_probability(alpha, sigma), f"{name} clicks")
    assert_frequency(clicks.examined, model.examination(alpha, sigma), f"{name} examination")


# --- 2. each model's defining probabilities ----------------------------------------------------


def test_pbm_clicks_are_theta_times_alpha_and_examination_ignores_attraction(
    inputs: tuple[Floats, Floats], samples: dict[str, tuple[ClickModel, Clicks]]
) -> None:
    alpha, _ = inputs
    model, clicks = samples["pbm"]
    assert isinstance(model, PositionBasedModel)
    theta = np.asarray(model.theta)
    assert_frequency(clicks.clicked, theta * alpha, "P(click) = theta * alpha")
    rng = np.random.default_rng(11)
    for level in (0.05, 0.95):
        examined = model.sample(np.full((N, K), level), rng).examined
        assert_frequency(examined, theta, f"P(E) at alpha = {level}")
    after_top_click = clicks.examined[clicks.clicked[:, 0], 1:]
    assert_frequency(after_top_click, theta[1:], "P(E_k | click at 0)")


def test_cascade_stops_at_the_first_click(
    inputs: tuple[Floats, Floats], samples: dict[str, tuple[ClickModel, Clicks]]
) -> None:
    alpha, _ = inputs
    _, clicks = samples["cascade"]
    assert clicks.clicked.sum(axis=1).max() == 1
    clicked_above = np.zeros(N, dtype=np.bool_)
    for k in range(K):
        np.testing.assert_array_equal(clicks.examined[:, k], ~clicked_above)
        fresh = ~clicked_above
        assert_frequency(clicks.clicked[fresh, k], alpha[fresh, k], f"P(click at {k} | none above)")
        clicked_above |= clicks.clicked[:, k]


def test_dcm_continues_after_a_click_with_lambda_and_always_after_a_skip(
    samples: dict[str, tuple[ClickModel, Clicks]],
) -> None:
    model, clicks = samples["dcm"]
    assert isinstance(model, DependentClickModel)
    for k in range(K - 1):
        after_click = clicks.examined[clicks.clicked[:, k], k + 1 :].any(axis=1)
        assert_frequency(after_click, model.continuation[k], f"P(continue | click at {k})")
        skipped = clicks.examined[:, k] & ~clicks.clicked[:, k]
        assert skipped.any()
        assert clicks.examined[skipped, k + 1].all(), f"a non-click at {k} stopped the scan"


def test_ubm_click_given_previous_click_is_gamma_times_alpha(
    inputs: tuple[Floats, Floats], samples: dict[str, tuple[ClickModel, Clicks]]
) -> None:
    alpha, _ = inputs
    model, clicks = samples["ubm"]
    assert isinstance(model, UserBrowsingModel)
    gamma = np.asarray(model.gamma)
    previous = np.zeros((N, K), dtype=np.intp)  # rank of the previous click + 1, 0 if none
    for r in range(1, K):
        previous[:, r] = np.where(clicks.clicked[:, r - 1], r, previous[:, r - 1])
    cells = 0
    for r in range(K):
        for r_prev in range(r + 1):
            rows = previous[:, r] == r_prev
            if rows.sum() < 2_000:
                continue
            cells += 1
            label = f"(r={r}, r'={r_prev})"
            assert_frequency(clicks.examined[rows, r], gamma[r, r_prev], f"P(E | {label})")
            assert_frequency(clicks.clicked[rows, r], gamma[r, r_prev] * alpha[rows, r], f"P(C | {label})")
    assert cells >= 30, f"only {cells} (r, r') cells had enough data"


def test_dbn_continues_unless_satisfied(
    inputs: tuple[Floats, Floats], samples: dict[str, tuple[ClickModel, Clicks]]
) -> None:
    _, sigma = inputs
    model, clicks = samples["dbn"]
    assert isinstance(model, DynamicBayesianNetwork)
    assert clicks.examined[:, 0].all()
    for k in range(K - 1):
        click = clicks.clicked[:, k]
        skip = clicks.examined[:, k] & ~click
        assert_frequency(
            clicks.examined[click, k + 1], (1.0 - sigma[click, k]) * model.gamma, f"continue | click at {k}"
        )
        assert_frequency(clicks.examined[skip, k + 1], model.gamma, f"continue | skip at {k}")


# --- 3. position bias under a uniformly random ranking -----------------------------------------


def test_pbm_ctr_under_random_ranking_is_examination_times_mean_relevance() -> None:
    rng = np.random.default_rng(5)
    items = np.linspace(0.1, 0.9, K)
    alpha = rng.permuted(np.tile(items, (N, 1)), axis=1)
    model = click_model("pbm", k=K)
    assert isinstance(model, PositionBasedModel)
    clicks = model.sample(alpha, rng)
    assert_frequency(clicks.clicked, np.asarray(model.theta) * items.mean(), "CTR by position")


# --- exact identities between the models --------------------------------------------------------


def test_models_reduce_to_each_other_exactly(inputs: tuple[Floats, Floats]) -> None:
    alpha, sigma = inputs[0][:ROWS], inputs[1][:ROWS]
    cascade = CascadeModel().click_probability(alpha)
    expected = alpha * np.concatenate([np.ones((ROWS, 1)), np.cumprod(1 - alpha, axis=1)[:, :-1]], axis=1)
    np.testing.assert_allclose(cascade, expected, rtol=1e-12)
    np.testing.assert_allclose(DependentClickModel(continuation=(0.0,) * K).click_probability(alpha), cascade)
    np.testing.assert_allclose(
        DynamicBayesianNetwork(gamma=1.0).click_probability(alpha, np.ones_like(alpha)), cascade
    )
    np.testing.assert_allclose(DependentClickModel(continuation=(1.0,) * K).click_probability(alpha), alpha)
    theta = np.linspace(1.0, 0.2, K)
    pbm = PositionBasedModel(theta=tuple(theta)).click_probability(alpha, sigma)
    ubm = UserBrowsingModel(gamma=tuple((t,) * K for t in theta)).click_probability(alpha, sigma)
    np.testing.assert_allclose(ubm, pbm, rtol=1e-12)
    np.testing.assert_allclose(pbm, theta * alpha, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_params_are_json_and_rebuild_the_model(name: str) -> None:
    model = click_model(name, k=4)
    params = json.loads(json.dumps(model.params()))
    assert params["name"] == name
    assert click_model(**params) == model


# --- 4. determinism and validation -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_clicks(name: str, inputs: tuple[Floats, Floats]) -> None:
    alpha, sigma = inputs[0][:2_000], inputs[1][:2_000]
    model = click_model(name, k=K)
    first, again, other = (model.sample(alpha, np.random.default_rng(s), sigma) for s in (3, 3, 4))
    np.testing.assert_array_equal(first.clicked, again.clicked)
    np.testing.assert_array_equal(first.examined, again.examined)
    assert not np.array_equal(first.clicked, other.clicked)


INVALID_PARAMETERS: list[tuple[Callable[[], Any], str]] = [
    (lambda: PositionBasedModel(theta=(1.0, 1.2)), r"theta: .*\[0, 1\].*1\.2"),
    (lambda: PositionBasedModel(theta=(float("nan"),)), r"theta: .*\[0, 1\].*nan"),
    (lambda: PositionBasedModel(theta=()), r"theta: .*empty"),
    (lambda: PositionBasedModel(theta=((0.5,),)), r"theta: .*shape \(1, 1\)"),  # type: ignore[arg-type]
    (lambda: DependentClickModel(continuation=(0.5, -0.1)), r"continuation: .*-0\.1"),
    (lambda: UserBrowsingModel(gamma=((1.0, 0.5),)), r"gamma: .*square.*\(1, 2\)"),
    (lambda: UserBrowsingModel(gamma=((1.0, 0.5), (1.5, 0.5))), r"gamma: .*1\.5"),
    (lambda: UserBrowsingModel(gamma=(1.0, 0.5)), r"gamma: .*2-D"),  # type: ignore[arg-type]
    (lambda: DynamicBayesianNetwork(gamma=1.1), r"gamma: .*\[0, 1\].*1\.1"),
    (lambda: DynamicBayesianNetwork(gamma="high"), r"gamma: .*'high'"),  # type: ignore[arg-type]
    (lambda: click_model("dcn"), r"name: .*'cascade', 'dbn', 'dcm', 'pbm', 'ubm'.*'dcn'"),
    (lambda: click_model("pbm", k=0), r"k: .*positive.*0"),
    (lambda: click_model("pbm", gamma=0.5), r"gamma: not a parameter of PositionBasedModel.*'theta'"),
    (lambda: click_model("cascade", theta=(1.0,)), r"theta: not a parameter of CascadeModel"),
]


@pytest.mark.parametrize(("build", "message"), INVALID_PARAMETERS)
def test_invalid_parameters_are_rejected(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


GOOD = np.full((3, K), 0.5)
INVALID_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("pbm", {"attractiveness": np.full(K, 0.5)}, r"attractiveness: .*2-D.*\(10,\).*one row per session"),
    ("cascade", {"attractiveness": np.full((3, K), 1.5)}, r"attractiveness: .*\[0, 1\].*1\.5"),
    ("dcm", {"attractiveness": np.full((3, K), np.nan)}, r"attractiveness: .*nan"),
    ("ubm", {"attractiveness": [["a"] * K]}, r"attractiveness: .*\[0, 1\]"),
    ("pbm", {"attractiveness": np.full((3, K + 1), 0.5)}, r"attractiveness: .*at most 10.*theta.*found 11"),
    ("ubm", {"attractiveness": np.full((3, K + 1), 0.5)}, r"attractiveness: .*at most 10.*gamma"),
    ("dbn", {"attractiveness": GOOD}, r"satisfaction: .*found None"),
    (
        "dbn",
        {"attractiveness": GOOD, "satisfaction": np.full((2, K), 0.5)},
        r"satisfaction: .*\(3, 10\).*\(2, 10\)",
    ),
    ("dbn", {"attractiveness": GOOD, "satisfaction": np.full((3, K), -0.5)}, r"satisfaction: .*-0\.5"),
]


@pytest.mark.parametrize("method", ["sample", "click_probability", "examination"])
@pytest.mark.parametrize(("name", "arguments", "message"), INVALID_INPUTS)
def test_invalid_inputs_are_rejected(name: str, arguments: dict[str, Any], message: str, method: str) -> None:
    model = click_model(name, k=K)
    if method == "sample":
        arguments = {**arguments, "rng": np.random.default_rng(0)}
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(**arguments)


def test_sample_needs_a_generator() -> None:
    with pytest.raises(TypeError, match=r"rng: expected a numpy\.random\.Generator"):
        click_model("pbm").sample(GOOD, 0)  # type: ignore[arg-type]


# --- 5. properties of the exact marginals on arbitrary inputs ----------------------------------


@st.composite
def alpha_and_sigma(draw: st.DrawFn) -> tuple[Floats, Floats]:
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 8)))
    unit = st.floats(0.0, 1.0, allow_nan=False)
    return draw(hnp.arrays(np.float64, shape, elements=unit)), draw(
        hnp.arrays(np.float64, shape, elements=unit)
    )


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(data=alpha_and_sigma())
def test_marginals_are_probabilities_and_ordered(name: str, data: tuple[Floats, Floats]) -> None:
    alpha, sigma = data
    model = click_model(name, k=8)
    click, examined = model.click_probability(alpha, sigma), model.examination(alpha, sigma)
    assert click.shape == examined.shape == alpha.shape
    assert np.all((click >= 0) & (click <= 1))
    assert np.all((examined >= 0) & (examined <= 1))
    assert np.all(click <= examined)
    if name in ("cascade", "dcm", "dbn"):
        assert np.all(np.diff(examined, axis=1) <= 0)
    if name == "cascade":
        assert np.all(click.sum(axis=1) <= 1 + 1e-12)
