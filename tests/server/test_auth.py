"""API keys: scopes (401 without a valid key, 403 without the scope), digests at rest, the
`revealed keys` commands, and `revealed serve` keeping an open service on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from service_helpers import ROUTES, ServeProcess, event, ndjson
from typer.testing import CliRunner

from revealed.cli.main import app as cli
from revealed.keys import KeyStore

NDJSON_HEADERS = {"content-type": "application/x-ndjson"}


@dataclass
class Keyed:
    client: TestClient
    tokens: dict[str, str]  # by scope: ingest, read, admin
    ids: dict[str, str]


@pytest.fixture
def keyed(make_client: Any, data_dir: Path) -> Keyed:
    """A service started after one key per scope was created (as `revealed keys create` would)."""
    keys = KeyStore(data_dir / "keys.sqlite")
    created = {scope: keys.create(f"{scope}-key", [scope]) for scope in ("ingest", "read", "admin")}
    keys.close()
    return Keyed(
        make_client(),
        {scope: c.token for scope, c in created.items()},
        {scope: c.key.key_id for scope, c in created.items()},
    )


def request(client: TestClient, method: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "POST":
        headers |= NDJSON_HEADERS
        return client.post(path, content=ndjson([event(f"e-{token}")]), headers=headers)
    return client.request(method, path, headers=headers)


ENDPOINTS = [("POST", ROUTES["event"]), ("GET", "/metrics"), ("GET", "/v1/stats"), ("GET", "/v1/keys")]


def test_without_keys_everything_is_open(client: TestClient) -> None:
    for method, path in ENDPOINTS:
        assert request(client, method, path).status_code == 200, path
    assert client.get("/v1/keys").json() == []


# (method, path) -> status for each scope's key
ACCESS = {
    ("POST", ROUTES["event"]): {"ingest": 200, "read": 403, "admin": 200},
    ("POST", ROUTES["decision"]): {"ingest": 422, "read": 403, "admin": 422},  # an event on /v1/decisions
    ("GET", "/metrics"): {"ingest": 403, "read": 200, "admin": 200},
    ("GET", "/v1/stats"): {"ingest": 403, "read": 200, "admin": 200},
    ("GET", "/v1/keys"): {"ingest": 403, "read": 403, "admin": 200},
}


@pytest.mark.parametrize(("method", "path"), list(ACCESS))
def test_each_scope_reaches_only_its_routes(keyed: Keyed, method: str, path: str) -> None:
    for scope, status in ACCESS[(method, path)].items():
        response = request(keyed.client, method, path, keyed.tokens[scope])
        assert response.status_code == status, (scope, response.text)
        if status == 403:
            assert response.json()["error"].startswith("expected a key with the ")
            assert "revealed keys create" in response.json()["hint"]


@pytest.mark.parametrize(("method", "path"), list(ACCESS))
def test_no_valid_key_is_a_401(keyed: Keyed, method: str, path: str) -> None:
    ingest = keyed.tokens["ingest"]
    wrong_secret = "_".join([*ingest.split("_", 2)[:2], "A" * 43])
    for token in (None, "nonsense", "rvk_000000000000_secret", wrong_secret, ingest + "x"):
        response = request(keyed.client, method, path, token)
        assert response.status_code == 401, token
        assert response.json()["error"].startswith("expected a valid API key")
        assert "Authorization: Bearer" in response.json()["hint"]


def test_probes_and_docs_need_no_key(keyed: Keyed) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert keyed.client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "header",
    [
        lambda t: {"Authorization": f"Bearer {t}"},
        lambda t: {"authorization": f"bearer {t}"},
        lambda t: {"Authorization": f"Bearer   {t}  "},
        lambda t: {"X-API-Key": t},
        lambda t: {"x-api-key": t},
    ],
    ids=["bearer", "lowercase", "padded", "x-api-key", "x-api-key-lowercase"],
)
def test_a_key_is_sent_as_bearer_or_x_api_key(keyed: Keyed, header: Any) -> None:
    response = keyed.client.post(
        ROUTES["event"],
        content=ndjson([event("via-header")]),
        headers={**header(keyed.tokens["ingest"]), **NDJSON_HEADERS},
    )
    assert response.status_code == 200, response.text


def test_an_admin_key_manages_keys_over_http(keyed: Keyed) -> None:
    client, admin = keyed.client, {"Authorization": f"Bearer {keyed.tokens['admin']}"}

    created = client.post("/v1/keys", json={"name": "loader", "scopes": ["ingest"]}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "loader"
    assert body["scopes"] == ["ingest"]
    assert body["revoked_at"] is None
    token = body["token"]
    assert token.startswith(f"rvk_{body['key_id']}_")

    listed = client.get("/v1/keys", headers=admin).json()
    assert sorted(k["name"] for k in listed) == ["admin-key", "ingest-key", "loader", "read-key"]
    assert all("token" not in k for k in listed)
    assert token not in json.dumps(listed)

    assert request(client, "POST", ROUTES["event"], token).status_code == 200
    assert client.delete(f"/v1/keys/{body['key_id']}", headers=admin).status_code == 204
    # revoked through this service: refused at once (the cache was cleared)
    assert request(client, "POST", ROUTES["event"], token).status_code == 401
    again = client.delete(f"/v1/keys/{body['key_id']}", headers=admin)
    assert again.status_code == 404
    assert body["key_id"] in again.json()["error"]
    assert client.delete("/v1/keys/nope", headers=admin).status_code == 404
    (revoked,) = [k for k in client.get("/v1/keys", headers=admin).json() if k["key_id"] == body["key_id"]]
    assert revoked["revoked_at"] is not None


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["root"]},
        {"name": "x"},
    ],
)
def test_an_invalid_key_request_is_a_422_problem(keyed: Keyed, payload: dict[str, Any]) -> None:
    response = keyed.client.post("/v1/keys", json=payload, headers={"X-API-Key": keyed.tokens["admin"]})
    assert response.status_code == 422
    assert response.json()["error"]


def test_a_key_revoked_elsewhere_is_refused_by_a_fresh_service(
    keyed: Keyed, make_client: Any, data_dir: Path
) -> None:
    """Another process (here: the CLI) revokes; a service that has not cached the key refuses it."""
    assert request(keyed.client, "POST", ROUTES["event"], keyed.tokens["ingest"]).status_code == 200
    result = CliRunner().invoke(cli, ["--data", str(data_dir), "keys", "revoke", keyed.ids["ingest"]])
    assert result.exit_code == 0, result.output

    fresh = make_client()
    assert request(fresh, "POST", ROUTES["event"], keyed.tokens["ingest"]).status_code == 401
    assert request(fresh, "GET", "/metrics", keyed.tokens["read"]).status_code == 200


def test_revoking_every_key_keeps_the_door_shut(keyed: Keyed, make_client: Any, data_dir: Path) -> None:
    keys = KeyStore(data_dir / "keys.sqlite")
    assert all(keys.revoke(key_id) for key_id in keyed.ids.values())
    keys.close()

    fresh = make_client()
    for method, path in ENDPOINTS:
        assert request(fresh, method, path).status_code == 401, path


def test_tokens_are_stored_only_as_sha256_digests(keyed: Keyed, data_dir: Path) -> None:
    stored = b"".join(p.read_bytes() for p in data_dir.glob("keys.sqlite*"))
    with sqlite3.connect(data_dir / "keys.sqlite") as db:
        rows = dict(db.execute("SELECT key_id, digest FROM keys").fetchall())
    db.close()
    for scope, token in keyed.tokens.items():
        secret = token.split("_", 2)[2]
        assert len(secret) >= 43  # 256 random bits, url-safe base64
        assert token.encode() not in stored
        assert secret.encode() not in stored
        assert rows[keyed.ids[scope]] == hashlib.sha256(token.encode()).digest()


class _CountingDb:
    """A KeyStore's connection, counting its statements."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.statements = db, 0

    def execute(self, *args: Any) -> sqlite3.Cursor:
        self.statements += 1
        return self.db.execute(*args)

    def close(self) -> None:
        self.db.close()


def test_a_key_id_is_looked_up_once_per_ttl_found_or_not_and_a_malformed_token_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite")
    token = keys.create("loader", ["ingest"]).token
    counted = _CountingDb(keys._db)
    monkeypatch.setattr(keys, "_db", counted)

    assert all(keys.verify(token) is not None for _ in range(100))
    assert counted.statements == 1
    unknown = "rvk_0123456789ab_" + "x" * 43
    assert all(keys.verify(unknown) is None for _ in range(100))
    assert counted.statements == 2
    key_id = token.split("_")[1]
    assert keys.verify(f"rvk_{key_id}_{'y' * 43}") is None  # a known id, a wrong secret: cached
    for malformed in ("", "rvk", "rvk__x", "rvk_NOTHEX123456_x", "Bearer rvk_0123456789ab", "a_b_c"):
        assert keys.verify(malformed) is None
    assert counted.statements == 2
    for i in range(5000):  # a flood of well-formed unknown ids: the cache stays bounded
        keys.verify(f"rvk_{i:012x}_secret")
    assert len(keys._cache) <= 4096
    keys.close()


def test_keys_are_enforced_from_the_first_request_even_just_after_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    KeyStore(tmp_path / "keys.sqlite").create("loader", ["ingest"])
    monkeypatch.setattr("revealed.keys.time.monotonic", lambda: 3.0)  # a machine up for 3 s
    fresh = KeyStore(tmp_path / "keys.sqlite")
    assert fresh.enforced()
    fresh.close()


def test_digests_are_compared_in_constant_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite")
    token = keys.create("loader", ["ingest"]).token
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("revealed.keys.hmac.compare_digest", spy)
    wrong = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    assert keys.verify(token) is not None
    assert keys.verify(wrong) is None
    assert keys.verify("rvk_0123456789ab_" + "x" * 43) is None  # unknown: compared against nothing
    assert [a for a, _ in compared] == [hashlib.sha256(t.encode()).digest() for t in (token, wrong)] + [
        hashlib.sha256(("rvk_0123456789ab_" + "x" * 43).encode()).digest()
    ]
    keys.close()


# --- `revealed keys create|list|revoke` ------------------------------------------------------


def test_keys_commands_create_list_and_revoke(tmp_path: Path) -> None:
    runner, data = CliRunner(), ["--data", str(tmp_path / "data")]

    created = runner.invoke(
        cli, [*data, "keys", "create", "loader", "--scope", "ingest", "--scope", "read", "--json"]
    )
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)
    assert key["name"] == "loader"
    assert key["scopes"] == ["ingest", "read"]
    assert key["token"].startswith(f"rvk_{key['key_id']}_")

    plain = runner.invoke(cli, [*data, "keys", "create", "admin"])
    assert plain.exit_code == 0, plain.output
    assert "rvk_" in plain.stdout

    listed = runner.invoke(cli, [*data, "keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    keys = json.loads(listed.stdout)
    assert sorted((k["name"], k["scopes"], k["revoked_at"]) for k in keys) == [
        ("admin", ["ingest"], None),
        ("loader", ["ingest", "read"], None),
    ]
    assert "rvk_" not in listed.stdout
    table = runner.invoke(cli, [*data, "keys", "list"])
    assert key["key_id"] in table.stdout
    assert "rvk_" not in table.stdout

    revoked = runner.invoke(cli, [*data, "keys", "revoke", key["key_id"]])
    assert revoked.exit_code == 0
    assert key["key_id"] in revoked.stdout
    assert runner.invoke(cli, [*data, "keys", "revoke", key["key_id"]]).exit_code == 1
    assert runner.invoke(cli, [*data, "keys", "revoke", "unknown"]).exit_code == 1
    after = {k["key_id"]: k for k in json.loads(runner.invoke(cli, [*data, "keys", "list", "--json"]).stdout)}
    assert after[key["key_id"]]["revoked_at"] is not None


def test_keys_create_refuses_an_unknown_scope(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--data", str(tmp_path / "data"), "keys", "create", "x", "--scope", "root"]
    )
    assert result.exit_code == 2
    assert "root" in result.output


# --- `revealed serve`: open only on loopback --------------------------------------------------

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
ANY_V4 = "00000000"


def test_serve_without_keys_binds_loopback_only_and_says_so(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", "--host", "0.0.0.0").start()
    try:
        assert server.listening_addresses() == {LOOPBACK_V4}
        assert httpx.post(
            server.url + ROUTES["event"], content=ndjson([event("served")]), headers=NDJSON_HEADERS
        ).json()["statuses"] == ["accepted"]
    finally:
        server.stop()
    output = " ".join(server.output().split())
    assert "no API keys configured: refusing to listen on 0.0.0.0, binding to 127.0.0.1 only" in output
    assert "open to local clients only" in output


def test_serve_with_keys_binds_where_asked_and_requires_them(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "data" / "keys.sqlite")
    token = keys.create("loader", ["ingest"]).token
    keys.close()
    server = ServeProcess(tmp_path / "data", "--host", "0.0.0.0").start()
    try:
        assert server.listening_addresses() == {ANY_V4}
        url, body = server.url + ROUTES["event"], ndjson([event("keyed")])
        assert httpx.post(url, content=body, headers=NDJSON_HEADERS).status_code == 401
        ok = httpx.post(url, content=body, headers={**NDJSON_HEADERS, "X-API-Key": token})
        assert ok.status_code == 200
    finally:
        server.stop()
    assert "no API keys configured" not in server.output()
