"""`revealed process` at scale beside a hand-written DuckDB SQL that writes the same table.

A simulated shop (the ranking world: 10 items per decision; heartbeats every 60 s and no
impression events, so the events stay near 10 per decision) is ingested through the store, then
each run happens in a fresh child process (its peak RSS is its own):

1. `process` (DuckDB, full): seconds, seconds per step, peak RSS;
2. the SQL baseline (`benchmarks/process_sql.py`), with the same cut-off and fitted parameters,
   writing the same Delta table: ratio = SQL time / process time (aim >= 1/1.5);
3. after 1% more events (the latest by time) are ingested: `process --incremental`, beside a
   full rebuild of the same store.
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import Result
from revealed.settings import Settings
from revealed.sim.behaviour import Behaviour
from revealed.sim.ranking import RankingConfig, simulate_ranking
from revealed.store import Store
from revealed.store.files import ingest_file


def _process(data: str, incremental: bool) -> dict[str, Any]:
    from deltalake import DeltaTable

    from revealed.pipeline.process import process

    store = Store(Settings(data_dir=Path(data)))
    start = time.perf_counter()
    report = process(store, incremental=incremental)
    seconds = time.perf_counter() - start
    meta = DeltaTable(str(Path(data) / "tables" / "interactions")).history(1)[0]
    store.close()
    return {"seconds": seconds, "rows": report.rows, "steps": report.seconds, "meta": meta}


def _sql(data: str, meta: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.process_sql import write_sql
    from revealed.pipeline.process import Fitted

    settings = Settings(data_dir=Path(data))
    spill = Path(data) / "tmp" / "sql"
    spill.mkdir(parents=True, exist_ok=True)
    seconds = write_sql(
        Path(data),
        Path(data) / "sql-interactions",
        cutoff=datetime.fromisoformat(meta["revealed.cutoff"]),
        fitted=Fitted.from_metadata(meta),
        settings={"memory_limit": settings.engine_memory, "temp_directory": str(spill)},
    )
    return {"seconds": seconds}


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Not ru_maxrss: Linux keeps that across exec, so a spawned
    child would report the (larger) parent's high-water mark from before it started."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(target: Any, queue: Any, *args: Any) -> None:
    out = target(*args)
    out["rss_mb"] = _peak_rss_mb()
    queue.put(out)


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    child = context.Process(target=_child, args=(target, queue, *args))
    child.start()
    result: dict[str, Any] = queue.get()
    child.join()
    return result


def run(n: int, *, decisions: int | None = None) -> list[Result]:
    """`decisions` defaults to n / 10 (at least 2,000); `make bench` asks for 1,000,000."""
    decisions = decisions or max(n // 10, 2_000)
    tmp = Path(tempfile.mkdtemp(prefix="revealed-bench-process-"))
    try:
        config = RankingConfig(behaviour=Behaviour(heartbeat_s=60.0, impressions=False))
        sim = simulate_ranking(decisions, seed=5, config=config)
        events = sim.events.take(pc.sort_indices(sim.events, [("timestamp", "ascending")]))
        cut = int(events.num_rows * 0.99)
        shown = int(pc.sum(pc.list_value_length(sim.decisions.column("items"))).as_py())
        paths = sim.write(tmp / "sim")
        early, late = tmp / "early.parquet", tmp / "late.parquet"
        pq.write_table(events.slice(0, cut), early)
        pq.write_table(events.slice(cut), late)
        n_events = events.num_rows
        del sim, events
        store = Store(Settings(data_dir=tmp / "data"))
        for path in (paths["decisions"], paths["items"], early):
            ingest_file(store.journal, path)
        store.seal()
        full = _in_child(_process, str(tmp / "data"), False)
        sql = _in_child(_sql, str(tmp / "data"), full["meta"])
        ingest_file(store.journal, late)
        store.seal()
        store.close()
        incremental = _in_child(_process, str(tmp / "data"), True)
        again = _in_child(_process, str(tmp / "data"), False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in full["steps"].items())
    return [
        Result(
            f"process (DuckDB): {decisions:,} decisions, {shown:,} served items, {n_events:,} events; "
            f"{full['seconds']:.0f} s, peak RSS {full['rss_mb']:,.0f} MB; steps: {steps}. "
            f"SQL baseline {sql['seconds']:.0f} s, peak RSS {sql['rss_mb']:,.0f} MB "
            "(ratio = SQL time / process time)",
            full["rows"] / full["seconds"],
            "rows/s",
            "hand-written DuckDB SQL, same table",
            full["rows"] / sql["seconds"],
            aim=round(1 / 1.5, 2),
        ),
        Result(
            f"process --incremental after 1% more events ({incremental['rows']:,} rows rebuilt, "
            f"{incremental['seconds']:.0f} s; ratio = full / incremental time)",
            again["seconds"] / incremental["seconds"],
            "x faster",
            "full rebuild of the same store",
            1.0,
        ),
    ]
