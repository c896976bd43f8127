"""Reading a reward spec from TOML: every value is checked against its section's type, unknown keys
are refused with the closest known one, and each error names the TOML path at fault."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from revealed.pipeline.spec.condition import parse_condition
from revealed.pipeline.spec.errors import SpecError, suggest
from revealed.pipeline.spec.sections import (
    DEFAULT_SPEC,
    AggregateSpec,
    DwellSpec,
    LabelRule,
    LabelSpec,
    MaturitySpec,
    RewardSpec,
    RewardWeights,
    WindowRule,
    WindowSpec,
    check_version,
)
from revealed.pipeline.spec.signals import NAMES

__all__ = ["load_spec", "parse_spec"]


def _found(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float | str):
        return f"{'string' if isinstance(value, str) else 'number'} {value!r}"
    names: dict[type, str] = {dict: "a table", list: "an array"}
    return names.get(type(value), f"a {type(value).__name__}")


_KINDS: Final[dict[str, tuple[type[Any], ...]]] = {
    "a number": (int, float),
    "an integer": (int,),
    "a boolean": (bool,),
    "a string": (str,),
    "a table": (dict,),
    "an array": (list,),
}
_REQUIRED: Final = object()


@dataclass(frozen=True)
class _Table:
    """One TOML table being read: typed getters that name the path; unknown keys are refused."""

    data: Mapping[str, object]
    path: str
    allowed: Collection[str]
    unknown: str = "unknown key"

    def __post_init__(self) -> None:
        for key in self.data:
            if key not in self.allowed:
                raise SpecError(
                    self.at(key),
                    self.unknown + suggest(key, self.allowed),
                    hint="expected one of " + ", ".join(self.allowed),
                )

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: str, default: Any = _REQUIRED) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise SpecError(self.at(key), f"expected {kind}, found nothing")
            return default
        value, types = self.data[key], _KINDS[kind]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise SpecError(self.at(key), f"expected {kind}, found {_found(value)}")
        return float(value) if kind == "a number" else value

    def table(self, key: str, allowed: Collection[str], unknown: str = "unknown key") -> _Table:
        return _Table(self.get(key, "a table", {}), self.at(key), allowed, unknown)

    def tables(self, key: str, allowed: Collection[str]) -> list[_Table] | None:
        """An array of tables (``[[key]]`` or ``key = [{...}]``); None when absent."""
        if key not in self.data:
            return None
        items: list[_Table] = []
        for i, item in enumerate(self.get(key, "an array")):
            if not isinstance(item, dict):
                raise SpecError(f"{self.at(key)}[{i}]", f"expected a table, found {_found(item)}")
            items.append(_Table(item, f"{self.at(key)}[{i}]", allowed))
        return items


def _build(path: str, make: Callable[..., Any], **values: Any) -> Any:
    """Call a section's constructor, prefixing the errors its own validation raises with `path`."""
    try:
        return make(**values)
    except SpecError as e:
        raise SpecError(f"{path}.{e.path}" if e.path else path, e.detail, hint=e.hint) from None


def _read(data: Mapping[str, object]) -> RewardSpec:
    d = DEFAULT_SPEC
    root = _Table(data, "", [f.name for f in fields(RewardSpec)])
    version = root.get("version", "an integer", d.version)
    check_version(version)  # first: a newer spec's other errors would mislead

    t = root.table("dwell", ["satisfied_seconds", "heartbeat_idle"])
    dwell = _build(
        "dwell",
        DwellSpec,
        satisfied_seconds=t.get("satisfied_seconds", "a number", d.dwell.satisfied_seconds),
        heartbeat_idle=t.get("heartbeat_idle", "a string", d.dwell.heartbeat_idle),
    )

    numbers = ["default_click_hours", "default_view_hours", "return_window_days"]
    t = root.table("windows", [*numbers, "rule"])
    rules = d.windows.rules
    if (tables := t.tables("rule", ["event", "touch", "surface", "hours"])) is not None:
        rules = tuple(
            _build(
                r.path,
                WindowRule,
                event=r.get("event", "a string"),
                touch=r.get("touch", "a string"),
                hours=r.get("hours", "a number"),
                surface=r.get("surface", "a string", None),
            )
            for r in tables
        )
    windows = _build(
        "windows",
        WindowSpec,
        rules=rules,
        **{k: t.get(k, "a number", getattr(d.windows, k)) for k in numbers},
    )

    t = root.table("label", ["rules", "unknown"])
    label_rules = d.label.rules
    if (tables := t.tables("rules", ["when", "label"])) is not None:
        label_rules = tuple(
            LabelRule(
                parse_condition(r.get("when", "a string"), path=r.at("when")), r.get("label", "an integer")
            )
            for r in tables
        )
    raw = t.data.get("unknown", "null")
    unknown: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        unknown = raw
    elif raw != "null":
        raise SpecError("label.unknown", f'expected "null" or an integer label, found {_found(raw)}')

    t = root.table("reward", ["weights"])
    weights = d.reward.weights
    if "weights" in t.data:
        w = t.table("weights", NAMES, "unknown signal")
        weights = tuple((name, w.get(name, "a number")) for name in w.data)

    t = root.table("aggregate", ["return_within_days", "session_gap_minutes"])
    aggregate = _build(
        "aggregate",
        AggregateSpec,
        **{k: t.get(k, "a number", getattr(d.aggregate, k)) for k in t.allowed},
    )
    t = root.table("maturity", ["exclude_immature"])
    return RewardSpec(
        version=version,
        dwell=dwell,
        windows=windows,
        label=LabelSpec(label_rules, unknown),
        reward=_build("reward.weights", RewardWeights, weights=weights),
        aggregate=aggregate,
        maturity=MaturitySpec(t.get("exclude_immature", "a boolean", d.maturity.exclude_immature)),
    )


def parse_spec(text: str, *, source: str = "<spec>") -> RewardSpec:
    """Parse and validate a reward spec written in TOML; `source` names it in errors.

    >>> parse_spec("[windows]\\ndefault_view_hours = -1", source="r.toml")
    Traceback (most recent call last):
    ...
    revealed.pipeline.spec.SpecError: r.toml: windows.default_view_hours: expected a number >= 0, found -1.0
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError("", f"invalid TOML: {e}", source=source) from None
    try:
        return _read(data)
    except SpecError as e:
        raise SpecError(e.path, e.detail, source=source, hint=e.hint) from None


def load_spec(path: Path | None = None) -> RewardSpec:
    """Read the spec at `path`, or the defaults (`DEFAULT_SPEC`) when `path` is None."""
    if path is None:
        return DEFAULT_SPEC
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(
            "",
            f"cannot read the reward spec: {e}",
            source=str(path),
            hint="pass a UTF-8 TOML file, or no path",
        ) from None
    return parse_spec(text, source=str(path))
