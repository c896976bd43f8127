"""The spec's sections: frozen dataclasses that validate their own values, and `RewardSpec`, which
holds them, answers the pipeline's questions (windows, labels, rewards) and is hashed into the
lineage of every label and dataset it makes."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, get_args

from revealed.pipeline.spec.condition import And, Compare, Condition, Signal, evaluate, parse_condition
from revealed.pipeline.spec.errors import SpecError, number_text, suggest
from revealed.pipeline.spec.signals import NAMES
from revealed.schema import EVENT_TYPES

__all__ = [
    "AggregateSpec",
    "DEFAULT_SPEC",
    "DwellSpec",
    "LabelRule",
    "LabelSpec",
    "MaturitySpec",
    "RewardSpec",
    "RewardWeights",
    "SPEC_VERSION",
    "Touch",
    "WindowRule",
    "WindowSpec",
    "check_version",
]

SPEC_VERSION: Final = 1
Touch = Literal["click", "view"]
_CUSTOM_EVENT: Final = re.compile(r"^x-[a-z0-9][a-z0-9_.-]{0,62}$")


def check_version(version: int) -> None:
    """Refuse a spec written for another version; read before anything else, since a newer
    spec's other errors would mislead."""
    if version != SPEC_VERSION:
        raise SpecError(
            "version", f"expected {SPEC_VERSION} (the only version this revealed reads), found {version!r}"
        )


def _at_least(name: str, value: float, minimum: float = -math.inf, *, strict: bool = False) -> None:
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = "" if minimum == -math.inf else f" {'>' if strict else '>='} {number_text(minimum)}"
        finite = "" if math.isfinite(value) else "finite "
        raise SpecError(name, f"expected a {finite}number{bound}, found {value!r}")


@dataclass(frozen=True)
class DwellSpec:
    """When a click counts as satisfied, and which heartbeats count as active dwell."""

    satisfied_seconds: float = 30.0
    #: heartbeats with ``properties.active = false`` are idle time and add no dwell (the only mode)
    heartbeat_idle: Literal["inactive"] = "inactive"

    def __post_init__(self) -> None:
        _at_least("satisfied_seconds", self.satisfied_seconds, 0)
        if self.heartbeat_idle != "inactive":
            raise SpecError(
                "heartbeat_idle",
                f"expected 'inactive' (idle heartbeats add no dwell), found {self.heartbeat_idle!r}",
            )


@dataclass(frozen=True)
class WindowRule:
    """An attribution window for one event type after one kind of touch, optionally on one surface."""

    event: str
    touch: Touch
    hours: float
    surface: str | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENT_TYPES and not _CUSTOM_EVENT.match(self.event):
            raise SpecError(
                "event",
                f"expected an event type, found {self.event!r}" + suggest(self.event, EVENT_TYPES),
                hint="event types: " + ", ".join(sorted(EVENT_TYPES)) + ", or a custom 'x-...'",
            )
        if self.touch not in get_args(Touch):
            raise SpecError("touch", f"expected 'click' or 'view', found {self.touch!r}")
        if self.surface is not None and not self.surface:
            raise SpecError("surface", "expected a surface name, found an empty string")
        _at_least("hours", self.hours, 0)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.event, self.touch, self.surface or "")


@dataclass(frozen=True)
class WindowSpec:
    """Attribution windows: how long after a click or a view an event still counts for the item."""

    default_click_hours: float = 168.0
    default_view_hours: float = 24.0
    #: a purchase is mature (its returns are known) only this long after it happened
    return_window_days: float = 30.0
    #: overrides, kept sorted; at most one per (event, touch, surface)
    rules: tuple[WindowRule, ...] = (WindowRule("purchase", "view", 72.0, "email"),)

    def __post_init__(self) -> None:
        for name in ("default_click_hours", "default_view_hours", "return_window_days"):
            _at_least(name, getattr(self, name), 0)
        seen: dict[tuple[str, str, str], int] = {}
        for i, rule in enumerate(self.rules):
            if rule.key in seen:
                raise SpecError(
                    f"rule[{i}]",
                    "expected one rule per (event, touch, surface), found "
                    f"{(rule.event, rule.touch, rule.surface)!r} again (first in rule[{seen[rule.key]}])",
                )
            seen[rule.key] = i
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=lambda r: r.key)))

    def hours(self, event: str, touch: str, surface: str | None = None) -> float:
        """The window for `event` after a `touch`: a rule for this surface, else one for every
        surface, else the touch's default."""
        if touch not in get_args(Touch):
            raise SpecError("touch", f"expected 'click' or 'view', found {touch!r}")
        best: WindowRule | None = None
        for rule in self.rules:
            matches = rule.event == event and rule.touch == touch and rule.surface in (None, surface)
            if matches and (best is None or rule.surface is not None):
                best = rule
        if best is not None:
            return best.hours
        return self.default_click_hours if touch == "click" else self.default_view_hours


@dataclass(frozen=True)
class LabelRule:
    """Rows where `when` holds get `label` (unless an earlier rule matched)."""

    when: Condition
    label: int


_DEFAULT_RULES: Final = tuple(
    LabelRule(parse_condition(when), label)
    for when, label in [
        ("purchase_amount > 0", 4),
        ("saved or shared or copied", 3),
        ("satisfied_click", 2),
        ("clicked", 1),
        ("hidden or not_interested or skipped", -1),
        ("viewed and not clicked and above_last_click", 0),
    ]
)


@dataclass(frozen=True)
class LabelSpec:
    """Ordered rules, first match wins; rows matching none get `unknown` (None: a null label)."""

    rules: tuple[LabelRule, ...] = _DEFAULT_RULES
    unknown: int | None = None


@dataclass(frozen=True)
class RewardWeights:
    """The scalar reward: sum of weight x signal (booleans 0/1, null 0). Kept sorted by signal."""

    weights: tuple[tuple[str, float], ...] = (
        ("clicked", 1.0),
        ("satisfied_click", 2.0),
        ("purchase_amount", 0.01),
        ("saved", 3.0),
        ("shared", 3.0),
        ("copied", 2.0),
        ("hidden", -2.0),
        ("not_interested", -3.0),
        ("skipped", -0.5),
        ("thumbs_up", 5.0),
        ("thumbs_down", -5.0),
    )

    def __post_init__(self) -> None:
        for name, weight in self.weights:
            if name not in NAMES:
                raise SpecError(
                    name, "unknown signal" + suggest(name, NAMES), hint="signals: " + ", ".join(NAMES)
                )
            _at_least(name, weight)
        if len({n for n, _ in self.weights}) != len(self.weights):
            raise SpecError("", "expected one weight per signal, found a signal twice")
        object.__setattr__(self, "weights", tuple(sorted(self.weights)))

    def as_dict(self) -> dict[str, float]:
        return dict(self.weights)


@dataclass(frozen=True)
class AggregateSpec:
    """User-level signals: a return visit within N days; sessions split by an idle gap."""

    return_within_days: float = 7.0
    session_gap_minutes: float = 30.0

    def __post_init__(self) -> None:
        _at_least("return_within_days", self.return_within_days, 0, strict=True)
        _at_least("session_gap_minutes", self.session_gap_minutes, 0, strict=True)


@dataclass(frozen=True)
class MaturitySpec:
    """Whether rows still inside their return window are left out of labels."""

    exclude_immature: bool = True


@dataclass(frozen=True)
class RewardSpec:
    """A whole reward spec; build it with `parse_spec` or `load_spec`, or take `DEFAULT_SPEC`.

    >>> DEFAULT_SPEC.reward.as_dict()["satisfied_click"], DEFAULT_SPEC.label.unknown
    (2.0, None)
    >>> DEFAULT_SPEC.reward_of({"clicked": True, "satisfied_click": False, "purchase_amount": 50.0})
    1.5
    """

    version: int = SPEC_VERSION
    dwell: DwellSpec = field(default_factory=DwellSpec)
    windows: WindowSpec = field(default_factory=WindowSpec)
    label: LabelSpec = field(default_factory=LabelSpec)
    reward: RewardWeights = field(default_factory=RewardWeights)
    aggregate: AggregateSpec = field(default_factory=AggregateSpec)
    maturity: MaturitySpec = field(default_factory=MaturitySpec)

    def __post_init__(self) -> None:
        check_version(self.version)

    @property
    def derived(self) -> dict[str, Condition]:
        """The definitions of the derived signals, for `evaluate(..., derived=)` and `to_ibis`."""
        return {
            "satisfied_click": And(
                (Signal("clicked"), Compare("active_dwell_s", ">=", self.dwell.satisfied_seconds))
            )
        }

    def window_hours(self, event: str, touch: str, surface: str | None = None) -> float:
        """The attribution window in hours; the most specific rule wins.

        >>> [DEFAULT_SPEC.window_hours("purchase", "view", surface) for surface in ("email", "search")]
        [72.0, 24.0]
        """
        return self.windows.hours(event, touch, surface)

    def label_of(self, row: Mapping[str, object]) -> int | None:
        """The label of one row of signals, in plain Python (the pipeline does this in Ibis)."""
        for rule in self.label.rules:
            if evaluate(rule.when, row, derived=self.derived):
                return rule.label
        return self.label.unknown

    def reward_of(self, row: Mapping[str, object]) -> float:
        """The scalar reward of one row of signals, in plain Python (missing or null signals count 0)."""
        total = 0.0
        for name, weight in self.reward.weights:
            v = row.get(name)
            if v is None and name in self.derived:
                v = evaluate(self.derived[name], row)
            total += weight * float(v or 0)  # type: ignore[arg-type]
        return total

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec as TOML-shaped plain data (conditions in canonical text)."""
        return {
            "version": self.version,
            "dwell": _plain(self.dwell),
            "windows": {
                **{f.name: getattr(self.windows, f.name) for f in fields(WindowSpec) if f.name != "rules"},
                "rule": [{k: v for k, v in _plain(r).items() if v is not None} for r in self.windows.rules],
            },
            "label": {
                "rules": [{"when": str(r.when), "label": r.label} for r in self.label.rules],
                "unknown": "null" if self.label.unknown is None else self.label.unknown,
            },
            "reward": {"weights": self.reward.as_dict()},
            "aggregate": _plain(self.aggregate),
            "maturity": _plain(self.maturity),
        }

    @property
    def hash(self) -> str:
        """sha256 of the normalised spec: equal specs hash equal whatever their key order or spelling."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _plain(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in fields(section)}


DEFAULT_SPEC: Final = RewardSpec()
