"""`revealed process`: decisions and events to labelled interactions, with a summary."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def _until(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"expected an RFC 3339 time such as 2026-01-06T00:00:00Z, found {text!r}", param_hint="--until"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def register(app: typer.Typer, console: Console, out: Console) -> None:
    @app.command()
    def process(
        ctx: typer.Context,
        spec: Annotated[
            Path | None, typer.Option(help="A reward spec (TOML); see examples/reward.toml.", exists=True)
        ] = None,
        until: Annotated[
            str | None, typer.Option(help="Cut-off: only what happened and was received by then (RFC 3339).")
        ] = None,
        incremental: Annotated[
            bool, typer.Option(help="Rebuild only people with new, late or still-open rows, and merge them.")
        ] = False,
        engine: Annotated[
            str, typer.Option(help="duckdb, or spark (local mode; the spark extra and a JDK).")
        ] = "duckdb",
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Attribute events to served items, interpret them by the reward spec, write `interactions`."""
        from revealed.pipeline.process import STEPS
        from revealed.pipeline.process import process as run
        from revealed.pipeline.spec import load_spec
        from revealed.store import Store

        if engine not in ("duckdb", "spark"):
            raise typer.BadParameter(f"expected duckdb or spark, found {engine!r}", param_hint="--engine")
        reward_spec = load_spec(spec)
        store = Store(ctx.obj)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
        )
        try:
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("processing", total=len(STEPS))
                started: list[str] = []

                def on_step(name: str) -> None:
                    if started:  # the previous step is done
                        progress.advance(task)
                    started.append(name)
                    progress.update(task, description=f"processing: {name}")

                report = run(
                    store,
                    reward_spec,
                    until=_until(until),
                    incremental=incremental,
                    engine=engine,
                    on_step=on_step,
                )
                progress.update(task, completed=len(STEPS))
        finally:
            store.close()
        if as_json:
            sys.stdout.write(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
            return
        _summary(out, report.as_dict())


def _summary(out: Console, r: dict[str, Any]) -> None:
    head = Table(title=f"interactions, {r['mode']} run (cut-off {r['cutoff']}, spec {r['spec_hash'][:12]})")
    for col in ("rows", "viewed", "immature", "accidental clicks"):
        head.add_column(col, justify="right")
    head.add_row(
        f"{r['rows']:,}",
        f"{r['viewed_share']:.1%}",
        f"{r['immature_share']:.1%}",
        f"{r['quality']['accidental_clicks']:,}",
    )
    out.print(head)
    attributed = Table(title="attributed conversions")
    for col in ("type", "direct", "by window", "organic", "organic share"):
        attributed.add_column(col, justify="right" if col != "type" else "left")
    for kind in sorted(set(r["attributed"]) | set(r["organic"])):
        a = r["attributed"].get(kind, {})
        direct, window, organic = a.get("direct", 0), a.get("window", 0), r["organic"].get(kind, 0)
        total = direct + window + organic
        attributed.add_row(
            kind, f"{direct:,}", f"{window:,}", f"{organic:,}", f"{organic / total:.1%}" if total else "-"
        )
    out.print(attributed)
    credit = Table(title="purchase credit (last touch) by surface and model")
    for col in ("surface", "model / version", "rows", "conversions", "revenue"):
        credit.add_column(col, justify="right" if col in ("rows", "conversions", "revenue") else "left")
    for row in r["credit_by_surface"]:
        credit.add_row(
            str(row["surface"]),
            f"{row['model']} / {row['model_version']}",
            f"{row['rows']:,}",
            f"{row['conversions']:,.1f}",
            f"{row['revenue']:,.2f}",
        )
    out.print(credit)
    out.print(
        "quality flags (rows kept, flagged): "
        + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in r["quality"].items())
    )
    out.print("step seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in r["seconds"].items()))
