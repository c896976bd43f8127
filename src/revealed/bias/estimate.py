"""Estimate examination by position on the processed logs, record it, and weight rows by it.

`estimate_position_bias` runs one method per surface on the served rows of `interactions` (which
it never rewrites) and `record` appends the curves to the Delta table ``position_bias``: one row
per (run, surface, position) with the examination relative to the top, its interval, the method
and the `interactions` version it was estimated from. `inverse_examination_weights` joins a
recorded curve back onto rows, on demand, for training datasets.

Methods: ``randomized``, ``harvest`` and ``em`` (see `revealed.bias.examination`) come with
cluster-robust intervals by query. The click models (``pbm``, ``cascade``, ``dcm``, ``ubm``,
``dbn``, ``sdbn``; see `revealed.bias.clickmodels`) give the examination they imply; their
intervals come from refitting on `FOLDS` disjoint folds of sessions (by a hash of the session):
the spread of the fold curves, scaled to the whole sample, with a t quantile.
"""

from __future__ import annotations

import math
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import ibis
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from scipy import stats

from revealed.bias.clickmodels import fit_click_model
from revealed.bias.examination import ExaminationEstimate
from revealed.bias.harvest import InterventionHarvesting
from revealed.bias.logs import Logs, open_logs, served_rows
from revealed.bias.randomized import RandomizedIntervention
from revealed.bias.regression_em import RegressionEM
from revealed.errors import StoreError
from revealed.store.store import Store
from revealed.store.tables import WRITER_PROPERTIES

__all__ = [
    "CLICK_MODEL_METHODS",
    "EXAMINATION_METHODS",
    "FOLDS",
    "METHODS",
    "PositionBias",
    "estimate_position_bias",
    "inverse_examination_weights",
    "latest_curve",
    "record",
]

EXAMINATION_METHODS: Final = ("randomized", "harvest", "em")
CLICK_MODEL_METHODS: Final = ("pbm", "cascade", "dcm", "ubm", "dbn", "sdbn")
METHODS: Final = EXAMINATION_METHODS + CLICK_MODEL_METHODS
FOLDS: Final = 8
#: regression EM models relevance from these served-row columns by default (the logged score)
DEFAULT_FEATURES: Final = ("score",)

_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("method", pa.string()),
        ("surface", pa.string()),
        ("position", pa.int64()),
        ("examination", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("level", pa.float64()),
        ("sessions", pa.int64()),
        ("interactions_version", pa.int64()),
    ]
)


@dataclass
class PositionBias:
    """One run: a curve per surface (those the method could estimate) and why others were skipped."""

    method: str
    run_id: str
    interactions_version: int
    curves: dict[str, ExaminationEstimate] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: what the estimator warned about, per surface (e.g. positions it could not identify)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    #: click models: scores on held-out sessions, and relevance per (query, item), per surface
    held_out: dict[str, dict[str, Any]] = field(default_factory=dict)
    relevance: dict[str, pa.Table] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``revealed bias estimate``: the first surface's curve at the top level (the
        documented ``method/positions/examination/ci_low/ci_high`` keys), every surface under
        ``surfaces``."""
        doc: dict[str, Any] = {"method": self.method, "run_id": self.run_id}
        if self.curves:
            first = next(iter(self.curves.values()))
            doc.update({k: v for k, v in first.to_dict().items() if k != "method"})
            doc["surface"] = next(iter(self.curves))
        doc["surfaces"] = {s: c.to_dict() for s, c in self.curves.items()}
        doc["skipped"] = dict(self.skipped)
        doc["warnings"] = {k: list(v) for k, v in self.warnings.items() if v}
        if self.held_out:
            doc["held_out"] = dict(self.held_out)
        doc["interactions_version"] = self.interactions_version
        return doc


def _held_out(method: str, clicks: ibis.Table, fold: ibis.Value, backend: Any) -> dict[str, Any]:
    """Fitted on all folds but the first, scored on the first: log-likelihood and per-position
    perplexity (conditional on the clicks above, and marginal) of sessions the fit never saw."""
    scored = fit_click_model(method, clicks.filter(fold != 0), backend, check=False).evaluate(
        clicks.filter(fold == 0), backend
    )
    return {
        "sessions": scored.sessions,
        "log_likelihood": scored.log_likelihood,
        "perplexity": [float(x) for x in scored.conditional_perplexity],
        "mean_perplexity": scored.mean_conditional_perplexity,
        "marginal_perplexity": [float(x) for x in scored.marginal_perplexity],
    }


def _click_model_curve(
    method: str, clicks: ibis.Table, backend: Any, level: float, out: PositionBias, surface: str
) -> ExaminationEstimate:
    """A click model's implied examination (relative to the top) with fold-spread intervals; its
    held-out scores and relevance per (query, item) go to `out`."""
    full = fit_click_model(method, clicks, backend)
    out.relevance[surface] = full.relevance()
    curve = full.examination / full.examination[0]
    fold = clicks.session.hash().abs() % FOLDS
    folds = []
    for k in range(FOLDS):
        part = fit_click_model(method, clicks.filter(fold == k), backend, check=False)
        n = min(len(part.examination), len(curve))
        folds.append(
            np.pad(part.examination[:n] / part.examination[0], (0, len(curve) - n), constant_values=np.nan)
        )
    spread = np.nanstd(np.vstack(folds), axis=0, ddof=1) / math.sqrt(FOLDS)
    out.held_out[surface] = _held_out(method, clicks, fold, backend)
    t = float(stats.t.ppf(0.5 + level / 2, FOLDS - 1))
    sessions = int(backend.to_pyarrow(clicks.aggregate(n=clicks.session.nunique()))["n"][0].as_py())
    queries = int(backend.to_pyarrow(clicks.aggregate(n=clicks.query_id.nunique()))["n"][0].as_py())
    low = np.clip(curve - t * spread, 0.0, None)
    return ExaminationEstimate(
        method=method,
        positions=tuple(range(len(curve))),
        examination=tuple(float(x) for x in curve),
        ci_low=tuple(float(x) for x in low),
        ci_high=tuple(float(x) for x in curve + t * spread),
        level=level,
        sessions=sessions,
        queries=queries,
    )


def _estimate_one(
    method: str,
    served: ibis.Table,
    backend: Any,
    level: float,
    features: tuple[str, ...],
    out: PositionBias,
    surface: str,
) -> ExaminationEstimate:
    if method == "randomized":
        return RandomizedIntervention(level=level).estimate(served)
    if method == "harvest":
        return InterventionHarvesting(level=level).estimate(served)
    if method == "em":
        rows = served.filter(ibis.and_(*(served[f].notnull() for f in features)))
        return RegressionEM(level=level, features=features).estimate(rows)
    clicks = served.select("session", "query_id", "item_id", "position", "clicked")
    return _click_model_curve(method, clicks, backend, level, out, surface)


def estimate_position_bias(
    store: Store,
    method: str,
    *,
    surfaces: tuple[str, ...] | None = None,
    level: float = 0.95,
    features: tuple[str, ...] = DEFAULT_FEATURES,
    logs: Logs | None = None,
) -> PositionBias:
    """Estimate examination by position with `method` on each surface of `interactions` (or
    those in `surfaces`); a surface the method cannot estimate is skipped with the reason."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, found {method!r}")
    logs = logs or open_logs(store)
    served = served_rows(logs.interactions)
    if method == "em":
        t = logs.interactions
        extra = t.select(
            session=t.decision_id, item_id=t.item_id, **{f: t[f].cast("float64") for f in features}
        )
        served = served.join(extra, ["session", "item_id"])
    present = sorted(
        s for s in logs.backend.to_pyarrow(served.select("surface").distinct())["surface"].to_pylist() if s
    )
    wanted = [s for s in present if surfaces is None or s in surfaces]
    result = PositionBias(method, uuid.uuid4().hex, logs.version)
    for surface in wanted:
        rows = logs.engine.materialize("_rv_bias_rows", served.filter(served.surface == surface))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result.curves[surface] = _estimate_one(
                    method, rows, logs.backend, level, features, result, surface
                )
        except ValueError as exc:
            result.skipped[surface] = str(exc)
        else:
            result.warnings[surface] = [str(w.message) for w in caught]
    for surface in sorted(set(surfaces or ()) - set(present)):
        result.skipped[surface] = "no served rows on this surface"
    return result


def record(store: Store, result: PositionBias) -> int:
    """Append the run's curves to the Delta table ``position_bias``; returns its new version."""
    now = datetime.now(UTC)
    rows = [
        {
            "run_id": result.run_id,
            "created_at": now,
            "method": result.method,
            "surface": surface,
            "position": position,
            "examination": value,
            "ci_low": low,
            "ci_high": high,
            "level": curve.level,
            "sessions": curve.sessions,
            "interactions_version": result.interactions_version,
        }
        for surface, curve in result.curves.items()
        for position, value, low, high in zip(
            curve.positions, curve.examination, curve.ci_low, curve.ci_high, strict=True
        )
    ]
    uri = str(Path(store.root) / "tables" / "position_bias")
    write_deltalake(
        uri, pa.Table.from_pylist(rows, schema=_SCHEMA), mode="append", writer_properties=WRITER_PROPERTIES
    )
    return int(DeltaTable(uri).version())


def inverse_examination_weights(
    rows: ibis.Table,
    curve: ibis.Table,
    *,
    max_weight: float | None = 20.0,
    self_normalize: bool = False,
) -> ibis.Table:
    """`rows` (with ``surface`` and ``position``) plus ``examination`` and ``weight`` = 1 /
    examination from `curve` (one run of ``position_bias``: surface, position, examination).

    ``max_weight`` clips weights (bias for variance; None: no clipping); ``self_normalize``
    divides by the mean weight over `rows`, so the weights average to 1. Rows at a position the
    curve does not cover get a null weight: nothing is extrapolated."""
    if max_weight is not None and not max_weight >= 1.0:
        raise ValueError(f"max_weight: expected a number >= 1 (or None), found {max_weight!r}")
    picked = curve.select(_surface=curve.surface, _position=curve.position, examination=curve.examination)
    joined = rows.left_join(picked, (rows.surface == picked._surface) & (rows.position == picked._position))
    joined = joined.drop("_surface", "_position")
    raw = ibis.ifelse(joined.examination > 0, 1.0 / joined.examination, ibis.null("float64"))
    # least() skips nulls on DuckDB: an uncovered row must stay null, not become max_weight
    weight = ibis.ifelse(raw.isnull(), raw, ibis.least(raw, max_weight)) if max_weight is not None else raw
    out = joined.mutate(weight=weight.cast("float64"))
    if self_normalize:
        out = out.mutate(weight=out.weight / out.weight.mean().over(ibis.window()))
    return out


def latest_curve(store: Store, backend: Any, *, method: str | None = None) -> ibis.Table:
    """The most recent run in ``position_bias`` (of `method`, if given), as a table on `backend`."""
    uri = str(Path(store.root) / "tables" / "position_bias")
    try:
        table = DeltaTable(uri).to_pyarrow_table()
    except TableNotFoundError as exc:
        raise StoreError(
            "position_bias: no estimate recorded yet", hint="run `revealed bias estimate`"
        ) from exc
    frame = table.to_pandas()
    if method is not None:
        frame = frame[frame["method"] == method]
    if frame.empty:
        raise StoreError(f"position_bias: no run of method {method!r}", hint="run `revealed bias estimate`")
    last = frame.sort_values("created_at").iloc[-1]["run_id"]
    return ibis.memtable(pa.Table.from_pandas(frame[frame["run_id"] == last], preserve_index=False))
