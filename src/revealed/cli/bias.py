"""`revealed bias report|estimate`: presentation and selection bias, measured and estimated."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer, console: Console, out: Console) -> None:
    bias_app = typer.Typer(help="Presentation and selection bias: diagnostics and examination estimates.")
    app.add_typer(bias_app, name="bias")

    @bias_app.command("report")
    def report(
        ctx: typer.Context,
        plots: Annotated[Path, typer.Option(help="Where to write the plots (PNG and HTML).")] = Path(
            "bias-report"
        ),
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """CTR by position per surface and model version, exposure concentration, candidate exposure."""
        from revealed.bias.report import bias_report
        from revealed.store import Store

        store = Store(ctx.obj)
        try:
            with console.status("measuring position and selection bias"):
                result = bias_report(store, plots)
        finally:
            store.close()
        if as_json:
            sys.stdout.write(json.dumps(result.as_dict(), indent=2, default=str) + "\n")
            return
        _render_report(out, result)

    from revealed.cli.bias_estimate import register_estimate

    register_estimate(bias_app, console, out)


def _render_report(out: Console, result: Any) -> None:
    ctr = Table(
        title=f"CTR by position on viewed rows (interactions v{result.interactions_version}; 95% Wilson)"
    )
    for col in ("surface", "version", "position", "viewed", "CTR", "interval", "satisfied CTR"):
        ctr.add_column(col, justify="right")
    for r in result.ctr.to_dict(orient="records"):
        ctr.add_row(
            str(r["surface"]),
            str(r["model_version"]),
            str(r["position"]),
            f"{r['viewed']:,}",
            f"{r['ctr']:.3f}",
            f"{r['ctr_low']:.3f}-{r['ctr_high']:.3f}",
            f"{r['satisfied_ctr']:.3f}",
        )
    out.print(ctr)
    conc = Table(title="exposure concentration (top 1% of items by impressions)")
    for col in (
        "surface",
        "items",
        "impressions",
        "top 1% of impressions",
        "top 1% of clicks",
        "Gini impr.",
        "Gini clicks",
        "CTR lift of top 1%",
    ):
        conc.add_column(col, justify="right")
    for surface, c in result.concentration.items():
        conc.add_row(
            surface,
            f"{c.items:,}",
            f"{c.impressions:,}",
            f"{c.top_share_impressions:.1%}",
            f"{c.top_share_clicks:.1%}",
            f"{c.gini_impressions:.3f}",
            f"{c.gini_clicks:.3f}",
            f"{c.top_ctr_lift:.2f}x",
        )
    out.print(conc)
    exposure = result.exposure
    if len(exposure):
        never = int((exposure["served"] == 0).sum())
        low = int((exposure["propensity"] < 0.01).sum())
        out.print(
            f"candidate exposure: {len(exposure):,} items were candidates; {never:,} never served, "
            f"{low:,} served under 1% of the times they were candidates (no feedback about them)"
        )
    else:
        out.print("candidate exposure: no decision logs its candidates, so selection bias cannot be measured")
    for path in result.plots:
        out.print(f"plot: {path}")
