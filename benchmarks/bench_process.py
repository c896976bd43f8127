"""`revealed process` on a simulated shop: rows per second through the whole pipeline (DuckDB),
the seconds of each step, the peak memory of the run, and an incremental run after 1% more
events, beside the full run of the same store (the baseline)."""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from benchmarks.common import Result
from revealed.settings import Settings
from revealed.sim.ranking import simulate_ranking
from revealed.store import Store
from revealed.store.files import ingest_file


def _run(data: str, incremental: bool, out: Any) -> None:
    from revealed.pipeline.process import process

    store = Store(Settings(data_dir=Path(data)))
    start = time.perf_counter()
    report = process(store, incremental=incremental)
    out.put(
        (
            time.perf_counter() - start,
            report.rows,
            report.seconds,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        )
    )
    store.close()


def _in_child(data: Path, incremental: bool) -> tuple[float, int, dict[str, float], int]:
    queue: Any = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(target=_run, args=(str(data), incremental, queue))
    child.start()
    result = queue.get()
    child.join()
    return result  # type: ignore[no-any-return]


def run(n: int) -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="revealed-bench-process-"))
    decisions = max(n // 10, 2_000)
    try:
        sim = simulate_ranking(decisions, seed=5)
        events = sim.events
        cut = int(events.num_rows * 0.99)
        store = Store(Settings(data_dir=tmp / "data"))
        paths = sim.write(tmp / "sim")
        for name in ("decisions", "items"):
            ingest_file(store.journal, paths[name])
        early = tmp / "early.parquet"
        late = tmp / "late.parquet"
        import pyarrow.parquet as pq

        pq.write_table(events.slice(0, cut), early)
        pq.write_table(events.slice(cut), late)
        ingest_file(store.journal, early)
        store.seal()
        full_s, rows, steps, rss_kb = _in_child(tmp / "data", False)
        ingest_file(store.journal, late)
        store.seal()
        store.close()
        inc_s, inc_rows, _, _ = _in_child(tmp / "data", True)
        full_again_s, _, _, _ = _in_child(tmp / "data", False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    step_text = ", ".join(f"{k} {v:.1f}s" for k, v in steps.items())
    shown = int(pc.sum(pc.list_value_length(sim.decisions.column("items"))).as_py())
    return [
        Result(
            f"process (DuckDB): {decisions:,} decisions, {shown:,} served items, {events.num_rows:,} events; "
            f"peak RSS {rss_kb / 1024:,.0f} MB; steps: {step_text}",
            rows / full_s,
            "rows/s",
        ),
        Result(
            f"process --incremental after 1% more events ({inc_rows:,} rows rebuilt; "
            "ratio = full / incremental time)",
            full_again_s / inc_s,
            "x faster",
            "full rebuild of the same store",
            1.0,
        ),
    ]
