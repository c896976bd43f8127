"""The runner: from the store's decisions and events to one row per served item.

`build(engine, spec, ...)` composes the steps as Ibis expressions, materialising each step's
result in the engine (a temporary table) so it is computed once and timed; `process(store, ...)`
runs it on DuckDB and writes the Delta tables `interactions` (one row per decision x served item)
and `decision_outcomes` (events about a whole decision), each commit recording the input table
versions, the spec's hash and the cut-off.

Steps: dedupe -> stitch (person) -> sessionize -> cut at `until` -> served items -> direct signals
and `viewed` -> net amounts (returns) -> attribute (direct, by window, multi-touch credit) ->
signals -> label and reward -> maturity -> sessions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from ibis import _

from revealed.pipeline.attribute import (
    ATTRIBUTED,
    Attribution,
    attribute,
    hazard_inputs,
    net_amounts,
    undirected,
    window_candidates,
)
from revealed.pipeline.credit import CreditModels, journey_paths, markov_removal_effects
from revealed.pipeline.engine import Engine, connect
from revealed.pipeline.hazard import AdditiveHazard, fit_additive_hazard
from revealed.pipeline.identity import dedupe, identities, sessionize, with_person
from revealed.pipeline.impressions import direct_signals, served, viewed
from revealed.pipeline.interpret import label_and_reward, maturity, sessions, signals
from revealed.pipeline.quality import QualityRules, bots, inconsistent_decisions, misplaced_events
from revealed.pipeline.spec import DEFAULT_SPEC, RewardSpec
from revealed.store.store import Store

__all__ = ["STEPS", "Built", "Fitted", "ProcessReport", "build", "last_run", "process"]

#: the steps of a run, in order, as `on_step` announces them (the last is writing the tables)
STEPS: tuple[str, ...] = (
    "dedupe and stitch",
    "sessionize",
    "served items and direct signals",
    "attribute",
    "quality",
    "interpret",
    "write",
)

DEFAULT_RULES = QualityRules()
#: commits an incremental run looks back through for the last run's (maintenance commits after it)
_RUNS_BACK = 100
_UNREAD_DECISION_COLUMNS = ("context", "context_num", "candidates", "output", "logits", "embedding")
DEFAULT_MODELS = CreditModels(
    models=("last_touch", "first_touch", "linear", "time_decay", "position_based", "markov", "hazard")
)


@dataclass(frozen=True)
class Fitted:
    """The data-driven credit models' parameters: Markov removal effects per channel, and the
    additive hazard's effects per conversion type and channel. An incremental run reuses the
    last full run's, so the rows it rebuilds are credited as a full rebuild would credit them."""

    markov: dict[str, float] = field(default_factory=dict)
    hazard: AdditiveHazard = field(default_factory=lambda: AdditiveHazard({}))

    def metadata(self) -> dict[str, str]:
        return {
            "revealed.markov": json.dumps(self.markov, sort_keys=True),
            "revealed.hazard": self.hazard.to_json(),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> Fitted:
        return cls(
            markov=json.loads(meta.get("revealed.markov", "{}")),
            hazard=AdditiveHazard.from_json(meta.get("revealed.hazard", "{}")),
        )


@dataclass
class Built:
    """The tables of one run, as expressions over materialised steps, and each step's seconds."""

    interactions: ibis.Table
    decision_outcomes: ibis.Table
    attribution: Attribution
    cutoff: datetime
    seconds: dict[str, float] = field(default_factory=dict)
    fitted: Fitted = field(default_factory=Fitted)
    #: events naming a decision and an item, with their quality flags
    named: ibis.Table | None = None
    #: the last receipt time of any input row: the next incremental run starts after it
    received_through: datetime | None = None


@dataclass(frozen=True)
class Previous:
    """What an incremental run needs from the last run: its watermark, and who still had open rows."""

    received_through: datetime
    open_people: list[str]
    fitted: Fitted
    spec_hash: str


def _affected(decisions: ibis.Table, events: ibis.Table, previous: Previous) -> ibis.Table:
    """The people to rebuild: those with decisions or events received after the watermark (an
    event without an identity belongs to its decision's person; a new identify touches both the
    anonymous person and the user), and those who still had open rows."""
    after = ibis.literal(previous.received_through)
    new_decisions = decisions.filter(decisions.received_at > after).select("person")
    new_events = events.filter(events.received_at > after)
    owner = decisions.select(decision_id=decisions.decision_id, owner=decisions.person)
    new_events = new_events.left_join(owner, "decision_id").drop("decision_id_right")
    event_people = new_events.select(person=ibis.coalesce(new_events.person, new_events.owner))
    identified = new_events.filter((new_events.type == "identify") & new_events.anonymous_id.notnull())
    anonymous = identified.select(person=ibis.literal("anon:") + identified.anonymous_id)
    schema = pa.schema([("person", pa.string())])
    still_open = ibis.memtable(
        pa.Table.from_pylist([{"person": p} for p in previous.open_people], schema=schema)
    )
    return (
        new_decisions.union(event_people)
        .union(anonymous)
        .union(still_open)
        .filter(_.person.notnull())
        .distinct()
    )


@dataclass(frozen=True)
class ProcessReport:
    """What a run produced, for the CLI's summary and for lineage. In an incremental run, the
    counts are of the rows it rebuilt."""

    mode: str
    rows: int
    viewed_share: float
    immature_share: float
    attributed: dict[str, dict[str, int]]
    organic: dict[str, int]
    credit_by_surface: list[dict[str, Any]]
    quality: dict[str, int]
    input_versions: dict[str, int]
    spec_hash: str
    cutoff: str
    seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _windows(spec: RewardSpec, surfaces: list[str]) -> ibis.Table:
    rows = [
        {"event_type": e, "kind": k, "surface": s, "hours": float(spec.windows.hours(e, k, s))}
        for e in ATTRIBUTED
        for k in ("click", "view")
        for s in surfaces
    ]
    schema = pa.schema(
        [
            ("event_type", pa.string()),
            ("kind", pa.string()),
            ("surface", pa.string()),
            ("hours", pa.float64()),
        ]
    )
    return ibis.memtable(pa.Table.from_pylist(rows, schema=schema))


def build(
    engine: Engine,
    spec: RewardSpec = DEFAULT_SPEC,
    *,
    until: datetime | None = None,
    models: CreditModels = DEFAULT_MODELS,
    rules: QualityRules = DEFAULT_RULES,
    on_step: Callable[[str], None] | None = None,
    previous: Previous | None = None,
    fitted: Fitted | None = None,
) -> Built:
    """The run's tables; each step is materialised in the engine once, and timed.

    With `previous` (an earlier run's watermark and still-open people), only the people with new
    or late rows, or with rows still open, are rebuilt: everything of theirs, so the result for
    them equals a full rebuild. `fitted` pins the data-driven models' parameters (an
    incremental run reuses the full run's); without it they are fitted on this run's data."""
    backend = engine.backend
    seconds: dict[str, float] = {}

    @contextmanager
    def step(name: str) -> Iterator[None]:
        if on_step is not None:
            on_step(name)
        start = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - start

    def keep(name: str, expr: ibis.Table) -> ibis.Table:
        return engine.materialize(f"_rv_{name}", expr)

    cutoff = until or datetime.now(UTC)
    with step("dedupe and stitch"):
        # what no step reads stays in the files (candidates, context, outputs are wide)
        decisions = engine.table("decisions").drop(*_UNREAD_DECISION_COLUMNS)
        events = engine.table("events")
        if until is not None:
            limit = ibis.literal(until)
            decisions = decisions.filter((decisions.timestamp <= limit) & (decisions.received_at <= limit))
            events = events.filter((events.timestamp <= limit) & (events.received_at <= limit))
        # every row received by then is read by this run (a later copy of an id changes nothing)
        received_through = backend.to_pyarrow(
            decisions.select(t=decisions.received_at)
            .union(events.select(t=events.received_at))
            .aggregate(last=_.t.max())
        )["last"][0].as_py()
        # deduplicated on its own: in one query with the joins below it does not fit the budget
        decisions, events = (
            dedupe(decisions, "decision_id"),
            keep("events_unique", dedupe(events, "event_id")),
        )
        ids = keep("identities", identities(events))
        decisions = with_person(decisions, ids)
        events = with_person(events, ids)
        if previous is not None:
            affected = keep("affected", _affected(decisions, events, previous))
            decisions = decisions.filter(decisions.person.isin(affected.person))
            events = events.filter(
                events.person.isin(affected.person) | events.decision_id.isin(decisions.decision_id)
            )
        decisions = keep("decisions_in", decisions)
        events = keep("events", events)
    with step("sessionize"):
        activity = decisions.select(
            person=decisions.person,
            timestamp=decisions.timestamp,
            session_id=decisions.session_id,
            row_id=decisions.decision_id,
        )
        session_of = sessionize(activity, gap=timedelta(minutes=spec.aggregate.session_gap_minutes))
        decisions = keep(
            "decisions",
            decisions.join(
                session_of.select(decision_id=session_of.row_id, session=session_of.session), "decision_id"
            ),
        )
    with step("served items and direct signals"):
        shown = served(decisions)
        served_at = decisions.select(
            "decision_id", served_at=decisions.timestamp, decision_person=decisions.person
        )
        named = events.left_join(served_at, "decision_id").drop("decision_id_right")
        flagged = keep(
            "named",
            misplaced_events(
                named.filter(named.decision_id.notnull() & named.item_id.notnull()), shown, rules
            ),
        )
        direct = direct_signals(flagged.filter(~flagged.before_decision), accidental_ms=rules.accidental_ms)
        rows = keep("rows", viewed(shown, events, direct))
    with step("attribute"):
        conversions = net_amounts(named.mutate(person=ibis.coalesce(named.person, named.decision_person)))
        surfaces = sorted(
            s for s in backend.to_pyarrow(rows.select("surface").distinct())["surface"].to_pylist() if s
        )
        windows = _windows(spec, surfaces)
        rest = undirected(rows, conversions)
        candidates = keep("candidates", window_candidates(rows, rest.filter(rest.person.notnull()), windows))
        if fitted is None:
            markov = _markov(rows, conversions) if "markov" in models.models else {}
            with engine.handoff():  # the fit's inputs are held in Python
                hazard = (
                    _hazard(backend, rows, candidates, windows, cutoff)
                    if "hazard" in models.models
                    else AdditiveHazard({})
                )
            fitted = Fitted(markov=markov, hazard=hazard)
        attribution = attribute(
            rows,
            conversions,
            windows,
            models=models,
            markov=fitted.markov if "markov" in models.models else None,
            hazard=fitted.hazard if "hazard" in models.models else None,
            candidates=candidates,
        )
        credited = keep("credited", attribution.credited)
        attribution = Attribution(credited, keep("organic", attribution.organic), models.models)
    with step("quality"):
        bot_of = keep("bots", bots(rows, rules))
        inconsistent = keep("inconsistent", inconsistent_decisions(rows, rules))
    with step("interpret"):
        table = signals(rows, credited, spec, models.models)
        table = maturity(label_and_reward(table, spec), spec, cutoff)
        if spec.maturity.exclude_immature:  # kept, with elapsed_s, for delay-aware training
            table = table.mutate(label=ibis.ifelse(table.mature, table.label, ibis.null("int32")))
        per_session = sessions(rows, spec)
        table = table.left_join(per_session, "session").drop("session_right")
        table = table.left_join(bot_of, "person").drop("person_right")
        table = table.left_join(inconsistent, "decision_id").drop("decision_id_right")
        interactions = keep("interactions", table)
        outcomes = events.filter(events.decision_id.notnull() & events.item_id.isnull())
        decision_outcomes = keep(
            "decision_outcomes",
            outcomes.group_by(["decision_id", "type"]).aggregate(
                events=outcomes.count(), value=outcomes.value.sum(), first_at=outcomes.timestamp.min()
            ),
        )
    return Built(
        interactions, decision_outcomes, attribution, cutoff, seconds, fitted, flagged, received_through
    )


def _hazard(
    backend: Any, rows: ibis.Table, candidates: ibis.Table, windows: ibis.Table, cutoff: datetime
) -> AdditiveHazard:
    """The additive hazard fitted per conversion type on this run's touches and conversions."""
    inputs = hazard_inputs(backend, rows, candidates, windows, cutoff)
    return AdditiveHazard({kind: fit_additive_hazard(x) for kind, x in inputs.items() if len(x.hours)})


def _markov(rows: ibis.Table, conversions: ibis.Table) -> dict[str, float]:
    """Removal effects per channel (surface/kind) from every (person, item) journey of touches,
    converting or not."""
    views = rows.filter(rows.viewed).select(
        journey_id=rows.person + "|" + rows.item_id,
        touch_ts=rows.served_at,
        touch_id=rows.decision_id + "|view",
        channel=rows.surface + "/view",
    )
    clicks = rows.filter(rows.first_click_at.notnull()).select(
        journey_id=rows.person + "|" + rows.item_id,
        touch_ts=rows.first_click_at,
        touch_id=rows.decision_id + "|click",
        channel=rows.surface + "/click",
    )
    bought = (
        conversions.filter(conversions.type == "purchase")
        .select(journey_id=conversions.person + "|" + conversions.item_id)
        .distinct()
        .mutate(converted=ibis.literal(True))
    )
    touches = views.union(clicks)
    touches = touches.left_join(bought, "journey_id").drop("journey_id_right")
    touches = touches.mutate(converted=touches.converted.fill_null(False))
    return markov_removal_effects(journey_paths(touches))


def last_run(table: DeltaTable) -> dict[str, Any]:
    """The commit metadata of the last run that wrote `table` (`interactions` or
    `decision_outcomes`), past the maintenance commits after it; empty before the first run."""
    return next((h for h in table.history(_RUNS_BACK) if "revealed.mode" in h), {})


def _previous(store: Store, spec: RewardSpec) -> Previous | None:
    """The last run's lineage and open people, or None when there is no usable previous run."""
    path = Path(store.root) / "tables" / "interactions"
    try:
        table = DeltaTable(str(path))
    except TableNotFoundError:
        return None
    meta = last_run(table)
    if meta.get("revealed.spec_hash") != spec.hash or "revealed.received_through" not in meta:
        return None
    open_rows = table.to_pyarrow_dataset().to_table(columns=["person"], filter=pc.field("mature") == False)  # noqa: E712
    return Previous(
        received_through=datetime.fromisoformat(meta["revealed.received_through"]),
        open_people=sorted(p for p in set(open_rows.column("person").to_pylist()) if p is not None),
        fitted=Fitted.from_metadata(meta),
        spec_hash=spec.hash,
    )


def process(
    store: Store,
    spec: RewardSpec = DEFAULT_SPEC,
    *,
    until: datetime | None = None,
    models: CreditModels = DEFAULT_MODELS,
    incremental: bool = False,
    fitted: Fitted | None = None,
    engine: str = "duckdb",
    on_step: Callable[[str], None] | None = None,
) -> ProcessReport:
    """Build the run on DuckDB (or Spark) and write `interactions` and `decision_outcomes` as Delta tables.

    `incremental`: rebuild only the people with rows received since the last run or still open,
    and MERGE their rows (keyed by decision and item) into the tables; without a previous run
    with the same spec, this is a full run. The data-driven models' parameters are those of
    the last full run (or `fitted`)."""
    previous = _previous(store, spec) if incremental and until is None else None
    session = connect(store, include_journal=True, engine=engine)
    try:
        pinned = fitted if fitted is not None else (previous.fitted if previous is not None else None)
        built = build(
            session, spec, until=until, models=models, on_step=on_step, previous=previous, fitted=pinned
        )
        backend = session.backend
        start = time.perf_counter()
        if on_step is not None:
            on_step("write")
        received = built.received_through or built.cutoff
        if previous is not None:
            received = max(received, previous.received_through)
        metadata = {
            "revealed.inputs": json.dumps(session.versions, sort_keys=True),
            "revealed.spec_hash": spec.hash,
            "revealed.cutoff": built.cutoff.isoformat(),
            "revealed.received_through": received.isoformat(),
            **built.fitted.metadata(),
            "revealed.mode": "incremental" if previous is not None else "full",
        }
        _write(session, store, built, metadata, merge=previous is not None)
        built.seconds["write"] = time.perf_counter() - start
        return _report(backend, built, session.versions, spec, metadata["revealed.mode"])
    finally:
        session.close()


def _write(session: Engine, store: Store, built: Built, metadata: dict[str, str], *, merge: bool) -> None:
    """Write `interactions` and `decision_outcomes`: overwrite, or MERGE by key (incremental)."""
    keys = {"interactions": ("decision_id", "item_id"), "decision_outcomes": ("decision_id", "type")}
    for name, expr in (
        ("interactions", built.interactions),
        ("decision_outcomes", built.decision_outcomes),
    ):
        uri = str(Path(store.root) / "tables" / name)
        with store.tables.lock(name):  # no compaction of the table meanwhile
            if merge:
                session.merge_delta(expr, uri, keys[name], metadata)
            else:
                session.overwrite_delta(expr, uri, metadata)


def _report(
    backend: Any, built: Built, versions: dict[str, int], spec: RewardSpec, mode: str
) -> ProcessReport:
    t = built.interactions
    head = backend.to_pyarrow(
        t.aggregate(
            rows=t.count(),
            viewed=t.viewed.cast("int64").sum(),
            immature=(~t.mature).cast("int64").sum(),
            accidental_clicks=t.accidental_clicks.sum(),
            bot_rows=t.bot.fill_null(False).cast("int64").sum(),
            bots=t.person.nunique(where=t.bot.fill_null(False)),
            inconsistent_decisions=t.decision_id.nunique(where=t.inconsistent_propensity.fill_null(False)),
        )
    ).to_pylist()[0]
    named = built.named
    assert named is not None
    misplaced = backend.to_pyarrow(
        named.aggregate(
            unserved_clicks=ibis.ifelse(named.unserved & (named.type == "click"), 1, 0).sum(),
            events_before_decision=ibis.ifelse(named.before_decision, 1, 0).sum(),
        )
    ).to_pylist()[0]
    credited = built.attribution.credited
    by_how = backend.to_pyarrow(
        credited.group_by(["type", "how"]).aggregate(n=credited.conversion_id.nunique())
    ).to_pylist()
    attributed: dict[str, dict[str, int]] = {}
    for r in by_how:
        attributed.setdefault(r["type"], {})[r["how"]] = int(r["n"])
    organic_t = built.attribution.organic
    organic = {
        r["type"]: int(r["n"])
        for r in backend.to_pyarrow(organic_t.group_by("type").aggregate(n=organic_t.count())).to_pylist()
    }
    model = built.attribution.models[0]
    by_surface = backend.to_pyarrow(
        t.group_by(["surface", "model", "model_version"])
        .aggregate(
            conversions=t[f"conversions_{model}"].sum(), revenue=t[f"revenue_{model}"].sum(), rows=t.count()
        )
        .order_by(["surface", "model", "model_version"])
    ).to_pylist()
    rows = int(head["rows"] or 0)
    return ProcessReport(
        mode=mode,
        rows=rows,
        viewed_share=(head["viewed"] or 0) / rows if rows else 0.0,
        immature_share=(head["immature"] or 0) / rows if rows else 0.0,
        attributed=attributed,
        organic=organic,
        credit_by_surface=by_surface,
        quality={
            **{
                k: int(head[k] or 0)
                for k in ("accidental_clicks", "bots", "bot_rows", "inconsistent_decisions")
            },
            **{k: int(v or 0) for k, v in misplaced.items()},
        },
        input_versions=dict(versions),
        spec_hash=spec.hash,
        cutoff=built.cutoff.isoformat(),
        seconds={k: round(v, 3) for k, v in built.seconds.items()},
    )
