"""Records, bodies and `revealed serve` processes shared by the service tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import pyarrow as pa
from fastapi.testclient import TestClient

from revealed.server.deps import Service
from revealed.store import Store

__all__ = [
    "JSON",
    "KINDS",
    "NDJSON",
    "REVEALED",
    "ROUTES",
    "T0_MS",
    "ServeProcess",
    "decision",
    "event",
    "free_port",
    "item",
    "ndjson",
    "record",
    "sealed_tables",
    "service_of",
]

JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
T0_MS: Final = 1_769_860_805_000
KINDS: Final = ("decision", "event", "item")
ROUTES: Final = {kind: f"/v1/{kind}s" for kind in KINDS}
REVEALED: Final = str(Path(sys.executable).with_name("revealed"))


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "timestamp": T0_MS, "type": "click", "user_id": "u-1", **fields}


def decision(decision_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "timestamp": T0_MS,
        "user_id": "u-1",
        "items": [{"item_id": "sku-1", "cond_propensity": 0.5}, {"item_id": "sku-2"}],
        **fields,
    }


def item(item_id: str, **fields: Any) -> dict[str, Any]:
    return {"item_id": item_id, "valid_from": T0_MS, "features": {"price": 9.5}, **fields}


def record(kind: str, record_id: str, **fields: Any) -> dict[str, Any]:
    """A valid record of one kind."""
    return {"decision": decision, "event": event, "item": item}[kind](record_id, **fields)


def ndjson(rows: Iterable[Mapping[str, Any] | bytes]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def service_of(client: TestClient) -> Service:
    """The running service behind an in-process client."""
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    return service


def sealed_tables(store: Store, names: Sequence[str] = ("events", "quarantine")) -> dict[str, pa.Table]:
    """Seal the store now and read the named Delta tables."""
    store.seal()
    return {name: store.table(name).to_pyarrow_table() for name in names}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`revealed serve` as a child process on a free port; its output is kept in a file."""

    def __init__(
        self, data: Path, *args: str, port: int | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.data = data
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"serve-{self.port}.log"
        self.args = ["--port", str(self.port), "--log-level", "info", *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> ServeProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("REVEALED_DATA", "PROMETHEUS_MULTIPROC_DIR")}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [REVEALED, "--data", str(self.data), "serve", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, "COLUMNS": "200", **self.env},
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"revealed serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"revealed serve did not come up:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it hangs; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def listening_addresses(self) -> set[str]:
        """The local IPv4/IPv6 addresses a socket LISTENs on at this port (from /proc/net)."""
        found: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                address, port = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(port, 16) == self.port:
                    found.add(address)
        return found
