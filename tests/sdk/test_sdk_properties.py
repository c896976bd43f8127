"""Property: whatever the server answers meanwhile, every record is accepted once, in order per kind."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sdk_fakes import URL, FakeServer, wait_until

from revealed.sdk import AsyncClient, Client

pytestmark = pytest.mark.timeout(120)

KINDS = ("event", "decision", "item")
#: what the server does with one request: take it, fail it (retryable), or be unreachable
RESPONSES = st.sampled_from(["ok", 500, 429, "connect"])
#: a burst of `count` records of one kind, optionally followed by flush()
BURSTS = st.tuples(st.sampled_from(KINDS), st.integers(1, 7), st.booleans())


def _client(server: FakeServer, spool: str) -> Client:
    return Client(
        URL,
        transport=httpx.MockTransport(server),
        spool_dir=spool,
        batch_size=3,
        max_retries=1,  # give up quickly so that the spool is used
        flush_interval_s=0.005,
        backoff_base_s=0.0005,
        backoff_max_s=0.001,
    )


def _log(client: Client | AsyncClient, kind: str, n: int) -> str:
    if kind == "event":
        return client.log_event("view", n=n)
    if kind == "decision":
        return client.log_decision([f"sku-{n}"], n=n)
    return client.log_item(f"sku-{n}", features={"n": n})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    responses=st.lists(RESPONSES, max_size=16),
    bursts=st.lists(BURSTS, min_size=1, max_size=6),
    restart=st.booleans(),
)
def test_every_record_is_accepted_exactly_once_and_in_order_per_kind(
    responses: list[Any], bursts: list[tuple[str, int, bool]], restart: bool
) -> None:
    server = FakeServer(script=responses)  # then healthy for good
    logged: dict[str, list[str]] = {k: [] for k in KINDS}
    serial = 0
    with tempfile.TemporaryDirectory() as spool:
        client = _client(server, spool)
        try:
            for kind, count, flush in bursts:
                for _ in range(count):
                    logged[kind].append(_log(client, kind, serial))
                    serial += 1
                if flush:
                    assert client.flush(timeout_s=10)
            event(f"spooled before the end: {client.stats.spooled > 0}")
            if restart:  # the process stops (what was not sent stays spooled) and starts again
                client.close(timeout_s=10)
                client = _client(server, spool)
            total = sum(len(ids) for ids in logged.values())
            assert wait_until(lambda: server.total_delivered() == total, timeout_s=20)
            assert wait_until(lambda: not list(Path(spool).glob("*.ndjson")), timeout_s=5)
        finally:
            client.close(timeout_s=10)

    _assert_delivered_once_in_order(server, logged)


def _assert_delivered_once_in_order(server: FakeServer, logged: dict[str, list[str]]) -> None:
    for kind in KINDS:
        # every request the server took carried new ids only, in the order they were logged
        taken = [i for s in server.requests(kind) if s.action == "ok" for i in s.ids]
        assert taken == logged[kind]
        assert server.delivered(kind) == logged[kind]


async def _recovered(server: FakeServer, logged: dict[str, list[str]], spool: str) -> None:
    total = sum(len(ids) for ids in logged.values())
    for _ in range(10_000):
        if server.total_delivered() == total and not list(Path(spool).glob("*.ndjson")):
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"delivered {server.total_delivered()} of {total}")


def _async_client(server: FakeServer, spool: str) -> AsyncClient:
    return AsyncClient(
        URL,
        transport=httpx.MockTransport(server),
        spool_dir=spool,
        batch_size=3,
        max_retries=1,
        flush_interval_s=0.005,
        backoff_base_s=0.0005,
        backoff_max_s=0.001,
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    responses=st.lists(RESPONSES, max_size=16),
    bursts=st.lists(BURSTS, min_size=1, max_size=6),
    restart=st.booleans(),
)
def test_async_every_record_is_accepted_exactly_once_and_in_order_per_kind(
    responses: list[Any], bursts: list[tuple[str, int, bool]], restart: bool
) -> None:
    server = FakeServer(script=responses)
    logged: dict[str, list[str]] = {k: [] for k in KINDS}

    async def main(spool: str) -> None:
        serial = 0
        client = _async_client(server, spool)
        try:
            async with client:
                for kind, count, flush in bursts:
                    for _ in range(count):
                        logged[kind].append(_log(client, kind, serial))
                        serial += 1
                    if flush:
                        assert await client.flush(timeout_s=10)
                if not restart:
                    await _recovered(server, logged, spool)
            if restart:  # a new client on the same spool replays what the first left behind
                client = _async_client(server, spool)
                async with client:
                    await _recovered(server, logged, spool)
        finally:
            await client.close()

    with tempfile.TemporaryDirectory() as spool:
        asyncio.run(asyncio.wait_for(main(spool), 60))
    _assert_delivered_once_in_order(server, logged)
