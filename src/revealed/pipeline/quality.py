"""Data quality: flag, never silently drop.

- Bots: people whose behaviour no person has (configurable): many decisions with most shown
  slots clicked, or decisions faster than a person can read.
- Accidental clicks: within `accidental_ms` of serving (set apart by `direct_signals`).
- Clicks on items the decision never showed.
- Events more than `skew_tolerance_s` before their decision (clock skew beyond tolerance): kept
  in the store, not counted as signals.
- Inconsistent propensities: the top slot's marginal differs from its conditional (they are the
  same probability), or the slate's joint propensity is not the product of the conditionals.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis

__all__ = ["QualityRules", "bots", "inconsistent_decisions", "misplaced_events"]


@dataclass(frozen=True)
class QualityRules:
    """Thresholds of the quality flags."""

    bot_min_decisions: int = 5
    #: share of shown slots clicked above which a person with enough decisions is a bot
    bot_click_share: float = 0.5
    #: decisions per hour of activity above which a person is a bot
    bot_decisions_per_hour: float = 600.0
    accidental_ms: int = 300
    skew_tolerance_s: float = 300.0
    propensity_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.bot_min_decisions < 1:
            raise ValueError(f"bot_min_decisions: expected an integer >= 1, found {self.bot_min_decisions}")
        if not 0.0 < self.bot_click_share <= 1.0:
            raise ValueError(f"bot_click_share: expected a share in (0, 1], found {self.bot_click_share}")
        for name in ("bot_decisions_per_hour", "skew_tolerance_s", "propensity_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a number > 0, found {getattr(self, name)}")


def bots(rows: ibis.Table, rules: QualityRules) -> ibis.Table:
    """(person, bot) for every person: the served rows (with `click_count`) say how they behave."""
    per = rows.group_by("person").aggregate(
        decisions=rows.decision_id.nunique(),
        slots=rows.count(),
        clicked=ibis.ifelse(rows.click_count.fill_null(0) > 0, 1, 0).sum(),
        first=rows.served_at.min(),
        last=rows.served_at.max(),
    )
    hours = per["last"].delta(per["first"], unit="microsecond").cast("float64") / 3.6e9
    rate = per.decisions.cast("float64") / ibis.greatest(hours, 1.0)
    enough = per.decisions >= rules.bot_min_decisions
    is_bot = enough & (
        (per.clicked.cast("float64") / per.slots.cast("float64") > rules.bot_click_share)
        | (rate > rules.bot_decisions_per_hour)
    )
    return per.select("person", bot=is_bot)


def misplaced_events(named: ibis.Table, rows: ibis.Table, rules: QualityRules) -> ibis.Table:
    """Events naming a decision and an item (with `served_at`), flagged `unserved` (the decision
    never showed the item) or `before_decision` (earlier than serving beyond the tolerance)."""
    shown = rows.select("decision_id", "item_id", shown=ibis.literal(True))
    joined = named.left_join(shown, ["decision_id", "item_id"]).drop("decision_id_right", "item_id_right")
    early = joined.timestamp.delta(joined.served_at, unit="microsecond") < -int(rules.skew_tolerance_s * 1e6)
    return joined.mutate(unserved=joined.shown.isnull(), before_decision=early.fill_null(False)).drop("shown")


def inconsistent_decisions(rows: ibis.Table, rules: QualityRules) -> ibis.Table:
    """(decision_id, inconsistent_propensity) for decisions whose logged probabilities disagree."""
    tol = rules.propensity_tolerance
    top = rows.position == 0
    top_mismatch = (
        top
        & rows.propensity.notnull()
        & rows.cond_propensity.notnull()
        & ((rows.propensity - rows.cond_propensity).abs() > tol)
    )
    per = rows.group_by("decision_id").aggregate(
        log_product=rows.cond_propensity.log().sum(),
        all_known=rows.cond_propensity.notnull().all(),
        slate=rows.slate_propensity.max(),
        top_mismatch=top_mismatch.any(),
    )
    joint_mismatch = (
        per.all_known
        & per.slate.notnull()
        & ((per.log_product.exp() - per.slate).abs() > tol * ibis.greatest(per.slate, 1e-12) + tol)
    )
    return per.select(
        "decision_id", inconsistent_propensity=per.top_mismatch | joint_mismatch.fill_null(False)
    )
