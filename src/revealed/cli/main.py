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

from revealed.cli.bias import register as register_bias
from revealed.cli.evaluate import register as register_evaluate
from revealed.cli.process import register as register_process
from revealed.cli.simulate import register as register_simulate
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
    """Compact small files into large ones, then vacuum files unreferenced for longer than the retention:
    the store's tables and those the pipeline and the estimators wrote."""
    store = _store(ctx)
    for r in store.compact():
        out.print(f"compacted {r.table}: {r.files_removed} files -> {r.files_added}")
    if vacuum:
        for r in store.vacuum(retention_hours):
            out.print(f"vacuumed {r.table}: {r.files_removed} files removed")
    store.close()


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Interface to bind (without API keys: 127.0.0.1 only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes sharing the store.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    seal_lag: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seal once the oldest unsealed row is this many seconds old (or 100,000 rows wait; "
            "0: every second). Default 5, or REVEALED_SEAL_MAX_LAG_S.",
        ),
    ] = None,
) -> None:
    """Run the ingestion service (FastAPI + uvicorn): POST /v1/decisions, /v1/events, /v1/items."""
    import os
    import shutil

    import uvicorn

    from revealed.keys import KeyStore
    from revealed.store import Store

    settings: Settings = ctx.obj
    Store(settings).close()  # create the journal and tables once, before workers race to
    keys = KeyStore(settings.data_dir / "keys.sqlite")
    enforced = keys.enforced()
    keys.close()
    if not enforced:
        if host not in ("127.0.0.1", "localhost", "::1"):
            console.print(
                f"[yellow]no API keys configured: refusing to listen on {host}, binding to 127.0.0.1 only"
            )
            host = "127.0.0.1"
        console.print(
            "[yellow]no API keys configured: open to local clients only "
            "(create one with `revealed keys create NAME --scope ingest`)"
        )
    os.environ["REVEALED_DATA"] = str(settings.data_dir.resolve())
    os.environ["REVEALED_MAX_BODY_BYTES"] = str(settings.max_body_bytes)
    os.environ["REVEALED_SEAL_MAX_LAG_S"] = str(settings.seal_max_lag_s if seal_lag is None else seal_lag)
    if workers > 1:
        metrics_dir = settings.data_dir / "run" / f"metrics-{os.getpid()}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "revealed.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )


keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored as SHA-256 digests).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    scope: Annotated[list[str], typer.Option(help="ingest, read or admin (repeatable).")] = ["ingest"],  # noqa: B006
    as_json: JsonFlag = False,
) -> None:
    """Create a key and print its token (shown once)."""
    from revealed.keys import KeyStore

    store = KeyStore(ctx.obj.data_dir / "keys.sqlite")
    try:
        created = store.create(name, scope)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from exc
    finally:
        store.close()
    if as_json:
        _print_json(
            {
                "key_id": created.key.key_id,
                "name": name,
                "scopes": list(created.key.scopes),
                "token": created.token,
            }
        )
        return
    out.print(f"key {created.key.key_id} ({', '.join(created.key.scopes)}): {created.token}")
    console.print("[yellow]store the token now: only its digest is kept")


@keys_app.command("list")
def keys_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List keys (never their tokens)."""
    from revealed.keys import KeyStore

    store = KeyStore(ctx.obj.data_dir / "keys.sqlite")
    keys = store.list()
    store.close()
    if as_json:
        _print_json(
            [
                {
                    "key_id": k.key_id,
                    "name": k.name,
                    "scopes": list(k.scopes),
                    "created_at": k.created_at,
                    "revoked_at": k.revoked_at,
                }
                for k in keys
            ]
        )
        return
    table = Table(title="API keys")
    for col in ("key_id", "name", "scopes", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.key_id, k.name, ", ".join(k.scopes), "yes" if k.revoked_at else "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key (servers stop accepting it within 5 seconds)."""
    from revealed.keys import KeyStore

    store = KeyStore(ctx.obj.data_dir / "keys.sqlite")
    revoked = store.revoke(key_id)
    store.close()
    if not revoked:
        console.print(f"[red]no live key {key_id!r}")
        raise typer.Exit(1)
    out.print(f"revoked {key_id}")


register_simulate(app, console, out)
register_process(app, console, out)
register_bias(app, console, out)
register_evaluate(app, console, out)


def main() -> None:
    try:
        app()
    except RevealedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from exc
