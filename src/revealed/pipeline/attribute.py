"""Attribution: which served item each conversion belongs to, and how much of it.

- Direct: a purchase or cart that names its `decision_id` and `item_id` belongs to that row.
  One naming a (decision, item) that was never served is attributed by window instead.
- By window: one that names only the item (and an identity) is matched to the same person's
  touches of that item before it: a *view* (a viewed row, at serving time) or a *click* (at the
  first click), within the window set for (event type, touch kind, surface). When several touches
  qualify, each configured multi-touch model splits the credit (`revealed.pipeline.credit`).
  Conversions with no touch are organic: counted, credited to nothing.
- Returns revoke purchases by (order_id, item_id), whatever the window: amounts are net.

The result has one row per (conversion, credited row) with a credit column per model; direct
conversions carry credit 1 in every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import ibis
import numpy as np
import pandas as pd
import pyarrow.compute as pc
from ibis import _

from revealed.pipeline.credit import CreditModels, credit
from revealed.pipeline.hazard import AdditiveHazard, HazardInputs

__all__ = [
    "ATTRIBUTED",
    "Attribution",
    "attribute",
    "hazard_inputs",
    "net_amounts",
    "undirected",
    "window_candidates",
]

#: the event types attributed to served items (by decision or by window)
ATTRIBUTED: Final = ("purchase", "add_to_cart")

_MICROS_PER_HOUR: Final = 3_600_000_000


def net_amounts(events: ibis.Table) -> ibis.Table:
    """Conversions with `amount` net of returns: a return revokes its purchase by (order_id, item_id);
    when one order has several purchase lines of an item, they share its returns in proportion."""
    returns = (
        events.filter((events.type == "return") & events.order_id.notnull())
        .group_by(["order_id", "item_id"])
        .aggregate(returned=_.value.fill_null(0.0).sum())
    )
    conversions = events.filter(events.type.isin(ATTRIBUTED) & events.item_id.notnull())
    joined = conversions.left_join(
        returns,
        (conversions.order_id == returns.order_id) & (conversions.item_id == returns.item_id),
    ).drop("order_id_right", "item_id_right")
    amount = joined.value.fill_null(0.0)
    # several purchase lines of one (order, item) share its returns in proportion to their amounts
    line = ibis.window(group_by=[joined.type, joined.order_id, joined.item_id])
    ordered = joined.order_id.notnull() & (joined.type == "purchase")
    lines = ibis.ifelse(ordered, amount.sum().over(line), amount)
    share = ibis.ifelse(lines > 0, amount / lines, 1.0)
    returned = ibis.ifelse(joined.type == "purchase", joined.returned.fill_null(0.0) * share, 0.0)
    return joined.mutate(
        gross=amount,
        returned_amount=ibis.least(returned, amount),
        amount=ibis.greatest(amount - returned, 0.0),
    ).drop("returned")


def _touches(rows: ibis.Table, at: str, kind: str) -> ibis.Table:
    """Served rows as touches of one kind, at the time in column `at`."""
    return rows.select(
        touch_decision=rows.decision_id,
        touch_item=rows.item_id,
        touch_person=rows.person,
        touch_surface=rows.surface,
        touch_at=rows[at],
        kind=ibis.literal(kind),
    )


def _all_touches(rows: ibis.Table) -> ibis.Table:
    """Every view (a viewed row, at serving time) and click (at the first click) of a known person."""
    rows = rows.filter(rows.person.notnull())
    views = _touches(rows.filter(rows.viewed), "served_at", "view")
    clicks = _touches(rows.filter(rows.first_click_at.notnull()), "first_click_at", "click")
    return views.union(clicks)


def undirected(rows: ibis.Table, conversions: ibis.Table) -> ibis.Table:
    """The conversions not joined directly: those naming no decision, and those whose (decision,
    item) was never served (an unknown decision, or an item it did not show), which fall back to
    the window like the rest rather than vanish."""
    return conversions.anti_join(rows.select("decision_id", "item_id"), ["decision_id", "item_id"])


def window_candidates(rows: ibis.Table, pending: ibis.Table, windows: ibis.Table) -> ibis.Table:
    """One row per (conversion without a decision, touch of the same person and item within its
    window): the input of `credit`, with ``type``, ``decision_id``, ``item_id`` and amounts."""
    touches = _all_touches(rows)
    matched = pending.join(
        touches,
        (pending.person == touches.touch_person)
        & (pending.item_id == touches.touch_item)
        & (touches.touch_at <= pending.timestamp),
    )
    matched = matched.join(
        windows,
        (matched.type == windows.event_type)
        & (matched.kind == windows.kind)
        & (matched.touch_surface == windows.surface),
    )
    matched = matched.filter(
        matched.timestamp.delta(matched.touch_at, unit="microsecond")
        <= (matched.hours * _MICROS_PER_HOUR).cast("int64")
    )
    return matched.select(
        conversion_id=matched.event_id,
        touch_id=matched.touch_decision + ibis.literal("|") + matched.kind,
        touch_ts=matched.touch_at,
        conversion_ts=matched.timestamp,
        channel=matched.touch_surface + ibis.literal("/") + matched.kind,
        type=matched.type,
        decision_id=matched.touch_decision,
        item_id=matched.touch_item,
        amount=matched.amount,
        returned_amount=matched.returned_amount,
    )


def hazard_inputs(
    backend: Any, rows: ibis.Table, candidates: ibis.Table, windows: ibis.Table, cutoff: datetime
) -> dict[str, HazardInputs]:
    """The inputs of `fit_additive_hazard` per conversion type, aggregated in the engine.

    Exposure: every touch's window, cut at `cutoff`, counted per (type, channel, length rounded
    to 0.05 h). At risk: per type, the union of the windows of each (person, item) pair, summed
    (ordered by start, each window adds what lies beyond the running maximum of earlier ends)."""
    touches = _all_touches(rows)
    open_ = touches.join(windows, (touches.kind == windows.kind) & (touches.touch_surface == windows.surface))
    limit = ibis.literal(cutoff)
    end = ibis.least(open_.touch_at + (open_.hours * _MICROS_PER_HOUR).cast("int64").as_interval("us"), limit)
    open_ = open_.filter(open_.touch_at < limit).mutate(
        channel=open_.touch_surface + ibis.literal("/") + open_.kind,
        end=end,
        length_h=end.delta(open_.touch_at, unit="microsecond").cast("float64") / _MICROS_PER_HOUR,
    )
    exposure = backend.to_pyarrow(
        open_.group_by(["event_type", "channel", (open_.length_h * 20).round().name("bucket")]).aggregate(
            touches=open_.count()
        )
    ).sort_by([("event_type", "ascending"), ("channel", "ascending"), ("bucket", "ascending")])
    before = ibis.window(
        group_by=["event_type", "touch_person", "touch_item"],
        order_by=["touch_at", "end", "touch_decision", "kind"],
        rows=(None, -1),
    )
    spans = open_.mutate(reach=open_.end.max().over(before))
    start = ibis.greatest(spans.touch_at, spans.reach.fill_null(spans.touch_at))
    # summed in whole microseconds, so every engine gets exactly the same total
    added_us = ibis.greatest(spans.end.delta(start, unit="microsecond"), 0).cast("int64")
    at_risk = {
        r["event_type"]: int(r["us"] or 0) / _MICROS_PER_HOUR
        for r in backend.to_pyarrow(spans.group_by("event_type").aggregate(us=added_us.sum())).to_pylist()
    }
    # sorted and coded in the engine (under its memory budget): ids and channels reach Python as
    # integer codes, never as millions of str objects, and the fit sums in the same order everywhere
    names = sorted(
        backend.to_pyarrow(candidates.select("channel").distinct())["channel"].to_pylist(),
        key=str,
    )
    branches = [(candidates.channel == name, i) for i, name in enumerate(names)]
    channel_code = ibis.cases(*branches, else_=-1) if branches else ibis.literal(-1)
    hours = candidates.conversion_ts.delta(candidates.touch_ts, unit="microsecond").cast("float64")
    coded = candidates.mutate(channel_code=channel_code, hours=hours / _MICROS_PER_HOUR)
    out = {}
    for kind in sorted(set(at_risk)):
        pairs = coded.filter(coded.type == kind)  # ranked within the type only
        mine = backend.to_pyarrow(
            pairs.select(
                conversion=ibis.dense_rank().over(order_by=pairs.conversion_id),
                channel=pairs.channel_code,
                hours=pairs.hours,
            ).order_by(["conversion", "channel", "hours"])
        )
        exposed = exposure.filter(pc.equal(exposure["event_type"], kind))
        out[kind] = HazardInputs(
            conversion=mine["conversion"].to_numpy(),
            channel=pd.Categorical.from_codes(mine["channel"].to_numpy(), pd.Index(names))
            if names
            else np.array([]),
            hours=mine["hours"].to_numpy(),
            exposure_channel=exposed["channel"].to_numpy(zero_copy_only=False),
            exposure_hours=exposed["bucket"].to_numpy(zero_copy_only=False) / 20.0,
            exposure_touches=exposed["touches"].to_numpy(zero_copy_only=False),
            at_risk_hours=at_risk[kind],
        )
    return out


class Attribution:
    """The attribution of one run: direct and window-credited conversions, and the organic ones."""

    def __init__(self, credited: ibis.Table, organic: ibis.Table, models: Sequence[str]) -> None:
        self.credited = credited
        self.organic = organic
        self.models = tuple(models)


def attribute(
    rows: ibis.Table,
    conversions: ibis.Table,
    windows: ibis.Table,
    *,
    models: CreditModels,
    markov: dict[str, float] | None = None,
    hazard: AdditiveHazard | None = None,
    candidates: ibis.Table | None = None,
) -> Attribution:
    """Credit `conversions` (from `net_amounts`, with `person`) to served `rows` (with `viewed`,
    `first_click_at`, `person`, `surface`).

    `windows` has one row per (event_type, kind, surface) with `hours`: how long after a touch
    of that kind on that surface a conversion of that type may be credited to it. `candidates`,
    when given, is `window_candidates` of the same inputs, already computed (and materialised)."""
    direct_rows = conversions.join(rows.select("decision_id", "item_id"), ["decision_id", "item_id"])
    direct_credited = direct_rows.select(
        conversion_id=direct_rows.event_id,
        type=direct_rows.type,
        decision_id=direct_rows.decision_id,
        item_id=direct_rows.item_id,
        converted_at=direct_rows.timestamp,
        amount=direct_rows.amount,
        returned_amount=direct_rows.returned_amount,
        how=ibis.literal("direct"),
        **{f"credit_{m}": ibis.literal(1.0) for m in models.models},
    )

    rest = undirected(rows, conversions)
    if candidates is None:
        candidates = window_candidates(rows, rest.filter(rest.person.notnull()), windows)
    credited = credit(candidates, models, markov=markov, hazard=hazard)
    window_credited = credited.select(
        "conversion_id",
        "type",
        "decision_id",
        "item_id",
        converted_at=credited.conversion_ts,
        amount=credited.amount,
        returned_amount=credited.returned_amount,
        how=ibis.literal("window"),
        **{f"credit_{m}": credited[f"credit_{m}"] for m in models.models},
    )
    touched = candidates.select(event_id=candidates.conversion_id).distinct()
    organic = rest.anti_join(touched, "event_id").select("event_id", "type", "item_id", "person", "amount")
    return Attribution(direct_credited.union(window_credited), organic, models.models)
