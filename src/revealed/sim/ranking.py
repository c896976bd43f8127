"""The ranking world: search and feed lists, logged by several policies, clicked by a click model.

Queries (search queries and feed pages, each with `candidates` items) and items have latent
vectors; their product plus an item's quality is graded 0-4, the true relevance. A production
ranker and several historical rankers score candidates with noise of different sizes, so the
same item appears at different positions for the same query across rankers; decisions are
logged by a mix of policies (deterministic, historical, epsilon-greedy, Plackett-Luce, adjacent
swaps and top-n shuffles) with their exact propensities and the candidates. Users (some
anonymous until an `identify`) click by the configured click model, then read, scroll, skip,
save, buy and return (`revealed.sim.behaviour`). A few bots click everything fast; a few clicks
are accidental (within 300 ms of serving). Item quality may change at given times (drift).

>>> sim = simulate_ranking(2_000, seed=7)
>>> sim.counts["decisions"], sorted(sim.truth.tables)[:3]
(2000, ['accidental_clicks', 'bots', 'examination'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from revealed.sim import policies
from revealed.sim.behaviour import Behaviour, Slots, follow
from revealed.sim.clickmodels import ClickModel, click_model
from revealed.sim.drift import check_change
from revealed.sim.frame import (
    DAY_US,
    HOUR_US,
    START_US,
    EventLog,
    candidate_lists,
    decisions_table,
    ids,
    items_table,
    json_column,
    keep,
    shown_items,
)
from revealed.sim.traffic import timeline
from revealed.sim.world import Simulation, Truth, load_function

__all__ = ["POLICIES", "QualityChange", "RankingConfig", "RankingWorld", "ranking_value", "simulate_ranking"]

POLICIES: Final = (
    "ranker",
    "historical",
    "epsilon_greedy",
    "plackett_luce",
    "swap_adjacent",
    "top_n_shuffle",
)


@dataclass(frozen=True)
class QualityChange:
    """At `hours` after the start, the quality of a share of items moves by `shift` (drift)."""

    hours: float
    share: float = 0.3
    shift: float = -1.5

    def __post_init__(self) -> None:
        check_change(self.hours, self.share, "items")


@dataclass(frozen=True)
class RankingConfig:
    """Everything the ranking world can vary; the defaults make a realistic small shop."""

    users: int | None = None
    queries: int = 300
    items: int = 3_000
    candidates: int = 20
    k: int = 10
    dim: int = 8
    #: share of queries that are feed pages (surface home_feed) rather than searches
    feed_share: float = 0.3
    click_model: str = "pbm"
    click_params: Mapping[str, Any] = field(default_factory=dict)
    policy_mix: Mapping[str, float] = field(
        default_factory=lambda: {
            "ranker": 0.4,
            "historical": 0.2,
            "epsilon_greedy": 0.1,
            "plackett_luce": 0.15,
            "swap_adjacent": 0.075,
            "top_n_shuffle": 0.075,
        }
    )
    #: score noise of the production ranker and of each historical ranker (bigger: worse)
    ranker_noise: float = 0.3
    historical_noise: tuple[float, ...] = (0.6, 1.0, 1.6)
    epsilon: float = 0.2
    temperature: float = 0.5
    #: the slots that interventions touch
    intervention_n: int = 5
    anonymous_share: float = 0.25
    client_sessions: float = 0.6
    bots: int = 3
    bot_share: float = 0.01
    accidental_clicks: float = 0.01
    days: float = 3.0
    drift: tuple[QualityChange, ...] = ()
    behaviour: Behaviour = field(default_factory=Behaviour)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.candidates:
            raise ValueError(f"k: expected 1 <= k <= candidates={self.candidates}, found {self.k}")
        if self.candidates > self.items:
            raise ValueError(f"candidates: expected at most items={self.items}, found {self.candidates}")
        unknown = set(self.policy_mix) - set(POLICIES)
        if unknown or not self.policy_mix or min(self.policy_mix.values()) < 0:
            raise ValueError(
                f"policy_mix: expected non-negative shares of {', '.join(POLICIES)}, "
                f"found {dict(self.policy_mix)}"
            )
        if not 2 <= self.intervention_n <= self.k:
            raise ValueError(f"intervention_n: expected 2 <= n <= k={self.k}, found {self.intervention_n}")
        for name in ("feed_share", "anonymous_share", "client_sessions", "bot_share", "accidental_clicks"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a share in [0, 1], found {value}")

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        out["policy_mix"] = dict(self.policy_mix)
        out["click_params"] = dict(self.click_params)
        return out


@dataclass(frozen=True)
class _Catalogue:
    candidates: np.ndarray  # (queries, C) item numbers
    affinity: np.ndarray  # (queries, C) latent match without item quality
    quality: np.ndarray  # (items,) before any change
    price: np.ndarray
    popularity: np.ndarray  # query probabilities
    #: what a model can see of an item: a noisy view of its latent vector and of its quality
    observed: np.ndarray  # (items, 4)
    rating: np.ndarray  # (items,)


def _catalogue(cfg: RankingConfig, rng: np.random.Generator) -> _Catalogue:
    item_vec = rng.standard_normal((cfg.items, cfg.dim))
    query_vec = rng.standard_normal((cfg.queries, cfg.dim))
    quality = rng.normal(0.0, 0.7, cfg.items)
    # each query's candidates: the items that match it best, plus some random ones
    candidates = np.empty((cfg.queries, cfg.candidates), dtype=np.int64)
    pool = min(cfg.items, 200)
    for q in range(cfg.queries):  # one loop per query (hundreds), not per record
        sample = rng.choice(cfg.items, size=pool, replace=False)
        match = item_vec[sample] @ query_vec[q]
        candidates[q] = sample[np.argsort(-match)[: cfg.candidates]]
    affinity = np.einsum("qcd,qd->qc", item_vec[candidates], query_vec) / np.sqrt(cfg.dim)
    price = np.round(np.exp(rng.normal(3.3, 0.7, cfg.items)), 2)
    weights = 1.0 / np.arange(1, cfg.queries + 1) ** 0.9
    observed = item_vec[:, :4] + 0.5 * rng.standard_normal((cfg.items, 4))
    rating = np.clip(3.5 + quality + 0.5 * rng.standard_normal(cfg.items), 1.0, 5.0)
    return _Catalogue(candidates, affinity, quality, price, weights / weights.sum(), observed, rating)


def _grade(latent: np.ndarray) -> np.ndarray:
    """Graded relevance 0-4 from the latent match: fixed thresholds, about 30/25/20/15/10%."""
    return np.searchsorted(np.array([-0.35, 0.35, 1.0, 1.7]), latent).astype(np.int64)


def attractiveness_of(grade: np.ndarray) -> np.ndarray:
    """P(click | examined) for a grade: (2^g - 1) / 15 squeezed into [0.02, 0.62]."""
    return 0.02 + 0.6 * (2.0**grade - 1) / 15.0


def satisfaction_of(grade: np.ndarray) -> np.ndarray:
    """P(satisfied | clicked) for a grade."""
    return 0.1 + 0.8 * grade / 4.0


class RankingWorld:
    """The world's fixed parts, drawn from its seed alone (never from the traffic): the catalogue,
    each query's candidates and relevance, the rankers' scores and the click model."""

    def __init__(self, seed: int, config: RankingConfig | None = None) -> None:
        self.seed = seed
        self.config = cfg = config or RankingConfig()
        rng = np.random.default_rng([seed, 1])
        self.catalogue = cat = _catalogue(cfg, rng)
        self.model = click_model(cfg.click_model, k=cfg.k, **cfg.click_params)
        latent = cat.affinity + cat.quality[cat.candidates]  # rankers learnt before any drift
        noise = (cfg.ranker_noise, *cfg.historical_noise)
        #: scores (queries x candidates) of the production ranker, then of each historical ranker
        self.ranker_scores = [latent + s * rng.standard_normal(latent.shape) for s in noise]
        self.grade = _grade(latent)

    @property
    def policies(self) -> list[str]:
        """The builtin policies `ranking_value` knows."""
        return [
            "ranker",
            *(f"h{h + 1}" for h in range(len(self.config.historical_noise))),
            "optimal",
            "random",
        ]


RankingPolicy = str | Callable[[RankingWorld], np.ndarray]


def ranking_value(world: RankingWorld, policy: RankingPolicy, *, permutations: int = 200) -> float:
    """The true value of a ranking policy: expected clicks per decision under the world's click
    model, over the query distribution, with relevance as before any drift.

    `policy` is a builtin name (see `RankingWorld.policies`), a `module:function`, or a callable
    that returns scores (queries x candidates) for a deterministic top-k. "random" (a uniformly
    random ranking) averages over a fixed sample of `permutations` rankings per query."""
    cfg, cat = world.config, world.catalogue
    alpha_all, sigma_all = attractiveness_of(world.grade), satisfaction_of(world.grade)
    if policy == "random":
        rng = np.random.default_rng([world.seed, 99])
        q = np.repeat(np.arange(cfg.queries), permutations)
        order = np.argsort(rng.random((len(q), cfg.candidates)), axis=1)[:, : cfg.k]
        weights = cat.popularity[q] / permutations
    else:
        if isinstance(policy, str) and ":" in policy:
            policy = load_function(policy)
        if callable(policy):
            scores = np.asarray(policy(world), dtype=float)
        elif policy == "optimal":
            scores = alpha_all + 1e-9 * sigma_all
        elif policy in world.policies[:-2]:
            scores = world.ranker_scores[0 if policy == "ranker" else int(policy[1:])]
        else:
            raise ValueError(
                f"policy: expected one of {', '.join(world.policies)} or module:function, found {policy!r}"
            )
        if scores.shape != cat.candidates.shape:
            raise ValueError(f"policy: expected scores of shape {cat.candidates.shape}, found {scores.shape}")
        q = np.arange(cfg.queries)
        order = policies.deterministic(scores, k=cfg.k).order
        weights = cat.popularity
    alpha = np.take_along_axis(alpha_all[q], order, axis=1)
    sigma = np.take_along_axis(sigma_all[q], order, axis=1)
    clicks = world.model.click_probability(alpha, satisfaction=sigma).sum(axis=1)
    return float((weights * clicks).sum())


def simulate_ranking(
    n: int, seed: int, *, config: RankingConfig | None = None, start_us: int = START_US
) -> Simulation:
    """`n` decisions of the ranking world, their events, the catalogue, and the truth."""
    cfg = config or RankingConfig()
    world = RankingWorld(seed, cfg)
    cat, model = world.catalogue, world.model
    rng = np.random.default_rng([seed, 2])
    users = cfg.users or max(50, n // 12)
    t = timeline(n, users=users, seed=seed + 1, start_us=start_us, days=cfg.days)

    # who: bots take a share of decisions; some users are anonymous in their first session
    user = t.user.copy()
    is_bot = rng.random(n) < (cfg.bot_share if cfg.bots else 0.0)
    user[is_bot] = users + rng.integers(0, max(cfg.bots, 1), int(is_bot.sum()))
    anonymous_user = rng.random(users + max(cfg.bots, 1)) < cfg.anonymous_share
    anonymous = anonymous_user[user] & (t.session_index == 0) & ~is_bot
    client_session = rng.random(users + max(cfg.bots, 1)) < cfg.client_sessions
    user_id = ids("u", user)
    user_col = keep(user_id, ~anonymous)
    anon_col = keep(ids("a", user), anonymous)
    # a bot takes over decisions of the timeline, never a human's client session id
    session_col = keep(ids(f"s{seed}-", t.session), client_session[user] & ~is_bot)

    # what: a query per decision, popular ones more often; feed pages are the first queries
    query = rng.choice(cfg.queries, size=n, p=cat.popularity)
    n_feed = round(cfg.feed_share * cfg.queries)
    surface = np.where(query < n_feed, "home_feed", "search")
    query_id = pa.array(
        np.where(query < n_feed, "feed:", "q:").astype(object) + query.astype(str).astype(object)
    )

    # true relevance at the time of each decision (item quality may drift)
    quality = np.tile(cat.quality, (len(cfg.drift) + 1, 1))
    change_times = [start_us + int(c.hours * HOUR_US) for c in cfg.drift]
    for j, change in enumerate(cfg.drift):
        moved = rng.random(cfg.items) < change.share
        quality[j + 1 :, moved] += change.shift
    period = np.searchsorted(np.array(change_times, dtype=np.int64), t.timestamp, side="right")
    latent = cat.affinity[query] + quality[period[:, None], cat.candidates[query]]
    grade = _grade(latent)

    # how: each decision's logging policy ranks the candidates
    names = list(cfg.policy_mix)
    shares = np.array([cfg.policy_mix[p] for p in names], dtype=float)
    policy_index = rng.choice(len(names), size=n, p=shares / shares.sum())
    policy = np.array(names)[policy_index]
    ranker_scores, *historical_scores = world.ranker_scores
    version = np.full(n, "v1", dtype=object)
    scores = ranker_scores[query]
    hist = policy == "historical"
    which = rng.integers(0, len(cfg.historical_noise), n)
    for h, table in enumerate(historical_scores):
        rows = hist & (which == h)
        scores[rows] = table[query[rows]]
        version[rows] = f"h{h + 1}"
    slates = _rank(scores, policy, cfg, rng)

    order = slates.order
    shown = np.take_along_axis(cat.candidates[query], order, axis=1)
    shown_grade = np.take_along_axis(grade, order, axis=1)
    alpha = attractiveness_of(shown_grade)
    sigma = satisfaction_of(shown_grade)
    clicks = model.sample(alpha, rng, satisfaction=sigma)
    clicked, examined = clicks.clicked.copy(), clicks.examined.copy()
    # bots click every slot and read nothing
    clicked[is_bot] = rng.random((int(is_bot.sum()), cfg.k)) < 0.7
    examined[is_bot] = True

    decision_id = ids(f"d{seed}-", np.arange(n))
    shown_score = np.take_along_axis(scores, order, axis=1)
    policy_json = json_column(_policy_doc(name, cfg) for name in names).take(pa.array(policy_index))
    decisions = decisions_table(
        decision_id,
        t.timestamp,
        shown_items(
            ids("i", shown.ravel()),
            k=cfg.k,
            score=np.round(shown_score.ravel(), 6),
            propensity=slates.propensity.ravel(),
            cond_propensity=slates.cond_propensity.ravel(),
            original_position=slates.original_position.ravel(),
        ),
        user_id=user_col,
        anonymous_id=anon_col,
        session_id=session_col,
        surface=pa.array(surface),
        query_id=query_id,
        model=pa.array(np.where(policy == "historical", "ranker-legacy", "ranker")),
        model_version=pa.array(version.astype(str)),
        context=pa.array(
            np.where(anonymous, '{"device":"web","logged_in":false}', '{"device":"web","logged_in":true}')
        ),
        candidates=candidate_lists(
            ids("i", cat.candidates[query].ravel()), np.round(scores.ravel(), 6), k=cfg.candidates
        ),
        propensity=slates.joint,
        policy=policy_json,
    )

    log = EventLog()
    flat = np.repeat(np.arange(n), cfg.k)
    slots = Slots(
        decision=flat,
        decision_id=decision_id.take(pa.array(flat)),
        user_id=user_col.take(pa.array(flat)),
        anonymous_id=anon_col.take(pa.array(flat)),
        session_id=session_col.take(pa.array(flat)),
        item=shown.ravel(),
        item_id=ids("i", shown.ravel()),
        position=np.tile(np.arange(cfg.k), n),
        served_us=np.repeat(t.timestamp, cfg.k),
        clicked=clicked.ravel(),
        examined=examined.ravel(),
        grade=shown_grade.ravel(),
        satisfaction=np.where(np.repeat(is_bot, cfg.k), 0.0, sigma.ravel()),
        price=cat.price[shown.ravel()],
    )
    truth_tables = follow(slots, log, b=cfg.behaviour, rng=rng, seed=seed)
    truth_tables["accidental_clicks"] = _accidents(slots, log, cfg, rng, is_bot)
    _identify(t, user, anonymous, anonymous_user, log, user_id, session_col)

    events = log.table(prefix=f"e{seed}-")
    items = items_table(
        ids("i", np.arange(cfg.items)),
        features=json_column(
            {
                "price": float(cat.price[i]),
                "brand": f"b{i % 40}",
                "rating": round(float(cat.rating[i]), 2),
                **{f"f{j}": round(float(v), 4) for j, v in enumerate(cat.observed[i])},
            }
            for i in range(cfg.items)
        ),
        valid_from=np.full(cfg.items, start_us - 30 * DAY_US),
    )
    truth = Truth(
        "ranking",
        seed,
        {
            "config": cfg.params(),
            "click_model": model.params(),
            "change_points_us": change_times,
            "value": {name: ranking_value(world, name) for name in world.policies},
            "value_metric": "expected clicks per decision, over the query distribution, before any drift",
            "grades": "0-4; attractiveness 0.02 + 0.6 (2^g - 1) / 15; satisfaction 0.1 + 0.8 g / 4",
        },
        {
            **truth_tables,
            "relevance": _relevance_table(cat, quality, change_times, start_us),
            "examination": _examination_table(model, alpha, sigma, is_bot),
            "bots": pa.table({"user_id": ids("u", np.arange(users, users + cfg.bots))}),
        },
    )
    return Simulation("ranking", seed, decisions, events, items, truth)


def _rank(
    scores: np.ndarray, policy: np.ndarray, cfg: RankingConfig, rng: np.random.Generator
) -> policies.Slates:
    n, k = len(scores), cfg.k
    order = np.zeros((n, k), dtype=np.int64)
    cond, marginal = np.ones((n, k)), np.ones((n, k))
    original = np.full((n, k), -1)
    for name in POLICIES:
        rows = np.flatnonzero(policy == name)
        if not len(rows):
            continue
        s = scores[rows]
        if name in ("ranker", "historical"):
            part = policies.deterministic(s, k=k)
        elif name == "epsilon_greedy":
            part = policies.epsilon_greedy(s, k=k, epsilon=cfg.epsilon, rng=rng)
        elif name == "plackett_luce":
            part = policies.plackett_luce(s, k=k, temperature=cfg.temperature, rng=rng)
        elif name == "swap_adjacent":
            part = policies.swap_adjacent(s, k=k, n=cfg.intervention_n, rng=rng)
        else:
            part = policies.top_n_shuffle(s, k=k, n=cfg.intervention_n, rng=rng)
        order[rows], cond[rows], marginal[rows], original[rows] = (
            part.order,
            part.cond_propensity,
            part.propensity,
            part.original_position,
        )
    return policies.Slates(order, cond, marginal, original)


def _policy_doc(name: str, cfg: RankingConfig) -> dict[str, Any]:
    if name == "epsilon_greedy":
        return {"name": name, "epsilon": cfg.epsilon}
    if name == "plackett_luce":
        return {"name": name, "temperature": cfg.temperature}
    if name in ("swap_adjacent", "top_n_shuffle"):
        return {"name": name, "intervention": {"type": name, "n": cfg.intervention_n}}
    return {"name": name}


def _accidents(
    s: Slots, log: EventLog, cfg: RankingConfig, rng: np.random.Generator, is_bot: np.ndarray
) -> pa.Table:
    """Clicks within 50-250 ms of serving on a random slot of a few decisions (truth: which)."""
    n = len(is_bot)
    hit = np.flatnonzero((rng.random(n) < cfg.accidental_clicks) & ~is_bot)
    slot = hit * cfg.k + rng.integers(0, cfg.k, len(hit))
    at = s.served_us[slot] + rng.integers(50_000, 250_000, len(hit))
    decision_id, item_id = s.decision_id.take(pa.array(slot)), s.item_id.take(pa.array(slot))
    log.add(
        "click",
        at,
        decision_id=decision_id,
        item_id=item_id,
        user_id=s.user_id.take(pa.array(slot)),
        anonymous_id=s.anonymous_id.take(pa.array(slot)),
        session_id=s.session_id.take(pa.array(slot)),
    )
    return pa.table({"decision_id": decision_id, "item_id": item_id, "timestamp_us": pa.array(at)})


def _identify(
    t: Any,
    user: np.ndarray,
    anonymous: np.ndarray,
    anonymous_user: np.ndarray,
    log: EventLog,
    user_id: pa.Array,
    session: pa.Array,
) -> None:
    """An `identify` event at the first logged-in decision of each user who began anonymous."""
    logged_in = anonymous_user[user] & ~anonymous
    first = np.zeros(len(user), dtype=bool)
    idx = np.flatnonzero(logged_in)
    _, where = np.unique(user[idx], return_index=True)
    first[idx[where]] = True
    rows = np.flatnonzero(first)
    log.add(
        "identify",
        t.timestamp[rows] - 1_000,
        user_id=user_id.take(pa.array(rows)),
        anonymous_id=ids("a", user[rows]),
        session_id=session.take(pa.array(rows)),
    )


def _relevance_table(
    cat: _Catalogue, quality: np.ndarray, change_times: list[int], start_us: int
) -> pa.Table:
    parts = []
    starts = [0, *change_times]
    for period, valid_from in enumerate(starts):
        latent = cat.affinity + quality[period][cat.candidates]
        g = _grade(latent)
        q = np.repeat(np.arange(len(cat.candidates)), cat.candidates.shape[1])
        parts.append(
            pa.table(
                {
                    "query": pa.array(q),
                    "item_id": ids("i", cat.candidates.ravel()),
                    "grade": pa.array(g.ravel()),
                    "attractiveness": pa.array(attractiveness_of(g).ravel()),
                    "satisfaction": pa.array(satisfaction_of(g).ravel()),
                    "valid_from_us": pa.array(np.full(g.size, valid_from or start_us - 30 * DAY_US)),
                    "popularity": pa.array(cat.popularity[q]),
                }
            )
        )
    return pa.concat_tables(parts)


def _examination_table(
    model: ClickModel, alpha: np.ndarray, sigma: np.ndarray, is_bot: np.ndarray
) -> pa.Table:
    """Mean true examination per position over the logged (non-bot) sessions, and the model's own."""
    human = ~is_bot
    exam = model.examination(alpha[human], satisfaction=sigma[human]).mean(axis=0)
    ctr = model.click_probability(alpha[human], satisfaction=sigma[human]).mean(axis=0)
    k = alpha.shape[1]
    return pa.table(
        {
            "position": pa.array(np.arange(k)),
            "examination": pa.array(exam),
            "relative_examination": pa.array(exam / exam[0]),
            "expected_ctr": pa.array(ctr),
        }
    )
