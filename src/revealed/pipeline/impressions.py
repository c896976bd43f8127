"""One row per decision x served item, whether it was viewed, and the signals that point at it.

- `served(decisions)`: the shown items unnested, with the decision's context (position,
  propensities, surface, query, model, version, policy, person, session).
- `direct_signals(events)`: per (decision_id, item_id), the events that name both: clicks, the
  active dwell from heartbeats (the client's `dwell` only where there are no heartbeats), page
  scroll depth, negatives, strong positives, cart, explicit feedback.
- `viewed(served, events)`: a row is viewed when an `impression` event names it, when the list's
  scroll depth reached its slot, or when it is at or above the decision's last click.

Properties are canonical JSON (sorted keys, no spaces), so `"active":false` is found by a
substring match that every backend runs alike.
"""

from __future__ import annotations

from typing import Final

import ibis
from ibis import _

__all__ = ["COUNTED", "direct_signals", "served", "viewed"]

#: event types counted per served item, by the signal column they feed
COUNTED: Final[dict[str, str]] = {
    "click": "click_count",
    "skip": "skips",
    "hide": "hides",
    "not_interested": "not_interested_count",
    "save": "saves",
    "share": "shares",
    "copy": "copies",
    "add_to_cart": "carts",
    "thumbs_up": "thumbs_up_count",
    "thumbs_down": "thumbs_down_count",
    "impression": "impression_events",
}


def served(decisions: ibis.Table) -> ibis.Table:
    """The items each decision showed, one row each."""
    shown = decisions.mutate(_item=decisions["items"].unnest(), n_shown=decisions["items"].length())
    return shown.select(
        decision_id=shown.decision_id,
        item_id=shown._item.item_id,
        position=shown._item.position,
        original_position=shown._item.original_position,
        score=shown._item.score,
        propensity=shown._item.propensity,
        cond_propensity=shown._item.cond_propensity,
        slate_propensity=shown.propensity,
        n_shown=shown.n_shown,
        served_at=shown.timestamp,
        person=shown.person,
        session=shown.session,
        surface=shown.surface,
        query_id=shown.query_id,
        model=shown.model,
        model_version=shown.model_version,
        policy=shown.policy,
    )


def direct_signals(events: ibis.Table, *, accidental_ms: int = 300) -> ibis.Table:
    """Per (decision_id, item_id): what the events naming both say. `events` must carry
    `served_at` (the decision's time) so clicks within `accidental_ms` of serving are set apart."""
    named = events.filter(events.decision_id.notnull() & events.item_id.notnull())
    is_click = named.type == "click"
    early = is_click & (named.timestamp.delta(named.served_at, unit="microsecond") < accidental_ms * 1_000)
    beat = named.type == "heartbeat"
    inactive = named.properties.fill_null("").contains('"active":false')
    counts = {
        column: ibis.ifelse((named.type == kind) & ~early, 1, 0).sum() for kind, column in COUNTED.items()
    }
    grouped = named.group_by(["decision_id", "item_id"]).aggregate(
        **counts,
        accidental_clicks=ibis.ifelse(early, 1, 0).sum(),
        first_click_at=named.timestamp.min(where=is_click & ~early),
        heartbeats=ibis.ifelse(beat, 1, 0).sum(),
        active_heartbeat_s=ibis.ifelse(beat & ~inactive, named.value.fill_null(0.0), 0.0).sum(),
        client_dwell_s=ibis.ifelse(named.type == "dwell", named.value.fill_null(0.0), 0.0).sum(),
        max_scroll=named.value.max(where=named.type == "scroll"),
        rating=named.value.max(where=named.type == "rating"),
    )
    return grouped.mutate(
        active_dwell_s=ibis.ifelse(_.heartbeats > 0, _.active_heartbeat_s, _.client_dwell_s),
    )


def viewed(rows: ibis.Table, events: ibis.Table, signals: ibis.Table) -> ibis.Table:
    """`rows` (served items) with `viewed` and `last_click_position`, from impression events, the
    list's scroll depth, and the position of the decision's last click."""
    list_scroll = (
        events.filter((events.type == "scroll") & events.decision_id.notnull() & events.item_id.isnull())
        .group_by("decision_id")
        .aggregate(list_depth=_.value.max())
    )
    clicked = rows.join(signals, ["decision_id", "item_id"]).filter(_.click_count > 0)
    last_click = clicked.group_by("decision_id").aggregate(last_click_position=_.position.max())
    out = (
        rows.left_join(signals, ["decision_id", "item_id"])
        .drop("decision_id_right", "item_id_right")
        .left_join(list_scroll, "decision_id")
        .drop("decision_id_right")
        .left_join(last_click, "decision_id")
        .drop("decision_id_right")
    )
    by_event = out.impression_events.fill_null(0) > 0
    by_scroll = (out.position + 1).cast("float64") <= out.list_depth.fill_null(-1.0) * out.n_shown + 1e-9
    above_click = out.position <= out.last_click_position.fill_null(-1)
    return out.mutate(viewed=by_event | by_scroll | above_click, above_last_click=above_click)
