"""IPW, SNIPW, DM, DR and SNDR equal Open Bandit Pipeline 0.5.7's on the same arrays (1e-9 relative).

Needs ``obp==0.5.7`` (installed with ``--no-deps --ignore-requires-python``: it declares Python
< 3.11 and torch 1.12, neither of which its estimators need) plus the packages ``obp.ope``
imports: torch, scikit-learn, pandas, matplotlib, seaborn, tqdm. Skipped when obp is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from revealed.ope import ESTIMATORS, DoublyRobust, InverseProbabilityWeighting

obp_ope = pytest.importorskip("obp.ope", reason="obp 0.5.7 is not installed (the parity test needs it)")

PAIRS = {
    "ipw": "InverseProbabilityWeighting",
    "snipw": "SelfNormalizedInverseProbabilityWeighting",
    "dm": "DirectMethod",
    "dr": "DoublyRobust",
    "sndr": "SelfNormalizedDoublyRobust",
    "switch-dr": "SwitchDoublyRobust",
    "dr-os": "DoublyRobustWithShrinkage",
}


def logged(seed: int, n: int = 5_000, n_actions: int = 8, len_list: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    pi_b = rng.dirichlet(np.ones(n_actions), size=(n, len_list)).transpose(0, 2, 1)
    pi_e = rng.dirichlet(np.full(n_actions, 0.5), size=(n, len_list)).transpose(0, 2, 1)
    position = rng.integers(0, len_list, n)
    cum = pi_b[np.arange(n), :, position].cumsum(axis=1)
    action = np.minimum((rng.random((n, 1)) > cum).sum(axis=1), n_actions - 1)
    return {
        "reward": rng.binomial(1, 0.3, n).astype(float),
        "action": action,
        "position": position,
        "pscore": pi_b[np.arange(n), action, position],
        "action_dist": np.ascontiguousarray(pi_e),
        "estimated_rewards_by_reg_model": rng.random((n, n_actions, len_list)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_matches_obp(name: str, seed: int) -> None:
    arrays = logged(seed)
    theirs = getattr(obp_ope, PAIRS[name])()
    ours = ESTIMATORS[name]()
    if name == "dr-os":
        theirs = obp_ope.DoublyRobustWithShrinkage(lambda_=ours.lambda_)  # type: ignore[attr-defined]
    expected = theirs.estimate_policy_value(**arrays)
    assert ours.estimate_policy_value(**arrays) == pytest.approx(expected, rel=1e-9)
    assert ours.estimate(**arrays).value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("lambda_", [0.5, 3.0])
def test_clipping_matches_obp(lambda_: float) -> None:
    arrays = logged(3)
    for ours, theirs in (
        (InverseProbabilityWeighting(lambda_=lambda_), obp_ope.InverseProbabilityWeighting(lambda_=lambda_)),
        (DoublyRobust(lambda_=lambda_), obp_ope.DoublyRobust(lambda_=lambda_)),
        (ESTIMATORS["switch-dr"](lambda_=lambda_), obp_ope.SwitchDoublyRobust(lambda_=lambda_)),  # type: ignore[call-arg]
    ):
        assert ours.estimate_policy_value(**arrays) == pytest.approx(
            theirs.estimate_policy_value(**arrays), rel=1e-9
        )


def test_mips_matches_obp_with_known_embedding_distribution() -> None:
    rng = np.random.default_rng(4)
    arrays = logged(4, n=2_000, len_list=1)
    n_actions, n_cat, dims = 8, 3, 2
    p_e_a = rng.dirichlet(np.ones(n_cat), size=(n_actions, dims)).transpose(0, 2, 1)
    embed = np.stack([[rng.choice(n_cat, p=p_e_a[a, :, d]) for d in range(dims)] for a in arrays["action"]])
    pi_b = rng.dirichlet(np.ones(n_actions), size=(2_000, 1)).transpose(0, 2, 1)
    kwargs = {**arrays, "pi_b": np.ascontiguousarray(pi_b), "action_embed": embed, "p_e_a": p_e_a}
    kwargs["pscore"] = pi_b[np.arange(2_000), arrays["action"], 0]
    theirs = obp_ope.MarginalizedInverseProbabilityWeighting(n_actions=n_actions)
    expected = theirs.estimate_policy_value(**{**kwargs, "context": np.zeros((2_000, 1))})
    ours = ESTIMATORS["mipw"]().estimate_policy_value(**kwargs)
    assert ours == pytest.approx(expected, rel=1e-9)
