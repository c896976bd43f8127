"""AsyncClient: the same contract as Client, inside an event loop (run with asyncio.run)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sdk_fakes import FAST, URL, FakeServer, spooled_files

from revealed.sdk import AsyncClient, RecordError

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), 30)

    return asyncio.run(bounded())


def make(server: FakeServer, **options: Any) -> AsyncClient:
    return AsyncClient(URL, transport=httpx.MockTransport(server), **{**FAST, **options})


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.002)
    return predicate()


def test_records_are_sent_as_ndjson_with_ids_and_timestamps(server: FakeServer) -> None:
    async def main() -> None:
        async with make(server, api_key="rk_k", batch_size=4, flush_interval_s=60) as client:
            events = [client.log_event("click", n=n) for n in range(6)]
            decision = client.log_decision(["sku-1", {"item_id": "sku-2", "score": 0.5}], user_id="u")
            assert client.log_event("click", event_id="mine") == "mine"
            assert client.log_item("sku-1", features={"price": 1.0}) == "sku-1"
            assert await client.flush(timeout_s=10)
            assert server.delivered() == [*events, "mine"]
            assert server.delivered("decision") == [decision]
            assert server.delivered("item") == ["sku-1"]
            assert client.stats.accepted == 9
            assert all(len(s.records) <= 4 for s in server.requests())

    run(main)
    for seen in server.requests():
        assert seen.path == f"/v1/{seen.kind}s"
        assert seen.headers["content-type"] == "application/x-ndjson"
        assert seen.headers["authorization"] == "Bearer rk_k"
        if seen.kind != "item":
            assert all(isinstance(r["timestamp"], int) for r in seen.records)
    assert len({i for s in server.requests() for i in s.ids}) == 9


def test_a_partial_batch_goes_after_flush_interval(server: FakeServer) -> None:
    async def main() -> None:
        async with make(server, batch_size=1000, flush_interval_s=0.05) as client:
            ids = [client.log_event("view") for _ in range(3)]
            assert await eventually(lambda: server.delivered() == ids)

    run(main)


def test_a_503_is_retried_with_the_same_ids_then_succeeds() -> None:
    server = FakeServer(script=[503, "connect", 429])

    async def main() -> None:
        async with make(server, batch_size=3, flush_interval_s=60) as client:
            ids = [client.log_event("view") for _ in range(3)]
            assert await client.flush(timeout_s=10)
            assert [s.ids for s in server.requests()] == [ids] * 4
            assert server.delivered() == ids
            assert client.stats.retries == 3
            assert client.stats.accepted == 3

    run(main)


def test_a_400_is_never_retried_and_reaches_on_error() -> None:
    server = FakeServer(script=[400])
    errors: list[RecordError] = []

    async def main() -> None:
        async with make(server, batch_size=2, flush_interval_s=60, on_error=errors.append) as client:
            ids = [client.log_event("view") for _ in range(2)]
            assert await client.flush(timeout_s=10)
            assert len(server.requests()) == 1
            assert client.stats.failed == 2
            assert client.stats.retries == 0
            assert errors == [RecordError("event", i, "http 400", ["the server said 400"]) for i in ids]

    run(main)


def test_rejected_rows_reach_on_error() -> None:
    server = FakeServer(reject=lambda r: ["bad: no"] if r.get("bad") else [])
    errors: list[RecordError] = []
    results: list[list[str]] = []

    async def main() -> None:
        async with make(
            server,
            batch_size=2,
            flush_interval_s=60,
            on_error=errors.append,
            on_result=lambda kind, records, statuses: results.append(statuses),
        ) as client:
            client.log_event("view")
            bad = client.log_event("view", bad=True)
            assert await client.flush(timeout_s=10)
            assert errors == [RecordError("event", bad, "rejected", ["bad: no"])]
            assert results == [["accepted", "rejected"]]
            assert client.stats.rejected == 1

    run(main)


def test_the_spool_holds_batches_and_replays_them_in_order(tmp_path: Path) -> None:
    server = FakeServer()
    server.down = True

    async def main() -> None:
        async with make(server, spool_dir=tmp_path, batch_size=3, max_retries=1) as client:
            logged = [client.log_event("view") for _ in range(7)]
            assert await client.flush(timeout_s=10)
            assert len(spooled_files(tmp_path)) == 3
            assert client.stats.spooled == 7
            logged += [client.log_event("view") for _ in range(2)]
            assert await client.flush(timeout_s=10)
            assert client.stats.spooled == 9
            server.recover()
            logged += [client.log_event("view") for _ in range(2)]
            assert await eventually(lambda: len(server.delivered()) == 11)
            assert server.delivered() == logged
            assert [i for s in server.requests() if s.action == "ok" for i in s.ids] == logged
            assert await eventually(lambda: client.stats.replayed == 9)  # counted just after delivery
        assert spooled_files(tmp_path) == []

    run(main)


def test_a_new_client_replays_what_a_closed_one_spooled(tmp_path: Path) -> None:
    server = FakeServer()
    server.down = True

    async def main() -> None:
        first = make(server, spool_dir=tmp_path, batch_size=2, max_retries=0)
        async with first:
            events = [first.log_event("view") for _ in range(5)]
            decisions = [first.log_decision(["a"]) for _ in range(3)]
        assert first.stats.spooled == 8
        assert server.delivered() == []
        server.recover()
        async with make(server, spool_dir=tmp_path) as second:  # nothing logged: replays on start
            assert await eventually(lambda: server.total_delivered() == 8)
            assert await eventually(lambda: second.stats.replayed == 8)  # counted just after delivery
        assert server.delivered() == events
        assert server.delivered("decision") == decisions
        assert spooled_files(tmp_path) == []

    run(main)


def test_a_second_client_on_the_same_spool_dir_is_refused(tmp_path: Path, server: FakeServer) -> None:
    async def main() -> None:
        async with make(server, spool_dir=tmp_path):
            with pytest.raises(RuntimeError, match="used by another process"):
                make(server, spool_dir=tmp_path)
        async with make(server, spool_dir=tmp_path):
            pass

    run(main)


def test_without_a_spool_an_unreachable_server_drops_records() -> None:
    server = FakeServer()
    server.down = True
    errors: list[RecordError] = []

    async def main() -> None:
        async with make(server, max_retries=2, flush_interval_s=60, on_error=errors.append) as client:
            client.log_event("view")
            assert await client.flush(timeout_s=10)
            assert client.stats.dropped == 1
            assert client.stats.retries == 2
            assert [e.status for e in errors] == ["dropped"]

    run(main)


def test_flush_times_out_while_the_server_keeps_failing(server: FakeServer) -> None:
    server.fallback = 503

    async def main() -> None:
        async with make(server, max_retries=10_000, flush_interval_s=60) as client:
            event_id = client.log_event("view")
            assert await client.flush(timeout_s=0.2) is False
            server.recover()
            assert await client.flush(timeout_s=10) is True
            assert server.delivered() == [event_id]

    run(main)


def test_close_flushes_and_is_idempotent_without_async_with(server: FakeServer) -> None:
    async def main() -> None:
        client = make(server, flush_interval_s=60)
        ids = [client.log_event("view") for _ in range(4)]  # the first log starts the sender
        await client.close()
        assert server.delivered() == ids
        await client.close()
        await client.close(timeout_s=0)
        assert len(server.requests()) == 1

    run(main)


def test_close_without_anything_logged(server: FakeServer, tmp_path: Path) -> None:
    async def main() -> None:
        client = make(server, spool_dir=tmp_path)
        await client.close()
        await client.close()
        await make(server, spool_dir=tmp_path).close()  # the spool was released

    run(main)
    assert server.requests() == []


def test_async_with_closes_on_an_exception(server: FakeServer) -> None:
    logged: list[str] = []

    async def use() -> None:
        async with make(server, flush_interval_s=60) as client:
            logged.append(client.log_event("view"))
            raise KeyError("boom")

    async def main() -> None:
        with pytest.raises(KeyError):
            await use()

    run(main)
    assert server.delivered() == logged


def test_an_on_error_callback_that_raises_does_not_stop_delivery() -> None:
    """A bug in the application's callback must not silently kill the sender task."""
    server = FakeServer(script=[400])

    def on_error(error: RecordError) -> None:
        raise RuntimeError("bug in the application's callback")

    async def main() -> None:
        client = make(server, on_error=on_error)
        try:
            client.log_event("view")
            await client.flush(timeout_s=1)
            later = client.log_event("view")
            assert await client.flush(timeout_s=2), "the sender task died: flush never completes"
            assert server.delivered() == [later]
        finally:
            with contextlib.suppress(Exception):
                await client.close(timeout_s=0.1)

    run(main)
