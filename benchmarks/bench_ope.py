"""Bandit off-policy estimators through `revealed.ope.evaluate` with default (analytic) intervals and
default (sampled) validation, on 1M rounds x 80 actions x 3 positions in OBP's arrays, beside bare
numpy on the same arrays: gather pi_e(a_i | x_i, k_i), divide by the propensity and take
``np.mean(w * r)`` (ratio = baseline time / estimator time). Aim: IPW and SNIPW under 0.3 s each on
2 cores. DR's time includes the direct-method term, a pass over the 1M x 80 slices of both the
policy and the reward model at each round's position."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import Result, best_of
from revealed.ope import evaluate

ACTIONS, POSITIONS = 80, 3


def _arrays(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    dist = rng.random((n, ACTIONS, POSITIONS))
    dist /= dist.sum(axis=1, keepdims=True)
    action = rng.integers(0, ACTIONS, n)
    return {
        "reward": (rng.random(n) < 0.1).astype(float),
        "action": action,
        "position": rng.integers(0, POSITIONS, n),
        "pscore": np.full(n, 1.0 / ACTIONS),
        "action_dist": dist,
    }


def _baseline(arrays: dict[str, Any]) -> float:
    dist, n = arrays["action_dist"], len(arrays["reward"])
    w = dist[np.arange(n), arrays["action"], arrays["position"]] / arrays["pscore"]
    return float(np.mean(w * arrays["reward"]))


def run(n: int) -> list[Result]:
    rounds = max(n * 5, 10_000)  # make bench: 1M
    arrays = _arrays(rounds, seed=7)
    baseline = best_of(3, lambda: _baseline(arrays))
    out = []
    for name in ("ipw", "snipw", "dr"):
        extra: dict[str, Any] = {}
        if name == "dr":
            extra["estimated_rewards_by_reg_model"] = np.full_like(arrays["action_dist"], 0.1)
        seconds = best_of(3, lambda name=name, extra=extra: evaluate([name], **arrays, **extra))
        aim = "; aim: under 0.3 s" if name != "dr" else ""
        out.append(
            Result(
                f"OPE {name} via evaluate, {rounds:,} rounds x {ACTIONS} actions x {POSITIONS} positions: "
                f"{seconds:.3f} s{aim}",
                rounds / seconds,
                "rounds/s",
                "bare numpy gather + mean(w * r)",
                rounds / baseline,
            )
        )
    return out


if __name__ == "__main__":
    import sys

    for result in run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000):
        print(result.row())
