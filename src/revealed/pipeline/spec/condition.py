"""Conditions (``label.rules[].when``): a tiny expression language, parsed (never evaluated as
Python) into a typed AST of ``Signal``, ``Compare``, ``Not``, ``And`` and ``Or``::

    condition := conjunct ("or" conjunct)*
    conjunct  := negation ("and" negation)*
    negation  := "not" negation | atom
    atom      := "(" condition ")" | SIGNAL [(">" | ">=" | "<" | "<=" | "==" | "!=") NUMBER]

so ``not`` binds tighter than ``and``, which binds tighter than ``or``. A bare signal is true when
it is true (bool) or above 0 (count, number); booleans compare as 0/1. Null is false, and every
comparison with null is false: two-valued logic, the same in ``evaluate`` (Python) and
``to_ibis`` (any Ibis backend).
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, assert_never

import ibis

from revealed.pipeline.spec.errors import SpecError, number_text, suggest
from revealed.pipeline.spec.signals import NAMES

__all__ = [
    "And",
    "Compare",
    "CompareOp",
    "Condition",
    "Not",
    "Or",
    "Signal",
    "evaluate",
    "parse_condition",
    "to_ibis",
]

CompareOp = Literal[">", ">=", "<", "<=", "==", "!="]
_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


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
        return f"{self.name} {self.op} {number_text(self.value)}"


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
    """Recursive descent over the grammar above; errors are SpecError at `path`."""

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
                + suggest(name, self.names),
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


def parse_condition(text: str, *, path: str = "condition", names: Collection[str] = NAMES) -> Condition:
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
        + suggest(name, columns),
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
