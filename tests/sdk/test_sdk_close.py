"""Closing a client whose server hangs: every record logged is delivered, spooled, or counted
dropped and reported, never lost unseen (Client and AsyncClient)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from sdk_fakes import FAST, URL

from revealed.sdk import AsyncClient, Client, RecordError

pytestmark = pytest.mark.timeout(60)


def slow_503(request: httpx.Request) -> httpx.Response:
    """A server that answers every request late (past the close timeout), and with a 503."""
    time.sleep(1.0)
    return httpx.Response(503, json={"error": "overloaded", "hint": None})


def spooled_ids(directory: Path) -> list[str]:
    return [
        msgspec.json.decode(line)["event_id"]
        for path in sorted(directory.glob("*.ndjson"))
        for line in path.read_bytes().splitlines()
    ]


def test_closing_while_a_request_hangs_spools_the_batch_it_was_sending(tmp_path: Path) -> None:
    options = {**FAST, "max_retries": 5, "batch_size": 10, "flush_interval_s": 60}
    client = Client(URL, transport=httpx.MockTransport(slow_503), spool_dir=tmp_path, **options)
    ids = [client.log_event("click", user_id="u1") for _ in range(10)]

    started = time.monotonic()
    client.close(timeout_s=0.3)

    assert time.monotonic() - started < 5  # the sending request's own time, no more retries
    assert spooled_ids(tmp_path) == ids
    assert (client.stats.spooled, client.stats.dropped) == (10, 0)
    again = Client(URL, transport=httpx.MockTransport(slow_503), spool_dir=tmp_path, **options)
    again.close(timeout_s=0.1)  # the spool was released: another client may take it


def test_closing_while_a_request_hangs_without_a_spool_reports_the_records_dropped() -> None:
    errors: list[RecordError] = []
    options = {**FAST, "max_retries": 5, "batch_size": 10, "flush_interval_s": 60}
    client = Client(URL, transport=httpx.MockTransport(slow_503), on_error=errors.append, **options)
    for _ in range(10):
        client.log_event("click", user_id="u1")

    client.close(timeout_s=0.3)

    assert client.stats.dropped == 10
    assert [(e.status, e.errors[0].split(":")[0]) for e in errors] == [("dropped", "10 records dropped")]


def test_an_async_client_closing_while_a_request_hangs_cancels_it_and_spools_the_batch(
    tmp_path: Path,
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(503)

    async def main() -> tuple[list[str], float, AsyncClient]:
        client = AsyncClient(
            URL,
            transport=httpx.MockTransport(hang),
            spool_dir=tmp_path,
            **{**FAST, "max_retries": 5, "batch_size": 10, "flush_interval_s": 60},
        )
        ids = [client.log_event("click", user_id="u1") for _ in range(10)]
        started = time.monotonic()
        await client.close(timeout_s=0.3)
        return ids, time.monotonic() - started, client

    ids, took, client = asyncio.run(main())

    assert took < 10  # the hanging request (30 s) was cancelled, not waited out
    assert spooled_ids(tmp_path) == ids
    assert (client.stats.spooled, client.stats.dropped) == (10, 0)
