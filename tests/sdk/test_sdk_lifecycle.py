"""Client: flush(), close(), the context manager, and logging from many threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sdk_fakes import FAST, URL, FakeServer

from revealed.sdk import Client, RecordError

pytestmark = pytest.mark.timeout(60)
MakeClient = Callable[..., Client]


def test_flush_returns_true_once_everything_is_acknowledged(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(batch_size=50, flush_interval_s=60)
    ids = [client.log_event("view") for _ in range(120)]
    assert client.flush(timeout_s=10) is True
    assert server.delivered() == ids  # already there when flush returns
    assert client.stats.accepted == 120
    assert client.flush(timeout_s=0.01) is True  # nothing new: at once


def test_flush_times_out_while_the_server_hangs(make_client: MakeClient) -> None:
    server = FakeServer(script=["hang"])
    client = make_client(via=server, flush_interval_s=60)
    event_id = client.log_event("view")
    started = time.monotonic()
    assert client.flush(timeout_s=0.3) is False
    assert 0.25 <= time.monotonic() - started < 5
    server.release.set()
    assert client.flush(timeout_s=10) is True
    assert server.delivered() == [event_id]


def test_flush_times_out_while_the_server_keeps_failing_without_a_spool(make_client: MakeClient) -> None:
    server = FakeServer()
    server.fallback = 503
    client = make_client(via=server, flush_interval_s=60, max_retries=10_000)
    event_id = client.log_event("view")
    assert client.flush(timeout_s=0.3) is False
    assert client.stats.retries > 0
    server.recover()
    assert client.flush(timeout_s=10) is True
    assert server.delivered() == [event_id]
    assert client.stats.dropped == 0


def test_close_flushes_and_is_idempotent(server: FakeServer) -> None:
    client = Client(URL, transport=httpx.MockTransport(server), **{**FAST, "flush_interval_s": 60})
    ids = [client.log_event("view") for _ in range(7)]
    client.close()
    assert server.delivered() == ids
    assert not client._thread.is_alive()
    client.close()
    client.close(timeout_s=0)
    assert len(server.requests()) == 1


def test_the_context_manager_flushes_and_closes(server: FakeServer, tmp_path: Path) -> None:
    with Client(URL, transport=httpx.MockTransport(server), spool_dir=tmp_path, **FAST) as client:
        ids = [client.log_event("view") for _ in range(5)]
        decision = client.log_decision(["a"])
    assert server.delivered() == ids
    assert server.delivered("decision") == [decision]
    assert not client._thread.is_alive()
    Client(URL, transport=httpx.MockTransport(server), spool_dir=tmp_path).close()  # spool released


def test_the_context_manager_closes_on_an_exception(server: FakeServer) -> None:
    logged: list[str] = []

    def use() -> None:
        with Client(URL, transport=httpx.MockTransport(server), **FAST) as client:
            logged.append(client.log_event("view"))
            raise KeyError("boom")

    with pytest.raises(KeyError):
        use()
    assert server.delivered() == logged


def test_close_with_the_server_down_keeps_the_records_in_the_spool(
    tmp_path: Path, make_client: MakeClient
) -> None:
    server = FakeServer()
    server.down = True
    client = make_client(via=server, spool_dir=tmp_path, flush_interval_s=60, max_retries=1)
    for _ in range(3):
        client.log_event("view")
    started = time.monotonic()
    client.close(timeout_s=10)
    assert time.monotonic() - started < 5
    assert client.stats.spooled == 3
    assert len(list(tmp_path.glob("*.ndjson"))) == 1


def test_eight_threads_logging_concurrently_deliver_every_id_exactly_once(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(batch_size=500)
    threads, per_thread = 8, 5_000
    start = threading.Barrier(threads)
    returned: list[list[str]] = [[] for _ in range(threads)]

    def log(slot: int) -> None:
        start.wait()
        out = returned[slot]
        for n in range(per_thread):
            out.append(client.log_event("view", thread=slot, n=n))

    workers = [threading.Thread(target=log, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert client.flush(timeout_s=30)

    delivered = server.delivered()
    sent = [i for s in server.requests() for i in s.ids]
    everyone = [i for ids in returned for i in ids]
    assert len(everyone) == len(set(everyone)) == threads * per_thread
    assert len(sent) == len(set(sent)) == threads * per_thread  # no id sent twice
    assert sorted(delivered) == sorted(everyone)
    assert client.stats.accepted == threads * per_thread
    assert client.stats.duplicate == 0
    # each thread's own records arrive in the order it logged them
    position = {event_id: n for n, event_id in enumerate(delivered)}
    for ids in returned:
        assert [position[i] for i in ids] == sorted(position[i] for i in ids)


def test_flush_from_several_threads_while_others_log(server: FakeServer, make_client: MakeClient) -> None:
    client = make_client(batch_size=100)
    outcomes: list[bool] = []

    def log_and_flush() -> None:
        for _ in range(2_000):
            client.log_event("view")
        outcomes.append(client.flush(timeout_s=20))

    workers = [threading.Thread(target=log_and_flush) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert outcomes == [True] * 4
    assert client.flush(timeout_s=20)
    assert len(set(server.delivered())) == 8_000


def test_an_on_error_callback_that_raises_does_not_stop_delivery(make_client: MakeClient) -> None:
    """A bug in the application's callback must not silently kill the sender thread."""
    server = FakeServer(script=[400])
    seen: list[RecordError] = []

    def on_error(error: RecordError) -> None:
        seen.append(error)
        raise RuntimeError("bug in the application's callback")

    client = make_client(via=server, flush_interval_s=0.01, on_error=on_error)
    try:
        client.log_event("view")
        client.flush(timeout_s=1)
        assert len(seen) == 1
        later = client.log_event("view")
        assert client.flush(timeout_s=2), "the sender thread died: flush never completes"
        assert server.delivered() == [later]
    finally:
        client.close(timeout_s=0.1)


def test_an_answer_that_is_not_an_ingest_result_does_not_stop_delivery(make_client: MakeClient) -> None:
    """A 200 the SDK cannot read (a proxy's HTML page) must not silently kill the sender thread."""
    server = FakeServer(script=["garbage-200"])
    client = make_client(via=server, flush_interval_s=0.01)
    try:
        client.log_event("view")
        client.flush(timeout_s=1)
        later = client.log_event("view")
        assert client.flush(timeout_s=2), "the sender thread died: flush never completes"
        assert later in server.delivered()
    finally:
        client.close(timeout_s=0.1)
