"""The `revealed` command. Commands parse, call one core function, and render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from revealed.errors import RevealedError, StoreLocked
from revealed.schema.records import Kind
from revealed.settings import DEFAULT_DATA_DIR, Settings

app = typer.Typer(
    name="revealed",
    help="revealed: an implicit-feedback engine. Log decisions, ingest behaviour, inspect the store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

DataOption = Annotated[
    Path,
    typer.Option("--data", envvar="REVEALED_DATA", help="The store's data directory.", show_default=True),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@app.callback()
def _main(ctx: typer.Context, data: DataOption = DEFAULT_DATA_DIR) -> None:
    """Global options apply to every command."""
    ctx.obj = Settings.from_env(data_dir=data)


def _store(ctx: typer.Context) -> Any:
    from revealed.store import Store

    return Store(ctx.obj)


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


@app.command()
def schema(as_json: JsonFlag = False) -> None:
    """Print the v1 data contract (--json: the JSON Schema)."""
    from revealed.schema import json_schema

    doc = json_schema()
    if as_json:
        _print_json(doc)
        return
    for name in ("Decision", "Event", "Item", "DecisionItem", "Candidate"):
        spec = doc["$defs"][name]
        table = Table(title=name, show_lines=False)
        table.add_column("field")
        table.add_column("type")
        table.add_column("required")
        for field, body in spec["properties"].items():
            kinds = body.get("anyOf", [body])
            shown = " | ".join(k.get("type", k.get("$ref", "?").rsplit("/", 1)[-1]) for k in kinds)
            table.add_row(field, shown, "yes" if field in spec.get("required", []) else "")
        out.print(table)


@app.command()
def ingest(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="NDJSON, JSON array, Parquet or CSV files.", exists=True)
    ],
    kind: Annotated[
        str | None, typer.Option(help="decision, event or item (default: detected per record).")
    ] = None,
    seal: Annotated[bool, typer.Option(help="Seal into the Delta tables when done.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Validate and store records from bulk files; bad rows go to quarantine with their errors."""
    from revealed.store.files import ingest_file, progress_total
    from revealed.store.ingest import IngestReport

    if kind not in (None, "decision", "event", "item"):
        raise typer.BadParameter(f"expected decision, event or item, found {kind!r}", param_hint="--kind")
    store = _store(ctx)
    total = IngestReport()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=as_json,
        transient=True,
    ) as progress:
        for path in files:
            task = progress.add_task(path.name, total=progress_total(path))

            def advance(n: int, task: TaskID = task) -> None:
                progress.advance(task, n)

            report = ingest_file(store.journal, path, kind=cast(Kind | None, kind), on_progress=advance)
            total.merge(report)
    sealed = None
    if seal:
        try:
            sealed = store.seal().sealed
        except StoreLocked:
            console.print("[yellow]another process is sealing this store; rows are durable in the journal")
    store.close()
    summary = {**total.as_dict(), "sealed": sealed}
    if as_json:
        _print_json(summary)
        return
    table = Table(title=f"ingested {len(files)} file(s)")
    for col in ("accepted", "duplicate", "conflict", "rejected", "total"):
        table.add_column(col, justify="right")
    table.add_row(*(str(summary[c]) for c in ("accepted", "duplicate", "conflict", "rejected", "total")))
    out.print(table)
    if total.errors:
        out.print("[bold]first errors[/bold] (all rejected rows are kept in the quarantine table):")
        for err in total.errors[:5]:
            out.print(f"  [red]{err}")


@app.command()
def stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Rows per table, events per type, decisions per surface and model version, time range."""
    from revealed.pipeline.stats import store_stats

    store = _store(ctx)
    result = store_stats(store)
    store.close()
    if as_json:
        _print_json(result)
        return
    counts = Table(title=f"store {ctx.obj.data_dir}")
    for name in ("table", "rows", "unsealed in journal"):
        counts.add_column(name, justify="right" if name != "table" else "left")
    for name in ("decisions", "events", "items", "quarantine"):
        counts.add_row(name, f"{result[name]:,}", f"{result['journal_unsealed'][name]:,}")
    out.print(counts)
    for key, title in (
        ("events_by_type", "events by type"),
        ("decisions_by_surface", "decisions by surface"),
        ("decisions_by_model_version", "decisions by model / version"),
        ("quarantine_by_reason", "quarantine by kind / reason"),
    ):
        if result[key]:
            table = Table(title=title)
            table.add_column("key")
            table.add_column("rows", justify="right")
            for k, v in result[key].items():
                table.add_row(k, f"{v:,}")
            out.print(table)
    for name, (lo, hi) in result["time_range"].items():
        out.print(f"{name}: {lo} .. {hi}")


@app.command("seal")
def seal_cmd(ctx: typer.Context) -> None:
    """Move committed journal rows into the Delta tables now."""
    store = _store(ctx)
    report = store.seal()
    store.close()
    out.print(f"sealed {report.total:,} rows: {report.sealed}")


@app.command()
def compact(
    ctx: typer.Context,
    vacuum: Annotated[bool, typer.Option(help="Also delete files older than the retention.")] = True,
    retention_hours: Annotated[
        float | None, typer.Option(help="Vacuum retention (default 168 h = 7 days).")
    ] = None,
) -> None:
    """Compact small files into large ones, then vacuum files unreferenced for longer than the retention."""
    store = _store(ctx)
    for r in store.compact():
        out.print(f"compacted {r.table}: {r.files_removed} files -> {r.files_added}")
    if vacuum:
        for r in store.vacuum(retention_hours):
            out.print(f"vacuumed {r.table}: {r.files_removed} files removed")
    store.close()


def main() -> None:
    try:
        app()
    except RevealedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from exc
