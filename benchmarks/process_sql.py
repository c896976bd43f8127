"""A hand-written DuckDB SQL baseline of `revealed process`: the same `interactions` table.

What a data engineer would write by hand for the default reward spec and the default credit
models: plain DuckDB SQL (temporary tables and CTEs, run through the `duckdb` Python API, no
Ibis) over the store's sealed Delta tables `decisions` and `events`, read as Arrow datasets as
`revealed.pipeline.engine.connect` reads them (the journal tail is ignored: seal first). The
result has the columns, the types and the values of the `interactions` table that
`revealed.pipeline.process.build` produces, and `write_sql` writes it as a Delta table.

It is a baseline for the *default* configuration only: the spec's windows, thresholds, label
rules and reward weights (`DEFAULT_SPEC`, spelled out in ``examples/reward.toml``), the quality
rules (`DEFAULT_RULES`) and the credit models' parameters (`DEFAULT_MODELS`) are hard-coded in
the SQL, and `run_sql` refuses to run when any of those defaults has changed. The data-driven
parameters (the Markov removal effects and the additive hazard's effects) are not re-fitted:
they come in as `Fitted` and are written into the SQL as CASE lookups.

Every column is covered. Not covered: the `decision_outcomes` table, incremental runs, and the
unsealed journal tail.

Steps, each a temporary table: dedupe events -> identities -> decisions (dedupe, person,
session) -> served items -> direct signals -> rows (with `viewed`) -> conversions net of returns
-> window candidates -> credit per model (plus direct conversions) -> one final query: signals,
label, reward, maturity, sessions, bots, inconsistent propensities.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable

from revealed.pipeline.credit import CreditModels
from revealed.pipeline.delta_files import copy_to_delta, parquet_scan
from revealed.pipeline.process import DEFAULT_MODELS, DEFAULT_RULES, Fitted
from revealed.pipeline.quality import QualityRules
from revealed.pipeline.spec import DEFAULT_SPEC

__all__ = ["run_sql", "write_sql"]

#: the hash of the default spec the SQL below spells out
_SPEC_HASH: Final = "6359d63f9d287d2d07467809184f9b0d3d4c7d9cc057d6d44c9ba82503cd391b"
#: the credit models and quality rules the SQL below spells out
_MODELS: Final = CreditModels(
    models=("last_touch", "first_touch", "linear", "time_decay", "position_based", "markov", "hazard"),
    half_life_hours=24.0,
    position_weights=(0.4, 0.2, 0.4),
)
_RULES: Final = QualityRules(
    bot_min_decisions=5,
    bot_click_share=0.5,
    bot_decisions_per_hour=600.0,
    accidental_ms=300,
    skew_tolerance_s=300.0,
    propensity_tolerance=1e-6,
)

_US_PER_HOUR: Final = 3_600_000_000
_US_PER_DAY: Final = 24 * _US_PER_HOUR
#: time_decay: exp(age_us * this) halves the weight every 24 hours
_DECAY_PER_US: Final = -math.log(2.0) / (24.0 * _US_PER_HOUR)


def _check_defaults() -> None:
    """Refuse to compare against a pipeline whose defaults are not the ones hard-coded here."""
    changed = [
        name
        for name, ok in (
            ("DEFAULT_SPEC", DEFAULT_SPEC.hash == _SPEC_HASH),
            ("DEFAULT_MODELS", DEFAULT_MODELS == _MODELS),
            ("DEFAULT_RULES", DEFAULT_RULES == _RULES),
        )
        if not ok
    ]
    if changed:
        raise RuntimeError(
            f"the SQL baseline hard-codes the pipeline's defaults, and {', '.join(changed)} changed; "
            "update benchmarks/process_sql.py (and its constants) to the new defaults"
        )


def _double(x: float) -> str:
    """A DOUBLE literal that reads back as exactly `x` (a bare 0.1 would be a DECIMAL)."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _timestamp(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, found {t!r}; pass e.g. datetime.now(UTC)")
    return f"TIMESTAMPTZ '{t.isoformat()}'"


def _markov_effect(markov: Mapping[str, float]) -> str:
    """Each touch's channel's removal effect; 0 for a channel without one."""
    if not markov:
        return "0.0"
    cases = " ".join(f"WHEN {_text(c)} THEN {_double(e)}" for c, e in sorted(markov.items()))
    return f"CASE channel {cases} ELSE 0.0 END"


def _hazard_log_weight(fitted: Fitted) -> str:
    """log(lift * decay) - decay * hours of each candidate touch; NULL where the (conversion type,
    channel) has no positive effect."""
    effects = sorted(
        (t, c, e)
        for t, by in fitted.hazard.effects.items()
        for c, e in by.items()
        if e.lift > 0 and e.decay > 0
    )
    if not effects:
        return "CAST(NULL AS DOUBLE)"
    hours = f"CAST(date_diff('microsecond', touch_ts, conversion_ts) AS DOUBLE) / {_US_PER_HOUR}"
    scale = " ".join(
        f"WHEN type = {_text(t)} AND channel = {_text(c)} THEN {_double(math.log(e.lift * e.decay))}"
        for t, c, e in effects
    )
    decay = " ".join(
        f"WHEN type = {_text(t)} AND channel = {_text(c)} THEN {_double(e.decay)}" for t, c, e in effects
    )
    return f"(CASE {scale} END) - (CASE {decay} END) * ({hours})"


def _statements(*, cutoff: datetime, fitted: Fitted, until: datetime | None) -> list[tuple[str, str]]:
    """(step, SQL) in order; the last is the query of the interactions table."""
    only_until = ""
    if until is not None:
        only_until = f"WHERE timestamp <= {_timestamp(until)} AND received_at <= {_timestamp(until)}"
    cut = _timestamp(cutoff)
    # default spec and rules, hard-coded (see _check_defaults)
    gap_us = 30 * 60 * 1_000_000  # aggregate.session_gap_minutes = 30
    accidental_us = 300 * 1_000  # QualityRules.accidental_ms = 300
    skew_us = 300 * 1_000_000  # QualityRules.skew_tolerance_s = 300
    # windows: purchase after a view on email 72 h, after any click 168 h, after a view 24 h
    window_us = f"""CASE
            WHEN p.type = 'purchase' AND t.kind = 'view' AND t.surface = 'email' THEN {72 * _US_PER_HOUR}
            WHEN t.kind = 'click' THEN {168 * _US_PER_HOUR}
            ELSE {24 * _US_PER_HOUR}
        END"""
    longest_window_us = 168 * _US_PER_HOUR  # the longest window: every row's windows closed
    return_window_us = 30 * _US_PER_DAY  # windows.return_window_days = 30
    return_within_us = 7 * _US_PER_DAY  # aggregate.return_within_days = 7
    models = _MODELS.models
    direct_credits = ", ".join("CAST(1.0 AS DOUBLE)" for _ in models)  # a direct conversion: 1 in each
    per_model_sums = ",\n           ".join(
        f"sum(CASE WHEN type = 'purchase' THEN credit_{m} ELSE 0.0 END) AS conversions_{m},\n"
        f"           sum(CASE WHEN type = 'purchase' THEN credit_{m} * amount ELSE 0.0 END) AS revenue_{m}"
        for m in models
    )
    per_model_fills = ",\n           ".join(
        f"coalesce(v.conversions_{m}, 0.0) AS conversions_{m}, coalesce(v.revenue_{m}, 0.0) AS revenue_{m}"
        for m in models
    )

    return [
        (
            "events",
            f"""
CREATE TEMP TABLE ev AS  -- the first copy of each event id
SELECT event_id, timestamp, type, user_id, anonymous_id, session_id, decision_id, item_id,
       order_id, value, properties
FROM events {only_until}
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY received_at, timestamp) = 1
""",
        ),
        (
            "identities",
            """
CREATE TEMP TABLE ids AS  -- an anonymous id keeps the first user it identified as
SELECT anonymous_id, user_id AS stitched_user
FROM ev
WHERE type = 'identify' AND anonymous_id IS NOT NULL AND user_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY anonymous_id ORDER BY timestamp, event_id) = 1
""",
        ),
        (
            "decisions",
            f"""
CREATE TEMP TABLE dec AS
WITH firsts AS (
    SELECT decision_id, timestamp, user_id, anonymous_id, session_id, surface, query_id, model,
           model_version, policy, propensity, items
    FROM decisions {only_until}
    QUALIFY row_number() OVER (PARTITION BY decision_id ORDER BY received_at, timestamp) = 1
), people AS (
    SELECT f.*,
           coalesce(f.user_id, i.stitched_user, 'anon:' || f.anonymous_id, 'session:' || f.session_id)
               AS person
    FROM firsts f LEFT JOIN ids i ON f.anonymous_id = i.anonymous_id
), starts AS (
    SELECT *,
           CASE WHEN lag(timestamp) OVER w IS NULL
                  OR date_diff('microsecond', lag(timestamp) OVER w, timestamp) > {gap_us}
                THEN 1 ELSE 0 END AS new_session
    FROM people
    WINDOW w AS (PARTITION BY person ORDER BY timestamp, decision_id)
)
SELECT decision_id, timestamp AS served_at, person,
       coalesce(
           session_id,
           person || '#' || CAST(sum(new_session) OVER (
               PARTITION BY person ORDER BY timestamp, decision_id ROWS UNBOUNDED PRECEDING
           ) AS VARCHAR)
       ) AS session,
       surface, query_id, model, model_version, policy, propensity, items
FROM starts
""",
        ),
        (
            "served",
            """
CREATE TEMP TABLE served AS
SELECT decision_id, it.item_id, it.position, it.original_position, it.score, it.propensity,
       it.cond_propensity, propensity AS slate_propensity, n_shown, served_at, person, session,
       surface, query_id, model, model_version, policy
FROM (SELECT *, unnest(items) AS it, len(items) AS n_shown FROM dec)
""",
        ),
        (
            "direct signals",
            f"""
CREATE TEMP TABLE direct AS
WITH named AS (  -- events naming a served decision and an item, not before it beyond the skew
    SELECT e.decision_id, e.item_id, e.type, e.timestamp, e.value, e.properties,
           e.type = 'click' AND date_diff('microsecond', d.served_at, e.timestamp) < {accidental_us}
               AS early
    FROM ev e JOIN dec d ON e.decision_id = d.decision_id
    WHERE e.item_id IS NOT NULL
      AND date_diff('microsecond', d.served_at, e.timestamp) >= -{skew_us}
)
SELECT decision_id, item_id,
       count(*) FILTER (WHERE type = 'click' AND NOT early) AS click_count,
       count(*) FILTER (WHERE type = 'skip') AS skips,
       count(*) FILTER (WHERE type = 'hide') AS hides,
       count(*) FILTER (WHERE type = 'not_interested') AS not_interested_count,
       count(*) FILTER (WHERE type = 'save') AS saves,
       count(*) FILTER (WHERE type = 'share') AS shares,
       count(*) FILTER (WHERE type = 'copy') AS copies,
       count(*) FILTER (WHERE type = 'add_to_cart') AS carts,
       count(*) FILTER (WHERE type = 'thumbs_up') AS thumbs_up_count,
       count(*) FILTER (WHERE type = 'thumbs_down') AS thumbs_down_count,
       count(*) FILTER (WHERE type = 'impression') AS impression_events,
       count(*) FILTER (WHERE early) AS accidental_clicks,
       min(timestamp) FILTER (WHERE type = 'click' AND NOT early) AS first_click_at,
       count(*) FILTER (WHERE type = 'heartbeat') AS heartbeats,
       sum(CASE WHEN type = 'heartbeat' AND NOT contains(coalesce(properties, ''), '"active":false')
                THEN coalesce(value, 0.0) ELSE 0.0 END) AS active_heartbeat_s,
       sum(CASE WHEN type = 'dwell' THEN coalesce(value, 0.0) ELSE 0.0 END) AS client_dwell_s,
       max(value) FILTER (WHERE type = 'scroll') AS max_scroll,
       max(value) FILTER (WHERE type = 'rating') AS rating
FROM named
GROUP BY decision_id, item_id
""",
        ),
        (
            "rows",
            """
CREATE TEMP TABLE rows AS
WITH list_scroll AS (  -- how far down the list the page was scrolled (0-1)
    SELECT decision_id, max(value) AS list_depth
    FROM ev
    WHERE type = 'scroll' AND decision_id IS NOT NULL AND item_id IS NULL
    GROUP BY decision_id
), last_click AS (
    SELECT s.decision_id, max(s.position) AS last_click_position
    FROM direct g JOIN served s ON g.decision_id = s.decision_id AND g.item_id = s.item_id
    WHERE g.click_count > 0
    GROUP BY s.decision_id
)
SELECT s.*,
       coalesce(g.click_count, 0) AS click_count,
       coalesce(g.skips, 0) AS skips,
       coalesce(g.hides, 0) AS hides,
       coalesce(g.not_interested_count, 0) AS not_interested_count,
       coalesce(g.saves, 0) AS saves,
       coalesce(g.shares, 0) AS shares,
       coalesce(g.copies, 0) AS copies,
       coalesce(g.carts, 0) AS carts,
       coalesce(g.thumbs_up_count, 0) AS thumbs_up_count,
       coalesce(g.thumbs_down_count, 0) AS thumbs_down_count,
       g.impression_events,
       coalesce(g.accidental_clicks, 0) AS accidental_clicks,
       g.first_click_at,
       coalesce(g.heartbeats, 0) AS heartbeats,
       g.active_heartbeat_s,
       g.client_dwell_s,
       g.max_scroll,
       g.rating,
       coalesce(CASE WHEN g.heartbeats > 0 THEN g.active_heartbeat_s ELSE g.client_dwell_s END, 0.0)
           AS active_dwell_s,
       l.list_depth,
       c.last_click_position,
       coalesce(g.impression_events, 0) > 0
           OR CAST(s.position + 1 AS DOUBLE) <= coalesce(l.list_depth, -1.0) * s.n_shown + 1e-9
           OR s.position <= coalesce(c.last_click_position, -1) AS viewed,
       s.position <= coalesce(c.last_click_position, -1) AS above_last_click
FROM served s
LEFT JOIN direct g ON s.decision_id = g.decision_id AND s.item_id = g.item_id
LEFT JOIN list_scroll l ON s.decision_id = l.decision_id
LEFT JOIN last_click c ON s.decision_id = c.decision_id
""",
        ),
        (
            "conversions",
            """
CREATE TEMP TABLE conversions AS  -- purchases and carts, amounts net of returns
WITH returns AS (
    SELECT order_id, item_id, sum(coalesce(value, 0.0)) AS returned
    FROM ev
    WHERE type = 'return' AND order_id IS NOT NULL
    GROUP BY order_id, item_id
), priced AS (
    SELECT c.event_id, c.type, c.decision_id, c.item_id, c.timestamp,
           coalesce(c.user_id, i.stitched_user, 'anon:' || c.anonymous_id, 'session:' || c.session_id,
                    d.person) AS person,
           coalesce(c.value, 0.0) AS gross,
           -- the purchase lines of one (order, item) share its returns in proportion
           CASE WHEN c.order_id IS NOT NULL AND c.type = 'purchase'
                THEN sum(coalesce(c.value, 0.0)) OVER (PARTITION BY c.type, c.order_id, c.item_id)
                ELSE coalesce(c.value, 0.0) END AS lines,
           r.returned AS order_returned
    FROM ev c
    LEFT JOIN ids i ON c.anonymous_id = i.anonymous_id
    LEFT JOIN returns r ON c.order_id = r.order_id AND c.item_id = r.item_id
    LEFT JOIN dec d ON c.decision_id = d.decision_id
    WHERE c.type IN ('purchase', 'add_to_cart') AND c.item_id IS NOT NULL
), shared AS (
    SELECT *,
           CASE WHEN type = 'purchase'
                THEN coalesce(order_returned, 0.0) * (CASE WHEN lines > 0 THEN gross / lines ELSE 1.0 END)
                ELSE 0.0 END AS returned
    FROM priced
)
SELECT event_id, type, decision_id, item_id, timestamp, person,
       least(returned, gross) AS returned_amount, greatest(gross - returned, 0.0) AS amount
FROM shared
""",
        ),
        (
            "candidates",
            f"""
CREATE TEMP TABLE candidates AS  -- (conversion not joined directly, touch within its window)
WITH touches AS (
    SELECT decision_id, item_id, person, surface, served_at AS touch_at, 'view' AS kind
    FROM rows WHERE person IS NOT NULL AND viewed
    UNION ALL
    SELECT decision_id, item_id, person, surface, first_click_at, 'click'
    FROM rows WHERE person IS NOT NULL AND first_click_at IS NOT NULL
)
SELECT p.event_id AS conversion_id, t.decision_id || '|' || t.kind AS touch_id, t.touch_at AS touch_ts,
       p.timestamp AS conversion_ts, t.surface || '/' || t.kind AS channel, p.type,
       t.decision_id, t.item_id, p.amount, p.returned_amount
FROM conversions p
JOIN touches t ON p.person = t.person AND p.item_id = t.item_id AND t.touch_at <= p.timestamp
WHERE NOT EXISTS (  -- not joined directly: no decision, or a (decision, item) never served
        SELECT 1 FROM served s WHERE s.decision_id = p.decision_id AND s.item_id = p.item_id
      )
  AND t.surface <> ''
  AND date_diff('microsecond', t.touch_at, p.timestamp) <= {window_us}
""",
        ),
        (
            "credit",
            f"""
CREATE TEMP TABLE credited AS
WITH ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY conversion_id ORDER BY touch_ts, touch_id, channel) - 1
               AS rank,
           count(*) OVER (PARTITION BY conversion_id) AS n,
           max(touch_ts) OVER (PARTITION BY conversion_id) AS latest,
           {_hazard_log_weight(fitted)} AS log_w,
           {_markov_effect(fitted.markov)} AS effect
    FROM candidates
), weighted AS (
    SELECT *,
           exp(CAST(date_diff('microsecond', touch_ts, latest) AS DOUBLE) * {_double(_DECAY_PER_US)})
               AS decay_w,
           coalesce(exp(log_w - max(log_w) OVER (PARTITION BY conversion_id)), 0.0) AS hazard_w
    FROM ranked
)
SELECT conversion_id, type, decision_id, item_id, conversion_ts AS converted_at, amount,
       returned_amount, 'window' AS how,
       CAST(CASE WHEN rank = n - 1 THEN 1.0 ELSE 0.0 END AS DOUBLE) AS credit_last_touch,
       CAST(CASE WHEN rank = 0 THEN 1.0 ELSE 0.0 END AS DOUBLE) AS credit_first_touch,
       1.0 / n AS credit_linear,
       decay_w / sum(decay_w) OVER c AS credit_time_decay,
       CAST(CASE WHEN n = 1 THEN 1.0
                 WHEN n = 2 THEN 0.5
                 WHEN rank = 0 THEN 0.4
                 WHEN rank = n - 1 THEN 0.4
                 ELSE 0.2 / (n - 2) END AS DOUBLE) AS credit_position_based,
       CASE WHEN sum(effect) OVER c > 0 THEN effect / sum(effect) OVER c ELSE 1.0 / n END
           AS credit_markov,
       CASE WHEN sum(hazard_w) OVER c > 0 THEN hazard_w / sum(hazard_w) OVER c ELSE 1.0 / n END
           AS credit_hazard
FROM weighted
WINDOW c AS (PARTITION BY conversion_id)
UNION ALL
SELECT c.event_id, c.type, c.decision_id, c.item_id, c.timestamp, c.amount, c.returned_amount,
       'direct', {direct_credits}
FROM conversions c JOIN served s ON c.decision_id = s.decision_id AND c.item_id = s.item_id
""",
        ),
        (
            "interactions",
            f"""
WITH conv AS (  -- the row's credited conversions; the signals use the first model (last touch)
    SELECT decision_id, item_id,
           sum(CASE WHEN type = 'purchase' THEN credit_last_touch ELSE 0.0 END) AS purchases,
           sum(CASE WHEN type = 'purchase' THEN credit_last_touch * amount ELSE 0.0 END)
               AS purchase_amount,
           sum(CASE WHEN type = 'purchase' THEN credit_last_touch * returned_amount ELSE 0.0 END)
               AS returned_amount,
           sum(CASE WHEN type = 'add_to_cart' THEN credit_last_touch ELSE 0.0 END) AS attributed_carts,
           count(*) FILTER (WHERE how = 'direct') AS direct_conversions,
           count(*) FILTER (WHERE how = 'window') AS window_conversions,
           max(converted_at) FILTER (WHERE type = 'purchase') AS last_purchase_at,
           {per_model_sums}
    FROM credited
    GROUP BY decision_id, item_id
), signals AS (
    SELECT r.*,
           coalesce(v.purchases, 0.0) AS purchases,
           coalesce(v.purchase_amount, 0.0) AS purchase_amount,
           coalesce(v.returned_amount, 0.0) AS returned_amount,
           coalesce(v.attributed_carts, 0.0) AS attributed_carts,
           coalesce(v.direct_conversions, 0) AS direct_conversions,
           coalesce(v.window_conversions, 0) AS window_conversions,
           v.last_purchase_at,
           {per_model_fills},
           r.click_count > 0 AS clicked,
           r.click_count > 0 AND r.active_dwell_s >= 30.0 AS satisfied_click,  -- dwell: 30 s
           r.skips > 0 AS skipped,
           r.hides > 0 AS hidden,
           r.not_interested_count > 0 AS not_interested,
           r.saves > 0 AS saved,
           r.shares > 0 AS shared,
           r.copies > 0 AS copied,
           r.carts > 0 OR coalesce(v.attributed_carts, 0.0) > 0 AS added_to_cart,
           r.thumbs_up_count > 0 AS thumbs_up,
           r.thumbs_down_count > 0 AS thumbs_down
    FROM rows r LEFT JOIN conv v ON r.decision_id = v.decision_id AND r.item_id = v.item_id
), judged AS (  -- the default spec's label rules (first match wins) and reward weights
    SELECT *,
           CASE WHEN purchase_amount > 0 THEN 4
                WHEN saved OR shared OR copied THEN 3
                WHEN satisfied_click THEN 2
                WHEN clicked THEN 1
                WHEN hidden OR not_interested OR skipped THEN -1
                WHEN viewed AND NOT clicked AND above_last_click THEN 0
           END AS any_label,
           0.0 + CAST(clicked AS DOUBLE) * 1.0 + CAST(copied AS DOUBLE) * 2.0
               + CAST(hidden AS DOUBLE) * -2.0 + CAST(not_interested AS DOUBLE) * -3.0
               + purchase_amount * 0.01 + CAST(satisfied_click AS DOUBLE) * 2.0
               + CAST(saved AS DOUBLE) * 3.0 + CAST(shared AS DOUBLE) * 3.0
               + CAST(skipped AS DOUBLE) * -0.5 + CAST(thumbs_down AS DOUBLE) * -5.0
               + CAST(thumbs_up AS DOUBLE) * 5.0 AS reward,
           date_diff('microsecond', served_at, {cut}) >= {longest_window_us}
               AND (last_purchase_at IS NULL
                    OR date_diff('microsecond', last_purchase_at, {cut}) >= {return_window_us})
               AS mature
    FROM signals
), per_session AS (
    SELECT session, min(person) AS person, min(served_at) AS session_start, max(served_at) AS session_end,
           count(DISTINCT decision_id) AS session_decisions,
           count(*) FILTER (WHERE click_count > 0) AS session_clicks,
           coalesce(max(position) FILTER (WHERE viewed) + 1, 0) AS session_depth
    FROM rows
    GROUP BY session
), sessions AS (
    SELECT session, session_decisions, session_clicks, CAST(session_depth AS BIGINT) AS session_depth,
           CAST(date_diff('microsecond', session_start, session_end) AS DOUBLE) / 1e6 AS session_duration_s,
           coalesce(
               date_diff(
                   'microsecond',
                   session_end,
                   lead(session_start) OVER (PARTITION BY person ORDER BY session_start, session)
               ) <= {return_within_us},
               false
           ) AS returned_within_days
    FROM per_session
), bots AS (  -- bot rules: >= 5 decisions, and > 50% of slots clicked or > 600 decisions an hour
    SELECT person,
           count(DISTINCT decision_id) >= 5 AND (
               CAST(count(*) FILTER (WHERE click_count > 0) AS DOUBLE) / CAST(count(*) AS DOUBLE) > 0.5
               OR CAST(count(DISTINCT decision_id) AS DOUBLE) / greatest(
                   CAST(date_diff('microsecond', min(served_at), max(served_at)) AS DOUBLE) / 3.6e9, 1.0
               ) > 600.0
           ) AS bot
    FROM rows
    GROUP BY person
), inconsistent AS (  -- top slot's marginal != conditional, or slate != product of conditionals
    SELECT decision_id,
           bool_or(position = 0 AND propensity IS NOT NULL AND cond_propensity IS NOT NULL
                   AND abs(propensity - cond_propensity) > 1e-6)
           OR coalesce(
               bool_and(cond_propensity IS NOT NULL) AND max(slate_propensity) IS NOT NULL
               AND abs(exp(sum(ln(cond_propensity))) - max(slate_propensity))
                   > 1e-6 * greatest(max(slate_propensity), 1e-12) + 1e-6,
               false
           ) AS inconsistent_propensity
    FROM rows
    GROUP BY decision_id
)
SELECT j.* EXCLUDE (any_label, reward, mature),
       CAST(CASE WHEN j.mature THEN j.any_label END AS INTEGER) AS label,  -- immature: no label
       j.reward,
       j.mature,
       CASE WHEN j.mature THEN NULL
            ELSE CAST(date_diff('microsecond', j.served_at, {cut}) AS DOUBLE) / 1e6 END AS elapsed_s,
       s.session_decisions, s.session_clicks, s.session_depth, s.session_duration_s,
       s.returned_within_days,
       b.bot,
       i.inconsistent_propensity
FROM judged j
LEFT JOIN sessions s ON j.session = s.session
LEFT JOIN bots b ON j.person = b.person
LEFT JOIN inconsistent i ON j.decision_id = i.decision_id
""",
        ),
    ]


Settings = dict[str, str | bool | int | float | list[str]]


def _prepared(
    store_root: Path,
    *,
    cutoff: datetime,
    fitted: Fitted,
    until: datetime | None,
    settings: Settings | None,
    seconds: dict[str, float] | None,
) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A DuckDB session with every step but the last computed, and the last step's query."""
    _check_defaults()
    tables = Path(store_root) / "tables"
    # as the engine connects: offline (deltalake lists the Delta files, DuckDB reads them), in UTC, and
    # not keeping insertion order, which nothing here depends on
    config: Settings = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "preserve_insertion_order": False,
        **(settings or {}),
    }
    con = duckdb.connect(config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")  # an ICU setting, unknown to connect()
        con.execute("SET enable_progress_bar = false")
        for name in ("decisions", "events"):  # the snapshot's files, by DuckDB's reader
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {parquet_scan(DeltaTable(str(tables / name)))}")
        *steps, (_, query) = _statements(cutoff=cutoff, fitted=fitted, until=until)
        for name, sql in steps:
            start = time.perf_counter()
            con.execute(sql)
            if seconds is not None:
                seconds[name] = time.perf_counter() - start
    except BaseException:
        con.close()
        raise
    return con, query


def run_sql(
    store_root: Path,
    *,
    cutoff: datetime,
    fitted: Fitted,
    until: datetime | None = None,
    settings: Settings | None = None,
    seconds: dict[str, float] | None = None,
) -> pa.Table:
    """The `interactions` table of `revealed process` on the store at `store_root`, by plain SQL.

    `cutoff` is the run's cut-off (maturity and `elapsed_s` are measured to it); `fitted` holds the
    Markov and hazard parameters to credit with (e.g. `Fitted.from_metadata` of a run's commit).
    `until`, as in `build(until=...)`, also drops the rows with an event time or a receipt time
    after it (`process(store)` passes none). `settings` are DuckDB settings (e.g. `memory_limit`,
    `temp_directory`, `threads`). Each step's seconds are added to `seconds` if given.
    """
    con, query = _prepared(
        store_root, cutoff=cutoff, fitted=fitted, until=until, settings=settings, seconds=seconds
    )
    with con:
        start = time.perf_counter()
        table = con.execute(query).to_arrow_table()
        if seconds is not None:
            seconds["interactions"] = time.perf_counter() - start
    return table


def write_sql(
    store_root: Path,
    out_dir: Path,
    *,
    cutoff: datetime,
    fitted: Fitted,
    settings: Settings | None = None,
    seconds: dict[str, float] | None = None,
) -> float:
    """Compute the table as `run_sql` does and write it to the Delta table at `out_dir`
    (overwritten) as `process` writes `interactions` (DuckDB writes the files, deltalake commits
    them); returns the seconds of the whole run (read, compute, write)."""
    start = time.perf_counter()
    con, query = _prepared(
        store_root, cutoff=cutoff, fitted=fitted, until=None, settings=settings, seconds=seconds
    )
    with con:
        began = time.perf_counter()
        copy_to_delta(con, query, str(out_dir), CommitProperties())
        if seconds is not None:
            seconds["interactions and write"] = time.perf_counter() - began
    return time.perf_counter() - start
