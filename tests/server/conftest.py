"""In-process services over a fresh data directory (the lifespan runs: TestClient as a context)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from revealed.server import create_app
from revealed.settings import Settings

MakeClient = Callable[..., TestClient]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_client(data_dir: Path) -> Iterator[MakeClient]:
    """Start a service over `data_dir` with some settings overridden; stopped after the test.

    The background sealer is off (`seal_interval_s` of an hour) so a test seals when it chooses;
    `raise_server_exceptions=False` turns an error in the app into the 500 a client would see.
    """
    with ExitStack() as stack:

        def make(*, raise_server_exceptions: bool = True, **overrides: Any) -> TestClient:
            settings = Settings(**{"data_dir": data_dir, "seal_interval_s": 3600.0, **overrides})
            client = TestClient(create_app(settings), raise_server_exceptions=raise_server_exceptions)
            return stack.enter_context(client)

        yield make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()
