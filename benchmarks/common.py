"""Shared helpers: timing, results and the sample records every benchmark uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

T0 = 1_767_225_600_000


@dataclass(frozen=True)
class Result:
    name: str
    rate: float
    unit: str
    baseline: str | None = None
    baseline_rate: float | None = None
    aim: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline_rate else self.rate / self.baseline_rate

    def row(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        base = "" if self.baseline_rate is None else f"{self.baseline}: {_number(self.baseline_rate)}"
        aim = "" if self.aim is None else f">= {self.aim:g}"
        return f"| {self.name} | {_number(self.rate)} {self.unit} | {base} | {ratio} | {aim} |"


def _number(x: float) -> str:
    """Thousands separated, with three significant digits below 100 (microseconds, milliseconds)."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """The fastest of several runs, in seconds (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"e{i:09d}",
        "timestamp": T0 + i,
        "type": ("click", "dwell", "impression", "purchase")[i % 4],
        "user_id": f"u{i % 5000}",
        "decision_id": f"d{i // 10}",
        "item_id": f"i{i % 997}",
        "value": float(i % 120) if i % 4 == 1 else None,
        "properties": {"page": "home", "n": i % 7},
    }


def decision(i: int, k: int = 10) -> dict[str, Any]:
    return {
        "decision_id": f"d{i:09d}",
        "timestamp": T0 + i,
        "user_id": f"u{i % 5000}",
        "surface": "home_feed",
        "model": "ranker",
        "model_version": "v3",
        "context": {"device": "ios", "hour": i % 24},
        "items": [
            {
                "item_id": f"i{(i * 7 + j) % 997}",
                "score": 1.0 / (j + 1),
                "cond_propensity": 0.5,
                "propensity": 0.3,
            }
            for j in range(k)
        ],
        "policy": {"name": "pl", "temperature": 1.0},
    }
