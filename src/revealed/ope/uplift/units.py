"""The engine step of uplift: `uplift_units` turns a store's ``assignment`` and outcome events
into one row per unit (backend-neutral Ibis), and `UpliftData` holds the collected rows as typed
arrays."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ibis
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from ibis import _

from revealed.ope.uplift.inputs import FloatArray, check
from revealed.pipeline.identity import dedupe

__all__ = ["UNIT_COLUMNS", "UpliftData", "uplift_units"]

Aggregate = Literal["count", "sum", "any"]
HOUR_US = 3_600_000_000
#: the columns `uplift_units` always returns; any other column is a covariate
UNIT_COLUMNS = ("unit", "treated", "propensity", "assigned_at", "outcome", "outcome_events", "censored")


def uplift_units(
    events: ibis.Table,
    *,
    experiment: str,
    treatment_arm: str,
    horizon_hours: float,
    control_arm: str | None = None,
    outcome_types: Sequence[str] = ("click",),
    aggregate: Aggregate = "count",
    unit: str = "user_id",
    covariates: ibis.Table | None = None,
    drop_censored: bool = True,
) -> ibis.Table:
    """One row per unit assigned to `experiment`: ``unit``, ``treated``, ``propensity`` (the
    logged probability of the unit's own arm), ``assigned_at``, ``outcome`` (over
    [assigned_at, assigned_at + horizon)), ``outcome_events``, ``censored``, then the columns of
    `covariates` (a table keyed by a column named `unit`).

    A unit's first assignment to the experiment (by time, then event id) is its arm; units in
    neither `treatment_arm` nor `control_arm` are dropped (``control_arm=None``: every other arm
    is the control). ``aggregate``: ``count`` of the outcome events, ``sum`` of their ``value``,
    or ``any`` (1 when there is at least one). A unit is ``censored`` when its horizon ends after
    the last event in `events`; such units are dropped unless ``drop_censored=False``. Events
    are deduplicated by ``event_id`` first.
    """
    if not horizon_hours > 0:
        raise ValueError(f"horizon_hours: expected a number of hours > 0, found {horizon_hours}")
    if aggregate not in ("count", "sum", "any"):
        raise ValueError(f"aggregate: expected count, sum or any, found {aggregate!r}")
    if not outcome_types:
        raise ValueError("outcome_types: expected at least one event type, found none")
    if unit not in events.columns:
        raise ValueError(f"unit: expected a column of events ({', '.join(events.columns)}), found {unit!r}")
    horizon_us = round(horizon_hours * HOUR_US)

    assigned = events.filter((events.type == "assignment") & events[unit].notnull())
    assigned = dedupe(assigned.filter(_names(assigned, "experiment", experiment)), "event_id")
    order = ibis.window(group_by=assigned[unit], order_by=[assigned.timestamp, assigned.event_id])
    first = assigned.mutate(_n=ibis.row_number().over(order)).filter(_._n == 0)
    units = first.select(
        unit=first[unit],
        treated=_names(first, "arm", treatment_arm),
        _control=_names(first, "arm", control_arm) if control_arm is not None else ibis.literal(True),
        propensity=first.value,
        assigned_at=first.timestamp,
    )
    units = units.filter(units.treated | units._control).drop("_control")

    outcomes = events.filter(events.type.isin(list(outcome_types)) & events[unit].notnull())
    outcomes = dedupe(outcomes, "event_id").select(_unit=_[unit], _at=_.timestamp, _value=_.value)
    within = units.join(
        outcomes,
        [
            units.unit == outcomes._unit,
            outcomes._at >= units.assigned_at,
            outcomes._at.delta(units.assigned_at, unit="microsecond") < horizon_us,
        ],
    )
    per_unit = within.group_by(_unit=within.unit).aggregate(
        _events=within._at.count(), _sum=within._value.fill_null(0.0).sum()
    )
    last = events.aggregate(_last=events.timestamp.max())
    rows = units.left_join(per_unit, units.unit == per_unit._unit).cross_join(last)
    n_events = rows._events.fill_null(0)
    value = {
        "count": n_events.cast("float64"),
        "sum": rows._sum.fill_null(0.0).cast("float64"),
        "any": ibis.ifelse(n_events > 0, 1.0, 0.0),
    }[aggregate]
    out = rows.select(
        "unit",
        "treated",
        "propensity",
        "assigned_at",
        outcome=value,
        outcome_events=n_events.cast("int64"),
        censored=rows._last.delta(rows.assigned_at, unit="microsecond") < horizon_us,
    )
    if drop_censored:
        out = out.filter(~out.censored)
    if covariates is not None:
        if unit not in covariates.columns:
            raise ValueError(f"covariates: expected a column named {unit!r} (the unit), found none")
        clash = sorted(set(covariates.columns) & set(UNIT_COLUMNS))
        if clash:
            raise ValueError(f"covariates: column names clash with the unit row: {', '.join(clash)}")
        out = out.left_join(covariates, out.unit == covariates[unit]).drop(unit)
    return out.order_by("unit")


def _names(table: ibis.Table, key: str, value: str) -> Any:
    """Whether `properties` holds ``key: value``: canonical JSON (sorted keys, no spaces), so a
    substring match finds it and runs alike on every backend."""
    return table.properties.fill_null("").contains(f'"{key}":{json.dumps(value)}')


@dataclass(frozen=True)
class UpliftData:
    """The units of an experiment as arrays: treatment (0/1), outcome, the logged probability of
    each unit's own arm, and covariates (n x d; a constant column when there are none)."""

    unit: npt.NDArray[np.str_]
    treatment: npt.NDArray[np.int8]
    outcome: FloatArray
    propensity: FloatArray
    covariates: FloatArray
    covariate_names: tuple[str, ...]

    @property
    def treatment_probability(self) -> FloatArray:
        """P(treated) per unit, from a two-arm design: p for the treated, 1 - p for the others."""
        return np.where(self.treatment == 1, self.propensity, 1.0 - self.propensity)

    @classmethod
    def from_arrow(cls, table: pa.Table, *, covariates: Sequence[str] | None = None) -> UpliftData:
        """From `uplift_units`'s collected rows; `covariates` defaults to every extra column."""
        missing = [c for c in ("unit", "treated", "propensity", "outcome") if c not in table.column_names]
        if missing:
            raise ValueError(f"table: expected the columns of uplift_units, missing {', '.join(missing)}")
        if table.num_rows == 0:
            raise ValueError(
                "events: no assignment events found for this experiment and unit column "
                "(type 'assignment' with properties.experiment and properties.arm)"
            )
        names = (
            tuple(c for c in table.column_names if c not in UNIT_COLUMNS)
            if covariates is None
            else tuple(covariates)
        )
        p = table.column("propensity").to_numpy(zero_copy_only=False).astype(float)
        if np.isnan(p).any():
            raise ValueError(
                f"propensity: {int(np.isnan(p).sum())} assignment events carry no value "
                "(the probability of the arm); log it in the event's `value`"
            )
        x = (
            np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in names])
            if names
            else np.ones((table.num_rows, 1))
        )
        data = cls(
            unit=np.asarray(table.column("unit").to_pylist(), dtype=np.str_),
            treatment=table.column("treated").to_numpy(zero_copy_only=False).astype(np.int8),
            outcome=table.column("outcome").to_numpy(zero_copy_only=False).astype(float),
            propensity=p,
            covariates=x,
            covariate_names=names,
        )
        check(data.outcome, data.treatment, data.propensity)
        return data
