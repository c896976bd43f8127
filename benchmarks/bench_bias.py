"""Click-model fits on 1M sessions x 10 positions (PBM by EM over (query, item, rank) counts, DBN
by EM over click-pattern counts), beside CTR by position on the same table in the same engine:
the cheapest aggregate over the same rows (ratio = baseline time / fit time). Aim: PBM under
10 s on 2 cores. The sessions are drawn from the simulator's PBM and DBN with 1,000 queries of
20 items each, shuffled so positions vary."""

from __future__ import annotations

import time

import ibis
import numpy as np
import pyarrow as pa

from benchmarks.common import Result
from revealed.bias.clickmodels import fit_click_model
from revealed.sim.clickmodels import click_model

K = 10


def _sessions(model: str, n: int, seed: int) -> pa.Table:
    """`n` sessions of K positions: (session, query_id, item_id, position, clicked)."""
    rng = np.random.default_rng(seed)
    queries, per_query = 1_000, 20
    alpha = rng.beta(1.0, 3.0, size=(queries, per_query))
    sigma = rng.beta(2.0, 2.0, size=(queries, per_query))
    query = rng.integers(queries, size=n)
    # each session shows K of the query's items in a random order
    items = np.argsort(rng.random((n, per_query)), axis=1)[:, :K]
    a = alpha[query[:, None], items]
    clicked = click_model(model, K).sample(a, rng, sigma[query[:, None], items]).clicked
    session = np.repeat(np.arange(n), K)
    return pa.table(
        {
            "session": pa.array(session).cast(pa.string()),
            "query_id": pa.array(np.repeat(query, K)).cast(pa.string()),
            "item_id": pa.array(np.repeat(query, K) * per_query + items.ravel()).cast(pa.string()),
            "position": pa.array(np.tile(np.arange(K), n)),
            "clicked": pa.array(clicked.ravel()),
        }
    )


def run(n: int) -> list[Result]:
    sessions = max(n * 5, 10_000)  # make bench: 1M
    out = []
    for model in ("pbm", "dbn"):
        table = _sessions(model, sessions, seed=3)
        con = ibis.duckdb.connect()
        clicks = con.create_table("clicks", table)
        start = time.perf_counter()
        con.to_pyarrow(clicks.group_by("position").aggregate(ctr=clicks.clicked.cast("float64").mean()))
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        fitted = fit_click_model(model, clicks, con, check=False)
        seconds = time.perf_counter() - start
        out.append(
            Result(
                f"{model.upper()} fit, {sessions:,} sessions x {K} positions: {seconds:.1f} s "
                f"({fitted.iterations} iterations; aim for PBM: under 10 s)",
                sessions / seconds,
                "sessions/s",
                "CTR by position in the same engine",
                sessions / baseline,
            )
        )
        con.disconnect()
    return out
