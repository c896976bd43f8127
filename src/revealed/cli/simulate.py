"""`revealed simulate` and `revealed value`: simulated worlds and the true value of policies."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from revealed.sim import WORLDS, describe_worlds

_WORLD_HELP = "The world to simulate: " + "; ".join(f"{k}: {v}" for k, v in describe_worlds().items()) + "."


def _options(
    world: str, drift_hours: list[float], click_model: str | None, days: float | None
) -> dict[str, Any]:
    """World options from the generic flags."""
    from revealed.sim import configure
    from revealed.sim.drift import drift_options

    try:
        config = drift_options(world, drift_hours)["config"] if drift_hours else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--drift") from exc
    if click_model:
        if world != "ranking":
            raise typer.BadParameter(
                f"expected no click model for the {world} world", param_hint="--click-model"
            )
        config = replace(configure(world, config), click_model=click_model)
    if days is not None:
        config = configure(world, config, days=days)
    return {} if config is None else {"config": config}


def register(app: typer.Typer, console: Console, out: Console) -> None:
    @app.command()
    def simulate(
        world: Annotated[str, typer.Argument(help=_WORLD_HELP, show_default=False)],
        n: Annotated[int, typer.Option("--n", help="Decisions to simulate.")] = 10_000,
        seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 0,
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="Write decisions, events, items and truth here.")
        ] = None,
        fmt: Annotated[str, typer.Option("--format", help="parquet or ndjson.")] = "parquet",
        to: Annotated[
            str | None, typer.Option("--to", help="Send the records to a running server (URL) instead.")
        ] = None,
        api_key: Annotated[str | None, typer.Option(envvar="REVEALED_API_KEY", help="Key for --to.")] = None,
        drift: Annotated[
            list[float] | None, typer.Option(help="Hours after the start at which the world changes.")
        ] = None,
        click_model: Annotated[
            str | None, typer.Option(help="ranking only: pbm, cascade, dcm, ubm or dbn.")
        ] = None,
        days: Annotated[float | None, typer.Option(help="The period the traffic spreads over.")] = None,
    ) -> None:
        """Simulate a world with ground truth: write it (--out) or send it to a server (--to)."""
        from revealed.sim import simulate as run

        if world not in WORLDS:
            raise typer.BadParameter(
                f"expected one of {', '.join(WORLDS)}, found {world!r}", param_hint="WORLD"
            )
        if (out_dir is None) == (to is None):
            raise typer.BadParameter("expected exactly one of --out DIR or --to URL", param_hint="--out/--to")
        if fmt not in ("parquet", "ndjson"):
            raise typer.BadParameter(f"expected parquet or ndjson, found {fmt!r}", param_hint="--format")
        with console.status(f"simulating {n:,} {world} decisions (seed {seed})"):
            sim = run(world, n, seed, **_options(world, drift or [], click_model, days))
        table = Table(title=f"{world}, seed {seed}")
        for name in ("decisions", "events", "items"):
            table.add_column(name, justify="right")
        table.add_row(*(f"{v:,}" for v in sim.counts.values()))
        if out_dir is not None:
            written = sim.write(out_dir, fmt=fmt)  # type: ignore[arg-type]
            out.print(table)
            for path in [*written.values(), out_dir / "truth"]:
                out.print(f"  {path}")
            return
        assert to is not None
        from revealed.sim.send import send

        with Progress(
            TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
        ) as progress:
            task = progress.add_task("send", total=sum(sim.counts.values()))
            stats = send(sim, to, api_key=api_key, on_progress=lambda k: progress.advance(task, k))
        out.print(table)
        out.print(
            f"accepted {stats.accepted:,}, duplicate {stats.duplicate:,}, rejected {stats.rejected:,}, "
            f"failed {stats.failed:,}, spooled {stats.spooled:,}"
        )
        if stats.failed or stats.rejected or stats.dropped:
            raise typer.Exit(1)

    @app.command()
    def value(
        world: Annotated[str, typer.Argument(help="bandit or ranking.")],
        policy: Annotated[
            list[str],
            typer.Option(
                help="A builtin (bandit: uniform, optimal, logging, default; ranking: ranker, optimal, "
                "random, h1, h2...) or module:function mapping contexts to probabilities.",
            ),
        ],
        seed: Annotated[int, typer.Option(help="The world's seed.")] = 0,
        contexts: Annotated[
            int, typer.Option(help="Size of the fixed sample of contexts (bandit).")
        ] = 200_000,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """The true value of policies in a simulated world, computed exactly from its truth."""
        values: dict[str, float]
        if world == "bandit":
            from revealed.sim.bandit import BanditWorld, policy_value

            bandit = BanditWorld(seed)
            values = {p: policy_value(bandit, p, contexts=contexts) for p in policy}
        elif world == "ranking":
            from revealed.sim.ranking import RankingWorld, ranking_value

            ranking = RankingWorld(seed)
            values = {p: ranking_value(ranking, p) for p in policy}
        else:
            raise typer.BadParameter(f"expected bandit or ranking, found {world!r}", param_hint="WORLD")
        if as_json:
            sys.stdout.write(json.dumps({"world": world, "seed": seed, "value": values}, indent=2) + "\n")
            return
        table = Table(title=f"true value, {world} world, seed {seed}")
        table.add_column("policy")
        table.add_column("value", justify="right")
        for name, v in values.items():
            table.add_row(name, f"{v:.6f}")
        out.print(table)
