"""Send a simulation through the SDK to a running server, as an application would."""

from __future__ import annotations

from collections.abc import Callable

from revealed.sdk.client import Client
from revealed.sdk.core import ClientStats
from revealed.sim.world import Simulation

__all__ = ["send"]


def send(
    sim: Simulation,
    url: str,
    *,
    api_key: str | None = None,
    batch_size: int = 1_000,
    on_progress: Callable[[int], None] | None = None,
) -> ClientStats:
    """Log every item, decision and event of `sim` (with their own ids, so a rerun only adds
    duplicates), wait until the server has answered for all of them, and return the counts."""
    with Client(url, api_key=api_key, batch_size=batch_size) as client:
        for kind, log in (
            ("item", client.log_item),
            ("decision", client.log_decision),
            ("event", client.log_event),
        ):
            done = 0
            for record in sim.records(kind):  # type: ignore[arg-type]
                log(**record)
                done += 1
                if on_progress is not None and done % 1_000 == 0:
                    on_progress(1_000)
            if on_progress is not None:
                on_progress(done % 1_000)
        client.flush()
        return client.stats
