"""The assistant world's simulation: conversations played turn by turn (arrivals on a daily cycle,
latent quality, regenerations, continuing or abandoning), their responses and the signals drawn
for them, and the tables `simulate_assistant` returns with the truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from revealed.sim.assistant.config import (
    DELAYS_S,
    DIURNAL_AMPLITUDE,
    EDIT_SHAPE,
    PEAK_HOUR,
    AssistantConfig,
    expected_signal_rates,
    signal_probabilities,
)
from revealed.sim.frame import (
    HOUR_US,
    SECOND_US,
    START_US,
    EventLog,
    decisions_table,
    ids,
    items_table,
    shown_items,
)
from revealed.sim.world import Simulation, Truth

__all__ = ["simulate_assistant"]

_OPENERS: Final = (
    ("I'm not sure, but maybe", "Sorry, this may be wrong:", "Possibly, though unclear:"),
    ("It depends, but generally", "One way to do it:", "Roughly speaking,"),
    ("Here is a clear answer:", "Sure, step by step:", "Good question. In short,"),
)
_TOPICS: Final = (
    "use a context manager so the file is closed.",
    "sort both lists, then merge them in one pass.",
    "cache the result and invalidate it on writes.",
    "index the column you filter on most often.",
    "retry with exponential backoff and jitter.",
    "split the function where the state changes.",
    "pin the dependency to the last version that works.",
    "measure first; the slow part is rarely the loop.",
    "write the test that fails before the fix.",
    "stream the rows instead of loading them at once.",
    "keep times in UTC and convert at the edges.",
    "prefer a dictionary lookup to a chain of ifs.",
)


@dataclass(frozen=True)
class _Requests:
    """One row per request (a turn), as flat arrays; times in UTC microseconds."""

    conversation: np.ndarray
    turn: np.ndarray
    version: np.ndarray
    mean: np.ndarray  # the version's mean quality at the first response
    time: np.ndarray  # the first response
    quality: np.ndarray
    regenerated: np.ndarray
    regen_time: np.ndarray  # the regenerate event (meaningful where regenerated)
    second_time: np.ndarray
    second_mean: np.ndarray
    second_quality: np.ndarray
    p_continue: np.ndarray  # of the kept response, 0 at max_turns
    p_abandon: np.ndarray
    abandoned: np.ndarray
    dwell: np.ndarray  # from the kept response to the next prompt or the session_end

    @classmethod
    def concat(cls, parts: list[dict[str, np.ndarray]]) -> _Requests:
        return cls(**{f.name: np.concatenate([p[f.name] for p in parts]) for f in fields(cls)})

    def take(self, index: np.ndarray) -> _Requests:
        return _Requests(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _delay(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    floor, median, sigma = DELAYS_S[kind]
    seconds = floor + rng.lognormal(math.log(median), sigma, size)
    out: np.ndarray = (seconds * SECOND_US).astype(np.int64)
    return out


def _mean_quality(cfg: AssistantConfig, version: np.ndarray, time: np.ndarray, start_us: int) -> np.ndarray:
    base = np.array(list(cfg.versions.values()))
    mean: np.ndarray = base[version]
    names = list(cfg.versions)
    for hours, name, quality in cfg.drift:  # sorted by time: later change points win
        after = (version == names.index(name)) & (time >= start_us + int(hours * HOUR_US))
        mean = np.where(after, quality, mean)
    return mean


def _quality(rng: np.random.Generator, cfg: AssistantConfig, mean: np.ndarray) -> np.ndarray:
    q = rng.beta(mean * cfg.concentration, (1 - mean) * cfg.concentration)
    out: np.ndarray = np.clip(q, 1e-6, 1 - 1e-6)
    return out


def _clock_hours(activity: np.ndarray, start_us: int) -> np.ndarray:
    """Hours after start at which a unit-rate process in `activity` hours lands under the daily
    cycle: the inverse of the cumulative intensity."""
    omega, amp = 2 * math.pi / 24, DIURNAL_AMPLITUDE
    phase = (start_us % (24 * HOUR_US)) / HOUR_US - PEAK_HOUR
    grid = np.arange(0.0, float(activity.max(initial=0.0)) / (1 - amp) + 2.0, 1 / 60)
    cumulative = grid + amp / omega * (np.sin(omega * (grid + phase)) - math.sin(omega * phase))
    out: np.ndarray = np.interp(activity, cumulative, grid)
    return out


def _play(
    rng: np.random.Generator, cfg: AssistantConfig, start: np.ndarray, version: np.ndarray, start_us: int
) -> list[dict[str, np.ndarray]]:
    """The turns of conversations starting at `start`: vectorised over conversations, one step per
    turn index (continuing depends on the quality just served, and quality on the time)."""
    alive = np.arange(len(start))
    time = start.copy()
    parts = []
    for turn in range(cfg.max_turns):
        k = len(alive)
        if k == 0:
            break
        v = version[alive]
        mean = _mean_quality(cfg, v, time, start_us)
        quality = _quality(rng, cfg, mean)
        regenerated = rng.random(k) < cfg.regenerate(quality)
        regen_time = time + _delay(rng, k, "regenerate")
        second_time = regen_time + _delay(rng, k, "generation")
        second_mean = _mean_quality(cfg, v, second_time, start_us)
        second_quality = _quality(rng, cfg, second_mean)
        kept = np.where(regenerated, second_quality, quality)
        kept_time = np.where(regenerated, second_time, time)
        p_continue = cfg.continuation(kept) if turn < cfg.max_turns - 1 else np.zeros(k)
        p_abandon = (1 - p_continue) * cfg.abandon(kept)
        u = rng.random(k)
        continued = u < p_continue
        abandoned = ~continued & (u < p_continue + p_abandon)
        dwell = np.where(abandoned, _delay(rng, k, "leave"), _delay(rng, k, "think"))
        parts.append(
            {
                "conversation": alive,
                "turn": np.full(k, turn),
                "version": v,
                "mean": mean,
                "time": time,
                "quality": quality,
                "regenerated": regenerated,
                "regen_time": regen_time,
                "second_time": second_time,
                "second_mean": second_mean,
                "second_quality": second_quality,
                "p_continue": p_continue,
                "p_abandon": p_abandon,
                "abandoned": abandoned,
                "dwell": dwell,
            }
        )
        time = (kept_time + dwell)[continued]
        alive = alive[continued]
    return parts


def _requests(
    rng: np.random.Generator, cfg: AssistantConfig, n: int, users: int, start_us: int
) -> tuple[_Requests, np.ndarray]:
    """Exactly `n` requests, sorted by (conversation, turn), and the user of each conversation.

    Conversations are drawn in start order until they hold `n` turns; the last is cut at `n`."""
    rates = expected_signal_rates(cfg)
    p_continue = float(np.dot(cfg.shares(), [r["continue"] for r in rates.values()]))
    turns = min(1 / (1 - p_continue), cfg.max_turns)
    per_hour = n / turns / (cfg.days * 24)
    weights = rng.lognormal(0.0, 1.0, users)
    weights /= weights.sum()
    parts, user_of = [], []
    total, count_so_far, activity = 0, 0, 0.0
    while total < n:
        count = math.ceil(1.2 * (n - total) / turns) + 16
        arrivals = activity + np.cumsum(rng.exponential(1 / per_hour, count))
        activity = float(arrivals[-1])
        start = start_us + (_clock_hours(arrivals, start_us) * HOUR_US).astype(np.int64)
        version = rng.choice(len(cfg.versions), size=count, p=cfg.shares())
        user_of.append(rng.choice(users, size=count, p=weights))
        for part in _play(rng, cfg, start, version, start_us):
            part["conversation"] = part["conversation"] + count_so_far
            parts.append(part)
            total += len(part["turn"])
        count_so_far += count
    rows = _Requests.concat(parts)
    rows = rows.take(np.lexsort((rows.turn, rows.conversation))[:n])
    return rows, np.concatenate(user_of)


def _rank(keys: np.ndarray) -> np.ndarray:
    """The position of each row when sorted by `keys` (stable)."""
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.argsort(keys, kind="stable")] = np.arange(len(keys))
    return rank


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*(pa.scalar(p) if isinstance(p, str) else p for p in parts), "")


@dataclass(frozen=True)
class _Responses:
    """One row per response: the first of every request (row = request), then the regenerations."""

    request: np.ndarray
    regeneration: np.ndarray
    time: np.ndarray
    quality: np.ndarray
    mean: np.ndarray
    replaced: np.ndarray  # regenerated by the user
    parent: np.ndarray  # the response this one follows (-1: none)
    window: np.ndarray  # how long the user looked at it before their next move
    kept_of_request: np.ndarray

    @classmethod
    def of(cls, req: _Requests) -> _Responses:
        n, regen = len(req.time), np.flatnonzero(req.regenerated)
        none = np.zeros(len(regen), bool)
        kept_of_request = np.arange(n)
        kept_of_request[regen] = n + np.arange(len(regen))
        later_turn = np.flatnonzero(np.r_[False, req.conversation[1:] == req.conversation[:-1]])
        parent = np.full(n + len(regen), -1)
        parent[later_turn] = kept_of_request[later_turn - 1]
        parent[n:] = regen
        replaced = np.r_[req.regenerated, none]
        window = np.where(replaced, np.r_[req.regen_time - req.time, none.astype(np.int64)], 0)
        window[kept_of_request] = req.dwell
        return cls(
            request=np.r_[np.arange(n), regen],
            regeneration=np.r_[np.zeros(n, bool), ~none],
            time=np.r_[req.time, req.second_time[regen]],
            quality=np.r_[req.quality, req.second_quality[regen]],
            mean=np.r_[req.mean, req.second_mean[regen]],
            replaced=replaced,
            parent=parent,
            window=window,
            kept_of_request=kept_of_request,
        )


@dataclass(frozen=True)
class _Labels:
    """The string ids of each response (in response order)."""

    decision: pa.Array
    response: pa.Array
    user: pa.Array
    session: pa.Array


_EVENT_IDS: Final = {
    "decision_id": "decision",
    "item_id": "response",
    "user_id": "user",
    "session_id": "session",
}


def _events(
    rng: np.random.Generator, cfg: AssistantConfig, req: _Requests, resp: _Responses, labels: _Labels
) -> pa.Table:
    """Every signal, drawn with the probabilities in `_truth_probabilities`."""
    size, q, kept = len(resp.time), resp.quality, ~resp.replaced
    p = signal_probabilities(cfg, q)
    copied = np.flatnonzero(kept & (rng.random(size) < p["copy"]))
    edited = np.flatnonzero(kept & (rng.random(size) < p["edit"]))
    distance = 1 + rng.poisson(rng.gamma(EDIT_SHAPE, (p["edit_distance"] - 1) / EDIT_SHAPE))
    thumbs = np.flatnonzero(rng.random(size) < p["thumbs"])
    up = rng.random(size) < cfg.thumbs_up(q)
    log = EventLog()

    def signal(kind: str | np.ndarray, who: np.ndarray, at: np.ndarray, **extra: Any) -> None:
        take = pa.array(who, pa.int64())
        ids_of = {name: getattr(labels, key).take(take) for name, key in _EVENT_IDS.items()}
        log.add(kind, at, **ids_of, **extra)

    def during(who: np.ndarray) -> np.ndarray:
        """Times inside the response's window, 5-95% of the way through it."""
        share = 0.05 + 0.9 * rng.random(len(who))
        at: np.ndarray = resp.time[who] + (share * resp.window[who]).astype(np.int64)
        return at

    regen = np.flatnonzero(req.regenerated)
    signal("regenerate", regen, req.regen_time[regen])
    signal("copy", copied, during(copied))
    signal("edit", edited, during(edited), properties=_join(ids('{"edit_distance":', distance[edited]), "}"))
    signal(np.where(up[thumbs], "thumbs_up", "thumbs_down"), thumbs, during(thumbs))
    left = np.flatnonzero(req.abandoned)
    who = resp.kept_of_request[left]
    signal("session_end", who, resp.time[who] + req.dwell[left])
    return log.table(prefix="e")


def _truth_probabilities(cfg: AssistantConfig, req: _Requests, resp: _Responses) -> dict[str, np.ndarray]:
    """The probability with which each response got each signal (0 where it cannot happen)."""
    p = signal_probabilities(cfg, resp.quality)
    kept = ~resp.replaced
    p_continue, p_abandon = np.zeros(len(kept)), np.zeros(len(kept))
    p_continue[resp.kept_of_request] = req.p_continue
    p_abandon[resp.kept_of_request] = req.p_abandon
    return {
        "p_regenerate": np.where(resp.regeneration, 0.0, p["regenerate"]),
        "p_copy": np.where(kept, p["copy"], 0.0),
        "p_edit": np.where(kept, p["edit"], 0.0),
        "mean_edit_distance": p["edit_distance"],
        "p_thumbs_up": p["thumbs_up"],
        "p_thumbs_down": p["thumbs_down"],
        "p_continue": p_continue,
        "p_abandon": p_abandon,
    }


def _outputs(rng: np.random.Generator, quality: np.ndarray) -> pa.Array:
    """Short synthetic answers whose opening hedges more when quality is low."""
    band = np.digitize(quality, [1 / 3, 2 / 3])
    openers = pa.array([o for group in _OPENERS for o in group])
    opener = openers.take(pa.array(band * 3 + rng.integers(0, 3, len(quality))))
    topic = pa.array(_TOPICS).take(pa.array(rng.integers(0, len(_TOPICS), len(quality))))
    return pc.binary_join_element_wise(opener, topic, " ")


def simulate_assistant(
    n: int, seed: int, *, config: AssistantConfig | None = None, start_us: int = START_US
) -> Simulation:
    """`n` prompts to an LLM assistant, their responses and the users' signals, with the truth.

    Deterministic for a seed. The truth's `responses` table has one row per decision: its latent
    `quality`, the version's `mean_quality` at that time, whether it was `regenerated` (replaced
    by a regeneration), is a `regeneration`, was `kept`, the probability `p_<signal>` with which it
    got each signal (0 where the signal cannot happen, e.g. copying a replaced response) and the
    `mean_edit_distance` of an edit of it.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a number of prompts >= 1, found {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an integer, found {seed!r}")
    cfg = config or AssistantConfig()
    users = cfg.users if cfg.users is not None else max(1, n // 8)
    rng = np.random.default_rng(seed)
    req, user_of = _requests(rng, cfg, n, users, start_us)
    resp = _Responses.of(req)

    rank = _rank(resp.time)  # decision numbers follow serving time
    conversation = req.conversation[resp.request]
    labels = _Labels(
        decision=ids("d", rank),
        response=ids("r", rank),
        user=ids("u", user_of[conversation]),
        session=ids("s", conversation),
    )
    events = _events(rng, cfg, req, resp, labels)
    output = _outputs(rng, resp.quality)

    order = np.argsort(rank)
    by_time = pa.array(order)
    has_parent = resp.parent >= 0
    parent = pa.array(rank[np.where(has_parent, resp.parent, 0)], mask=~has_parent)
    turn = req.turn[resp.request][order]
    decisions = decisions_table(
        ids("d", np.arange(len(order))),
        resp.time[order],
        shown_items(labels.response.take(by_time), k=1),
        user_id=labels.user.take(by_time),
        session_id=labels.session.take(by_time),
        surface="chat",
        request_id=ids("req", _rank(req.time)[resp.request][order]),
        conversation_id=ids("c", conversation[order]),
        parent_decision_id=ids("d", parent.take(by_time)),
        model="assistant",
        model_version=pa.array(list(cfg.versions)).take(pa.array(req.version[resp.request][order])),
        context=_join('{"turn":', pc.cast(pa.array(turn), pa.string()), "}"),
        policy=msgspec.json.encode({"name": "sampling", "temperature": cfg.temperature}).decode(),
        output=output.take(by_time),
    )
    items = items_table(labels.response.take(by_time), text=output.take(by_time), valid_from=resp.time[order])
    truth_p = _truth_probabilities(cfg, req, resp)
    responses = pa.table(
        {
            **{
                name: decisions.column(name)
                for name in ("decision_id", "request_id", "conversation_id", "user_id", "timestamp")
            },
            "item_id": labels.response.take(by_time),
            "turn": pa.array(turn, pa.int32()),
            "model_version": decisions.column("model_version"),
            "mean_quality": resp.mean[order],
            "quality": resp.quality[order],
            "regenerated": resp.replaced[order],
            "regeneration": resp.regeneration[order],
            "kept": ~resp.replaced[order],
            **{name: values[order] for name, values in truth_p.items()},
        }
    )
    params = {"n": n, "start_us": start_us, **cfg.as_json(users=users)}
    truth = Truth("assistant", seed, params, {"responses": responses})
    return Simulation("assistant", seed, decisions, events, items, truth)
