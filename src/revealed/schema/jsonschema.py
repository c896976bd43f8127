"""JSON Schema of the v1 contract, generated from the typed records."""

from __future__ import annotations

from typing import Any

import msgspec

from revealed.schema.records import Decision, Event, Item

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """One JSON Schema document with `Decision`, `Event` and `Item` under `$defs`.

    >>> sorted(json_schema()["$defs"])[:3]
    ['Candidate', 'Decision', 'DecisionItem']
    """
    (decision, event, item), defs = msgspec.json.schema_components([Decision, Event, Item])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "revealed data contract v1",
        "anyOf": [decision, event, item],
        "$defs": defs,
    }
