"""Signals to labels and rewards, by the reward spec.

`signals(rows, credited, spec)` turns the served rows (with their direct signals and `viewed`)
and the attributed conversions into the signal columns the spec speaks of (`viewed`, `clicked`,
`active_dwell_s`, `satisfied_click`, `purchase_amount` net of returns...), plus one conversion and
one revenue column per multi-touch model. `label_and_reward(table, spec)` applies the spec's
ordered label rules (first match wins; none: unknown) and its weighted reward.
`sessions(rows, spec)` adds session length, depth and whether the person came back within N days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
from ibis import _

from revealed.pipeline.spec import RewardSpec, to_ibis

__all__ = ["label_and_reward", "maturity", "sessions", "signals"]


def signals(rows: ibis.Table, credited: ibis.Table, spec: RewardSpec, models: Sequence[str]) -> ibis.Table:
    """The spec's signal columns per served row; `credited` is `Attribution.credited`."""
    default = f"credit_{models[0]}"
    is_purchase = credited.type == "purchase"
    per_model = {}
    for m in models:
        c = credited[f"credit_{m}"]
        per_model[f"conversions_{m}"] = ibis.ifelse(is_purchase, c, 0.0).sum()
        per_model[f"revenue_{m}"] = ibis.ifelse(is_purchase, c * credited.amount, 0.0).sum()
    conv = credited.group_by(["decision_id", "item_id"]).aggregate(
        purchases=ibis.ifelse(is_purchase, credited[default], 0.0).sum(),
        purchase_amount=ibis.ifelse(is_purchase, credited[default] * credited.amount, 0.0).sum(),
        returned_amount=ibis.ifelse(is_purchase, credited[default] * credited.returned_amount, 0.0).sum(),
        attributed_carts=ibis.ifelse(credited.type == "add_to_cart", credited[default], 0.0).sum(),
        direct_conversions=ibis.ifelse(credited.how == "direct", 1, 0).sum(),
        window_conversions=ibis.ifelse(credited.how == "window", 1, 0).sum(),
        last_purchase_at=credited.converted_at.max(where=is_purchase),
        **per_model,
    )
    joined = rows.left_join(conv, ["decision_id", "item_id"]).drop("decision_id_right", "item_id_right")
    zero = {
        c: joined[c].fill_null(0)
        for c in (
            "click_count",
            "skips",
            "hides",
            "not_interested_count",
            "saves",
            "shares",
            "copies",
            "carts",
            "thumbs_up_count",
            "thumbs_down_count",
            "accidental_clicks",
            "heartbeats",
        )
    }
    floats = {
        c: joined[c].fill_null(0.0)
        for c in (
            "active_dwell_s",
            "purchases",
            "purchase_amount",
            "returned_amount",
            "attributed_carts",
            *per_model,
        )
    }
    out = joined.mutate(**zero, **floats, direct_conversions=joined.direct_conversions.fill_null(0))
    out = out.mutate(window_conversions=out.window_conversions.fill_null(0))
    clicked = out.click_count > 0
    return out.mutate(
        clicked=clicked,
        satisfied_click=clicked & (out.active_dwell_s >= spec.dwell.satisfied_seconds),
        skipped=out.skips > 0,
        hidden=out.hides > 0,
        not_interested=out.not_interested_count > 0,
        saved=out.saves > 0,
        shared=out.shares > 0,
        copied=out.copies > 0,
        added_to_cart=(out.carts > 0) | (out.attributed_carts > 0),
        thumbs_up=out.thumbs_up_count > 0,
        thumbs_down=out.thumbs_down_count > 0,
    )


def label_and_reward(table: ibis.Table, spec: RewardSpec) -> ibis.Table:
    """`label` by the first matching rule (else the spec's `unknown`) and `reward` by the weights."""
    columns = {name: table[name] for name in table.columns}
    label: ibis.Value = ibis.literal(spec.label.unknown, type="int32")
    for rule in reversed(spec.label.rules):  # the first rule must win: build from the last
        label = ibis.ifelse(to_ibis(rule.when, columns), ibis.literal(rule.label, type="int32"), label)
    reward: ibis.Value = ibis.literal(0.0)
    for name, weight in spec.reward.weights:
        reward = reward + table[name].cast("float64").fill_null(0.0) * weight  # booleans count 0/1
    return table.mutate(label=label, reward=reward)


def maturity(table: ibis.Table, spec: RewardSpec, cutoff: datetime) -> ibis.Table:
    """`mature`: every window of the row closed by `cutoff`, and any purchase credited to it past
    its return window; `elapsed_s`: time from serving to the cut-off, for rows still open."""
    w = spec.windows
    longest = max([w.default_click_hours, w.default_view_hours, *(r.hours for r in w.rules)])
    cut = ibis.literal(cutoff)
    elapsed = cut.delta(table.served_at, unit="microsecond")
    windows_closed = elapsed >= int(longest * 3_600_000_000)
    returns_closed = table.last_purchase_at.isnull() | (
        cut.delta(table.last_purchase_at, unit="microsecond") >= int(w.return_window_days * 86_400_000_000)
    )
    mature = windows_closed & returns_closed
    # once every window has closed, the time since serving no longer matters (and a later run
    # leaves the row as it is)
    return table.mutate(
        mature=mature, elapsed_s=ibis.ifelse(mature, ibis.null("float64"), elapsed.cast("float64") / 1e6)
    )


def sessions(rows: ibis.Table, spec: RewardSpec) -> ibis.Table:
    """Per session: decisions, items clicked, depth (the deepest viewed slot), duration; and
    whether the person came back (a later session starting) within `aggregate.return_within_days`
    of its end."""
    per = rows.group_by("session").aggregate(
        person=rows.person.min(),
        session_start=rows.served_at.min(),
        session_end=rows.served_at.max(),
        session_decisions=rows.decision_id.nunique(),
        session_clicks=ibis.ifelse(rows.click_count.fill_null(0) > 0, 1, 0).sum(),
        # how far down its lists the session looked: the deepest viewed slot, counted from 1
        session_depth=(rows.position.max(where=rows.viewed) + 1).fill_null(0),
    )
    window = ibis.window(group_by=per.person, order_by=[per.session_start, per.session])
    following = per.session_start.lead().over(window)
    within_us = int(spec.aggregate.return_within_days * 86_400_000_000)
    return per.mutate(
        session_duration_s=per.session_end.delta(per.session_start, unit="microsecond").cast("float64") / 1e6,
        returned_within_days=following.notnull()
        & (following.delta(per.session_end, unit="microsecond") <= within_us),
    ).select(
        _.session,
        _.session_decisions,
        _.session_clicks,
        _.session_depth,
        _.session_duration_s,
        _.returned_within_days,
    )
