"""The multi-surface journeys world: users meet the same items on search, the home feed and email
over days, and some buy them later, with no decision id on the purchase.

Each decision shows a few items from the user's small set of interests, so one (user, item) pair
is touched again and again across surfaces. Every shown item is a *view* touch (an `impression`
event); some are clicked, a *click* touch. Purchases carry `user_id`, `item_id`, `order_id` and the
amount, never a `decision_id`: an attribution step has to find their touches by identity, item and
time window.

Purchases are causal. The purchase intensity of item i by user u at time t is::

    lambda_ui(t) = organic_rate * affinity_ui + sum_j lift_j * f_kind(j)(t - t_j)

over the touches j of (u, i) before t, where `lift_j` (by surface and kind) is the expected number
of purchases a touch causes and `f_kind` an exponential density with the kind's half-life,
truncated to the kind's window (a click can cause a purchase up to 7 days later, a view up to 1
day). By the superposition theorem, drawing each term's purchases independently is the same as
drawing the purchases of the sum and then their cause in proportion to each term at that time,
so every purchase has a known cause: a touch (decision, surface, click or view) or none (organic).
Some purchases are returned days later, in full or in part. A share of users browse anonymously
until an `identify` event links their `anonymous_id` to their `user_id` (at the latest just before
their first purchase): records before it carry only the anonymous id, later ones only the user id.

Lifts may drift: a `LiftChange` multiplies a surface's lifts from a given time on (an email
campaign that stops working), and a touch causes purchases with the lift in force at its own time.

>>> sim = simulate_journeys(200, seed=7)
>>> sim.counts["decisions"], sim.truth.world
(200, 'journeys')
>>> sorted(sim.truth.tables)
['conversions', 'touches']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from revealed.sim.frame import (
    DAY_US,
    HOUR_US,
    SECOND_US,
    START_US,
    EventLog,
    decisions_table,
    ids,
    items_table,
    keep,
    shown_items,
    take,
    timestamps,
)
from revealed.sim.world import Simulation, Truth

__all__ = ["KINDS", "MODEL", "JourneyConfig", "LiftChange", "simulate_journeys"]

#: the kinds of touch, in the order of their codes in the simulation
KINDS: Final = ("view", "click")
MODEL: Final = "journeys-ranker"
_TIME: Final = pa.timestamp("us", tz="UTC")
_STR: Final = pa.string()
#: mean seconds from an impression to its click
_CLICK_DELAY_S: Final = 20.0

_INF: Final = math.inf
#: numeric fields: (low, low excluded, high)
_BOUNDS: Final[dict[str, tuple[float, bool, float]]] = {
    "touches_per_user": (0.0, True, _INF),
    "price_median": (0.0, True, _INF),
    "price_sigma": (0.0, False, _INF),
    "span_days": (0.0, True, _INF),
    "organic_rate": (0.0, False, _INF),
    "mean_extra_units": (0.0, False, _INF),
    "anonymous_share": (0.0, False, 1.0),
    "return_rate": (0.0, False, 1.0),
    "partial_return_share": (0.0, False, 1.0),
}
#: mapping fields: (keys, empty meaning the surfaces; then the bounds of their values)
_MAPPINGS: Final[dict[str, tuple[tuple[str, ...], float, bool, float]]] = {
    "surface_share": ((), 0.0, False, _INF),
    "model_version": ((), 0.0, False, _INF),
    "click_probability": ((), 0.0, False, 1.0),
    "view_lift": ((), 0.0, False, _INF),
    "click_lift": ((), 0.0, False, _INF),
    "half_life_hours": (("view", "click"), 0.0, True, _INF),
    "window_days": (("view", "click"), 0.0, True, _INF),
}

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def _surface_map(**values: Any) -> Any:
    return field(default_factory=lambda: dict(values))


@dataclass(frozen=True)
class LiftChange:
    """At `hours` after the start, the view and click lifts of `surface` are multiplied by `factor`.

    Changes compose: two changes to one surface multiply its lifts by both factors.

    >>> LiftChange(hours=336, surface="email", factor=0.0)  # the email campaign stops working
    LiftChange(hours=336, surface='email', factor=0.0)
    >>> LiftChange(hours=-1, surface="email", factor=0.0)
    Traceback (most recent call last):
    ...
    ValueError: hours: expected a number >= 0 (hours after the start), found -1
    """

    hours: float
    surface: str
    factor: float

    def __post_init__(self) -> None:
        ok = _finite(self.hours) and not isinstance(self.hours, bool) and self.hours >= 0
        _require("hours", self.hours, ok, "a number >= 0 (hours after the start)")
        ok = isinstance(self.surface, str) and self.surface != ""
        _require("surface", self.surface, ok, "a surface name")
        ok = _finite(self.factor) and not isinstance(self.factor, bool) and self.factor >= 0
        _require("factor", self.factor, ok, "a number >= 0 (0: the surface stops causing purchases)")


@dataclass(frozen=True)
class JourneyConfig:
    """The parameters of the journeys world; every mapping is keyed by surface or by touch kind.

    >>> JourneyConfig().lift("search", "click")
    0.06
    >>> JourneyConfig(slate_size=0)
    Traceback (most recent call last):
    ...
    ValueError: slate_size: expected an integer >= 1, found 0
    >>> JourneyConfig(drift=(LiftChange(24, "sms", 0.5),))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: drift: expected changes to the surfaces search, home_feed, email, found LiftChange(...)
    """

    #: how many users; None: n / touches_per_user
    users: int | None = None
    touches_per_user: float = 10.0
    #: the catalogue size; prices are log-normal around `price_median`
    items: int = 400
    price_median: float = 30.0
    price_sigma: float = 0.6
    #: each user's interests: a neighbourhood of this many items in the catalogue
    interests_per_user: int = 8
    #: items shown per decision, drawn from the user's interests by affinity
    slate_size: int = 4
    surfaces: tuple[str, ...] = ("search", "home_feed", "email")
    surface_share: Mapping[str, float] = _surface_map(search=0.45, home_feed=0.4, email=0.15)
    model_version: Mapping[str, str] = _surface_map(search="search-3", home_feed="feed-7", email="email-2")
    click_probability: Mapping[str, float] = _surface_map(search=0.25, home_feed=0.1, email=0.06)
    #: expected purchases caused by one view (impression) / one click, by surface
    view_lift: Mapping[str, float] = _surface_map(search=0.004, home_feed=0.003, email=0.002)
    click_lift: Mapping[str, float] = _surface_map(search=0.06, home_feed=0.04, email=0.05)
    #: how fast a touch's effect decays, and how long after it a caused purchase can happen
    half_life_hours: Mapping[str, float] = _surface_map(view=4.0, click=12.0)
    window_days: Mapping[str, float] = _surface_map(view=1.0, click=7.0)
    #: expected organic purchases per user per day, spread over the user's interests by affinity
    organic_rate: float = 0.006
    #: decisions and organic purchases fall in [start, start + span_days)
    span_days: float = 28.0
    anonymous_share: float = 0.3
    #: a purchase is 1 + Poisson(mean_extra_units) units of the item
    mean_extra_units: float = 0.25
    return_rate: float = 0.12
    #: the share of returns that refund only part of the amount
    partial_return_share: float = 0.35
    return_delay_days: tuple[float, float] = (2.0, 21.0)
    #: changes of the lifts over time, in any order
    drift: tuple[LiftChange, ...] = ()

    def __post_init__(self) -> None:
        for name in ("users", "items", "interests_per_user", "slate_size"):
            value = getattr(self, name)
            if value is not None or name != "users":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
                _require(name, value, ok, "an integer >= 1")
        ok = self.slate_size <= self.interests_per_user <= self.items
        _require("interests_per_user", self.interests_per_user, ok, "an integer in [slate_size, items]")
        for name, (low, strict, high) in _BOUNDS.items():
            value = getattr(self, name)
            ok = _finite(value) and (value > low if strict else value >= low) and value <= high
            _require(name, value, ok, f"a number {'>' if strict else '>='} {low:g}" + _upto(high))
        low, high = self.return_delay_days
        ok = _finite(low) and _finite(high) and 0 < low <= high
        _require("return_delay_days", self.return_delay_days, ok, "(low, high) days with 0 < low <= high")
        ok = len(self.surfaces) >= 1 and len(set(self.surfaces)) == len(self.surfaces)
        _require("surfaces", self.surfaces, ok, "at least one surface name, each once")
        for name, (keys, low, strict, high) in _MAPPINGS.items():
            mapping = dict(getattr(self, name))
            keys = keys or self.surfaces
            ok = set(mapping) == set(keys)
            _require(name, mapping, ok, f"one value for each of {', '.join(keys)}")
            if name != "model_version":
                ok = all(
                    _finite(v) and (v > low if strict else v >= low) and v <= high for v in mapping.values()
                )
                _require(name, mapping, ok, f"numbers {'>' if strict else '>='} {low:g}" + _upto(high))
        ok = sum(self.surface_share.values()) > 0
        _require("surface_share", dict(self.surface_share), ok, "shares with a positive sum")
        ok = isinstance(self.drift, tuple | list) and all(isinstance(c, LiftChange) for c in self.drift)
        _require("drift", self.drift, ok, "a tuple of LiftChange")
        object.__setattr__(self, "drift", tuple(self.drift))
        for change in self.drift:
            ok = change.surface in self.surfaces
            _require("drift", change, ok, f"changes to the surfaces {', '.join(self.surfaces)}")

    def lift(self, surface: str, kind: str) -> float:
        """Expected purchases caused by one touch of this kind on this surface."""
        return float((self.click_lift if kind == "click" else self.view_lift)[surface])

    def change_points_us(self, start_us: int) -> list[int]:
        """The distinct times at which some lift changes, in order, as UTC microseconds."""
        return sorted({start_us + int(c.hours * HOUR_US) for c in self.drift})

    def as_params(self) -> dict[str, Any]:
        """The configuration as JSON values."""
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _require(name: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name}: expected {expected}, found {value!r}")


def _upto(high: float) -> str:
    return "" if math.isinf(high) else f" and <= {high:g}"


def _json(value: object) -> Any:
    if isinstance(value, LiftChange):
        return asdict(value)
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value


def simulate_journeys(
    n: int, seed: int, *, config: JourneyConfig | None = None, start_us: int = START_US
) -> Simulation:
    """`n` decisions (touches of a user on one surface) of the journeys world, with their causal truth.

    Truth tables: `touches` (one row per view or click: decision_id, user_id, item_id, surface, kind,
    timestamp, lift: the lift in force at the touch's time) and `conversions` (one row per
    purchase: event_id, order_id, user_id, item_id, timestamp, amount, causal_decision_id,
    causal_surface, causal_kind ("click", "view" or "organic"), causal_timestamp, returned_amount).
    Truth user ids are the real users, also for touches logged under an anonymous id. Truth params
    hold the configuration and `change_points_us`, the times at which some lift changes.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1 decisions, found {n!r}")
    cfg = config or JourneyConfig()
    rng = np.random.default_rng(seed)
    n_users = cfg.users or max(1, round(n / cfg.touches_per_user))
    span = int(cfg.span_days * DAY_US)
    surfaces = pa.array(list(cfg.surfaces), type=_STR)

    # the catalogue, and each user's interests: a neighbourhood in a shuffled catalogue
    price = np.maximum(
        1.0, np.round(cfg.price_median * np.exp(cfg.price_sigma * rng.standard_normal(cfg.items)), 2)
    )
    shuffled = rng.permutation(cfg.items)
    popularity = 1.0 / np.arange(1, cfg.items + 1) ** 0.8
    centre = rng.choice(cfg.items, size=n_users, p=popularity / popularity.sum())
    interest = shuffled[(centre[:, None] + np.arange(cfg.interests_per_user)) % cfg.items]
    affinity = rng.gamma(1.0, size=(n_users, cfg.interests_per_user))
    anonymous = rng.random(n_users) < cfg.anonymous_share
    anonymous_number = rng.permutation(n_users)

    # decisions, in time order: each shows the Gumbel-top-k of the user's interests by affinity
    user = rng.integers(n_users, size=n)
    share = np.array([cfg.surface_share[s] for s in cfg.surfaces])
    surface = rng.choice(len(cfg.surfaces), size=n, p=share / share.sum())
    time = start_us + rng.integers(span, size=n)
    keys = np.log(affinity[user]) + rng.gumbel(size=(n, cfg.interests_per_user))
    slot = np.argsort(-keys, axis=1, kind="stable")[:, : cfg.slate_size]
    shown = interest[user[:, None], slot]
    order = np.lexsort((user, time))
    user, surface, time, shown = user[order], surface[order], time[order], shown[order]
    decision_id = ids("jd-", np.arange(n))

    touches = _touches(cfg, rng, user, surface, time, shown, start_us)
    purchases = _purchases(cfg, rng, touches, price, interest, affinity, start_us, span)
    identify_us = _identify_times(
        rng, user, time, purchases.user, purchases.time, anonymous, n_users, start_us, span
    )

    def identity(who: Ints, when: Ints) -> dict[str, pa.Array]:
        before = anonymous[who] & (when < identify_us[who])
        return {
            "user_id": keep(ids("ju", who), ~before),
            "anonymous_id": keep(ids("ja-", anonymous_number[who]), before),
        }

    k = cfg.slate_size
    decisions = decisions_table(
        decision_id,
        time,
        shown_items(ids("ji", shown.ravel()), k=k),
        **identity(user, time),
        surface=take(surfaces, surface),
        query_id=keep(ids("jq", centre[user]), surface == _index(cfg.surfaces, "search")),
        model=MODEL,
        model_version=take(pa.array([cfg.model_version[s] for s in cfg.surfaces], type=_STR), surface),
    )

    log = EventLog()
    for code, kind in enumerate(KINDS):
        mask = touches.kind == code
        who, when = touches.user[mask], touches.time[mask]
        log.add(
            "impression" if kind == "view" else "click",
            when,
            **identity(who, when),
            decision_id=take(decision_id, touches.decision[mask]),
            item_id=ids("ji", touches.item[mask]),
        )
    who, when = purchases.user, purchases.time
    order_id = ids("jo-", np.arange(len(who)))
    log.add(
        "purchase",
        when,
        **identity(who, when),
        item_id=ids("ji", purchases.item),
        order_id=order_id,
        value=purchases.amount,
    )
    back = purchases.returned > 0
    back_us = when[back] + (rng.uniform(*cfg.return_delay_days, size=int(back.sum())) * DAY_US).astype(
        np.int64
    )
    log.add(
        "return",
        back_us,
        **identity(who[back], back_us),
        item_id=ids("ji", purchases.item[back]),
        order_id=order_id.filter(pa.array(back)),
        value=purchases.returned[back],
    )
    anon_users = np.flatnonzero(anonymous)
    log.add(
        "identify",
        identify_us[anon_users],
        user_id=ids("ju", anon_users),
        anonymous_id=ids("ja-", anonymous_number[anon_users]),
    )
    events = log.table(prefix="je-")

    features = pc.binary_join_element_wise(
        '{"category":"jc', pc.cast(pa.array(np.argsort(shuffled) // 25), _STR), '","price":',
        pc.cast(pa.array(price), _STR), "}", "",
    )  # fmt: skip
    truth = Truth(
        "journeys",
        seed,
        {
            **cfg.as_params(),
            "users": n_users,
            "n": n,
            "start_us": start_us,
            "change_points_us": cfg.change_points_us(start_us),
        },
        {
            "conversions": _conversions(events, purchases, order_id, touches, decision_id, surfaces),
            "touches": _touch_table(touches, decision_id, surfaces),
        },
    )
    catalogue = items_table(ids("ji", np.arange(cfg.items)), features=features)
    return Simulation("journeys", seed, decisions, events, catalogue, truth)


@dataclass(frozen=True)
class _Touches:
    """Every view and click, one row per touch; `kind` indexes `KINDS`, `surface` the surfaces."""

    decision: Ints
    user: Ints
    item: Ints
    surface: Ints
    kind: Ints
    time: Ints
    #: expected purchases this touch causes: its surface's lift in force at its time
    lift: Floats


@dataclass(frozen=True)
class _Purchases:
    """Every purchase in time order; `cause` is the index of the causing touch, -1 when organic."""

    user: Ints
    item: Ints
    time: Ints
    cause: Ints
    amount: Floats
    #: the refunded amount, 0 when kept
    returned: Floats


def _touches(
    cfg: JourneyConfig,
    rng: np.random.Generator,
    user: Ints,
    surface: Ints,
    time: Ints,
    shown: Ints,
    start_us: int,
) -> _Touches:
    """Every view (one per shown item, at the decision) and click (seconds after its view), with
    the lift in force at the touch's own time."""
    k = cfg.slate_size
    decision = np.repeat(np.arange(len(user)), k)
    clicks = np.array([cfg.click_probability[s] for s in cfg.surfaces])[surface[decision]]
    clicked = np.flatnonzero(rng.random(len(decision)) < clicks)
    delay = np.maximum(SECOND_US, rng.exponential(_CLICK_DELAY_S * SECOND_US, size=len(clicked)))
    both = np.concatenate([np.arange(len(decision)), clicked])
    kind = np.repeat([0, 1], [len(decision), len(clicked)])
    touch_decision = decision[both]
    touch_surface = surface[touch_decision]
    touch_time = time[touch_decision] + np.concatenate(
        [np.zeros(len(decision), np.int64), delay.astype(np.int64)]
    )
    lifts = np.array([[cfg.view_lift[s], cfg.click_lift[s]] for s in cfg.surfaces])
    lift = lifts[touch_surface, kind]
    for change in cfg.drift:
        after = touch_time >= start_us + int(change.hours * HOUR_US)
        lift[after & (touch_surface == cfg.surfaces.index(change.surface))] *= change.factor
    return _Touches(
        decision=touch_decision,
        user=user[touch_decision],
        item=shown.ravel()[both],
        surface=touch_surface,
        kind=kind,
        time=touch_time,
        lift=lift,
    )


def _purchases(
    cfg: JourneyConfig,
    rng: np.random.Generator,
    touches: _Touches,
    price: Floats,
    interest: Ints,
    affinity: Floats,
    start_us: int,
    span: int,
) -> _Purchases:
    """Caused purchases (Poisson(lift) per touch, delayed by its kind's truncated exponential) and
    organic ones (Poisson per user, uniform in time, item by affinity), in time order; `cause` is
    the touch index or -1 (organic)."""
    caused = np.repeat(np.arange(len(touches.lift)), rng.poisson(touches.lift))
    kind = touches.kind[caused]
    rate = np.log(2) / np.array([cfg.half_life_hours[k] * HOUR_US for k in KINDS])[kind]
    window = np.array([cfg.window_days[k] * DAY_US for k in KINDS])[kind]
    delay = -np.log1p(rng.random(len(caused)) * np.expm1(-rate * window)) / rate
    delay = np.clip(np.floor(delay), SECOND_US, np.floor(window)).astype(np.int64)

    n_users = len(interest)
    organic_user = np.repeat(np.arange(n_users), rng.poisson(cfg.organic_rate * cfg.span_days, size=n_users))
    cumulative = np.cumsum(affinity, axis=1)
    cumulative /= cumulative[:, -1:]
    pick = (rng.random(len(organic_user))[:, None] > cumulative[organic_user]).sum(axis=1)
    pick = np.minimum(pick, cfg.interests_per_user - 1)

    user = np.concatenate([touches.user[caused], organic_user])
    item = np.concatenate([touches.item[caused], interest[organic_user, pick]])
    time = np.concatenate(
        [touches.time[caused] + delay, start_us + rng.integers(span, size=len(organic_user))]
    )
    cause = np.concatenate([caused, np.full(len(organic_user), -1)])
    order = np.lexsort((cause, item, user, time))
    user, item, time, cause = user[order], item[order], time[order], cause[order]

    m = len(user)
    amount = np.round(price[item] * (1 + rng.poisson(cfg.mean_extra_units, size=m)), 2)
    returned = rng.random(m) < cfg.return_rate
    partial = rng.random(m) < cfg.partial_return_share
    refund = np.where(partial, np.floor(amount * rng.uniform(0.2, 0.9, size=m) * 100) / 100, amount)
    return _Purchases(user, item, time, cause, amount, np.where(returned, refund, 0.0))


def _identify_times(
    rng: np.random.Generator,
    user: Ints,
    time: Ints,
    buyer: Ints,
    bought_us: Ints,
    anonymous: npt.NDArray[np.bool_],
    n_users: int,
    start_us: int,
    span: int,
) -> Ints:
    """When each user identifies: uniformly between their first and last decision, and at the
    latest a second before their first purchase (checkout needs a login); never before start."""
    first = np.full(n_users, start_us, dtype=np.int64)
    last = np.full(n_users, start_us + span, dtype=np.int64)
    seen, at = np.unique(user, return_index=True)  # decisions are in time order
    first[seen] = time[at]
    seen, at = np.unique(user[::-1], return_index=True)
    last[seen] = time[::-1][at]
    identify = first + (rng.random(n_users) * (last - first)).astype(np.int64)
    bought, at = np.unique(buyer, return_index=True)  # purchases are in time order too
    identify[bought] = np.minimum(identify[bought], bought_us[at] - SECOND_US)
    identify = np.maximum(identify, start_us)
    return np.where(anonymous, identify, start_us)


def _conversions(
    events: pa.Table,
    purchases: _Purchases,
    order_id: pa.Array,
    touches: _Touches,
    decision_id: pa.Array,
    surfaces: pa.Array,
) -> pa.Table:
    """One row per purchase with its cause; `event_id` found by order id in the time-sorted events."""
    bought = pc.equal(events.column("type"), "purchase")
    logged = events.filter(bought)
    at = pc.index_in(order_id, value_set=logged.column("order_id"))
    cause = purchases.cause
    organic = cause < 0
    touch = np.where(organic, 0, cause)
    kind = np.where(organic, len(KINDS), touches.kind[touch])
    return pa.table(
        {
            "event_id": pc.take(logged.column("event_id"), at),
            "order_id": order_id,
            "user_id": ids("ju", purchases.user),
            "item_id": ids("ji", purchases.item),
            "timestamp": timestamps(purchases.time),
            "amount": pa.array(purchases.amount, type=pa.float64()),
            "causal_decision_id": keep(take(decision_id, touches.decision[touch]), ~organic),
            "causal_surface": keep(take(surfaces, touches.surface[touch]), ~organic),
            "causal_kind": take(pa.array([*KINDS, "organic"], type=_STR), kind),
            "causal_timestamp": pa.array(touches.time[touch], type=pa.int64(), mask=organic).cast(_TIME),
            "returned_amount": pa.array(purchases.returned, type=pa.float64()),
        }
    )


def _touch_table(touches: _Touches, decision_id: pa.Array, surfaces: pa.Array) -> pa.Table:
    order = np.argsort(touches.time, kind="stable")
    return pa.table(
        {
            "decision_id": take(decision_id, touches.decision[order]),
            "user_id": ids("ju", touches.user[order]),
            "item_id": ids("ji", touches.item[order]),
            "surface": take(surfaces, touches.surface[order]),
            "kind": take(pa.array(list(KINDS), type=_STR), touches.kind[order]),
            "timestamp": timestamps(touches.time[order]),
            "lift": pa.array(touches.lift[order], type=pa.float64()),
        }
    )


def _index(names: tuple[str, ...], name: str) -> int:
    return names.index(name) if name in names else -1
