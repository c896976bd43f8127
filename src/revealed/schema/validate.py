"""Validation of raw records against the v1 contract, with field-level errors.

Decoding is msgspec's (typed, fast); the rules that types cannot express follow in plain Python.
Every failure becomes a :class:`FieldError` that names the field, what was expected and what was
found; nothing escapes as an exception.

>>> raw = b'{"event_id": "e1", "timestamp": 1769860800000, "type": "clik", "user_id": "u"}'
>>> checked = validate("event", raw)
>>> print(checked.errors[0])  # doctest: +ELLIPSIS
type: expected a known event type (add_to_cart, assignment, ...) or a custom type x-..., found 'clik'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import msgspec

from revealed.schema.records import (
    EVENT_TYPES,
    INTERVENTION_TYPES,
    KINDS,
    MAX_ID_LENGTH,
    Decision,
    Event,
    Item,
    Kind,
    Record,
)
from revealed.schema.timefmt import DAY_US, MAX_US, MIN_US, parse_time
from revealed.schema.timefmt import describe as _found

__all__ = [
    "Checked",
    "accepts_event_at",
    "check",
    "latest_ms",
    "FieldError",
    "MAX_ID_LENGTH",
    "decode",
    "detect_kind",
    "validate",
    "validate_many",
]

_TYPES: Final[dict[str, type[Record]]] = {"decision": Decision, "event": Event, "item": Item}
_DECODERS: Final = {kind: msgspec.json.Decoder(cls) for kind, cls in _TYPES.items()}
_ANY_JSON: Final = msgspec.json.Decoder()
_CUSTOM_TYPE: Final = re.compile(r"^x-[a-z0-9][a-z0-9_.-]{0,62}$")
_KNOWN_TYPES: Final = ", ".join(sorted(EVENT_TYPES))
_MSGSPEC_AT: Final = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_ENCODE: Final = msgspec.json.Encoder(order="sorted").encode  # as the store encodes free-form objects
_MAX_DEPTH: Final = 64
_ID: Final = f"a non-empty string of at most {MAX_ID_LENGTH} characters"
#: what a constrained field expects, by field name (the constraints live on the record types)
_EXPECTED: Final = {
    **dict.fromkeys(
        (
            "decision_id",
            "event_id",
            "item_id",
            "user_id",
            "anonymous_id",
            "session_id",
            "surface",
            "query_id",
            "request_id",
            "conversation_id",
            "parent_decision_id",
            "model",
            "model_version",
            "order_id",
        ),
        _ID,
    ),
    "propensity": "a number in (0, 1]",
    "cond_propensity": "a number in (0, 1]",
    "position": "an integer >= 0",
    "original_position": "an integer >= 0",
    "score": "a finite number",
    "value": "a finite number",
    "logits": "a finite number",
    "embedding": "a finite float32 number",
}
_TYPE_WORDS: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
    "int | float | str": "an RFC 3339 string or epoch milliseconds",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """What was wrong with one field: `path: expected ..., found ...`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of validating one raw record: a record (times in UTC microseconds) or errors."""

    kind: Kind
    record: Record | None
    errors: tuple[FieldError, ...]
    #: the parsed times of the record, by field name, in UTC microseconds
    times: Mapping[str, int | None]

    @property
    def ok(self) -> bool:
        return not self.errors


def detect_kind(obj: Mapping[str, Any]) -> Kind | None:
    """Which table a raw record belongs to, from its fields.

    >>> detect_kind({"event_id": "e", "decision_id": "d"}), detect_kind({"decision_id": "d", "items": []})
    ('event', 'decision')
    """
    if "event_id" in obj or "type" in obj:
        return "event"
    if "decision_id" in obj or "items" in obj:
        return "decision"
    if "item_id" in obj:
        return "item"
    return None


def _words(expected: str) -> str:
    parts = [p.strip("` ") for p in expected.split("|")]
    if "null" in parts and len(parts) > 1:
        parts.remove("null")
    joined = " | ".join(parts)
    return _TYPE_WORDS.get(joined, " or ".join(_TYPE_WORDS.get(p, p) for p in parts))


def _lookup(raw: object, path: str) -> tuple[bool, object]:
    """The value at a msgspec path such as `.items[3].score` in a generic decode of the record."""
    node = raw
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        try:
            node = node[name] if name else node[int(index)]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _translate(error: msgspec.ValidationError, raw: object) -> FieldError:
    match = _MSGSPEC_AT.match(str(error))
    assert match is not None  # the pattern matches any string
    msg, path = match["msg"], (match["path"] or "").lstrip(".")
    if match["key"]:
        return FieldError(
            path, f"expected an object with string keys, found {msg.rsplit('got ', 1)[-1].strip('`')} keys"
        )
    if missing := re.match(r"Object missing required field `(.+)`", msg):
        return FieldError(f"{path}.{missing[1]}".lstrip("."), "expected a value, found nothing")
    if unknown := re.match(r"Object contains unknown field `(.+)`", msg):
        return FieldError(f"{path}.{unknown[1]}".lstrip("."), "expected no such field (unknown field)")
    found_ok, found = _lookup(raw, "." + path if path else "")
    shown = _found(found) if found_ok else "something else"
    if re.match(r"Expected `[^`]+`( of length)? (<|<=|>|>=) ", msg):
        field = re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1]
        expected = _EXPECTED.get(field, msg.removeprefix("Expected ").replace("`", ""))
        return FieldError(path, f"expected {expected}, found {shown}")
    if wrong := re.match(r"Expected `(.+)`, got `(.+)`", msg):
        return FieldError(path, f"expected {_words(wrong[1])}, found {shown}")
    if msg.startswith("Number out of range"):
        return FieldError(
            path, f"expected a finite number, found {shown if found_ok else 'a number out of range'}"
        )
    return FieldError(path, f"{msg[0].lower()}{msg[1:]}, found {shown}")


def _plain(value: object) -> object:
    """Python values from Parquet/CSV readers in JSON terms (datetimes as RFC 3339 strings)."""
    if isinstance(value, datetime):
        return value.isoformat() if value.tzinfo else value.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def decode(kind: Kind, raw: bytes | str | Mapping[str, Any]) -> Record | FieldError:
    """A typed record from JSON bytes or a mapping, or the first error msgspec found."""
    try:
        if isinstance(raw, bytes | str):
            return _DECODERS[kind].decode(raw)
        return msgspec.convert(_plain(raw), _TYPES[kind])
    except msgspec.ValidationError as exc:
        if isinstance(raw, bytes | str):
            try:
                generic: object = _ANY_JSON.decode(raw)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, UnicodeEncodeError) as bad:
                if "out of range" not in str(bad):
                    return FieldError("", f"expected a JSON object, found malformed JSON ({bad})")
                generic = None
        else:
            generic = _plain(raw)
        return _translate(exc, generic)
    except msgspec.DecodeError as exc:
        return FieldError("", f"expected a JSON object, found malformed JSON ({exc})")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        return FieldError("", f"expected UTF-8 text, found invalid UTF-8 or a lone surrogate ({exc.reason})")
    except RecursionError:
        return FieldError("", "expected a JSON object nested less deeply, found too deep nesting")


def _unstorable(value: object, path: str, depth: int = 0) -> FieldError | None:
    """The first place in a Python value that JSON cannot hold (slow path, after encoding failed)."""
    if depth > _MAX_DEPTH:
        return FieldError(path, f"expected objects nested at most {_MAX_DEPTH} deep, found deeper nesting")
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return FieldError(path, f"expected valid Unicode text, found a lone surrogate in {_found(value)}")
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}".lstrip(".") if isinstance(key, str) else path
            if not isinstance(key, str):
                return FieldError(path, f"expected an object with string keys, found key {_found(key)}")
            if (bad := _unstorable(key, where, depth + 1)) or (bad := _unstorable(item, where, depth + 1)):
                return bad
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if bad := _unstorable(item, f"{path}[{i}]", depth + 1):
                return bad
        return None
    if value is None or isinstance(value, bool | int | float):
        return None
    return FieldError(path, f"expected a JSON value, found {type(value).__name__} {_found(value)}")


def _storable(raw: object) -> FieldError | None:
    """None when a record decoded from Python objects can be stored as JSON, else where it cannot."""
    try:
        _ENCODE(raw)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        return _unstorable(raw, "") or FieldError("", "expected a record JSON can hold, found one it cannot")
    return None


class _Errors(list[FieldError]):
    def add(self, path: str, message: str) -> None:
        self.append(FieldError(path, message))

    def number(
        self,
        path: str,
        value: float | None,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        required: bool = False,
        what: str = "a number",
    ) -> None:
        if value is None:
            if required:
                self.add(path, f"expected {what}, found nothing")
            return
        bad = not math.isfinite(value)
        if low is not None:
            bad = bad or value < low or (low_open and value == low)
        if high is not None:
            bad = bad or value > high
        if bad:
            self.add(path, f"expected {what}, found {_found(value)}")

    def time(self, path: str, value: object, received_us: int | None) -> int | None:
        parsed = parse_time(value, received_us=received_us)
        if isinstance(parsed, str):
            self.add(path, parsed)
            return None
        return parsed


def _check_policy(errors: _Errors, policy: Mapping[str, Any]) -> None:
    name = policy.get("name")
    if name is not None and not isinstance(name, str):
        errors.add("policy.name", f"expected a string, found {_found(name)}")
    for key, low, low_open, what in (
        ("epsilon", 0.0, False, "a number in [0, 1]"),
        ("temperature", 0.0, True, "a number > 0"),
    ):
        value = policy.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.add(f"policy.{key}", f"expected {what}, found {_found(value)}")
        else:
            errors.number(
                f"policy.{key}",
                float(value),
                low=low,
                low_open=low_open,
                high=1.0 if key == "epsilon" else None,
                what=what,
            )
    intervention = policy.get("intervention")
    if intervention is None:
        return
    if not isinstance(intervention, Mapping):
        errors.add("policy.intervention", f"expected an object {{type, n}}, found {_found(intervention)}")
        return
    kind = intervention.get("type")
    if kind not in INTERVENTION_TYPES:
        errors.add(
            "policy.intervention.type",
            f"expected one of {', '.join(INTERVENTION_TYPES)}, found {_found(kind)}",
        )
    n = intervention.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        errors.add("policy.intervention.n", f"expected an integer >= 1, found {_found(n)}")


def _check_decision(d: Decision, errors: _Errors, received_us: int | None) -> dict[str, int | None]:
    """Ranges and id lengths were checked while decoding; what remains spans fields."""
    times = {"timestamp": errors.time("timestamp", d.timestamp, received_us)}
    if d.user_id is None and d.anonymous_id is None and d.session_id is None:
        errors.add(
            "user_id", "expected at least one identity (user_id, anonymous_id or session_id), found none"
        )
    if not d.items:
        errors.add("items", "expected at least one shown item, found an empty list")
    ids = [it.item_id for it in d.items]
    positions = [i if it.position is None else it.position for i, it in enumerate(d.items)]
    for field, values, what in (
        ("item_id", ids, "each item once per decision"),
        ("position", positions, "a distinct slot per item"),
    ):
        if len(set(values)) == len(values):
            continue
        first: dict[object, int] = {}
        for i, value in enumerate(values):
            if value in first:
                errors.add(
                    f"items[{i}].{field}",
                    f"expected {what}, found {_found(value)} again (first at items[{first[value]}])",
                )
            first.setdefault(value, i)
    if d.policy is not None:
        _check_policy(errors, d.policy)
    return times


#: the meaning of `value` by event type: (required, low, low_open, high, description)
_VALUE_RULES: Final[dict[str, tuple[bool, float | None, bool, float | None, str]]] = {
    "dwell": (True, 0.0, False, None, "dwell seconds >= 0"),
    "heartbeat": (True, 0.0, True, None, "the ping interval in seconds > 0"),
    "scroll": (True, 0.0, False, 1.0, "a scroll depth in [0, 1]"),
    "skip": (False, 0.0, False, None, "seconds consumed before skipping >= 0"),
    "purchase": (False, 0.0, False, None, "an amount >= 0"),
    "return": (False, 0.0, False, None, "an amount >= 0"),
    "rating": (True, None, False, None, "the rating as a finite number"),
    "assignment": (True, 0.0, True, 1.0, "the arm's probability in (0, 1]"),
}


#: event types whose extra rules only `_check_event` applies
_CHECKED_SLOWLY: Final = frozenset({"return", "assignment"})
_MIN_MS: Final = MIN_US // 1000


def _check_event(e: Event, errors: _Errors, received_us: int | None) -> dict[str, int | None]:
    times = {"timestamp": errors.time("timestamp", e.timestamp, received_us)}
    if e.user_id is None and e.anonymous_id is None and e.session_id is None and e.decision_id is None:
        errors.add(
            "user_id",
            "expected at least one identity (user_id, anonymous_id, session_id) or a decision_id, found none",
        )
    if e.type not in EVENT_TYPES and not _CUSTOM_TYPE.match(e.type):
        errors.add(
            "type",
            f"expected a known event type ({_KNOWN_TYPES}) or a custom type x-..., found {_found(e.type)}",
        )
    rule = _VALUE_RULES.get(e.type)
    if rule is not None:
        required, low, low_open, high, what = rule
        errors.number("value", e.value, low=low, low_open=low_open, high=high, required=required, what=what)
    props = e.properties or {}
    if e.type == "return" and e.order_id is None:
        errors.add("order_id", "expected the order_id of the purchase this return revokes, found nothing")
    if e.type == "heartbeat" and "active" in props and not isinstance(props["active"], bool):
        errors.add("properties.active", f"expected true or false, found {_found(props['active'])}")
    if e.type == "assignment":
        for key in ("experiment", "arm"):
            if not isinstance(props.get(key), str) or not props[key]:
                errors.add(
                    f"properties.{key}",
                    f"expected a non-empty string naming the {key}, "
                    f"found {_found(props.get(key)) if key in props else 'nothing'}",
                )
    return times


def accepts_event_at(e: Event, latest_ms: int) -> int | None:
    """The timestamp in microseconds when `_check_event` surely accepts `e` as it is, else None.

    The hot path's short test: epoch-millisecond times up to `latest_ms` (the received time plus
    a day, in milliseconds, rounded down), a known type, and the value rules inline. Anything else
    (an RFC 3339 string, a custom type, a return, an assignment) goes through `_check_event` for
    its exact outcome, so this never decides differently, only sooner (tested).
    """
    ts = e.timestamp
    if type(ts) is not int or ts < _MIN_MS or ts > latest_ms:
        return None
    if e.user_id is None and e.anonymous_id is None and e.session_id is None and e.decision_id is None:
        return None
    kind = e.type
    if kind not in EVENT_TYPES or kind in _CHECKED_SLOWLY:
        return None
    rule = _VALUE_RULES.get(kind)
    if rule is not None:
        required, low, low_open, high, _ = rule
        value = e.value
        if value is None:
            if required:
                return None
        elif (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and value > high
        ):
            return None
    if kind == "heartbeat" and e.properties and type(e.properties.get("active", False)) is not bool:
        return None
    return ts * 1000


def latest_ms(received_us: int) -> int:
    """The latest epoch-millisecond time `accepts_event_at` takes for a record received then."""
    return min(MAX_US, received_us + DAY_US) // 1000


def _check_item(it: Item, errors: _Errors, received_us: int | None) -> dict[str, int | None]:
    if it.valid_from is None:
        return {"valid_from": None}
    return {"valid_from": errors.time("valid_from", it.valid_from, received_us)}


_CHECKS: Final = {"decision": _check_decision, "event": _check_event, "item": _check_item}


def validate(kind: Kind, raw: bytes | str | Mapping[str, Any], *, received_us: int | None = None) -> Checked:
    """Decode and check one raw record of the given kind; never raises for bad input.

    `received_us` (UTC microseconds) enables the "not more than a day in the future" check.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, found {kind!r}")
    record = decode(kind, raw)
    if isinstance(record, FieldError):
        return Checked(kind, None, (record,), {})
    if not isinstance(raw, bytes) and (bad := _storable(record)):
        return Checked(kind, None, (bad if bad.path else _unstorable(_plain(raw), "") or bad,), {})
    return check(kind, record, received_us)


def check(kind: Kind, record: Record, received_us: int | None) -> Checked:
    """The rules types cannot express, on a decoded record."""
    errors = _Errors()
    times = _CHECKS[kind](record, errors, received_us)  # type: ignore[operator]
    if errors:
        return Checked(kind, None, tuple(errors), {})
    return Checked(kind, record, (), times)


def validate_many(kind: Kind, raws: Sequence[bytes], *, received_us: int | None = None) -> list[Checked]:
    """`[validate(kind, raw) for raw in raws]` for JSON rows, without its per-call overhead."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, found {kind!r}")
    decode_one, checked = _DECODERS[kind].decode, []
    for raw in raws:
        try:
            record = decode_one(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            checked.append(validate(kind, raw, received_us=received_us))  # for its field-level error
        else:
            checked.append(check(kind, record, received_us))
    return checked
