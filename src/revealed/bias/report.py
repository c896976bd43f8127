"""`revealed bias report`: the diagnostics of presentation and selection bias, with plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revealed.bias.diagnostics import (
    Concentration,
    ctr_by_position,
    exposure_concentration,
    exposure_propensity,
)
from revealed.bias.logs import open_logs, served_rows
from revealed.bias.plots import plot_curves
from revealed.pipeline.identity import dedupe
from revealed.store.store import Store

__all__ = ["BiasReport", "bias_report"]


@dataclass
class BiasReport:
    """CTR by position per group, concentration per surface, candidate exposure, and the plots."""

    interactions_version: int
    ctr: Any  # pandas DataFrame, see `ctr_by_position`
    concentration: dict[str, Concentration]
    exposure: Any  # pandas DataFrame, see `exposure_propensity`
    plots: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        exposure = self.exposure
        return {
            "interactions_version": self.interactions_version,
            "ctr_by_position": self.ctr.to_dict(orient="records"),
            "concentration": {k: v.as_dict() for k, v in self.concentration.items()},
            "candidate_exposure": {
                "items": len(exposure),
                "never_served": int((exposure["served"] == 0).sum()) if len(exposure) else 0,
                "least_exposed": exposure.head(10).to_dict(orient="records"),
            },
            "plots": [str(p) for p in self.plots],
        }


def bias_report(
    store: Store, out: Path | None = None, *, by: tuple[str, ...] = ("surface", "model_version")
) -> BiasReport:
    """Compute the diagnostics on the latest `interactions`; with `out`, write the CTR-by-position
    plot there as ``ctr_by_position.png`` and ``.html``."""
    logs = open_logs(store)
    served = served_rows(logs.interactions)
    backend = logs.backend
    ctr = ctr_by_position(served, backend, by=by)
    surfaces = sorted(
        s for s in backend.to_pyarrow(served.select("surface").distinct())["surface"].to_pylist() if s
    )
    concentration = {"all": exposure_concentration(served, backend)}
    for surface in surfaces:
        concentration[surface] = exposure_concentration(served.filter(served.surface == surface), backend)
    exposure = exposure_propensity(dedupe(logs.engine.table("decisions"), "decision_id"), backend)
    report = BiasReport(logs.version, ctr, concentration, exposure)
    if out is not None:
        curves = []
        for key, group in ctr.groupby(list(by), sort=True):
            label = " / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            curves.append(
                {
                    "label": label,
                    "positions": group["position"].tolist(),
                    "values": group["ctr"].tolist(),
                    "low": group["ctr_low"].tolist(),
                    "high": group["ctr_high"].tolist(),
                }
            )
        report.plots = plot_curves(
            curves,
            title="CTR by position (viewed rows, 95% Wilson intervals)",
            ylabel="CTR",
            out=out,
            name="ctr_by_position",
        )
    return report
