"""What users do after they see a list: the events that follow a click model's clicks.

Given the shown slots of many decisions (flattened to one row per slot) with their click,
examination, graded relevance and satisfaction, `follow` draws, all vectorised:

- impressions for every slot down to the deepest examined one, and the list's scroll depth;
- per click: heartbeats every `heartbeat_s` seconds that stay `active` while the user reads and
  turn inactive when the user walks away with the page open, the client's `dwell` (which counts
  the idle time too: it overstates attention), and the page's scroll depth;
- skips, hides and not-interested on examined, unclicked, mostly irrelevant slots;
- saves, shares and copies on satisfied clicks;
- add-to-cart, purchases hours to days later (log-normal delay) with an `order_id`, and returns
  that revoke some purchases fully or partly days after that.

Every probability is a parameter of `Behaviour`, written to the truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from revealed.sim.frame import DAY_US, HOUR_US, SECOND_US, EventLog, ids, keep, take

__all__ = ["Behaviour", "Slots", "follow"]


@dataclass(frozen=True)
class Behaviour:
    """The parameters of post-click behaviour (times in seconds unless named otherwise)."""

    heartbeat_s: float = 15.0
    #: median active reading time of a satisfied and of an unsatisfied click
    satisfied_dwell_s: float = 75.0
    unsatisfied_dwell_s: float = 9.0
    dwell_sigma: float = 0.6
    #: P(the user walks away with the page open) and the median idle time then
    walk_away: float = 0.2
    idle_s: float = 180.0
    max_idle_s: float = 600.0
    skip: float = 0.04
    hide: float = 0.01
    not_interested: float = 0.005
    save: float = 0.06
    share: float = 0.02
    copy: float = 0.02
    add_to_cart: float = 0.25
    purchase_given_cart: float = 0.5
    #: log-normal purchase delay after the click: median hours and sigma
    purchase_delay_h: float = 18.0
    purchase_delay_sigma: float = 1.0
    #: share of purchases that carry the decision_id (the rest must be attributed by identity)
    purchase_with_decision: float = 0.5
    return_rate: float = 0.12
    return_rate_irrelevant: float = 0.35
    partial_return: float = 0.4
    return_delay_days: tuple[float, float] = (1.0, 14.0)
    impressions: bool = True

    def params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Slots:
    """One row per shown slot (all arrays the same length)."""

    decision: np.ndarray  # decision number
    decision_id: pa.Array
    user_id: pa.Array  # the identity the client knew (user or null)
    anonymous_id: pa.Array
    session_id: pa.Array
    item: np.ndarray  # item number
    item_id: pa.Array
    position: np.ndarray
    served_us: np.ndarray
    clicked: np.ndarray
    examined: np.ndarray
    grade: np.ndarray  # 0..4
    satisfaction: np.ndarray
    price: np.ndarray


def _ids_of(s: Slots, index: np.ndarray) -> dict[str, pa.Array]:
    return {
        "user_id": take(s.user_id, index),
        "anonymous_id": take(s.anonymous_id, index),
        "session_id": take(s.session_id, index),
    }


def follow(
    s: Slots, log: EventLog, *, b: Behaviour, rng: np.random.Generator, seed: int
) -> dict[str, pa.Table]:
    """Add every behavioural event of these slots to `log`; returns truth tables (purchases)."""
    n = len(s.decision)
    click_at = s.served_us + ((2.0 + 1.5 * s.position + rng.exponential(2.0, n)) * SECOND_US).astype(np.int64)
    if b.impressions:
        deepest = np.zeros(int(s.decision.max()) + 1 if n else 0, dtype=np.int64) - 1
        np.maximum.at(deepest, s.decision, np.where(s.examined, s.position, -1))
        seen = s.position <= deepest[s.decision]
        idx = np.flatnonzero(seen)
        log.add(
            "impression",
            s.served_us[idx] + (s.position[idx] * 300_000),
            decision_id=take(s.decision_id, idx),
            item_id=take(s.item_id, idx),
            **_ids_of(s, idx),
        )
        first = np.flatnonzero(s.position == 0)
        k = int(s.position.max()) + 1 if n else 1
        log.add(
            "scroll",
            s.served_us[first] + 500_000,
            decision_id=take(s.decision_id, first),
            value=(deepest[s.decision[first]] + 1) / k,
            **_ids_of(s, first),
        )
    clicks = np.flatnonzero(s.clicked)
    log.add(
        "click",
        click_at[clicks],
        decision_id=take(s.decision_id, clicks),
        item_id=take(s.item_id, clicks),
        **_ids_of(s, clicks),
    )
    reading = _reading(s, clicks, click_at, log, b=b, rng=rng)
    _negatives(s, click_at, log, b=b, rng=rng)
    return {"reading": reading, **_commerce(s, clicks, click_at, log, b=b, rng=rng, seed=seed)}


def _reading(
    s: Slots,
    clicks: np.ndarray,
    click_at: np.ndarray,
    log: EventLog,
    *,
    b: Behaviour,
    rng: np.random.Generator,
) -> pa.Table:
    """Heartbeats, dwell, page scroll and strong positives of each click; the truth of its reading."""
    m = len(clicks)
    satisfied = rng.random(m) < s.satisfaction[clicks]
    median = np.where(satisfied, b.satisfied_dwell_s, b.unsatisfied_dwell_s)
    active = median * np.exp(b.dwell_sigma * rng.standard_normal(m))
    away = rng.random(m) < b.walk_away
    idle = np.where(away, np.minimum(b.idle_s * np.exp(0.8 * rng.standard_normal(m)), b.max_idle_s), 0.0)
    total = active + idle
    beats = np.floor(total / b.heartbeat_s).astype(np.int64)
    row = np.repeat(np.arange(m), beats)
    j = np.arange(len(row)) - np.repeat(np.cumsum(beats) - beats, beats)
    end = (j + 1) * b.heartbeat_s
    beat_active = end <= active[row] + b.heartbeat_s * 0.5
    src = clicks[row]
    log.add(
        "heartbeat",
        click_at[src] + (end * SECOND_US).astype(np.int64),
        decision_id=take(s.decision_id, src),
        item_id=take(s.item_id, src),
        value=np.full(len(row), b.heartbeat_s),
        properties=pa.array(np.where(beat_active, '{"active":true}', '{"active":false}')),
        **_ids_of(s, src),
    )
    log.add(
        "dwell",
        click_at[clicks] + (total * SECOND_US).astype(np.int64),
        decision_id=take(s.decision_id, clicks),
        item_id=take(s.item_id, clicks),
        value=np.round(total, 3),
        **_ids_of(s, clicks),
    )
    depth = np.clip(active / 120.0 + 0.1 * rng.standard_normal(m), 0.0, 1.0)
    log.add(
        "scroll",
        click_at[clicks] + (active * SECOND_US * 0.8).astype(np.int64),
        decision_id=take(s.decision_id, clicks),
        item_id=take(s.item_id, clicks),
        value=np.round(depth, 4),
        **_ids_of(s, clicks),
    )
    for kind, p in (("save", b.save), ("share", b.share), ("copy", b.copy)):
        hit = satisfied & (rng.random(m) < p * (1 + s.grade[clicks]) / 3)
        idx = clicks[hit]
        log.add(
            kind,
            click_at[idx] + (active[hit] * SECOND_US * 0.5).astype(np.int64),
            decision_id=take(s.decision_id, idx),
            item_id=take(s.item_id, idx),
            **_ids_of(s, idx),
        )

    return pa.table(
        {
            "decision_id": take(s.decision_id, clicks),
            "item_id": take(s.item_id, clicks),
            "satisfied": pa.array(satisfied),
            "active_s": pa.array(active),
            "idle_s": pa.array(idle),
            "walked_away": pa.array(away),
        }
    )


def _negatives(
    s: Slots, click_at: np.ndarray, log: EventLog, *, b: Behaviour, rng: np.random.Generator
) -> None:
    unclicked = s.examined & ~s.clicked
    irrelevant = (4 - s.grade) / 4.0
    for kind, p in (("skip", b.skip), ("hide", b.hide), ("not_interested", b.not_interested)):
        idx = np.flatnonzero(unclicked & (rng.random(len(unclicked)) < p * 2 * irrelevant))
        value = np.round(rng.uniform(0.3, 3.0, len(idx)), 3) if kind == "skip" else None
        log.add(
            kind,
            click_at[idx],
            decision_id=take(s.decision_id, idx),
            item_id=take(s.item_id, idx),
            value=value,
            **_ids_of(s, idx),
        )


def _commerce(
    s: Slots,
    clicks: np.ndarray,
    click_at: np.ndarray,
    log: EventLog,
    *,
    b: Behaviour,
    rng: np.random.Generator,
    seed: int,
) -> dict[str, pa.Table]:
    m = len(clicks)
    cart = rng.random(m) < b.add_to_cart * s.grade[clicks] / 4.0
    carted = clicks[cart]
    cart_at = click_at[carted] + (rng.exponential(30.0, len(carted)) * SECOND_US).astype(np.int64)
    log.add(
        "add_to_cart",
        cart_at,
        decision_id=take(s.decision_id, carted),
        item_id=take(s.item_id, carted),
        **_ids_of(s, carted),
    )
    buy = rng.random(len(carted)) < b.purchase_given_cart
    bought = carted[buy]
    delay_h = b.purchase_delay_h * np.exp(b.purchase_delay_sigma * rng.standard_normal(len(bought)))
    bought_at = cart_at[buy] + (delay_h * HOUR_US).astype(np.int64)
    order = ids(f"o{seed}-", np.arange(len(bought)))
    amount = s.price[bought]
    with_decision = rng.random(len(bought)) < b.purchase_with_decision
    decision_id = take(s.decision_id, bought)
    log.add(
        "purchase",
        bought_at,
        decision_id=keep(decision_id, with_decision),
        item_id=take(s.item_id, bought),
        order_id=order,
        value=amount,
        properties=pa.array(['{"currency":"EUR"}'] * len(bought)),
        **_ids_of(s, bought),
    )
    p_return = np.where(s.grade[bought] <= 1, b.return_rate_irrelevant, b.return_rate)
    returned = rng.random(len(bought)) < p_return
    partial = rng.random(len(bought)) < b.partial_return
    refund = np.where(
        returned, np.where(partial, np.round(amount * rng.uniform(0.2, 0.8, len(bought)), 2), amount), 0.0
    )
    lo, hi = b.return_delay_days
    ret = np.flatnonzero(returned)
    log.add(
        "return",
        bought_at[ret] + (rng.uniform(lo, hi, len(ret)) * DAY_US).astype(np.int64),
        item_id=take(s.item_id, bought[ret]),
        order_id=take(order, ret),
        value=refund[ret],
        **_ids_of(s, bought[ret]),
    )
    purchases = pa.table(
        {
            "order_id": order,
            "decision_id": decision_id,
            "item_id": take(s.item_id, bought),
            "decision_id_logged": pa.array(with_decision),
            "amount": pa.array(amount, type=pa.float64()),
            "returned_amount": pa.array(refund, type=pa.float64()),
            "delay_hours": pa.array(delay_h, type=pa.float64()),
        }
    )
    return {"purchases": purchases}
