"""Time normalisation: RFC 3339 strings or epoch milliseconds in, UTC microseconds out."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

__all__ = ["DAY_US", "MAX_US", "MIN_US", "describe", "format_time", "now_us", "parse_time"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
#: 2000-01-01T00:00:00Z: earlier times are almost always seconds sent as milliseconds.
MIN_US: Final = 946_684_800_000_000
#: 9999-12-31T23:59:59.999999Z, the last time a datetime can hold.
MAX_US: Final = 253_402_300_799_999_999
DAY_US: Final = 86_400_000_000
#: RFC 3339 section 5.6 (T/Z in either case, a space allowed for T, any fraction digits: kept to microseconds)
_RFC3339: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)
_NAIVE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def now_us() -> int:
    """The current time in UTC microseconds."""
    return time.time_ns() // 1000


def describe(value: object) -> str:
    """What was found, shortened, for an error message. Never raises: a value nested deeper than
    `repr` can walk (how deep depends on the caller's own stack, so on the thread) is described
    instead.

    >>> describe("x" * 80)[-5:], describe([[]])
    ('xx...', '[[]]')
    """
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


def parse_time(value: object, *, received_us: int | None = None) -> int | str:
    """UTC microseconds, or a message saying what was expected and what was found.

    >>> parse_time("2026-01-31T12:00:00Z")
    1769860800000000
    >>> parse_time(1769860800000)
    1769860800000000
    >>> parse_time(1769860800)
    'expected a time on or after 2000-01-01, found 1769860800 (seconds? numbers are epoch milliseconds)'
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"expected an RFC 3339 string or epoch milliseconds, found {describe(value)}"
    if isinstance(value, str):
        match = _RFC3339.match(value)
        if match is None:
            if _NAIVE.match(value):
                return f"expected an RFC 3339 time with an offset or Z, found {describe(value)}"
            return f"expected an RFC 3339 time such as 2026-01-31T12:00:00Z, found {describe(value)}"
        y, mo, d, h, mi, s, frac, zone = match.groups()
        try:
            offset = (
                timedelta(0)
                if zone in "Zz"
                else int(zone[0] + "1") * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            )
            parsed = datetime(
                int(y),
                int(mo),
                int(d),
                int(h),
                int(mi),
                int(s),
                int((frac or "0")[:6].ljust(6, "0")),
                tzinfo=timezone(offset),
            )
        except ValueError:
            return f"expected an RFC 3339 time on a real calendar date, found {describe(value)}"
        micros = (parsed - _EPOCH) // _ONE_US
    elif isinstance(value, int):
        micros = value * 1000
    else:
        if not math.isfinite(value * 1000):
            return f"expected a finite number of epoch milliseconds, found {describe(value)}"
        micros = round(value * 1000)
    if micros < MIN_US:
        hint = " (seconds? numbers are epoch milliseconds)" if not isinstance(value, str) else ""
        return f"expected a time on or after 2000-01-01, found {describe(value)}{hint}"
    if micros > MAX_US or (received_us is not None and micros > received_us + DAY_US):
        hint = " (microseconds? numbers are epoch milliseconds)" if not isinstance(value, str) else ""
        return f"expected a time at most a day after it was received, found {describe(value)}{hint}"
    return micros


def format_time(micros: int) -> str:
    """The canonical RFC 3339 form of a time, always with microseconds and Z.

    >>> format_time(1769860800000000)
    '2026-01-31T12:00:00.000000Z'
    """
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
