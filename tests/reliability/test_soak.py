"""A bounded soak: constant load at a fixed rate for a few minutes; the server's memory stays
flat (RSS growth under 10% after warm-up) and nothing fails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import Server

from revealed.sdk import Client

RATE_PER_S = 2_000
SECONDS = 150
WARMUP_S = 30


@pytest.mark.slow
def test_constant_load_keeps_memory_flat_and_errors_at_zero(server: Server, tmp_path: Path) -> None:
    errors: list[object] = []
    client = Client(
        server.url,
        batch_size=200,
        flush_interval_s=0.05,
        on_error=errors.append,
        spool_dir=tmp_path / "spool",
    )
    start = time.monotonic()
    baseline = None
    n = 0
    while (elapsed := time.monotonic() - start) < SECONDS:
        due = int(elapsed * RATE_PER_S)
        while n < due:
            client.log_event("click", user_id=f"u{n % 1000}", item_id=f"i{n % 5000}", properties={"n": n})
            n += 1
        if baseline is None and elapsed >= WARMUP_S:
            baseline = server.rss_kb()
        time.sleep(0.01)
    assert client.flush(60)
    final = server.rss_kb()
    client.close()
    assert baseline is not None
    growth = (final - baseline) / baseline
    print(f"soak: {n:,} events in {SECONDS} s, RSS {baseline:,} kB -> {final:,} kB ({growth:+.1%})")
    assert growth < 0.10, f"server RSS grew {growth:.1%} under constant load"
    assert errors == []
    assert client.stats.accepted == n
    assert client.stats.retries == client.stats.spooled == client.stats.dropped == 0
