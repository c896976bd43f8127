"""Under load from the SDK, the server is killed with SIGKILL and restarted: nothing the SDK was
told is stored is lost, nothing is stored twice, and everything else arrives after the restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Server

from revealed.sdk import Client
from revealed.settings import Settings
from revealed.store import Store


def stored_event_ids(data: Path) -> list[str]:
    with Store(Settings(data_dir=data)) as store:
        store.seal()
        return store.table("events").to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()


@pytest.mark.parametrize(
    "kills", [pytest.param(1, id="once"), pytest.param(3, id="thrice", marks=pytest.mark.slow)]
)
def test_kill_and_restart_under_load_loses_and_doubles_nothing(
    server: Server, tmp_path: Path, kills: int
) -> None:
    told: set[str] = set()
    lock = threading.Lock()

    def on_result(kind: str, records: list[dict[str, Any]], statuses: list[str]) -> None:
        with lock:
            told.update(
                r["event_id"]
                for r, s in zip(records, statuses, strict=True)
                if s in ("accepted", "duplicate")
            )

    client = Client(
        server.url,
        batch_size=200,
        flush_interval_s=0.02,
        max_retries=4,
        backoff_base_s=0.05,
        backoff_max_s=0.3,
        spool_dir=tmp_path / "spool",
        on_result=on_result,
        timeout_s=5,
    )
    sent: list[str] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            sent.append(client.log_event("click", user_id=f"u{i % 50}", item_id=f"i{i % 97}"))
            i += 1
            if i % 100 == 0:
                time.sleep(0.01)  # about 10k events/s

    loader = threading.Thread(target=load)
    loader.start()
    told_before_kill: list[set[str]] = []
    for _ in range(kills):
        time.sleep(1.0)
        with lock:
            told_before_kill.append(set(told))
        server.kill()
        time.sleep(0.7)
        server.start()
    time.sleep(0.5)
    stop.set()
    loader.join()
    assert client.flush(120), "everything logged is delivered once the server is back"
    client.close()
    server.stop()

    stored = stored_event_ids(server.data)
    assert len(stored) == len(set(stored)), "no event stored twice"
    assert len(stored) == len(sent), f"sent {len(sent)}, stored {len(stored)}"
    assert set(stored) == set(sent)
    for before in told_before_kill:
        assert before <= set(stored), "every event the SDK was told was stored survived the kill"
    assert client.stats.dropped == client.stats.failed == client.stats.rejected == 0
    assert client.stats.retries > 0 or client.stats.spooled > 0, "the kill was felt"
