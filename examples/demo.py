"""`make demo`: the project's story, end to end, on sample data and the embedded default store.

Each chapter runs the real `revealed` command a user would type, so the output is what they see.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

sys.path.insert(0, str(Path(__file__).parent))
from sample import write_sample

console = Console()


def run(*args: str, data: Path) -> None:
    cmd = [str(Path(sys.executable).parent / "revealed"), "--data", str(data), *args]
    console.print(f"[bold cyan]$ revealed --data {data} {shlex.join(args)}")
    subprocess.run(cmd, check=True)


def chapter(title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{title}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("revealed-data"))
    parser.add_argument("--decisions", type=int, default=2_000)
    args = parser.parse_args()
    data: Path = args.data
    if data.exists():
        shutil.rmtree(data)
    inputs = data.parent / f"{data.name}-input"

    chapter("1. The data contract")
    console.print(
        "Decisions, events and items are validated against a typed contract "
        "(`revealed schema --json` prints its JSON Schema)."
    )
    run("schema", data=data)

    chapter("2. Bulk ingest: NDJSON, CSV and Parquet, validated, durable, sealed into Delta tables")
    paths = write_sample(inputs, n_decisions=args.decisions)
    run("ingest", str(paths["decisions"]), str(paths["events"]), str(paths["items"]), data=data)

    chapter("3. Bad input is kept with its error, never dropped")
    console.print(
        f"{paths['bad'].name} holds a typo'd event type, a time in seconds, a propensity of 1.7, "
        "a known id with a different payload, and a line that is not JSON."
    )
    run("ingest", str(paths["bad"]), data=data)

    chapter("4. Idempotent: ingesting the same files again changes nothing")
    run("ingest", str(paths["decisions"]), str(paths["events"]), data=data)

    chapter("5. What the store holds")
    run("stats", data=data)

    chapter("6. Maintenance: compaction and vacuum (retention 7 days)")
    run("compact", data=data)
    console.print(f"\n[green]Done.[/green] The store is in {data}/ (Delta tables under {data}/tables/).")


if __name__ == "__main__":
    main()
