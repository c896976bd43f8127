"""Simulated worlds with ground truth: the yardstick for every estimator and the engine of the demo.

Each world is seeded and vectorised, returns records in the v1 contract (`Simulation`) and the
truth beside them (`Truth`): click-model parameters, relevance, causal touches, response
quality, change points, and the true value of policies.

>>> sim = simulate("ranking", 500, seed=1)
>>> sim.world, sim.counts["decisions"]
('ranking', 500)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from revealed.sim.world import Simulation, Truth

__all__ = ["Simulation", "Truth", "WORLDS", "configure", "describe_worlds", "simulate"]

#: world name -> (module, function, one-line description); each module has a `<Name>Config`
WORLDS: Final[dict[str, tuple[str, str, str]]] = {
    "ranking": (
        "revealed.sim.ranking",
        "simulate_ranking",
        "search and feed lists: logging policies with propensities, five click models, dwell, purchases",
    ),
    "journeys": (
        "revealed.sim.journeys",
        "simulate_journeys",
        "multi-surface journeys (search, feed, email): each purchase has a known causal touch or none",
    ),
    "bandit": (
        "revealed.sim.bandit",
        "simulate_bandit",
        "contextual bandit: one action per round, known expected reward, holdout assignments",
    ),
    "assistant": (
        "revealed.sim.assistant",
        "simulate_assistant",
        "LLM assistant: responses of latent quality, regenerate, copy, edit, thumbs, abandon",
    ),
}


def _function(world: str) -> Callable[..., Simulation]:
    import importlib

    if world not in WORLDS:
        raise ValueError(f"world: expected one of {', '.join(WORLDS)}, found {world!r}")
    module, name, _ = WORLDS[world]
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def simulate(world: str, n: int, seed: int, **options: Any) -> Simulation:
    """Simulate `n` decisions of `world` with `seed`; options go to the world (e.g. `config=`)."""
    if n < 1:
        raise ValueError(f"n: expected at least 1 decision, found {n}")
    return _function(world)(n, seed, **options)


_CONFIGS: Final = {
    "ranking": ("RankingConfig", "days"),
    "journeys": ("JourneyConfig", "span_days"),
    "bandit": ("BanditConfig", "days"),
    "assistant": ("AssistantConfig", "days"),
}


def configure(world: str, config: Any = None, *, days: float | None = None) -> Any:
    """The world's config (a default one when None) with the period of its traffic set to `days`."""
    import dataclasses
    import importlib

    _function(world)  # checks the name
    name, days_field = _CONFIGS[world]
    if config is None:
        config = getattr(importlib.import_module(WORLDS[world][0]), name)()
    return config if days is None else dataclasses.replace(config, **{days_field: days})


def describe_worlds() -> dict[str, str]:
    return {name: description for name, (_, _, description) in WORLDS.items()}
