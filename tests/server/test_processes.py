"""Several worker processes and several server processes on one data directory: nothing lost,
nothing stored twice, one sealer at a time."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import NDJSON, ROUTES, ServeProcess, event, ndjson

from revealed.store import Store

HEADERS = {"content-type": NDJSON}


def metric_total(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def wait_until_sealed(urls: list[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(metric_total(url, "revealed_journal_unsealed_rows") for url in urls):
        assert time.monotonic() < deadline, "the journal was never drained"
        time.sleep(0.2)


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def delta_commits(table: Path) -> list[dict[str, Any]]:
    """Per Delta commit that added rows: its journal transaction (app id, version) and row count."""
    commits = []
    for log in sorted((table / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        txns = [a["txn"] for a in actions if "txn" in a]
        rows = sum(json.loads(a["add"]["stats"])["numRecords"] for a in actions if "add" in a)
        if rows:
            commits.append({"txns": txns, "rows": rows})
    return commits


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """`revealed serve --workers 2` and a second `revealed serve`, both on one data directory."""
    data = tmp_path / "data"
    first = ServeProcess(data, "--workers", "2")
    second = ServeProcess(data)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        for server in (first, second):
            server.stop()


@pytest.mark.slow
def test_many_processes_store_every_row_exactly_once(servers: tuple[ServeProcess, ServeProcess]) -> None:
    first, second = servers
    assert len(children(first.proc.pid)) >= 2  # type: ignore[union-attr]  # the two workers
    senders, batches, rows_per_batch, shared_batches = 6, 60, 20, 40

    def distinct(sender: int) -> list[httpx.Response]:
        url = (first if sender % 2 else second).url + ROUTES["event"]
        with httpx.Client(timeout=60) as client:
            return [
                client.post(
                    url,
                    content=ndjson(
                        [event(f"s{sender}-b{b}-{i}") for i in range(rows_per_batch)]
                        + [event(f"bad-s{sender}-b{b}", type="nope")]
                    ),
                    headers=HEADERS,
                )
                for b in range(batches)
            ]

    start = threading.Barrier(2)

    def shared(url: str) -> list[httpx.Response]:
        """The same batches to both servers at once: a client retrying against another instance."""
        start.wait()
        with httpx.Client(timeout=60) as client:
            return [
                client.post(
                    url + ROUTES["event"],
                    content=ndjson([event(f"shared-{b}-{i}") for i in range(rows_per_batch)]),
                    headers=HEADERS,
                )
                for b in range(shared_batches)
            ]

    with ThreadPoolExecutor(senders + 2) as pool:
        own = [pool.submit(distinct, s) for s in range(senders)]
        both = [pool.submit(shared, server.url) for server in servers]
        own_responses = [r for f in own for r in f.result()]
        shared_responses = [f.result() for f in both]

    expected: set[str] = set()
    accepted_by: Counter[str] = Counter()
    for response in own_responses:
        assert response.status_code == 200, response.text
        assert response.json()["statuses"] == ["accepted"] * rows_per_batch + ["rejected"]
    for s in range(senders):
        expected |= {f"s{s}-b{b}-{i}" for b in range(batches) for i in range(rows_per_batch)}
    for server, responses in zip(servers, shared_responses, strict=True):
        for b, response in enumerate(responses):
            assert response.status_code == 200, response.text
            for i, status in enumerate(response.json()["statuses"]):
                assert status in ("accepted", "duplicate")
                if status == "accepted":
                    accepted_by[f"shared-{b}-{i}"] += 1
                    accepted_by[server.url] += 1
    shared_ids = {f"shared-{b}-{i}" for b in range(shared_batches) for i in range(rows_per_batch)}
    assert all(accepted_by[i] == 1 for i in shared_ids), "a shared row accepted twice or never"
    expected |= shared_ids

    # each server's metrics (the two workers' aggregated) count what it accepted
    own_by_server = Counter((first if s % 2 else second).url for s in range(senders))
    for server in servers:
        accepted = own_by_server[server.url] * batches * rows_per_batch + accepted_by[server.url]
        assert metric_total(server.url, "revealed_rows_total", table="events", status="accepted") == accepted
        assert metric_total(server.url, "revealed_rows_total", status="duplicate") == (
            shared_batches * rows_per_batch - accepted_by[server.url]
        )

    wait_until_sealed([first.url, second.url])
    for server in servers:
        # uvicorn re-raises SIGTERM after its graceful shutdown; the workers' parent exits 0
        assert server.stop() in (0, -signal.SIGTERM), server.output()
        assert "Application shutdown complete" in server.output()

    with Store.open(first.data) as store:
        assert store.seal().total == 0  # the servers sealed everything before they stopped
        assert sum(store.unsealed().values()) == 0
        ids = store.table("events").to_pyarrow_table().column("event_id").to_pylist()
        quarantined = store.table("quarantine").to_pyarrow_table().column("record_id").to_pylist()
    assert len(ids) == len(set(ids)), "an event stored twice"
    assert set(ids) == expected
    assert sorted(quarantined) == sorted(f"bad-s{s}-b{b}" for s in range(senders) for b in range(batches))

    # one sealer at a time: each journal sequence range was committed to Delta once, in order
    commits = delta_commits(first.data / "tables" / "events")
    versions = [txn["version"] for c in commits for txn in c["txns"]]
    assert all(len(c["txns"]) == 1 for c in commits)
    assert versions == sorted(versions)
    assert len(versions) == len(set(versions))
    assert sum(c["rows"] for c in commits) == len(ids)


def test_two_servers_share_the_id_index(tmp_path: Path) -> None:
    """A retry sent to another server over the same data directory is a duplicate there (and the
    body limit is set through the environment)."""
    data = tmp_path / "data"
    first, second = ServeProcess(data), ServeProcess(data, env={"REVEALED_MAX_BODY_BYTES": "4096"})
    try:
        first.start()
        second.start()
        body = ndjson([event("once"), event("twice")])
        assert httpx.post(first.url + ROUTES["event"], content=body, headers=HEADERS).json()["statuses"] == [
            "accepted",
            "accepted",
        ]
        retried = httpx.post(second.url + ROUTES["event"], content=ndjson([event("twice")]), headers=HEADERS)
        assert retried.json()["statuses"] == ["duplicate"]
        conflict = httpx.post(
            second.url + ROUTES["event"], content=ndjson([event("once", type="purchase")]), headers=HEADERS
        )
        assert conflict.status_code == 422
        assert conflict.json()["statuses"] == ["conflict"]
        big = ndjson([event(f"big-{i}") for i in range(60)])
        assert httpx.post(first.url + ROUTES["event"], content=big, headers=HEADERS).status_code == 200
        assert httpx.post(second.url + ROUTES["event"], content=big, headers=HEADERS).status_code == 413
        wait_until_sealed([first.url, second.url])
    finally:
        for server in (first, second):
            server.stop()
    with Store.open(data) as store:
        store.seal()
        ids = store.table("events").to_pyarrow_table().column("event_id").to_pylist()
        (conflicted,) = store.table("quarantine").to_pyarrow_table().to_pylist()
    assert sorted(ids) == sorted(["once", "twice", *(f"big-{i}" for i in range(60))])
    assert conflicted["reason"] == "id_conflict"


def test_serve_seal_lag_sets_how_long_rows_wait_to_be_sealed(tmp_path: Path) -> None:
    quick = ServeProcess(tmp_path / "quick" / "data", "--seal-lag", "0.2")
    default = ServeProcess(tmp_path / "default" / "data")
    for server in (quick, default):
        server.data.parent.mkdir(parents=True)
        server.start()
    try:
        for server in (quick, default):
            body = ndjson([event(f"e{i}") for i in range(5)])
            assert httpx.post(server.url + ROUTES["event"], content=body, headers=HEADERS).status_code == 200
        wait_until_sealed([quick.url], timeout_s=4)  # the default lag would take 5 s and more
        assert metric_total(default.url, "revealed_journal_unsealed_rows") == 5, "posted under 4 s ago"
    finally:
        quick.stop()
        default.stop()
