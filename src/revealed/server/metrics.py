"""Prometheus metrics of the ingestion service.

Each app owns its registry (no module-level state). Under `revealed serve --workers N`, the
prometheus_client multiprocess mode aggregates the workers' values (PROMETHEUS_MULTIPROC_DIR is
set by `serve` before any worker starts).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics"]

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    """Rows by table, type and outcome; request latency; journal backlog and seal lag (read at scrape)."""

    def __init__(self, *, unsealed: Callable[[], dict[str, int]], seal_lag_s: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rows = Counter(
            "revealed_rows",
            "Records received, by table, event type (custom ones as x-*) and outcome (accepted, duplicate, "
            "conflict, rejected).",
            ["table", "type", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "revealed_request_seconds",
            "Request latency by route and status code.",
            ["route", "code"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._unsealed = unsealed
        self._seal_lag_s = seal_lag_s

    def render(self) -> bytes:
        """The exposition text: this process's (or, in multiprocess mode, every worker's) metrics."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        # store-wide gauges, read now (written by hand: multiprocess gauges would persist per pid)
        lines = [
            "# HELP revealed_journal_unsealed_rows Journal rows not yet sealed, by table.",
            "# TYPE revealed_journal_unsealed_rows gauge",
            *(f'revealed_journal_unsealed_rows{{table="{t}"}} {n}' for t, n in self._unsealed().items()),
            "# HELP revealed_seal_lag_seconds Age of the oldest acknowledged row not yet sealed.",
            "# TYPE revealed_seal_lag_seconds gauge",
            f"revealed_seal_lag_seconds {self._seal_lag_s():.3f}",
        ]
        return generate_latest(registry) + ("\n".join(lines) + "\n").encode()
