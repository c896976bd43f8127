"""The signals of a served item: the columns the pipeline computes, one row per (decision, item)
served, and the only names a spec's conditions and weights may use (the table is in
`revealed.pipeline.spec`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

__all__ = ["DERIVED_SIGNALS", "NAMES", "SIGNALS", "SignalKind"]

SignalKind = Literal["bool", "count", "number"]
#: every signal of a served item and its kind, in the order of the signal table
#: (`revealed.pipeline.spec`)
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
#: every name a condition may use
NAMES: Final = (*SIGNALS, *DERIVED_SIGNALS)
