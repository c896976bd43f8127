"""Probes, Prometheus metrics, and the OpenAPI document (every route described, with examples)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from service_helpers import JSON, KINDS, NDJSON, ROUTES, decision, event, ndjson, service_of

from revealed.keys import KeyStore
from revealed.server import create_app
from revealed.settings import Settings
from revealed.store import Store

# --- probes ----------------------------------------------------------------------------------


def test_healthz_says_the_process_is_up(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_says_whether_the_store_is_writable(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}

    monkeypatch.setattr(service_of(client).store.journal, "writable", lambda: False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "the journal is not writable"


def test_readyz_answers_503_promptly_while_another_writer_holds_the_journal(client: TestClient) -> None:
    journal = service_of(client).store.journal
    with closing(sqlite3.connect(journal.path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        response = client.get("/readyz")
        waited = time.monotonic() - started
        other.execute("ROLLBACK")
    assert response.status_code == 503
    assert waited < 5  # the probe's own timeout (1 s), not the journal's 60 s busy timeout
    time.sleep(1.05)  # the answer is kept for a second
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_probes_the_journal_at_most_once_a_second_however_often_it_is_asked(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = service_of(client).store.journal
    probes: list[float] = []
    probe = journal._probe_write

    def counted(timeout_s: float) -> bool:
        probes.append(time.monotonic())
        return probe(timeout_s)

    monkeypatch.setattr(journal, "_probe_write", counted)
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        assert client.get("/readyz").json() == {"status": "ready"}
    assert 1 <= len(probes) <= 2


def test_a_server_warms_its_request_path_before_serving_and_stores_nothing(tmp_path: Path) -> None:
    """A fresh process's first conversion to Arrow imports pandas (about 0.2 s): the app's startup
    does it, on a made-up event it does not store, rather than the first requests waiting for it."""
    script = (
        "import sys; from pathlib import Path; from fastapi.testclient import TestClient; "
        "from revealed.server.app import create_app; from revealed.settings import Settings; "
        "assert 'pandas' not in sys.modules; "
        f"client = TestClient(create_app(Settings(data_dir=Path({str(tmp_path)!r})))); "
        "client.__enter__(); print('pandas' in sys.modules); "
        "print(client.app.state.service.store.journal.pending()); client.__exit__(None, None, None)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    warmed, pending = out.stdout.splitlines()
    assert warmed == "True"
    assert all(n == 0 for n in json.loads(pending.replace("'", '"')).values()), "the warm-up stores nothing"


# --- metrics ---------------------------------------------------------------------------------


def scrape(client: TestClient) -> list[Sample]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def test_metrics_count_rows_by_table_type_and_status(client: TestClient) -> None:
    events = [event("a"), event("b", type="purchase", value=3.0), event("c"), event("bad", type="nope")]
    assert (
        client.post(ROUTES["event"], content=ndjson(events), headers={"content-type": NDJSON}).status_code
        == 200
    )
    assert client.post(ROUTES["event"], json=[event("a"), event("c", user_id="other")]).status_code == 200
    assert client.post(ROUTES["decision"], json=decision("d")).status_code == 200

    samples = scrape(client)
    rows = "revealed_rows_total"
    assert value(samples, rows, table="events", type="click", status="accepted") == 2
    assert value(samples, rows, table="events", type="purchase", status="accepted") == 1
    assert value(samples, rows, table="events", type="click", status="duplicate") == 1
    assert value(samples, rows, table="events", type="click", status="conflict") == 1
    assert value(samples, rows, table="events", type="-", status="rejected") == 1
    assert value(samples, rows, table="decisions", type="-", status="accepted") == 1


def test_custom_event_types_share_one_metrics_label_however_many_clients_invent(client: TestClient) -> None:
    """Custom types (`x-...`) are named by clients: a series each would grow without bound."""
    small = [event(f"s{i}", type=f"x-small-{i}") for i in range(10)]  # counted in Python
    large = [event(f"l{i}", type=f"x-large-{i}") for i in range(500)]  # counted in Arrow
    mixed = [
        event("s0", type="x-small-0"),
        event("m1", type="x-mixed"),
        event("m2"),
    ]  # a duplicate among them
    for batch in (small, large, mixed):
        assert client.post(ROUTES["event"], json=batch).status_code == 200

    samples = [s for s in scrape(client) if s.name == "revealed_rows_total" and s.labels["table"] == "events"]
    assert {s.labels["type"] for s in samples} == {"x-*", "click"}
    assert value(samples, "revealed_rows_total", table="events", type="x-*", status="accepted") == 511
    assert value(samples, "revealed_rows_total", table="events", type="x-*", status="duplicate") == 1
    assert value(samples, "revealed_rows_total", table="events", type="click", status="accepted") == 1


def test_metrics_time_requests_in_a_histogram(client: TestClient) -> None:
    for i in range(3):
        client.post(ROUTES["event"], json=event(f"e{i}"))
    client.post(ROUTES["event"], content=b"{}", headers={"content-type": "text/plain"})

    samples = scrape(client)
    name = "revealed_request_seconds"
    assert value(samples, f"{name}_count", route="/v1/events", code="200") == 3
    assert value(samples, f"{name}_count", route="/v1/events", code="415") == 1
    ok = {"code": "200", "route": "/v1/events"}
    buckets = [s for s in samples if s.name == f"{name}_bucket" and s.labels == {**s.labels, **ok}]
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds == sorted(bounds)
    assert bounds[-1] == float("inf")
    assert len(bounds) >= 10
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)
    assert counts[-1] == 3
    assert value(samples, f"{name}_sum", route="/v1/events", code="200") > 0  # type: ignore[operator]


def test_metrics_show_the_journal_backlog_and_the_seal_lag(client: TestClient) -> None:
    samples = scrape(client)
    for kind in KINDS:
        assert value(samples, "revealed_journal_unsealed_rows", table=f"{kind}s") == 0
    assert value(samples, "revealed_seal_lag_seconds") == 0

    client.post(ROUTES["event"], json=[event("a"), event("b"), event("c", type="nope")])
    client.post(ROUTES["item"], json={"item_id": "i"})
    time.sleep(0.05)
    samples = scrape(client)
    assert value(samples, "revealed_journal_unsealed_rows", table="events") == 2
    assert value(samples, "revealed_journal_unsealed_rows", table="items") == 1
    assert value(samples, "revealed_journal_unsealed_rows", table="quarantine") == 1
    assert value(samples, "revealed_seal_lag_seconds") >= 0.05  # type: ignore[operator]

    service_of(client).store.seal()
    samples = scrape(client)
    assert value(samples, "revealed_journal_unsealed_rows", table="events") == 0
    assert value(samples, "revealed_seal_lag_seconds") == 0


def unsealed_events(client: TestClient) -> float | None:
    return value(scrape(client), "revealed_journal_unsealed_rows", table="events")


def wait_until_sealed(client: TestClient, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while unsealed_events(client) != 0:
        assert time.monotonic() < deadline, "the sealer never caught up"
        time.sleep(0.02)


def test_the_background_sealer_seals_once_enough_rows_wait(make_client: Any) -> None:
    client = make_client(seal_interval_s=0.05, seal_after_rows=10, seal_max_lag_s=3600.0)
    client.post(ROUTES["event"], json=[event(f"e{i}") for i in range(9)])
    time.sleep(0.3)  # six looks at the journal: nine rows, none of them old enough
    assert unsealed_events(client) == 9
    client.post(ROUTES["event"], json=event("e9"))
    wait_until_sealed(client)
    assert service_of(client).store.count("events") == 10


def test_the_background_sealer_seals_rows_once_they_have_waited_the_lag(make_client: Any) -> None:
    client = make_client(seal_interval_s=0.05, seal_max_lag_s=0.5)
    began = time.monotonic()
    client.post(ROUTES["event"], json=[event(f"e{i}") for i in range(10)])
    wait_until_sealed(client)
    assert time.monotonic() - began >= 0.5, "ten rows are far fewer than seal_after_rows: the lag decides"
    assert service_of(client).store.count("events") == 10


def test_a_service_that_stops_seals_what_is_left(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, seal_interval_s=3600.0)
    with TestClient(create_app(settings)) as client:
        client.post(ROUTES["event"], json=[event(f"e{i}") for i in range(10)])
        assert unsealed_events(client) == 10
    with Store(settings) as store:
        assert sum(store.unsealed().values()) == 0
        assert store.count("events") == 10


# --- the OpenAPI document --------------------------------------------------------------------


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_route_is_documented(document: dict[str, Any]) -> None:
    documented = {(method.upper(), path) for method, path, _ in operations(document)}
    assert documented == {
        *(("POST", route) for route in ROUTES.values()),
        ("GET", "/v1/stats"),
        ("GET", "/v1/keys"),
        ("POST", "/v1/keys"),
        ("DELETE", "/v1/keys/{key_id}"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    }
    for method, path, op in operations(document):
        assert op.get("summary", "").strip(), (method, path)
        assert op.get("tags"), (method, path)
        for status, response in op["responses"].items():
            assert response.get("description", "").strip(), (method, path, status)
    assert len(document["info"]["description"]) > 200


def _has_example(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether a schema (through its $ref, or its items') carries an example."""
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("type") == "array" and "items" in schema:
        return _has_example(document, schema["items"])
    return bool(schema.get("examples") or schema.get("example"))


def _examples_of(document: dict[str, Any], op: dict[str, Any]) -> list[str]:
    """Where an operation shows an example: its parameters, request body and 2xx responses."""
    found = [
        f"parameter {p['name']}"
        for p in op.get("parameters", [])
        if p.get("examples") or p.get("example") or _has_example(document, p.get("schema", {}))
    ]
    bodies = [("request", op.get("requestBody", {}))] + [
        (f"response {status}", r) for status, r in op["responses"].items() if status.startswith("2")
    ]
    for where, body in bodies:
        for media, content in body.get("content", {}).items():
            if (
                content.get("example")
                or content.get("examples")
                or _has_example(document, content.get("schema", {}))
            ):
                found.append(f"{where} {media}")
    return found


def test_every_route_shows_an_example_of_what_it_takes_or_answers(document: dict[str, Any]) -> None:
    missing = [(method, path) for method, path, op in operations(document) if not _examples_of(document, op)]
    assert missing == []
    for method, path, op in operations(document):
        if method == "get":  # what a read answers is the point of it
            assert any(where.startswith("response 2") for where in _examples_of(document, op)), path


def test_the_documented_examples_of_stats_and_metrics_match_what_the_service_answers(
    client: TestClient, document: dict[str, Any]
) -> None:
    client.post(ROUTES["event"], json=[event("e1"), {"event_id": "e2", "type": "click"}])
    stats = document["paths"]["/v1/stats"]["get"]["responses"]["200"]["content"]["application/json"]
    assert set(stats["example"]) == set(client.get("/v1/stats").json())

    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"]["example"]
    documented = {f.name for f in text_string_to_metric_families(metrics)}
    served = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert documented <= served
    assert {"revealed_rows", "revealed_request_seconds", "revealed_journal_unsealed_rows"} <= documented


@pytest.mark.parametrize("kind", KINDS)
def test_ingest_routes_document_both_media_types_with_examples(
    client: TestClient, document: dict[str, Any], kind: str
) -> None:
    op = document["paths"][ROUTES[kind]]["post"]
    assert f"{kind}_id" in op["description"]
    assert {"200", "400", "401", "403", "413", "415", "422"} <= set(op["responses"])
    content = op["requestBody"]["content"]
    assert set(content) == {JSON, NDJSON}
    assert content[JSON]["schema"]["oneOf"][0] == {"$ref": f"#/components/schemas/{kind.capitalize()}"}
    assert kind.capitalize() in document["components"]["schemas"]
    examples = content[JSON]["examples"]
    assert {"one", "many"} <= set(examples)
    assert isinstance(examples["many"]["value"], list)
    assert content[NDJSON]["example"].endswith("\n")

    # the examples are real: the service accepts each of them
    one = client.post(ROUTES[kind], json=examples["one"]["value"])
    assert one.json()["statuses"] == ["accepted"], one.text
    many = client.post(ROUTES[kind], json=examples["many"]["value"])
    assert many.json()["statuses"] == ["duplicate"], many.text
    lines = client.post(ROUTES[kind], content=content[NDJSON]["example"], headers={"content-type": NDJSON})
    assert lines.json()["statuses"] == ["duplicate"], lines.text


def test_the_result_model_has_an_example(document: dict[str, Any]) -> None:
    (example,) = document["components"]["schemas"]["IngestResult"]["examples"]
    assert example["statuses"] == ["accepted", "rejected"]


def test_docs_are_served_as_html(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/openapi.json" in response.text


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


# errors a client can provoke (with keys configured and an admin key sent)
ERRORS = [
    pytest.param("POST", ROUTES["event"], {"content": b""}, id="ingest-empty"),
    pytest.param("POST", ROUTES["event"], {"content": b"["}, id="ingest-unsplittable"),
    pytest.param("POST", ROUTES["event"], {"content": b"{}", "type": "text/csv"}, id="ingest-media-type"),
    pytest.param("POST", ROUTES["event"], {"content": b"{}"}, id="ingest-rejected"),
    pytest.param("DELETE", "/v1/keys/unknown", {}, id="keys-unknown"),
    pytest.param("POST", "/v1/keys", {"json": {"name": "x", "scopes": ["root"]}}, id="keys-bad-scope"),
    pytest.param("POST", "/v1/keys", {"content": b'{"name": '}, id="keys-truncated-json"),
    pytest.param("POST", "/v1/keys", {"content": b'{"name": "\xff"}'}, id="keys-invalid-utf8"),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), ERRORS)
def test_error_responses_are_documented_with_their_shape(
    make_client: Any, data_dir: Any, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """The status is listed for the route, and every field of the body is in the documented schema."""
    keys = KeyStore(data_dir / "keys.sqlite")
    token = keys.create("admin", ["admin"]).token
    keys.close()
    client = make_client()
    headers = {"content-type": kwargs.pop("type", JSON), "X-API-Key": token}

    response = client.request(method, path, headers=headers, **kwargs)

    assert 400 <= response.status_code < 500
    template = path if not path.startswith("/v1/keys/") else "/v1/keys/{key_id}"
    documented = client.get("/openapi.json").json()
    responses = documented["paths"][template][method.lower()]["responses"]
    assert str(response.status_code) in responses, f"undocumented {response.status_code}: {response.text}"
    schema = resolve(documented, responses[str(response.status_code)]["content"][JSON]["schema"])
    assert set(json.loads(response.content)) <= set(schema["properties"]), (response.text, schema)
