"""Time normalisation: RFC 3339 strings or epoch milliseconds in, UTC microseconds out."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["DAY_US", "MAX_US", "MIN_US", "format_time", "now_us", "parse_time"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
#: 2000-01-01T00:00:00Z: earlier times are almost always seconds sent as milliseconds.
MIN_US: Final = 946_684_800_000_000
#: 9999-12-31T23:59:59.999999Z, the last time a datetime can hold.
MAX_US: Final = 253_402_300_799_999_999
DAY_US: Final = 86_400_000_000


def now_us() -> int:
    """The current time in UTC microseconds."""
    return time.time_ns() // 1000


def _describe(value: object) -> str:
    text = repr(value)
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
        return f"expected an RFC 3339 string or epoch milliseconds, found {_describe(value)}"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"expected an RFC 3339 time such as 2026-01-31T12:00:00Z, found {_describe(value)}"
        if parsed.tzinfo is None:
            return f"expected an RFC 3339 time with an offset or Z, found {_describe(value)}"
        micros = (parsed - _EPOCH) // _ONE_US
    else:
        if not math.isfinite(value):
            return f"expected a finite number of epoch milliseconds, found {_describe(value)}"
        micros = round(value * 1000)
    if micros < MIN_US:
        hint = " (seconds? numbers are epoch milliseconds)" if not isinstance(value, str) else ""
        return f"expected a time on or after 2000-01-01, found {_describe(value)}{hint}"
    if micros > MAX_US or (received_us is not None and micros > received_us + DAY_US):
        hint = " (microseconds? numbers are epoch milliseconds)" if not isinstance(value, str) else ""
        return f"expected a time at most a day after it was received, found {_describe(value)}{hint}"
    return micros


def format_time(micros: int) -> str:
    """The canonical RFC 3339 form of a time, always with microseconds and Z.

    >>> format_time(1769860800000000)
    '2026-01-31T12:00:00.000000Z'
    """
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
