"""Slate estimators: hand-computed values, textbook definitions, refusals, and unbiasedness
against the ranking world's exact values (`ranking_value`)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from revealed.ope.slate import (
    SlateCascadeDoublyRobust,
    SlateIndependentIPS,
    SlatePseudoInverse,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
    slot_item_moments,
)
from revealed.ope.slate_arrays import (
    logged_propensities,
    plackett_luce_propensities,
    slates_from_decisions,
    top_k_propensities,
)
from revealed.sim import policies
from revealed.sim.ranking import (
    RankingConfig,
    RankingWorld,
    attractiveness_of,
    ranking_value,
    satisfaction_of,
    simulate_ranking,
)

# -- hand-computed ------------------------------------------------------------------------------

REWARD = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
COND_B = np.array([[0.5, 0.5, 1.0], [0.25, 1.0, 0.5]])
COND_E = np.array([[1.0, 0.5, 0.5], [0.5, 0.5, 1.0]])


def test_standard_ips_by_hand() -> None:
    # joints: logging 0.25, 0.125; evaluation 0.25, 0.25 -> weights 1, 2
    b, e = logged_propensities(COND_B), logged_propensities(COND_E)
    est = SlateStandardIPS().estimate(reward=REWARD, pscore=b.pscore, evaluation_policy_pscore=e.pscore)
    assert est.rows.tolist() == [2.0, 2.0]
    assert est.value == 2.0
    assert est.se == 0.0
    assert est.estimator == "sips"


def test_reward_interaction_ips_by_hand() -> None:
    # prefixes: logging [.5 .25 .25], [.25 .25 .125]; evaluation [1 .5 .25], [.5 .25 .25]
    b, e = logged_propensities(COND_B), logged_propensities(COND_E)
    est = SlateRewardInteractionIPS().estimate(
        reward=REWARD, pscore_cascade=b.pscore_cascade, evaluation_policy_pscore_cascade=e.pscore_cascade
    )
    assert est.rows.tolist() == [2.0 + 1.0, 1.0]
    assert est.value == 2.0


def test_independent_ips_by_hand() -> None:
    b = np.array([[0.5, 0.25, 0.5], [0.2, 0.5, 0.5]])
    e = np.array([[1.0, 1.0, 0.25], [0.0, 0.25, 1.0]])
    est = SlateIndependentIPS().estimate(
        reward=REWARD, pscore_item_position=b, evaluation_policy_pscore_item_position=e
    )
    assert est.rows.tolist() == [2.0 + 0.5, 0.5]
    assert est.value == 1.5


def test_cascade_dr_by_hand() -> None:
    # one slate of two slots over 2 actions, logged actions (0, 1)
    q_hat = np.array([[[0.6, 0.2], [0.1, 0.3]]])
    pi = np.array([[[0.5, 0.5], [1.0, 0.0]]])
    est = SlateCascadeDoublyRobust().estimate(
        action=[[0, 1]],
        reward=[[1.0, 1.0]],
        pscore_cascade=[[0.5, 0.25]],
        evaluation_policy_pscore_cascade=[[0.5, 0.0]],
        q_hat=q_hat,
        evaluation_policy_action_dist=pi,
    )
    # slot 0: w=1: 1 * (1 - 0.6) + 1 * (0.5 * 0.6 + 0.5 * 0.2) = 0.8
    # slot 1: w=0, w_prev=1: 0 + 1 * (1.0 * 0.1) = 0.1
    assert est.value == pytest.approx(0.9, abs=1e-15)


def test_cascade_dr_with_zero_q_hat_is_rips() -> None:
    rng = np.random.default_rng(0)
    b, e = logged_propensities(COND_B), logged_propensities(COND_E)
    zeros = np.zeros((2, 3, 4))
    pi = rng.dirichlet(np.ones(4), size=(2, 3))
    dr = SlateCascadeDoublyRobust().estimate_policy_value(
        action=[[0, 1, 2], [3, 2, 1]],
        reward=REWARD,
        pscore_cascade=b.pscore_cascade,
        evaluation_policy_pscore_cascade=e.pscore_cascade,
        q_hat=zeros,
        evaluation_policy_action_dist=pi,
    )
    assert dr == 2.0


def test_flat_obp_rows_equal_matrices() -> None:
    """OBP's layout (slate_id, position, n_slates * K rows, in any order) gives the same numbers."""
    b, e = logged_propensities(COND_B), logged_propensities(COND_E)
    shuffle = np.array([4, 0, 2, 5, 1, 3])
    slate_id = np.repeat(["a", "b"], 3)[shuffle]
    position = np.tile(np.arange(3), 2)[shuffle]

    def flat(x: Any) -> Any:
        return np.asarray(x).ravel()[shuffle]

    cases: tuple[tuple[Any, dict[str, Any]], ...] = (
        (SlateStandardIPS(), {"pscore": b.pscore, "evaluation_policy_pscore": e.pscore}),
        (
            SlateRewardInteractionIPS(),
            {"pscore_cascade": b.pscore_cascade, "evaluation_policy_pscore_cascade": e.pscore_cascade},
        ),
    )
    for est, kwargs in cases:
        matrix = est.estimate(reward=REWARD, **kwargs)
        rows = est.estimate(
            reward=flat(REWARD),
            slate_id=slate_id,
            position=position,
            **{k: flat(v) for k, v in kwargs.items()},
        )
        assert rows.value == matrix.value
        np.testing.assert_array_equal(rows.rows, matrix.rows)
    q_hat = np.arange(24, dtype=float).reshape(2, 3, 4) / 24
    pi = np.full((2, 3, 4), 0.25)
    action = np.array([[0, 1, 2], [3, 2, 1]])
    common: dict[str, Any] = {
        "reward": REWARD,
        "action": action,
        "pscore_cascade": b.pscore_cascade,
        "evaluation_policy_pscore_cascade": e.pscore_cascade,
    }
    matrix_dr = SlateCascadeDoublyRobust().estimate(**common, q_hat=q_hat, evaluation_policy_action_dist=pi)
    flat_dr = SlateCascadeDoublyRobust(n_unique_action=4).estimate(
        **{k: flat(v) for k, v in common.items()},
        q_hat=q_hat.reshape(6, 4)[shuffle].ravel(),
        evaluation_policy_action_dist=pi.reshape(6, 4)[shuffle].ravel(),
        slate_id=slate_id,
        position=position,
    )
    assert flat_dr.value == pytest.approx(matrix_dr.value, rel=1e-15)


def test_ips_accepts_slates_with_missing_rows_as_obp() -> None:
    """OBP sums the logged rows and divides by the number of slates."""
    est = SlateIndependentIPS().estimate(
        reward=[1.0, 1.0, 1.0],
        pscore_item_position=[0.5, 0.5, 0.25],
        evaluation_policy_pscore_item_position=[1.0, 0.5, 0.5],
        slate_id=[7, 7, 9],
        position=[0, 1, 1],
    )
    assert est.value == (2.0 + 1.0 + 2.0) / 2


# -- each estimator is its textbook definition -------------------------------------------------


@st.composite
def slate_logs(draw: Any) -> dict[str, np.ndarray]:
    n = draw(st.integers(2, 12))
    k = draw(st.integers(1, 4))
    a = draw(st.integers(k, 6))
    probs = hnp.arrays(np.float64, (n, k), elements=st.floats(0.05, 1.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "reward": draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-5, 5))),
        "cond_b": draw(probs),
        "cond_e": draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0.0, 1.0))),
        "marg_b": draw(probs),
        "marg_e": draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0.0, 1.0))),
        "action": np.argsort(rng.random((n, a)), axis=1)[:, :k],
        "q_hat": rng.normal(size=(n, k, a)),
        "pi": rng.dirichlet(np.ones(a), size=(n, k)),
    }


@settings(max_examples=60, deadline=None)
@given(slate_logs())
def test_estimators_equal_their_textbook_definitions(log: dict[str, np.ndarray]) -> None:
    r, n, k = log["reward"], *log["reward"].shape
    b, e = logged_propensities(log["cond_b"]), logged_propensities(log["cond_e"], evaluation=True)
    sips = iips = rips = cdr = 0.0
    for i in range(n):  # the definitions, one slate and one slot at a time
        joint_b = float(np.prod(log["cond_b"][i]))
        joint_e = float(np.prod(log["cond_e"][i]))
        w_prev = 1.0
        for j in range(k):
            sips += joint_e / joint_b * r[i, j]
            iips += log["marg_e"][i, j] / log["marg_b"][i, j] * r[i, j]
            w = float(np.prod(log["cond_e"][i, : j + 1]) / np.prod(log["cond_b"][i, : j + 1]))
            rips += w * r[i, j]
            q = log["q_hat"][i, j]
            cdr += w * (r[i, j] - q[log["action"][i, j]]) + w_prev * float(log["pi"][i, j] @ q)
            w_prev = w
    got = {
        "sips": SlateStandardIPS().estimate_policy_value(
            reward=r, pscore=b.pscore, evaluation_policy_pscore=e.pscore
        ),
        "iips": SlateIndependentIPS().estimate_policy_value(
            reward=r, pscore_item_position=log["marg_b"], evaluation_policy_pscore_item_position=log["marg_e"]
        ),
        "rips": SlateRewardInteractionIPS().estimate_policy_value(
            reward=r, pscore_cascade=b.pscore_cascade, evaluation_policy_pscore_cascade=e.pscore_cascade
        ),
        "cascade-dr": SlateCascadeDoublyRobust().estimate_policy_value(
            action=log["action"],
            reward=r,
            pscore_cascade=b.pscore_cascade,
            evaluation_policy_pscore_cascade=e.pscore_cascade,
            q_hat=log["q_hat"],
            evaluation_policy_action_dist=log["pi"],
        ),
    }
    want = {"sips": sips / n, "iips": iips / n, "rips": rips / n, "cascade-dr": cdr / n}
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


# -- refusals ----------------------------------------------------------------------------------

GOOD = {"reward": [[1.0, 0.0]], "pscore": [[0.5, 0.5]], "evaluation_policy_pscore": [[1.0, 1.0]]}
INVALID: list[tuple[Any, dict[str, Any], str]] = [
    (SlateStandardIPS(), {**GOOD, "pscore": [[0.5, 0.25]]}, "pscore: expected the probability of the whole"),
    (SlateStandardIPS(), {**GOOD, "pscore": [[0.0, 0.0]]}, r"pscore: expected probabilities in \(0, 1\]"),
    (SlateStandardIPS(), {**GOOD, "evaluation_policy_pscore": [[1.5, 1.5]]}, "evaluation_policy_pscore"),
    (SlateStandardIPS(), {**GOOD, "reward": [[np.nan, 0.0]]}, "reward: expected finite"),
    (SlateStandardIPS(), {**GOOD, "pscore": [0.5, 0.5]}, "pscore: expected a 2-d array"),
    (SlateStandardIPS(), {**GOOD, "pscore": [[0.5, 0.5, 0.5]]}, "pscore: expected the shape of reward"),
    (
        SlateIndependentIPS(),
        {
            "reward": [[1.0]],
            "pscore_item_position": [[np.nan]],
            "evaluation_policy_pscore_item_position": [[1.0]],
        },
        "pscore_item_position: .*not logged",
    ),
    (
        SlateRewardInteractionIPS(),
        {
            "reward": [[1.0, 1.0]],
            "pscore_cascade": [[0.25, 0.5]],
            "evaluation_policy_pscore_cascade": [[1, 1]],
        },
        "pscore_cascade: expected prefix probabilities",
    ),
    (SlateStandardIPS(), {**GOOD, "slate_id": [1], "position": [0]}, "reward: expected flat rows"),
    (
        SlateStandardIPS(),
        {"reward": [1.0, 1.0], "pscore": [0.5, 0.5], "evaluation_policy_pscore": [1, 1], "slate_id": [1, 1]},
        "position: expected the slot",
    ),
    (
        SlateStandardIPS(),
        {
            "reward": [1.0, 1.0],
            "pscore": [0.5, 0.5],
            "evaluation_policy_pscore": [1, 1],
            "slate_id": [1, 1],
            "position": [0, 0],
        },
        "position: expected each slot at most once",
    ),
    (
        SlateCascadeDoublyRobust(),
        {
            "action": [[0]],
            "reward": [[1.0]],
            "pscore_cascade": [[0.5]],
            "evaluation_policy_pscore_cascade": [[0.5]],
            "q_hat": [[[0.5, 0.5]]],
            "evaluation_policy_action_dist": [[[0.5, 0.6]]],
        },
        "evaluation_policy_action_dist: expected a distribution",
    ),
    (
        SlateCascadeDoublyRobust(),
        {
            "action": [[2]],
            "reward": [[1.0]],
            "pscore_cascade": [[0.5]],
            "evaluation_policy_pscore_cascade": [[0.5]],
            "q_hat": [[[0.5, 0.5]]],
            "evaluation_policy_action_dist": [[[0.5, 0.5]]],
        },
        "action: expected integer indices",
    ),
    (
        SlateCascadeDoublyRobust(n_unique_action=2),
        {
            "action": [0],
            "reward": [1.0],
            "pscore_cascade": [0.5],
            "evaluation_policy_pscore_cascade": [0.5],
            "q_hat": [0.5, 0.5],
            "evaluation_policy_action_dist": [0.5, 0.5],
            "slate_id": [0],
            "position": [1],
        },
        "slate_id: Cascade-DR needs every slot",
    ),
]


@pytest.mark.parametrize(("estimator", "kwargs", "message"), INVALID)
def test_invalid_inputs_name_the_field(estimator: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimator.estimate(**kwargs)


@pytest.mark.parametrize("policy", ["epsilon_greedy", "swap_adjacent", "top_n_shuffle", "deterministic"])
def test_pseudo_inverse_refuses_unknown_moments(policy: str) -> None:
    with pytest.raises(ValueError, match=f"logging_policy: .*found '{policy}'.*SlateIndependentIPS"):
        slot_item_moments(policy, len_list=2, n_candidates=3, n_slates=1)
    with pytest.raises(ValueError, match="scores, temperature"):
        slot_item_moments("plackett_luce", len_list=2, n_candidates=3, n_slates=1)


# -- arrays from logs --------------------------------------------------------------------------


def test_logged_propensities_match_the_samplers() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(500, 6))
    for s in (
        policies.epsilon_greedy(scores, k=4, epsilon=0.3, rng=rng),
        policies.top_n_shuffle(scores, k=4, n=3, rng=rng),
        policies.swap_adjacent(scores, k=4, n=3, rng=rng),
        policies.plackett_luce(scores, k=4, temperature=0.7, rng=rng),
    ):
        b = logged_propensities(s.cond_propensity, propensity=s.propensity)
        np.testing.assert_allclose(b.pscore[:, 0], s.joint, rtol=1e-12)
        np.testing.assert_allclose(b.pscore_cascade, np.cumprod(s.cond_propensity, axis=1), rtol=1e-12)
        np.testing.assert_array_equal(b.pscore_item_position, s.propensity)


def _enumerate_plackett_luce(logits: np.ndarray, k: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Every ordered slate of `k` of the candidates and its Plackett-Luce probability (n, slates)."""
    slates = list(itertools.permutations(range(logits.shape[1]), k))
    p = np.ones((len(logits), len(slates)))
    w = np.exp(logits)
    for s, slate in enumerate(slates):
        left = w.sum(axis=1)
        for item in slate:
            p[:, s] *= w[:, item] / left
            left = left - w[:, item]
    return slates, p


def test_plackett_luce_propensities_are_exact_and_marginals_within_their_error() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(3, 4))
    logged = policies.plackett_luce(np.repeat(scores, 50, axis=0), k=3, temperature=0.8, rng=rng)
    e = plackett_luce_propensities(
        np.repeat(scores, 50, axis=0), order=logged.order, temperature=0.8, n_samples=4000, seed=3
    )
    np.testing.assert_allclose(e.pscore_cascade, np.cumprod(logged.cond_propensity, axis=1), rtol=1e-12)
    slates, p = _enumerate_plackett_luce(np.repeat(scores, 50, axis=0) / 0.8, 3)
    exact = np.zeros((150, 3, 4))
    for s, slate in enumerate(slates):
        for j, item in enumerate(slate):
            exact[:, j, item] += p[:, s]
    want = np.take_along_axis(exact, logged.order[:, :, None], axis=2)[:, :, 0]
    z = np.abs(e.pscore_item_position - want)[:, 1:] / e.item_position_se[:, 1:]
    assert z.max() < 4.5
    np.testing.assert_allclose(e.pscore_item_position[:, 0], want[:, 0], rtol=1e-12)
    assert e.marginals is not None  # each candidate's marginals are drawn apart: sums are near 1
    np.testing.assert_allclose(e.marginals.sum(axis=2), 1.0, atol=0.01)
    assert e.action_dist is not None
    np.testing.assert_allclose(e.action_dist.sum(axis=2), 1.0)


def test_top_k_propensities() -> None:
    scores = np.array([[0.0, 3.0, 2.0, 1.0]])
    order = np.array([[1, 2, 0], [1, 3, 2]])
    e = top_k_propensities(np.repeat(scores, 2, axis=0), order=order)
    assert e.pscore_cascade.tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert e.pscore_item_position.tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert e.action_dist is not None
    # after the off-policy prefix (1, 3) the best remaining is candidate 2
    assert e.action_dist[1, 2].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_slates_from_decisions_round_trip() -> None:
    cfg = RankingConfig(queries=20, items=200, candidates=6, k=4, intervention_n=3)
    sim = simulate_ranking(300, seed=4, config=cfg)
    logged = slates_from_decisions(sim.decisions)
    assert logged.order.shape == (300, 4)
    np.testing.assert_array_equal(
        np.take_along_axis(logged.candidate_id, logged.order, axis=1), logged.item_id
    )
    np.testing.assert_allclose(logged.logging.pscore[:, 0], sim.decisions.column("propensity").to_numpy())


def test_slates_from_decisions_refuses_ragged_slates() -> None:
    sim = simulate_ranking(
        20, seed=1, config=RankingConfig(queries=5, items=60, candidates=6, k=4, intervention_n=3)
    )
    short = sim.decisions.slice(0, 2).to_pylist()
    short[0]["items"] = short[0]["items"][:3]
    import pyarrow as pa

    with pytest.raises(ValueError, match="items: expected the same non-zero number"):
        slates_from_decisions(pa.Table.from_pylist(short, schema=sim.decisions.schema))


# -- against the truth -------------------------------------------------------------------------


def _world(click_model: str, seed: int = 3) -> RankingWorld:
    cfg = RankingConfig(queries=40, items=400, candidates=5, k=3, click_model=click_model, intervention_n=3)
    return RankingWorld(seed, cfg)


def _log(
    world: RankingWorld, n: int, logging: str, seed: int
) -> tuple[np.ndarray, policies.Slates, np.ndarray, np.ndarray]:
    """`n` decisions of the world logged by `logging`; the queries, slates, clicks and examination."""
    cfg, cat = world.config, world.catalogue
    rng = np.random.default_rng(seed)
    q = rng.choice(cfg.queries, size=n, p=cat.popularity)
    scores = world.ranker_scores[3][q]  # the noisiest historical ranker logs
    if logging == "uniform":
        slates = policies.epsilon_greedy(scores, k=cfg.k, epsilon=1.0, rng=rng)
    else:
        slates = policies.plackett_luce(scores, k=cfg.k, temperature=1.0, rng=rng)
    grade = np.take_along_axis(world.grade[q], slates.order, axis=1)
    alpha, sigma = attractiveness_of(grade), satisfaction_of(grade)
    clicks = world.model.sample(alpha, rng, satisfaction=sigma).clicked.astype(float)
    exam = world.model.examination(alpha, satisfaction=sigma)
    return q, slates, clicks, exam


def _q_hat(world: RankingWorld, q: np.ndarray, order: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The exact Q of the click model for a greedy evaluation policy by `scores`: expected clicks
    in slots k.. given the logged items above k and candidate `a` in slot k (n, K, C)."""
    alpha = attractiveness_of(world.grade[q])
    n, k = order.shape
    c = alpha.shape[1]
    rows = np.arange(n)
    cascade = world.config.click_model == "cascade"
    theta = np.asarray(world.model.params().get("theta", np.ones(k)))
    out = np.zeros((n, k, c))
    reach = np.ones(n)  # P(slot k examined | logged prefix), cascade
    for j in range(k):
        for a in range(c):
            s = scores.copy()
            s[rows[:, None], order[:, :j]] = -np.inf
            s[:, a] = -np.inf
            rest = np.argsort(-s, axis=1, kind="stable")[:, : k - j - 1]
            chain = [alpha[:, a], *(alpha[rows, b] for b in rest.T)]
            if cascade:
                value, cont = np.zeros(n), reach.copy()
                for p in chain:
                    value, cont = value + cont * p, cont * (1 - p)
            else:
                value = sum(theta[j + m] * p for m, p in enumerate(chain))
            out[:, j, a] = value
        reach = reach * (1 - alpha[rows, order[:, j]])
    return out


def _all(world: RankingWorld, logging: str, n: int, seed: int) -> dict[str, Any]:
    q, slates, clicks, _ = _log(world, n, logging, seed)
    b = logged_propensities(slates.cond_propensity, propensity=slates.propensity)
    if logging != "uniform":  # Plackett-Luce logs no marginal below the top: estimate it
        b_mc = plackett_luce_propensities(world.ranker_scores[3][q], order=slates.order, temperature=1.0)
        b = logged_propensities(slates.cond_propensity, propensity=b_mc.pscore_item_position)
    e = top_k_propensities(world.ranker_scores[0][q], order=slates.order)
    assert e.action_dist is not None
    assert e.marginals is not None
    q_hat = _q_hat(world, q, slates.order, world.ranker_scores[0][q])
    out = {
        "sips": SlateStandardIPS().estimate(
            reward=clicks, pscore=b.pscore, evaluation_policy_pscore=e.pscore
        ),
        "iips": SlateIndependentIPS().estimate(
            reward=clicks,
            pscore_item_position=b.pscore_item_position,
            evaluation_policy_pscore_item_position=e.pscore_item_position,
        ),
        "rips": SlateRewardInteractionIPS().estimate(
            reward=clicks, pscore_cascade=b.pscore_cascade, evaluation_policy_pscore_cascade=e.pscore_cascade
        ),
        "cascade-dr": SlateCascadeDoublyRobust().estimate(
            action=slates.order,
            reward=clicks,
            pscore_cascade=b.pscore_cascade,
            evaluation_policy_pscore_cascade=e.pscore_cascade,
            q_hat=q_hat,
            evaluation_policy_action_dist=e.action_dist,
        ),
    }
    if logging == "uniform":
        moments = slot_item_moments("uniform", len_list=3, n_candidates=5, n_slates=n)
        out["pi"] = SlatePseudoInverse().estimate(
            reward=clicks, action=slates.order, evaluation_policy_marginals=e.marginals, moments=moments
        )
    return out


def test_unbiased_in_a_position_based_world() -> None:
    """PBM: a slot's click depends on its item and position only, so every estimator's
    assumption holds (IIPS's item-position model, RIPS/Cascade-DR's prefix model, PI's linearity)."""
    world = _world("pbm")
    truth = ranking_value(world, "ranker")
    for name, est in _all(world, "uniform", 40_000, seed=11).items():
        assert abs(est.value - truth) < 3 * est.se, (name, est.value, truth, est.se)


def test_pseudo_inverse_with_plackett_luce_logging_by_monte_carlo() -> None:
    """PI where the logging policy is Plackett-Luce: its slot x item moments by Monte Carlo."""
    world = _world("pbm")
    q, slates, clicks, _ = _log(world, 40_000, "plackett_luce", seed=14)
    moments = slot_item_moments(
        "plackett_luce",
        len_list=3,
        n_candidates=5,
        n_slates=len(q),
        scores=world.ranker_scores[3][q],
        temperature=1.0,
        n_samples=20_000,
    )
    e = top_k_propensities(world.ranker_scores[0][q], order=slates.order)
    assert e.marginals is not None
    est = SlatePseudoInverse().estimate(
        reward=clicks, action=slates.order, evaluation_policy_marginals=e.marginals, moments=moments
    )
    truth = ranking_value(world, "ranker")
    assert abs(est.value - truth) < 3 * est.se, (est.value, truth, est.se)


def test_unbiased_in_a_cascade_world() -> None:
    """Cascade: a slot's click depends on the items above it, which RIPS and Cascade-DR model and
    SIPS does not need. IIPS's assumption fails there: it is measurably biased."""
    world = _world("cascade")
    truth = ranking_value(world, "ranker")
    logged_by_plackett_luce = _all(world, "plackett_luce", 40_000, seed=12)
    uniform = _all(world, "uniform", 40_000, seed=13)
    for estimates in (logged_by_plackett_luce, uniform):
        for name in ("sips", "rips", "cascade-dr"):
            est = estimates[name]
            assert abs(est.value - truth) < 3 * est.se, (name, est.value, truth, est.se)
    # with the click model's own Q, Cascade-DR has the smaller interval
    assert uniform["cascade-dr"].se < 0.8 * uniform["rips"].se
    assert (uniform["iips"].value - truth) / uniform["iips"].se > 5


@pytest.mark.slow
@pytest.mark.parametrize("click_model", ["pbm", "cascade"])
def test_interval_coverage_over_seeds(click_model: str) -> None:
    world = _world(click_model)
    truth = ranking_value(world, "ranker")
    names = (
        ("sips", "iips", "rips", "cascade-dr", "pi")
        if click_model == "pbm"
        else ("sips", "rips", "cascade-dr")
    )
    covered = dict.fromkeys(names, 0)
    for seed in range(40):
        estimates = _all(world, "uniform", 10_000, seed=100 + seed)
        for name in names:
            low, high = estimates[name].ci
            covered[name] += low <= truth <= high
    for name, count in covered.items():
        assert count >= 34, (name, count)


def test_end_to_end_from_logged_decisions_and_clicks() -> None:
    """simulate_ranking's records (uniform logging, PBM, no bots or accidental clicks) through
    slates_from_decisions and the click events, against ranking_value."""
    import pyarrow.compute as pc

    cfg = RankingConfig(
        queries=40,
        items=400,
        candidates=5,
        k=3,
        intervention_n=3,
        click_model="pbm",
        policy_mix={"epsilon_greedy": 1.0},
        epsilon=1.0,
        bots=0,
        accidental_clicks=0.0,
    )
    sim = simulate_ranking(20_000, seed=5, config=cfg)
    world = RankingWorld(5, cfg)
    logged = slates_from_decisions(sim.decisions)
    clicks = sim.events.filter(pc.equal(sim.events.column("type"), "click"))
    key = np.char.add(np.char.add(logged.decision_id.astype(str)[:, None], "/"), logged.item_id.astype(str))
    clicked = np.char.add(
        np.char.add(clicks.column("decision_id").to_numpy(zero_copy_only=False).astype(str), "/"),
        clicks.column("item_id").to_numpy(zero_copy_only=False).astype(str),
    )
    reward = np.isin(key, clicked).astype(float)
    query = np.array([int(s.split(":")[1]) for s in sim.decisions.column("query_id").to_pylist()])
    e = top_k_propensities(world.ranker_scores[0][query], order=logged.order)
    b = logged.logging
    truth = ranking_value(world, "ranker")
    iips = SlateIndependentIPS().estimate(
        reward=reward,
        pscore_item_position=b.pscore_item_position,
        evaluation_policy_pscore_item_position=e.pscore_item_position,
    )
    rips = SlateRewardInteractionIPS().estimate(
        reward=reward, pscore_cascade=b.pscore_cascade, evaluation_policy_pscore_cascade=e.pscore_cascade
    )
    for est in (iips, rips):
        assert abs(est.value - truth) < 3 * est.se, (est.estimator, est.value, truth, est.se)
