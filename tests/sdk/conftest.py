"""Fixtures for SDK tests: a fake server and clients wired to it, closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sdk_fakes import FAST, URL, FakeServer

from revealed.sdk import Client


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def make_client(server: FakeServer) -> Iterator[Callable[..., Client]]:
    """`make_client(**options)`: a Client on `server` (or `via=` another FakeServer), FAST options."""
    made: list[tuple[Client, FakeServer]] = []

    def make(*, via: FakeServer | None = None, **options: Any) -> Client:
        fake = via or server
        client = Client(URL, transport=httpx.MockTransport(fake), **{**FAST, **options})
        made.append((client, fake))
        return client

    yield make
    for client, fake in made:
        fake.recover()
        client.close(timeout_s=10)
