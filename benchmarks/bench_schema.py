"""Validation throughput (records/s on one core): events and 10-item decisions, from JSON bytes to
journal-ready rows (validate, normalise, JSON payload and digest, Arrow batch of 1,000), beside
msgspec's typed decode alone of the same bytes (the floor any validator on this contract pays).
Events also through the service's hot path, which builds the batch column-wise."""

from __future__ import annotations

import msgspec

from benchmarks.common import T0, Result, best_of, decision, event
from revealed.schema import Decision, Event
from revealed.store.entries import Prepared
from revealed.store.ingest import prepare, prepare_batch


def run(n: int) -> list[Result]:
    results = []
    for kind, make, cls in (("event", event, Event), ("decision", decision, Decision)):
        count = n if kind == "event" else n // 5
        raws = [msgspec.json.encode(make(i)) for i in range(count)]
        decoder = msgspec.json.Decoder(cls)
        received = (T0 + 10**9) * 1000

        def ours(raws: list[bytes] = raws, kind: str = kind, received: int = received) -> None:
            for start in range(0, len(raws), 1000):
                Prepared.of([prepare(kind, raw, received_us=received) for raw in raws[start : start + 1000]])  # type: ignore[arg-type]

        def floor(raws: list[bytes] = raws, decoder: msgspec.json.Decoder = decoder) -> None:  # type: ignore[type-arg]
            for raw in raws:
                decoder.decode(raw)

        t_ours, t_floor = best_of(3, ours), best_of(3, floor)
        label = "events" if kind == "event" else "decisions (10 items)"
        results.append(
            Result(
                f"validate + normalise + encode {label}",
                count / t_ours,
                "records/s",
                "msgspec typed decode only",
                count / t_floor,
            )
        )
        if kind == "event":
            bodies = [raws[start : start + 1000] for start in range(0, count, 1000)]

            def hot(bodies: list[list[bytes]] = bodies, received: int = received) -> None:
                for body in bodies:
                    prepare_batch("event", body, received_us=received, source="http")

            results.append(
                Result(
                    "events, the service's hot path (prepare_batch of 1,000-line bodies)",
                    count / best_of(3, hot),
                    "records/s",
                    "msgspec typed decode only",
                    count / t_floor,
                )
            )
    return results
