"""The contextual-bandit world: one action per round, a known expected reward, and a holdout.

Contexts x are standard normal vectors; each action a has a weight vector and a bias, and the
expected reward is q(x, a) = sigmoid(x . w_a + b_a): the click probability. The logging policy
is a softmax over a noisy copy of q's logits (temperature `temperature`) mixed with uniform
exploration (`epsilon`), so every action has a known probability > 0 and the logged
`propensity` is exact. A share of users (`holdout`) is assigned, by an `assignment` event, to a
holdout arm that gets a fixed default action; the others get the model. Rewards may drift:
at given hours the weights of some actions change (change points in the truth).

The true value of any policy pi is V(pi) = E_x sum_a pi(a|x) q(x, a), computed by `policy_value`
over a large fixed sample of contexts drawn from the world's own seed, not by re-simulating.

>>> sim = simulate_bandit(1_000, seed=3)
>>> world = BanditWorld(seed=3)
>>> round(policy_value(world, "optimal") - policy_value(world, "uniform"), 2) > 0
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from revealed.sim.drift import check_change
from revealed.sim.frame import (
    HOUR_US,
    START_US,
    EventLog,
    candidate_lists,
    decisions_table,
    ids,
    items_table,
    json_column,
    shown_items,
)
from revealed.sim.traffic import timeline
from revealed.sim.world import Simulation, Truth, load_function

__all__ = [
    "BUILTIN_POLICIES",
    "BanditConfig",
    "BanditWorld",
    "RewardChange",
    "policy_value",
    "simulate_bandit",
]

Policy = Callable[[np.ndarray], np.ndarray]
BUILTIN_POLICIES: Final = ("uniform", "optimal", "logging", "default")


@dataclass(frozen=True)
class RewardChange:
    """At `hours` after the start, the weights of a share of actions are redrawn (drift)."""

    hours: float
    share: float = 0.5

    def __post_init__(self) -> None:
        check_change(self.hours, self.share, "actions")


@dataclass(frozen=True)
class BanditConfig:
    actions: int = 10
    dim: int = 5
    users: int | None = None
    temperature: float = 1.0
    epsilon: float = 0.1
    #: noise on the logits the logging policy sees (0: it knows q exactly)
    logging_noise: float = 0.5
    holdout: float = 0.2
    #: the holdout arm's fixed action
    default_action: int = 0
    bias: float = -1.5
    days: float = 3.0
    drift: tuple[RewardChange, ...] = ()

    def __post_init__(self) -> None:
        if self.actions < 2:
            raise ValueError(f"actions: expected at least 2, found {self.actions}")
        if not 0 <= self.default_action < self.actions:
            raise ValueError(f"default_action: expected 0 <= a < {self.actions}, found {self.default_action}")
        for name in ("epsilon", "holdout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a share in [0, 1], found {getattr(self, name)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, found {self.temperature}")


@dataclass(frozen=True)
class BanditWorld:
    """The world's fixed parts, drawn from its seed: action weights, biases and the logger's view."""

    seed: int
    config: BanditConfig = BanditConfig()

    @property
    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, 11])

    def parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights per period (P, A, d), bias (A,), logger's weights (A, d)); P = changes + 1."""
        cfg, rng = self.config, self._rng
        weights = rng.standard_normal((cfg.actions, cfg.dim)) / np.sqrt(cfg.dim) * 1.5
        bias = cfg.bias + 0.5 * rng.standard_normal(cfg.actions)
        logger = weights + cfg.logging_noise * rng.standard_normal(weights.shape) / np.sqrt(cfg.dim)
        periods = [weights]
        for change in cfg.drift:
            nxt = periods[-1].copy()
            moved = rng.random(cfg.actions) < change.share
            nxt[moved] = rng.standard_normal((int(moved.sum()), cfg.dim)) / np.sqrt(cfg.dim) * 1.5
            periods.append(nxt)
        return np.stack(periods), bias, logger

    def expected_reward(self, contexts: np.ndarray, period: int = 0) -> np.ndarray:
        """q(x, a) for every context and action: (n, A)."""
        weights, bias, _ = self.parameters()
        q: np.ndarray = 1.0 / (1.0 + np.exp(-(contexts @ weights[period].T + bias)))
        return q

    def logging_policy(self, contexts: np.ndarray) -> np.ndarray:
        """pi_0(a | x): (n, A), softmax of the logger's noisy logits mixed with uniform."""
        _, bias, logger = self.parameters()
        cfg = self.config
        logits = (contexts @ logger.T + bias) / cfg.temperature
        logits -= logits.max(axis=1, keepdims=True)
        soft = np.exp(logits)
        soft /= soft.sum(axis=1, keepdims=True)
        mixed: np.ndarray = (1 - cfg.epsilon) * soft + cfg.epsilon / cfg.actions
        return mixed

    def contexts(self, n: int, *, stream: int = 0) -> np.ndarray:
        """`n` contexts; stream 0 is the logged traffic, stream 1 the fixed evaluation sample."""
        return np.random.default_rng([self.seed, 7, stream]).standard_normal((n, self.config.dim))


def _builtin(world: BanditWorld, name: str) -> Policy:
    a = world.config.actions
    if name == "uniform":
        return lambda x: np.full((len(x), a), 1.0 / a)
    if name == "optimal":
        return lambda x: np.eye(a)[world.expected_reward(x).argmax(axis=1)]
    if name == "logging":
        return world.logging_policy
    if name == "default":
        return lambda x: np.eye(a)[np.full(len(x), world.config.default_action)]
    raise ValueError(
        f"policy: expected one of {', '.join(BUILTIN_POLICIES)} or module:function, found {name!r}"
    )


def resolve_policy(world: BanditWorld, policy: str | Policy) -> Policy:
    """A policy by builtin name, by `module:function` path, or as a callable contexts -> (n, A)."""
    if callable(policy):
        return policy
    if ":" in policy:
        return load_function(policy)
    return _builtin(world, policy)


def policy_value(
    world: BanditWorld, policy: str | Policy, *, contexts: int = 200_000, period: int = 0
) -> float:
    """The true value V(pi) = E_x sum_a pi(a|x) q(x, a), over a fixed sample of `contexts` contexts."""
    x = world.contexts(contexts, stream=1)
    dist = np.asarray(resolve_policy(world, policy)(x), dtype=float)
    if dist.shape != (contexts, world.config.actions):
        raise ValueError(
            f"policy: expected probabilities of shape {(contexts, world.config.actions)}, found {dist.shape}"
        )
    if not np.allclose(dist.sum(axis=1), 1.0, atol=1e-6) or (dist < 0).any():
        raise ValueError("policy: expected each row of probabilities to be >= 0 and sum to 1")
    return float((dist * world.expected_reward(x, period)).sum(axis=1).mean())


def simulate_bandit(
    n: int, seed: int, *, config: BanditConfig | None = None, start_us: int = START_US
) -> Simulation:
    """`n` rounds: decisions with the chosen action, clicks, holdout assignments, and the truth."""
    cfg = config or BanditConfig()
    world = BanditWorld(seed, cfg)
    rng = np.random.default_rng([seed, 1])
    users = cfg.users or max(20, n // 5)
    t = timeline(n, users=users, seed=seed + 1, start_us=start_us, days=cfg.days)
    x = world.contexts(n)
    change_times = np.array([start_us + int(c.hours * HOUR_US) for c in cfg.drift], dtype=np.int64)
    period = np.searchsorted(change_times, t.timestamp, side="right")
    weights, bias, _ = world.parameters()
    q = 1.0 / (1.0 + np.exp(-(np.einsum("nd,nad->na", x, weights[period]) + bias)))

    holdout_user = rng.random(users) < cfg.holdout
    in_holdout = holdout_user[t.user]
    dist = world.logging_policy(x)
    dist[in_holdout] = np.eye(cfg.actions)[cfg.default_action]
    action = (rng.random((n, 1)) > np.cumsum(dist, axis=1)).sum(axis=1)
    action = np.minimum(action, cfg.actions - 1)
    pscore = dist[np.arange(n), action]
    reward = rng.random(n) < q[np.arange(n), action]

    decision_id = ids(f"b{seed}-", np.arange(n))
    user_id = ids("u", t.user)
    context = json_column({f"x{j}": round(float(v), 6) for j, v in enumerate(row)} for row in x)
    logged_logits = np.log(dist + 1e-300)
    decisions = decisions_table(
        decision_id,
        t.timestamp,
        shown_items(
            ids("a", action),
            k=1,
            score=logged_logits[np.arange(n), action],
            propensity=pscore,
            cond_propensity=pscore,
        ),
        user_id=user_id,
        surface="bandit",
        model="bandit",
        model_version=pa.array(np.where(in_holdout, "holdout", "v1")),
        context=context,
        candidates=candidate_lists(
            ids("a", np.tile(np.arange(cfg.actions), n)), logged_logits.ravel(), k=cfg.actions
        ),
        propensity=pscore,
        policy=pa.array(
            np.where(
                in_holdout,
                '{"name":"holdout"}',
                f'{{"epsilon":{cfg.epsilon},"name":"softmax_epsilon","temperature":{cfg.temperature}}}',
            )
        ),
    )
    log = EventLog()
    clicked = np.flatnonzero(reward)
    log.add(
        "click",
        t.timestamp[clicked] + rng.integers(1_000_000, 20_000_000, len(clicked)),
        user_id=user_id.take(pa.array(clicked)),
        decision_id=decision_id.take(pa.array(clicked)),
        item_id=ids("a", action[clicked]),
    )
    first = np.unique(t.user, return_index=True)[1]
    log.add(
        "assignment",
        t.timestamp[first] - 1_000,
        user_id=user_id.take(pa.array(first)),
        value=np.where(in_holdout[first], cfg.holdout, 1 - cfg.holdout),
        properties=pa.array(
            np.where(
                in_holdout[first],
                '{"arm":"holdout","experiment":"bandit-v1"}',
                '{"arm":"model","experiment":"bandit-v1"}',
            )
        ),
    )
    rounds = pa.table(
        {
            "decision_id": decision_id,
            "action": pa.array(action),
            "pscore": pa.array(pscore),
            "reward": pa.array(reward),
            "expected_reward": pa.array(q[np.arange(n), action]),
            "q": pa.FixedSizeListArray.from_arrays(pa.array(q.ravel()), cfg.actions),
            "logging_dist": pa.FixedSizeListArray.from_arrays(pa.array(dist.ravel()), cfg.actions),
            "context": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), cfg.dim),
            "holdout": pa.array(in_holdout),
            "period": pa.array(period),
        }
    )
    params = {
        "config": asdict(cfg),
        "weights": weights.tolist(),
        "bias": bias.tolist(),
        "change_points_us": change_times.tolist(),
        "value": {
            name: policy_value(world, name, contexts=50_000)
            for name in ("uniform", "optimal", "logging", "default")
        },
        "uplift_per_round": policy_value(world, "logging", contexts=50_000)
        - policy_value(world, "default", contexts=50_000),
    }
    items = items_table(ids("a", np.arange(cfg.actions)))
    truth = Truth("bandit", seed, params, {"rounds": rounds})
    return Simulation("bandit", seed, decisions, log.table(prefix=f"be{seed}-"), items, truth)
