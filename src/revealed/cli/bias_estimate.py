"""`revealed bias estimate`: examination by position, recorded in the `position_bias` table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def register_estimate(bias_app: typer.Typer, console: Console, out: Console) -> None:
    @bias_app.command("estimate")
    def estimate(
        ctx: typer.Context,
        method: Annotated[
            str,
            typer.Option(
                help="randomized | harvest | em (examination estimators); pbm | cascade | dcm | ubm | dbn "
                "| sdbn (click models)."
            ),
        ] = "randomized",
        surface: Annotated[
            list[str] | None, typer.Option(help="Only these surfaces (repeatable); default: all.")
        ] = None,
        feature: Annotated[
            list[str] | None,
            typer.Option(help="em: the interactions columns relevance is modelled from (default: score)."),
        ] = None,
        level: Annotated[float, typer.Option(help="Coverage of the intervals.")] = 0.95,
        json_file: Annotated[
            Path | None, typer.Option("--json", help="Also write the estimate as JSON here.")
        ] = None,
        plots: Annotated[
            Path | None, typer.Option(help="Write the curve as PNG and HTML in this directory.")
        ] = None,
        relevance: Annotated[
            Path | None,
            typer.Option(help="Click models: write relevance per (surface, query, item) as Parquet."),
        ] = None,
    ) -> None:
        """Estimate examination by position (relative to the top) and record it in `position_bias`."""
        from revealed.bias.estimate import DEFAULT_FEATURES, METHODS, estimate_position_bias, record
        from revealed.bias.plots import plot_curves
        from revealed.store import Store

        if method not in METHODS:
            raise typer.BadParameter(
                f"expected one of {', '.join(METHODS)}, found {method!r}", param_hint="--method"
            )
        store = Store(ctx.obj)
        try:
            with console.status(f"estimating examination by {method}"):
                result = estimate_position_bias(
                    store,
                    method,
                    surfaces=tuple(surface) if surface else None,
                    level=level,
                    features=tuple(feature) if feature else DEFAULT_FEATURES,
                )
                version = record(store, result) if result.curves else None
        finally:
            store.close()
        doc = result.to_dict()
        if json_file is not None:
            json_file.write_text(json.dumps(doc, indent=2) + "\n")
        for surface_name, messages in result.warnings.items():
            for message in messages:
                console.print(f"[yellow]{surface_name}: warning[/] - {message}")
        for surface_name, reason in result.skipped.items():
            console.print(f"[yellow]{surface_name}: skipped[/] - {reason}")
        if not result.curves:
            raise typer.Exit(1)
        for surface_name, curve in result.curves.items():
            table = Table(
                title=f"examination by position, {method}, {surface_name} (relative to the top; "
                f"{curve.level:.0%} interval; {curve.sessions:,} sessions, {curve.queries:,} queries)"
            )
            for col in ("position", "examination", "interval"):
                table.add_column(col, justify="right")
            for p, e, lo, hi in zip(
                curve.positions, curve.examination, curve.ci_low, curve.ci_high, strict=True
            ):
                table.add_row(str(p), f"{e:.3f}", f"{lo:.3f}-{hi:.3f}")
            out.print(table)
        for surface_name, scores in result.held_out.items():
            per_position = " ".join(f"{p:.3f}" for p in scores["perplexity"])
            out.print(
                f"{surface_name}: held-out {scores['sessions']:,} sessions, log-likelihood "
                f"{scores['log_likelihood']:,.1f}, perplexity {scores['mean_perplexity']:.4f} "
                f"(by position: {per_position})"
            )
        if relevance is not None and result.relevance:
            import pyarrow as pa
            import pyarrow.parquet as pq

            tables = [t.append_column("surface", pa.array([s] * len(t))) for s, t in result.relevance.items()]
            pq.write_table(pa.concat_tables(tables), relevance)
            out.print(f"relevance per (query, item): {relevance}")
        out.print(f"recorded run {result.run_id} in position_bias (version {version})")
        if plots is not None:
            curves = [
                {"label": f"{method} / {s}", "positions": list(c.positions), "values": list(c.examination),
                 "low": list(c.ci_low), "high": list(c.ci_high)}
                for s, c in result.curves.items()
            ]  # fmt: skip
            title = f"examination by position ({method})"
            ylabel = "examination (top = 1)"
            for path in plot_curves(
                curves, title=title, ylabel=ylabel, out=plots, name=f"examination_{method}"
            ):
                out.print(f"plot: {path}")
