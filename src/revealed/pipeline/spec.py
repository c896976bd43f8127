"""The reward spec: how the behaviour around one served item becomes a label and a scalar reward.

A spec is pure configuration, written in TOML (``examples/reward.toml`` shows and explains every
key), parsed into frozen dataclasses that the pipeline reads to build its Ibis expressions, and
hashed (``RewardSpec.hash``) so every label and dataset records the spec that made it. A missing
section or key takes its default (``DEFAULT_SPEC``); a present array (``label.rules``,
``windows.rule``) or table (``reward.weights``) replaces the default one whole.

Signals: the pipeline computes one row per (decision, item) served with these columns. They are
the contract between spec and pipeline, and the only names conditions and weights may use.

==================  =======  ===================================================================
signal              kind     meaning
==================  =======  ===================================================================
viewed              bool     an ``impression`` was logged, the list was scrolled down to the item,
                             or the item is at or above the decision's last click
clicked             bool     at least one ``click``
click_count         count    number of ``click`` events
active_dwell_s      number   sum of the intervals (``value``) of ``heartbeat`` events with
                             ``properties.active`` true; the client's ``dwell`` seconds only when
                             the item has no heartbeats
max_scroll          number   deepest ``scroll`` in the item's page, 0-1
skipped             bool     at least one ``skip``
hidden              bool     at least one ``hide``
not_interested      bool     at least one ``not_interested``
saved               bool     at least one ``save``
shared              bool     at least one ``share``
copied              bool     at least one ``copy``
added_to_cart       bool     at least one ``add_to_cart``, direct or credited by window
purchase_amount     number   ``purchase`` amounts net of the ``return`` amounts of the same lines
purchases           count    ``purchase`` events credited to the item by the first credit model
                             (last touch by default; fractional where credit is split)
returned_amount     number   ``return`` amounts of those purchases (each at most its purchase),
                             credited as the purchases are
thumbs_up           bool     at least one ``thumbs_up``
thumbs_down         bool     at least one ``thumbs_down``
rating              number   the highest ``rating`` value, or null
above_last_click    bool     the item is at or above the decision's last clicked position
satisfied_click     bool     derived: ``clicked and active_dwell_s >= dwell.satisfied_seconds``
==================  =======  ===================================================================

Conditions (``label.rules[].when``) are a tiny expression language, parsed (never evaluated as
Python) into a typed AST of ``Signal``, ``Compare``, ``Not``, ``And`` and ``Or``::

    condition := conjunct ("or" conjunct)*
    conjunct  := negation ("and" negation)*
    negation  := "not" negation | atom
    atom      := "(" condition ")" | SIGNAL [(">" | ">=" | "<" | "<=" | "==" | "!=") NUMBER]

so ``not`` binds tighter than ``and``, which binds tighter than ``or``. A bare signal is true when
it is true (bool) or above 0 (count, number); booleans compare as 0/1. Null is false, and every
comparison with null is false: two-valued logic, the same in ``evaluate`` (Python) and
``to_ibis`` (any Ibis backend).

Errors: ``SpecError`` (a ``RevealedError`` and ``ValueError``, HTTP 422) names the source, the TOML
path, what was expected and what was found.

>>> spec = parse_spec("[dwell]\\nsatisfied_seconds = 10")
>>> spec.dwell.satisfied_seconds, spec.window_hours("purchase", "click", None)
(10.0, 168.0)
>>> row = {"viewed": True, "clicked": True, "active_dwell_s": 12.0, "purchase_amount": 0.0,
...        "saved": False, "shared": False, "copied": False}
>>> spec.label_of(row)
2
>>> when = parse_condition("clicked and not (hidden or rating < 3)")
>>> print(when)
clicked and not (hidden or rating < 3)
>>> evaluate(when, {"clicked": True, "hidden": False, "rating": None})
True
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import operator
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, assert_never, get_args

import ibis

from revealed.errors import RevealedError
from revealed.schema import EVENT_TYPES

__all__ = [
    "AggregateSpec",
    "And",
    "Compare",
    "Condition",
    "DEFAULT_SPEC",
    "DERIVED_SIGNALS",
    "DwellSpec",
    "LabelRule",
    "LabelSpec",
    "MaturitySpec",
    "Not",
    "Or",
    "RewardSpec",
    "RewardWeights",
    "SIGNALS",
    "SPEC_VERSION",
    "Signal",
    "SpecError",
    "WindowRule",
    "WindowSpec",
    "evaluate",
    "load_spec",
    "parse_condition",
    "parse_spec",
    "to_ibis",
]

SignalKind = Literal["bool", "count", "number"]
#: every signal of a served item and its kind, in the order of the table above
SIGNALS: Final[Mapping[str, SignalKind]] = {
    **dict.fromkeys(("viewed", "clicked"), "bool"),
    "click_count": "count",
    **dict.fromkeys(("active_dwell_s", "max_scroll"), "number"),
    **dict.fromkeys(
        ("skipped", "hidden", "not_interested", "saved", "shared", "copied", "added_to_cart"), "bool"
    ),
    "purchase_amount": "number",
    "purchases": "count",
    "returned_amount": "number",
    **dict.fromkeys(("thumbs_up", "thumbs_down"), "bool"),
    "rating": "number",
    "above_last_click": "bool",
}
#: signals the spec defines from other signals (``RewardSpec.derived`` holds their conditions)
DERIVED_SIGNALS: Final[Mapping[str, SignalKind]] = {"satisfied_click": "bool"}
_NAMES: Final = (*SIGNALS, *DERIVED_SIGNALS)
SPEC_VERSION: Final = 1
Touch = Literal["click", "view"]
_CUSTOM_EVENT: Final = re.compile(r"^x-[a-z0-9][a-z0-9_.-]{0,62}$")


class SpecError(RevealedError, ValueError):
    """A reward spec that cannot be read; ``path`` is the TOML path at fault (``label.rules[2].when``)."""

    status = 422

    def __init__(self, path: str, detail: str, *, source: str = "", hint: str = "") -> None:
        super().__init__(": ".join(p for p in (source, path, detail) if p), hint=hint)
        self.path, self.detail, self.source = path, detail, source


def _suggest(name: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------------------------
# Conditions: AST, parser, evaluation in Python and translation to Ibis
# ---------------------------------------------------------------------------------------------

CompareOp = Literal[">", ">=", "<", "<=", "==", "!="]
_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _number_text(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


@dataclass(frozen=True)
class Signal:
    """A signal used as a truth value: true when true or above 0, false when null."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Compare:
    """``name op value``; false when the signal is null."""

    name: str
    op: CompareOp
    value: float

    def __str__(self) -> str:
        return f"{self.name} {self.op} {_number_text(self.value)}"


@dataclass(frozen=True)
class Not:
    """True when `operand` is false (which includes a comparison with null)."""

    operand: Condition

    def __str__(self) -> str:
        inner = str(self.operand)
        return f"not ({inner})" if isinstance(self.operand, And | Or) else f"not {inner}"


@dataclass(frozen=True)
class And:
    """True when every operand is true (two or more operands, none of them an ``And``)."""

    operands: tuple[Condition, ...]

    def __str__(self) -> str:
        return " and ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.operands)


@dataclass(frozen=True)
class Or:
    """True when any operand is true (two or more operands, none of them an ``Or``)."""

    operands: tuple[Condition, ...]

    def __str__(self) -> str:
        return " or ".join(str(c) for c in self.operands)


Condition: TypeAlias = Signal | Compare | Not | And | Or

_TOKEN: Final = re.compile(
    r"\s*(?:(?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>>=|<=|==|!=|>|<)|(?P<paren>[()])|(?P<bad>\S))"
)
_KEYWORDS: Final = ("and", "or", "not")


class _Parser:
    """Recursive descent over the grammar in the module docstring; errors are SpecError at `path`."""

    def __init__(self, text: str, path: str, names: Collection[str]) -> None:
        self.text, self.path, self.names = text, path, names
        self.tokens = [
            (m.lastgroup or "", m.group(m.lastgroup or 0), m.start(m.lastgroup or 0) + 1)
            for m in _TOKEN.finditer(text)
            if m.lastgroup
        ]
        self.i = 0

    def fail(self, expected: str, hint: str = "") -> SpecError:
        if self.i < len(self.tokens):
            _, tok, col = self.tokens[self.i]
            found = f"{tok!r} at column {col}"
            if tok.lower() in _KEYWORDS and tok not in _KEYWORDS:
                hint = hint or f"operators are lower case: {tok.lower()!r}"
            elif tok == "=":
                hint = hint or "compare with '=='"
        else:
            found = "the end of the condition" if self.tokens else "an empty condition"
        return SpecError(self.path, f"expected {expected} in {self.text!r}, found {found}", hint=hint)

    def peek(self, kind: str, text: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        k, t, _ = self.tokens[self.i]
        return k == kind and (text is None or t == text)

    def take(self) -> str:
        self.i += 1
        return self.tokens[self.i - 1][1]

    def parse(self) -> Condition:
        condition = self.disjunction()
        if self.i < len(self.tokens):
            raise self.fail("'and', 'or' or the end of the condition")
        return condition

    def disjunction(self) -> Condition:
        parts = [self.conjunction()]
        while self.peek("name", "or"):
            self.take()
            parts.append(self.conjunction())
        flat = tuple(q for p in parts for q in (p.operands if isinstance(p, Or) else (p,)))
        return flat[0] if len(flat) == 1 else Or(flat)

    def conjunction(self) -> Condition:
        parts = [self.negation()]
        while self.peek("name", "and"):
            self.take()
            parts.append(self.negation())
        flat = tuple(q for p in parts for q in (p.operands if isinstance(p, And) else (p,)))
        return flat[0] if len(flat) == 1 else And(flat)

    def negation(self) -> Condition:
        if self.peek("name", "not"):
            self.take()
            return Not(self.negation())
        return self.atom()

    def atom(self) -> Condition:
        if self.peek("paren", "("):
            self.take()
            inner = self.disjunction()
            if not self.peek("paren", ")"):
                raise self.fail("')'")
            self.take()
            return inner
        if not self.peek("name") or self.tokens[self.i][1].lower() in _KEYWORDS:
            raise self.fail("a signal, 'not' or '('")
        name = self.tokens[self.i][1]
        if name not in self.names:
            raise SpecError(
                self.path,
                f"expected a condition over known signals, found unknown name {name!r}"
                + _suggest(name, self.names),
                hint="signals: " + ", ".join(self.names),
            )
        self.take()
        if not self.peek("op"):
            return Signal(name)
        op = self.take()
        if not self.peek("number"):
            raise self.fail(f"a number after {name} {op}")
        value = float(self.take())
        if not math.isfinite(value):
            self.i -= 1
            raise self.fail("a finite number")
        return Compare(name, op, value)  # type: ignore[arg-type]  # op is one of _OPS by the regex


def parse_condition(text: str, *, path: str = "condition", names: Collection[str] = _NAMES) -> Condition:
    """Parse a condition into its AST; `path` names it in errors.

    >>> parse_condition("not hidden and rating >= 4")
    And(operands=(Not(operand=Signal(name='hidden')), Compare(name='rating', op='>=', value=4.0)))
    >>> print(parse_condition("saved or (clicked and (hidden or not(rating<3)))"))
    saved or clicked and (hidden or not rating < 3)
    >>> parse_condition("clickd")
    Traceback (most recent call last):
    ...
    revealed.pipeline.spec.SpecError: condition: expected a condition over known signals, found unknown name 'clickd' (did you mean 'clicked'?) (hint: signals: ...)
    """  # noqa: E501
    return _Parser(text, path, names).parse()


def _lookup(name: str, columns: Mapping[str, Any], derived: Mapping[str, Condition] | None) -> Any:
    if name in columns:
        return columns[name]
    if derived is not None and name in derived:
        return derived[name]
    raise SpecError(
        name,
        f"the condition needs the signal {name!r}, which is not among the columns given"
        + _suggest(name, columns),
        hint="pass every signal the condition names, and `derived=spec.derived` for satisfied_click",
    )


def evaluate(
    condition: Condition, row: Mapping[str, object], *, derived: Mapping[str, Condition] | None = None
) -> bool:
    """The truth of `condition` on one row of signals, in plain Python (tests and docs).

    >>> evaluate(parse_condition("rating >= 4 or not clicked"), {"rating": None, "clicked": True})
    False
    """

    def value(name: str) -> object:
        found = _lookup(name, row, derived)
        return evaluate(found, row) if isinstance(found, Signal | Compare | Not | And | Or) else found

    match condition:
        case Signal(name):
            v = value(name)
            return v is not None and (bool(v) if isinstance(v, bool) else float(v) > 0)  # type: ignore[arg-type]
        case Compare(name, op, number):
            v = value(name)
            return v is not None and bool(_OPS[op](float(v), number))  # type: ignore[arg-type]
        case Not(operand):
            return not evaluate(operand, row, derived=derived)
        case And(operands):
            return all(evaluate(c, row, derived=derived) for c in operands)
        case Or(operands):
            return any(evaluate(c, row, derived=derived) for c in operands)
        case _:
            assert_never(condition)


def to_ibis(
    condition: Condition, columns: Mapping[str, ibis.Value], *, derived: Mapping[str, Condition] | None = None
) -> ibis.BooleanValue:
    """The same truth values as `evaluate`, as a non-null Ibis boolean expression over `columns`.

    >>> t = ibis.memtable({"clicked": [True, False], "rating": [5.0, None]})
    >>> expr = to_ibis(parse_condition("clicked and rating > 4"), {"clicked": t.clicked, "rating": t.rating})
    >>> ibis.duckdb.connect().execute(t.select(ok=expr))["ok"].tolist()
    [True, False]
    """

    def value(name: str) -> Any:
        found = _lookup(name, columns, derived)
        return to_ibis(found, columns) if isinstance(found, Signal | Compare | Not | And | Or) else found

    match condition:
        case Signal(name):
            v = value(name)
            return v.fill_null(False) if v.type().is_boolean() else (v > 0).fill_null(False)
        case Compare(name, op, number):
            v = value(name)
            v = v.cast("int8") if v.type().is_boolean() else v
            return _OPS[op](v, number).fill_null(False)
        case Not(operand):
            return ~to_ibis(operand, columns, derived=derived)
        case And(operands):
            return functools.reduce(operator.and_, (to_ibis(c, columns, derived=derived) for c in operands))
        case Or(operands):
            return functools.reduce(operator.or_, (to_ibis(c, columns, derived=derived) for c in operands))
        case _:
            assert_never(condition)


# ---------------------------------------------------------------------------------------------
# The spec: sections as frozen dataclasses that validate their own values
# ---------------------------------------------------------------------------------------------


def _check_version(version: int) -> None:
    if version != SPEC_VERSION:
        raise SpecError(
            "version", f"expected {SPEC_VERSION} (the only version this revealed reads), found {version!r}"
        )


def _at_least(name: str, value: float, minimum: float = -math.inf, *, strict: bool = False) -> None:
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = "" if minimum == -math.inf else f" {'>' if strict else '>='} {_number_text(minimum)}"
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
                f"expected an event type, found {self.event!r}" + _suggest(self.event, EVENT_TYPES),
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
            if name not in _NAMES:
                raise SpecError(
                    name, "unknown signal" + _suggest(name, _NAMES), hint="signals: " + ", ".join(_NAMES)
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
        _check_version(self.version)

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


# ---------------------------------------------------------------------------------------------
# Reading TOML
# ---------------------------------------------------------------------------------------------


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
                    self.unknown + _suggest(key, self.allowed),
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
    _check_version(version)  # first: a newer spec's other errors would mislead

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
        w = t.table("weights", _NAMES, "unknown signal")
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
