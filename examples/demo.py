"""`make demo`: the project's story, end to end, on sample and simulated data and the embedded default store.

Each chapter runs the real `revealed` command a user would type, so the output is what they see.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.rule import Rule

sys.path.insert(0, str(Path(__file__).parent))
from sample import write_sample

from revealed.pipeline.credit import MODELS

console = Console()


def run(*args: str, data: Path) -> None:
    cmd = [str(Path(sys.executable).parent / "revealed"), "--data", str(data), *args]
    console.print(f"[bold cyan]$ revealed --data {data} {shlex.join(args)}")
    subprocess.run(cmd, check=True)


def chapter(title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{title}"))


def serve_and_log(data: Path) -> None:
    """Start `revealed serve`, log traffic through the SDK as an app would, read /metrics."""
    import socket
    import time

    import httpx

    from revealed.sdk import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    console.print(f"[bold cyan]$ revealed --data {data} serve --port {port} &")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "revealed"),
            "--data",
            str(data),
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        errors: list[str] = []
        with Client(url, on_error=lambda e: errors.append(f"{e.record_id}: {e.errors[0]}")) as client:
            start = time.perf_counter()
            for i in range(5_000):
                decision = client.log_decision(
                    [f"i{(i * 7 + k) % 200}" for k in range(10)],
                    user_id=f"u{i % 300}",
                    surface="home_feed",
                    model="ranker",
                    model_version="v3",
                )
                if i % 4 == 0:
                    client.log_event(  # a reader clicks seconds after the list is served, not within 300 ms
                        "click",
                        user_id=f"u{i % 300}",
                        decision_id=decision,
                        item_id=f"i{(i * 7) % 200}",
                        timestamp=time.time_ns() // 1_000_000 + 2_000,
                    )
            logging_s = time.perf_counter() - start
            client.log_event("clik", user_id="u1")  # a typo: rejected by the server, reported to on_error
            client.flush()
            stats = client.stats
        console.print(
            f"SDK: 6,251 records logged in {logging_s * 1e3:.0f} ms on the app's thread; server answered "
            f"accepted={stats.accepted:,} rejected={stats.rejected} retries={stats.retries}"
        )
        console.print(f"on_error got: {errors[0][:110]}...")
        time.sleep(1.5)  # the service's background sealer runs every second
        metrics = httpx.get(url + "/metrics").text
        shown = [
            line
            for line in metrics.splitlines()
            if line.startswith(("revealed_rows_total", "revealed_journal_unsealed", "revealed_seal_lag"))
        ]
        console.print(f"[bold cyan]$ curl {url}/metrics[/]  (excerpt)")
        console.print("\n".join(shown))
    finally:
        server.terminate()
        server.wait(30)


def simulated_day(data: Path, inputs: Path, n: int) -> None:
    """Simulate a day of a shop's search and feed traffic, ingest it, and look at its truth."""
    import pyarrow.parquet as pq
    from rich.table import Table

    world = inputs / "sim-ranking"
    console.print(
        "Every estimator in revealed is tested against worlds whose truth is known. The ranking world "
        "logs six policies with their propensities; users click by a position-based click model, "
        "read (heartbeats), buy hours later and sometimes return."
    )
    run("simulate", "ranking", "--n", str(n), "--days", "1", "--seed", "7", "--out", str(world), data=data)
    run("ingest", *(str(world / f"{t}.parquet") for t in ("decisions", "events", "items")), data=data)
    run("stats", data=data)
    truth = pq.read_table(world / "truth" / "examination.parquet").to_pylist()
    table = Table(title="the truth: how likely a user is to look at each position (PBM)")
    for col in ("position", "examination", "expected CTR"):
        table.add_column(col, justify="right")
    for row in truth:
        table.add_row(str(row["position"]), f"{row['examination']:.3f}", f"{row['expected_ctr']:.3f}")
    console.print(table)
    console.print("The true value of policies, computed exactly from the world, not estimated:")
    run(
        "value",
        "ranking",
        "--seed",
        "7",
        "--policy",
        "ranker",
        "--policy",
        "h3",
        "--policy",
        "random",
        data=data,
    )
    run("value", "bandit", "--policy", "logging", "--policy", "optimal", "--policy", "uniform", data=data)


def labels(data: Path, inputs: Path, n: int) -> None:
    """`revealed process` on everything ingested so far, then a look at the interactions table."""
    from deltalake import DeltaTable
    from rich.table import Table

    console.print(
        "Each served item gets one row: viewed or not, its signals (active dwell from heartbeats, "
        "scroll, saves, purchases net of returns), conversions credited by seven multi-touch models, "
        "a label and a reward by the spec in examples/reward.toml, and whether its windows have closed."
    )
    spec = Path(__file__).parent / "reward.toml"
    run("process", "--spec", str(spec), data=data)
    rows = DeltaTable(str(data / "tables" / "interactions")).to_pyarrow_table(
        columns=["label", "viewed", "clicked", "active_dwell_s", "client_dwell_s", "reward"]
    )
    frame = rows.to_pandas()
    table = Table(title="labels (by the spec's first matching rule; none: unknown)")
    for col in ("label", "rows", "mean reward"):
        table.add_column(col, justify="right")
    for label, group in frame.groupby(frame["label"].fillna(-99)):
        name = "unknown" if label == -99 else str(int(label))
        table.add_row(name, f"{len(group):,}", f"{group['reward'].mean():.2f}")
    console.print(table)
    clicked = frame[frame["clicked"]]
    active, naive = clicked["active_dwell_s"].mean(), clicked["client_dwell_s"].mean()
    console.print(
        f"Active dwell per click {active:.0f} s, against {naive:.0f} s by the client's own dwell events, "
        "which also count the time a page stayed open while the user was away."
    )


def position_bias(data: Path, inputs: Path) -> None:
    """Measure position bias, estimate examination by position, and compare it with the truth."""
    import json

    import pyarrow.parquet as pq
    from rich.table import Table

    console.print(
        "Users click what they see first. The report shows CTR falling with position; the "
        "estimators separate how likely a slot is looked at (examination) from how relevant its "
        "item is: from the randomised swaps and shuffles in the logs, by harvesting the pairs "
        "where older rankers put the same item at different positions, and with a click model."
    )
    plots = inputs / "bias"
    run("bias", "report", "--plots", str(plots), data=data)
    estimates = {}
    for method in ("randomized", "harvest", "pbm"):
        out = plots / f"{method}.json"
        run("bias", "estimate", "--method", method, "--surface", "search", "--json", str(out), data=data)
        estimates[method] = json.loads(out.read_text())
    world = inputs / "sim-ranking"
    truth = pq.read_table(world / "truth" / "examination.parquet").to_pylist()
    top = truth[0]["examination"]
    table = Table(title="examination by position on search, relative to the top: estimates beside the truth")
    table.add_column("position", justify="right")
    table.add_column("truth", justify="right")
    for method in estimates:
        table.add_column(method, justify="right")
    for row in truth:
        cells = [str(row["position"]), f"{row['examination'] / top:.3f}"]
        for doc in estimates.values():
            by_position = dict(zip(doc["positions"], doc["examination"], strict=True))
            value = by_position.get(row["position"])
            cells.append("-" if value is None else f"{value:.3f}")
        table.add_row(*cells)
    console.print(table)
    console.print(
        "Each run is recorded in the position_bias table (the interactions are never rewritten); "
        "training datasets take inverse-examination weights from it. A '-' is a position the "
        "method cannot identify from these logs (the shuffles here randomise the top 5 only)."
    )


def offline_evaluation(data: Path, inputs: Path, n: int) -> None:
    """Two candidate models evaluated on a contextual bandit's logs, beside their true values."""
    import json

    import pyarrow.parquet as pq
    from rich.table import Table

    from revealed.sim.bandit import BanditWorld, policy_value

    console.print(
        "A contextual bandit logged its choices with their propensities. Two candidates score the "
        "same candidates differently: one by the true click model, one by its opposite. Their "
        "value is estimated from the logs alone (IPW, SNIPW, DM and DR with a cross-fitted reward "
        "model), and the simulator knows the true value of each."
    )
    world = inputs / "sim-bandit"
    run("simulate", "bandit", "--n", str(n), "--seed", "7", "--out", str(world), data=data)
    run("ingest", *(str(world / f"{t}.parquet") for t in ("decisions", "events", "items")), data=data)
    run("process", data=data)
    bandit = BanditWorld(7)
    weights, bias, _ = bandit.parameters()
    decisions = pq.read_table(world / "decisions.parquet", columns=["decision_id", "context", "candidates"])
    ids = np.repeat(decisions["decision_id"].to_numpy(zero_copy_only=False), 10)
    x = np.array([list(json.loads(c).values()) for c in decisions["context"].to_pylist()])
    actions = np.tile(np.arange(weights.shape[1]), len(x))
    logits = (np.repeat(x, weights.shape[1], axis=0) * weights[0][actions]).sum(axis=1) + bias[actions]
    temperature = 0.5
    paths = {}
    for name, sign in (("better", 1.0), ("worse", -1.0)):
        import pyarrow as pa

        paths[name] = world / f"{name}-scores.parquet"
        table = {"decision_id": ids, "item_id": [f"a{a}" for a in actions], "score": sign * logits}
        pq.write_table(pa.table(table), paths[name])
    out = world / "evaluation.json"
    run(
        "evaluate",
        *(arg for name, path in paths.items() for arg in ("--policy", f"{name}={path}")),
        "--surface", "bandit", "--model-version", "v1", "--temperature", str(temperature), "--json", str(out),
        data=data,
    )  # fmt: skip
    result = json.loads(out.read_text())

    def pi(sign: float) -> object:
        def policy(contexts: np.ndarray) -> np.ndarray:
            z = sign * (contexts @ weights[0].T + bias) / temperature
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return np.asarray(z / z.sum(axis=1, keepdims=True))

        return policy

    table = Table(title="off-policy estimates beside the truth (mean click rate per round)")
    for col in ("candidate", "estimator", "estimate", "95% interval", "truth"):
        table.add_column(col, justify="right")
    for name, sign in (("better", 1.0), ("worse", -1.0)):
        truth = policy_value(bandit, pi(sign))  # type: ignore[arg-type]
        for estimator, v in result["candidates"][name].items():
            table.add_row(
                name, estimator, f"{v['value']:.4f}", f"{v['ci'][0]:.4f}-{v['ci'][1]:.4f}", f"{truth:.4f}"
            )
    console.print(table)
    console.print(
        f"The logging policy's own value on these logs: {result['logged_value']:.4f}. The holdout's "
        "rounds (a fixed action, propensity 1) are left out with --model-version: they show nothing "
        "about other actions, and with them in, the verdict would be 'not enough evidence'."
    )


def journeys_credit(data: Path, inputs: Path, n: int) -> None:
    """Purchases without a decision id, touched on several surfaces: which credit model finds the cause?"""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    from rich.table import Table

    console.print(
        "A month of journeys: the same users meet the same items on search, feed and email, "
        "and buy later without saying which touch moved them. The simulator knows the cause of every "
        "purchase (a touch, or none), so each credit model can be checked."
    )
    world = inputs / "sim-journeys"
    run("simulate", "journeys", "--n", str(n), "--seed", "7", "--out", str(world), data=data)
    run("ingest", *(str(world / f"{t}.parquet") for t in ("decisions", "events", "items")), data=data)
    run("process", data=data)
    truth = pq.read_table(world / "truth" / "conversions.parquet").to_pandas()
    caused = truth[truth["causal_kind"] != "organic"]
    true_rows = caused.groupby(["causal_decision_id", "item_id"]).size().rename("true")
    columns = [f"conversions_{m}" for m in MODELS]
    rows = DeltaTable(str(data / "tables" / "interactions")).to_pandas(
        columns=["decision_id", "item_id", *columns]
    )
    rows = rows[rows["decision_id"].str.startswith("jd")].set_index(["decision_id", "item_id"])
    joined = rows.join(true_rows.rename_axis(["decision_id", "item_id"]), how="outer").fillna(0.0)
    table = Table(title=f"{len(caused):,} caused purchases: credit landing on the row that caused them")
    for col in ("model", "on the true cause", "misplaced"):
        table.add_column(col, justify="right")
    for model, col in zip(MODELS, columns, strict=True):
        right = np.minimum(joined[col], joined["true"]).sum() / joined["true"].sum()
        table.add_row(model, f"{right:.1%}", f"{1 - right:.1%}")
    console.print(table)
    console.print(
        "The hazard model is fitted on the data (how much and for how long each surface's views and "
        "clicks raise the chance of a purchase) and credits each touch by its posterior probability "
        "of being the cause."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("revealed-data"))
    parser.add_argument("--decisions", type=int, default=2_000)
    parser.add_argument("--simulated", type=int, default=30_000, help="decisions in the simulated day")
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

    chapter("6. The ingestion service and the SDK")
    serve_and_log(data)

    chapter("7. A simulated day of traffic, with the truth beside it")
    simulated_day(data, inputs, args.simulated)

    chapter("8. From behaviour to labels: attribution, multi-touch credit, reward spec")
    labels(data, inputs, args.simulated)

    chapter("9. Position bias: how much of a click is the slot, and how much the item")
    position_bias(data, inputs)

    chapter("10. Multi-touch journeys: which touch caused the purchase?")
    journeys_credit(data, inputs, args.simulated)

    chapter("11. Off-policy evaluation: is the new model better, before it ships?")
    offline_evaluation(data, inputs, args.simulated)

    chapter("12. Maintenance: compaction and vacuum (retention 7 days)")
    run("compact", data=data)
    console.print(f"\n[green]Done.[/green] The store is in {data}/ (Delta tables under {data}/tables/).")


if __name__ == "__main__":
    main()
