"""Never a 5xx for bad input: schemathesis against the service's own OpenAPI document, and
hypothesis-generated raw bodies POSTed to every ingest route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance
from service_helpers import JSON, KINDS, NDJSON, ROUTES, record

from revealed.keys import KeyStore
from revealed.server import create_app
from revealed.settings import Settings
from revealed.store import Store

# --- schemathesis ----------------------------------------------------------------------------

# NDJSON bodies are documented as strings: send the generated text as it is.
schemathesis.serializer.alias(NDJSON, "text/plain")
# The document needs no running service (the store is opened by the lifespan only).
schema = schemathesis.openapi.from_dict(create_app(Settings(data_dir=Path("unused"))).openapi())


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    """A service whose lifespan schemathesis' ASGI transport starts on the first call (and we stop).

    Every call carries an admin key: without one, a generated POST /v1/keys would create the first
    key and shut the door on every later case.
    """
    data = tmp_path_factory.mktemp("fuzzed")
    keys = KeyStore(data / "keys.sqlite")
    token = keys.create("fuzzer", ["admin"]).token
    keys.close()
    app = create_app(Settings(data_dir=data, seal_interval_s=0.5, max_body_bytes=64 << 10))
    yield app, token
    assert getattr(app.state, "service", None) is not None, "the lifespan never ran"
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_openapi_document_holds_under_fuzzing(
    case: schemathesis.Case, fuzzed_app: tuple[FastAPI, str]
) -> None:
    """Status codes, content types and bodies conform to the document, and none is a 5xx.

    Excluded, by design: `positive_data_acceptance` (the JSON Schema cannot say that an event needs
    an identity, or that an id already stored with another payload conflicts: such rows get a
    documented 422), and `allow_header_conformance` (Starlette's 405 to OPTIONS lists the methods
    of the first route matching the path, not of every route on it: a framework limitation).
    """
    app, token = fuzzed_app
    response = case.call_and_validate(
        app=app,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance, allow_header_conformance],
    )
    assert response.status_code < 500


# --- hypothesis-generated bodies -------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One service for every generated body; afterwards, whatever it accepted seals cleanly."""
    data = tmp_path_factory.mktemp("bodies")
    with TestClient(
        create_app(Settings(data_dir=data, seal_interval_s=0.5, max_body_bytes=64 << 10))
    ) as client:
        yield client
        sealer = client.app.state.service.sealer  # type: ignore[attr-defined]
    assert sealer.failures == 0
    with Store.open(data) as store:
        store.seal()
        assert sum(store.unsealed().values()) == 0


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIA = st.sampled_from([JSON, NDJSON])
ROUTE = st.sampled_from(sorted(ROUTES.values()))

# numbers at the edges of what JSON, float64, int64 and float32 hold (drawn about a third of the time)
EDGES = [10**400, -(10**400), 2**63, -(2**63) - 1, 2**64, 1.7976931348623157e308, 5e-324, 3.5e38, -0.0]
numbers = st.sampled_from(EDGES) | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
objects = st.dictionaries(st.text(max_size=10), numbers | json_values, min_size=1, max_size=4)
ids = st.sampled_from(["r1", "r2", "r3", "r4"]) | json_values
# each field with values of about its shape, so generated rows get past the first checks
FIELDS = {
    "event_id": ids,
    "decision_id": ids,
    "item_id": ids,
    "timestamp": numbers | st.text(max_size=30),
    "type": st.sampled_from(["click", "dwell", "teleport"]) | json_values,
    "user_id": json_values,
    "items": st.lists(objects, max_size=3),
    "candidates": st.lists(objects, max_size=3),
    "value": numbers,
    "valid_from": numbers,
    "features": objects,
    "context": objects,
    "properties": objects,
    "policy": objects,
    "embedding": st.lists(numbers, max_size=4),
    "logits": st.lists(numbers, max_size=4),
}
OWN_FIELDS = {
    "event": ["event_id", "timestamp", "type", "user_id", "decision_id", "item_id", "value", "properties"],
    "decision": ["decision_id", "timestamp", "user_id", "items", "candidates", "context", "policy", "logits"],
    "item": ["item_id", "valid_from", "features", "embedding"],
}


@st.composite
def record_like(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A valid record of a kind (ids from a small pool, so retries and conflicts happen) with a few
    fields, mostly its own, set to generated values, and a few dropped."""
    row = record(kind, draw(st.sampled_from(["r1", "r2", "r3", "r4"])))
    names = st.sampled_from(OWN_FIELDS[kind]) | st.sampled_from(sorted(FIELDS))
    for name in draw(st.lists(names, max_size=3)):
        row[name] = draw(FIELDS[name])
    for name in draw(st.lists(st.sampled_from(sorted(row)), max_size=1)):
        row.pop(name, None)
    return row


def rows_for(kind: str) -> st.SearchStrategy[Any]:
    """Rows sent to a kind's route: mostly records of that kind, some of another, some any JSON."""
    return record_like(kind) | record_like(kind) | st.sampled_from(KINDS).flatmap(record_like) | json_values


KIND = st.sampled_from(KINDS)
garbage_lines = st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip() != b"")


def assert_answered(response: Any, rows_sent: int | None) -> None:
    """Never a 5xx; a 200 or 422 reports one status per row sent."""
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 413, 422), response.text
    if response.status_code in (200, 422):
        body = response.json()
        if rows_sent is not None:
            assert len(body["statuses"]) == rows_sent
        assert sum(body[s] for s in ("accepted", "duplicate", "conflict", "rejected")) == len(
            body["statuses"]
        )
        stored = body["accepted"] + body["duplicate"]
        assert (response.status_code == 200) == (stored > 0)


def post(service: TestClient, route: str, body: bytes, media: str) -> Any:
    return service.post(route, content=body, headers={"content-type": media})


@FUZZ
@given(route=ROUTE, media=MEDIA, body=st.binary(max_size=300))
def test_raw_bytes(service: TestClient, route: str, media: str, body: bytes) -> None:
    response = post(service, route, body, media)
    rows_sent: int | None = None
    if media == NDJSON:
        rows_sent = sum(1 for line in body.split(b"\n") if line.strip())
    elif not body.strip().startswith(b"["):
        rows_sent = 1 if body.strip() else 0
    assert_answered(response, rows_sent)


@FUZZ
@given(data=st.data(), kind=KIND)
def test_one_json_value(service: TestClient, data: st.DataObject, kind: str) -> None:
    value = data.draw(rows_for(kind))
    response = post(service, ROUTES[kind], json.dumps(value).encode(), JSON)
    assert response.status_code in ((400,) if value == [] else (200, 422))  # `[]`: nothing sent
    assert_answered(response, len(value) if isinstance(value, list) else 1)


@FUZZ
@given(data=st.data(), kind=KIND)
def test_json_arrays(service: TestClient, data: st.DataObject, kind: str) -> None:
    batch = data.draw(st.lists(rows_for(kind), max_size=8))
    response = post(service, ROUTES[kind], json.dumps(batch).encode(), JSON)
    assert response.status_code in ((200, 422) if batch else (400,))  # `[]`: nothing sent
    assert_answered(response, len(batch))


@FUZZ
@given(data=st.data(), kind=KIND, newline=st.sampled_from([b"\n", b"\r\n", b"\n\n"]))
def test_ndjson_of_mixed_lines(service: TestClient, data: st.DataObject, kind: str, newline: bytes) -> None:
    line = rows_for(kind).map(lambda v: json.dumps(v).encode()) | garbage_lines
    lines = data.draw(st.lists(line, min_size=1, max_size=8))
    response = post(service, ROUTES[kind], newline.join(lines) + newline, NDJSON)
    assert response.status_code in (200, 422)
    assert_answered(response, len(lines))


@FUZZ
@given(
    route=ROUTE,
    media=MEDIA,
    depth=st.integers(1, 5000),
    opener=st.sampled_from([b"[", b'{"a":', b'{"properties":']),
)
def test_deep_nesting(service: TestClient, route: str, media: str, depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    body = opener * depth + b"1" + closer * depth
    assert_answered(post(service, route, body, media), None)


@FUZZ
@given(
    route=ROUTE,
    number=st.sampled_from(
        [b"1e999", b"-1e999", b"1" + b"0" * 400, b"-" + b"9" * 5000, b"1e-999", b"0.0000e99999", b"1e306"]
    ),
    field=st.sampled_from(
        ["timestamp", "value", "valid_from", "propensity", "embedding", "logits", "features", "context"]
    ),
)
def test_huge_numbers(service: TestClient, route: str, number: bytes, field: str) -> None:
    """Spliced in as text, so they reach the service as written (json.dumps cannot write 1e999)."""
    kind = route.removeprefix("/v1/").removesuffix("s")
    row = json.dumps(record(kind, "big")).encode()
    if field in ("embedding", "logits"):
        value = b"[" + number + b"]"
    elif field in ("features", "context"):
        value = b'{"n": ' + number + b"}"
    else:
        value = number
    body = row[:-1] + b', "' + field.encode() + b'": ' + value + b"}"
    assert_answered(post(service, route, body, JSON), 1)
