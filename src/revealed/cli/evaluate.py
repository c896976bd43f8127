"""`revealed evaluate`: is a candidate model better than the logging policy, before it ships?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def _named(spec: str) -> tuple[str, str]:
    """``name=source`` or a bare source (named after the file or function)."""
    if "=" in spec:
        name, source = spec.split("=", 1)
        return name, source
    return Path(spec.split(":")[-1]).stem, spec


def register(app: typer.Typer, console: Console, out: Console) -> None:
    @app.command("evaluate")
    def evaluate_command(
        ctx: typer.Context,
        policy: Annotated[
            list[str],
            typer.Option(
                help="A candidate's scores per (decision, item): a Parquet/CSV file (decision_id, item_id, "
                "score) or module:function; NAME=SOURCE to name it. Repeatable."
            ),
        ],
        estimators: Annotated[
            str | None,
            typer.Option(help="Comma-separated estimator ids (bandits: ipw,snipw,dm,dr; slates: sips,rips)."),
        ] = None,
        slates: Annotated[
            bool,
            typer.Option("--slates", help="Evaluate rankers on logged slates (several items per decision)."),
        ] = False,
        kind: Annotated[
            str, typer.Option(help="softmax | plackett_luce | topk: scores to probabilities.")
        ] = "softmax",
        temperature: Annotated[float, typer.Option(help="Softmax temperature.")] = 1.0,
        surface: Annotated[str | None, typer.Option(help="Only decisions on this surface.")] = None,
        model_version: Annotated[
            str | None, typer.Option(help="Only rounds logged by this model version (e.g. not a holdout).")
        ] = None,
        reward: Annotated[str, typer.Option(help="The interactions column to use as reward.")] = "clicked",
        level: Annotated[float, typer.Option(help="Confidence level.")] = 0.95,
        json_file: Annotated[
            Path | None, typer.Option("--json", help="Also write the result as JSON here.")
        ] = None,
    ) -> None:
        """Off-policy estimates of each candidate on the logged rounds, and a verdict on each."""
        from revealed.ope.offline import evaluate_offline
        from revealed.ope.offline_slates import evaluate_slates_offline
        from revealed.store import Store

        named = dict(_named(p) for p in policy)
        default = "sips,rips" if slates else "ipw,snipw,dm,dr"
        run = evaluate_slates_offline if slates else evaluate_offline
        store = Store(ctx.obj)
        try:
            with console.status("evaluating off-policy"):
                result = run(
                    store,
                    named,
                    estimators=[e.strip() for e in (estimators or default).split(",") if e.strip()],
                    kind=kind,
                    temperature=temperature,
                    surface=surface,
                    model_version=model_version,
                    reward=reward,
                    level=level,
                )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        finally:
            store.close()
        if json_file is not None:
            json_file.write_text(json.dumps(result.as_dict(), indent=2, default=str) + "\n")
        table = Table(
            title=f"{result.rounds:,} logged {'slates' if slates else 'rounds'}; the logging policy's value "
            f"(mean {reward}{' per slate' if slates else ''}) is "
            f"{result.logged_value:.4f}"
        )
        for col in ("candidate", "estimator", "value", f"{level:.0%} interval", "ESS"):
            table.add_column(col, justify="right")
        for name, by in result.estimates.items():
            for est, value in by.items():
                table.add_row(
                    name,
                    est,
                    f"{value.value:.4f}",
                    f"{value.ci[0]:.4f}-{value.ci[1]:.4f}",
                    f"{value.ess:,.0f}",
                )
        out.print(table)
        for v in result.verdicts:
            low, high = v.improvement_ci
            colour = {"better": "green", "worse": "red"}.get(v.verdict, "yellow")
            out.print(
                f"[bold]{v.candidate}[/]: [{colour}]{v.verdict}[/] by {result.primary} "
                f"(improvement {v.improvement:+.4f}, {level:.0%} interval {low:+.4f} to {high:+.4f}): "
                f"{v.reason}"
            )
