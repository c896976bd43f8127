"""Request bodies to rows: one JSON object, a JSON array of objects, or NDJSON lines.

Each row keeps its own raw bytes, so it is validated (and, when bad, quarantined) on its own.
"""

from __future__ import annotations

from typing import Final

import msgspec

from revealed.errors import RevealedError
from revealed.schema.records import Kind
from revealed.store.ingest import Appender, RowResults, append_rows

__all__ = ["JSON", "NDJSON", "BadBody", "ingest_body", "split_body"]

JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
_ARRAY: Final = msgspec.json.Decoder(list[msgspec.Raw])


class BadBody(RevealedError, ValueError):
    """A body that cannot be split into rows."""

    status = 400


def split_body(body: bytes, media_type: str) -> list[bytes]:
    """The raw rows of a body; BadBody when it is empty or not JSON at all.

    >>> split_body(b'[{"a": 1}, {"b": 2}]', JSON)
    [b'{"a": 1}', b'{"b": 2}']
    >>> split_body(b'{"a": 1}\\n\\n{"b": 2}\\n', NDJSON)
    [b'{"a": 1}', b'{"b": 2}']
    """
    stripped = body.strip()
    if not stripped:
        raise BadBody("body: expected a JSON object, a JSON array or NDJSON lines, found an empty body")
    if media_type == NDJSON:
        return [line for line in (raw.strip() for raw in stripped.split(b"\n")) if line]
    if stripped[:1] == b"[":
        try:
            return [bytes(raw) for raw in _ARRAY.decode(stripped)]
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise BadBody(f"body: expected a JSON array, found malformed JSON ({exc})") from exc
    return [stripped]


def ingest_body(
    journal: Appender, kind: Kind, body: bytes, media_type: str, *, source: str | None = None
) -> RowResults:
    """Split a request body into rows and append them; a body that cannot be split is itself
    quarantined (nothing a client sent is dropped) before BadBody is raised."""
    try:
        rows = split_body(body, media_type)
    except BadBody:
        if body.strip():
            append_rows(journal, kind, [body], source=source)
        raise
    return append_rows(journal, kind, rows, source=source)
