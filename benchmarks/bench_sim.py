"""Simulation throughput: impressions per second of the ranking world with all their events,
written to Parquet (and, timed separately, to NDJSON). The baseline is writing the very same
tables, already built, to Parquet: what the generation costs on top of the I/O."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.common import Result
from revealed.sim.ranking import simulate_ranking

#: 10 million impressions a minute
AIM_PER_S = 10_000_000 / 60


def run(n: int) -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="revealed-bench-sim-"))
    decisions = max(n // 2, 1_000)
    try:
        simulate_ranking(1_000, seed=1).write(tmp / "warm")  # imports and first-call costs, once
        start = time.perf_counter()
        sim = simulate_ranking(decisions, seed=0)
        generated = time.perf_counter() - start
        sim.write(tmp / "ours")
        ours = time.perf_counter() - start
        impressions = decisions * sim.truth.params["config"]["k"]
        events = sim.events.num_rows

        start = time.perf_counter()
        (tmp / "raw").mkdir()
        for name in ("decisions", "events", "items"):
            pq.write_table(getattr(sim, name), tmp / "raw" / f"{name}.parquet", compression="zstd")
        raw = time.perf_counter() - start

        start = time.perf_counter()
        sim.write(tmp / "nd", fmt="ndjson")
        ndjson = time.perf_counter() - start
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        Result(
            f"simulate ranking world + write Parquet ({events / decisions:.0f} events per decision; "
            f"generation alone {impressions / generated:,.0f}/s)",
            impressions / ours,
            "impressions/s",
            "writing the same tables to Parquet",
            impressions / raw,
        ),
        Result(
            f"the same, aim 10M impressions/min = {AIM_PER_S:,.0f}/s (ratio = ours / aim)",
            impressions / ours,
            "impressions/s",
            "aim",
            AIM_PER_S,
            aim=1.0,
        ),
        Result("writing the same simulation as NDJSON", impressions / ndjson, "impressions/s"),
    ]
