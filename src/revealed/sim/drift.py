"""Drift for any world: change points turned into each world's own configuration.

The ranking world changes item quality (`QualityChange`), the bandit world redraws some actions'
reward weights (`RewardChange`), the assistant world lowers the newest model version's mean
quality, and the journeys world's email stops causing purchases (`LiftChange`).
The change points, in UTC microseconds, are in each world's truth (`change_points_us`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["check_change", "drift_options"]


def check_change(hours: float, share: float, of: str) -> None:
    """A change point `hours` after the start that touches `share` of the world's `of`."""
    if not hours >= 0:
        raise ValueError(f"hours: expected a number >= 0 (hours after the start), found {hours}")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share: expected a share of {of} in [0, 1], found {share}")


def drift_options(world: str, hours: Sequence[float]) -> dict[str, Any]:
    """Options for `revealed.sim.simulate(world, ...)` that put change points at `hours`."""
    if world == "ranking":
        from revealed.sim.ranking import QualityChange, RankingConfig

        return {"config": RankingConfig(drift=tuple(QualityChange(h) for h in hours))}
    if world == "bandit":
        from revealed.sim.bandit import BanditConfig, RewardChange

        return {"config": BanditConfig(drift=tuple(RewardChange(h) for h in hours))}
    if world == "assistant":
        from revealed.sim.assistant import AssistantConfig

        newest = max(AssistantConfig().versions)
        return {"config": AssistantConfig(drift=tuple((h, newest, 0.4) for h in hours))}
    if world == "journeys":
        from revealed.sim.journeys import JourneyConfig, LiftChange

        return {"config": JourneyConfig(drift=tuple(LiftChange(h, "email", 0.0) for h in hours))}
    raise ValueError(f"world: expected ranking, journeys, bandit or assistant, found {world!r}")
