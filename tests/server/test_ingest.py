"""POST /v1/decisions, /v1/events, /v1/items: shapes, per-row statuses, quarantine, limits, concurrency."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from service_helpers import (
    JSON,
    KINDS,
    NDJSON,
    ROUTES,
    decision,
    event,
    item,
    ndjson,
    record,
    sealed_tables,
    service_of,
)
from tests.store.commit_hold import hold_commits

from revealed.server.routes import ingest as ingest_routes
from revealed.store import GroupCommit, Store
from revealed.store.bodies import INLINE_BYTES, append_body
from revealed.store.ingest import RowResults

TABLES = {kind: f"{kind}s" for kind in KINDS}


def post(
    client: TestClient, route: str, body: bytes | Iterator[bytes], content_type: str | None = JSON
) -> Any:
    headers = {"content-type": content_type} if content_type else {}
    return client.post(route, content=body, headers=headers)


def body_of(shape: str, rows: list[dict[str, Any]]) -> tuple[bytes, str]:
    if shape == "object":
        assert len(rows) == 1
        return json.dumps(rows[0]).encode(), JSON
    if shape == "array":
        return json.dumps(rows).encode(), JSON
    return ndjson(rows), NDJSON


def ids_of(store: Store, kind: str) -> list[str]:
    store.seal()
    return store.table(TABLES[kind]).to_pyarrow_table().column(f"{kind}_id").to_pylist()


# --- shapes and per-row statuses --------------------------------------------------------------


@pytest.mark.parametrize("shape", ["object", "array", "ndjson"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_route_accepts_an_object_an_array_and_ndjson(client: TestClient, kind: str, shape: str) -> None:
    rows = [record(kind, f"{kind}-{shape}-{i}") for i in range(1 if shape == "object" else 3)]
    body, media = body_of(shape, rows)

    response = post(client, ROUTES[kind], body, media)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON
    n = len(rows)
    assert response.json() == {
        "accepted": n,
        "duplicate": 0,
        "conflict": 0,
        "rejected": 0,
        "statuses": ["accepted"] * n,
        "errors": {},
    }
    assert sorted(ids_of(service_of(client).store, kind)) == sorted(r[f"{kind}_id"] for r in rows)


@pytest.mark.parametrize("kind", KINDS)
def test_rows_are_committed_before_the_response(client: TestClient, kind: str) -> None:
    """An acknowledged row is in the journal: another connection to the store sees it at once."""
    response = post(client, ROUTES[kind], ndjson([record(kind, "a"), record(kind, "b")]), NDJSON)
    assert response.status_code == 200

    with Store.open(service_of(client).settings.data_dir) as other:
        assert other.unsealed()[TABLES[kind]] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_no_response_is_sent_while_its_commit_is_held_back(
    client: TestClient, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer waits for the commit: with the journal's commit held, the POST does not return."""
    _, entered, release = hold_commits(service_of(client).store.journal, monkeypatch)
    answered: list[Any] = []
    sender = threading.Thread(
        target=lambda: answered.append(post(client, ROUTES[kind], ndjson([record(kind, "a")]), NDJSON))
    )
    sender.start()
    assert entered.wait(10)
    sender.join(0.5)
    assert sender.is_alive()
    assert answered == []
    with Store.open(service_of(client).settings.data_dir) as other:
        assert other.unsealed()[TABLES[kind]] == 0

    release.set()
    sender.join(10)
    assert answered[0].status_code == 200
    assert answered[0].json()["statuses"] == ["accepted"]


def test_requests_that_arrive_during_a_commit_share_the_next_one(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: the requests queued while a commit runs are committed together, once."""
    service = service_of(client)
    groups, entered, release = hold_commits(service.store.journal, monkeypatch)
    responses: list[Any] = []

    def send(i: int) -> None:
        responses.append(post(client, ROUTES["event"], ndjson([event(f"g{i}")]), NDJSON))

    first = threading.Thread(target=send, args=(0,))
    first.start()
    assert entered.wait(10)  # the first request's commit is running (held)
    others = [threading.Thread(target=send, args=(i,)) for i in range(1, 8)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while service.committer._queue.qsize() < 7 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for thread in [first, *others]:
        thread.join(10)

    assert groups == [1, 7]
    assert sorted(r.json()["statuses"][0] for r in responses) == ["accepted"] * 8


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_is_a_duplicate_and_another_payload_under_a_known_id_a_conflict(
    client: TestClient, kind: str
) -> None:
    first = record(kind, "same-id")
    other = {**first, "timestamp": first["timestamp"] + 1} if kind != "item" else {**first, "text": "new"}
    route = ROUTES[kind]

    assert post(client, route, json.dumps(first).encode()).json()["statuses"] == ["accepted"]
    retry = post(client, route, json.dumps(first).encode())
    assert retry.status_code == 200  # a duplicate counts as stored: the client may forget the row
    assert retry.json()["statuses"] == ["duplicate"]
    assert retry.json()["duplicate"] == 1

    conflict = post(client, route, json.dumps(other).encode())
    assert conflict.status_code == 422
    body = conflict.json()
    assert body["statuses"] == ["conflict"]
    assert body["conflict"] == 1
    assert body["errors"]["0"][0].startswith(f"{kind}_id: ")

    tables = sealed_tables(service_of(client).store, [TABLES[kind], "quarantine"])
    assert tables[TABLES[kind]].column(f"{kind}_id").to_pylist() == ["same-id"]
    (quarantined,) = tables["quarantine"].to_pylist()
    assert quarantined["reason"] == "id_conflict"
    assert quarantined["record_id"] == "same-id"
    assert json.loads(quarantined["raw"]) == other


def test_duplicates_and_conflicts_within_one_batch(client: TestClient) -> None:
    rows = [event("x"), event("x"), event("x", user_id="someone-else"), event("y")]
    response = post(client, ROUTES["event"], json.dumps(rows).encode())
    assert response.status_code == 200
    assert response.json()["statuses"] == ["accepted", "duplicate", "conflict", "accepted"]
    assert list(response.json()["errors"]) == ["2"]


def raw(row: dict[str, Any], **extra_as_text: bytes) -> bytes:
    """A row as JSON with extra fields spliced in as they are (numbers JSON cannot hold)."""
    text = json.dumps(row).encode()[:-1]
    return text + b"".join(b', "' + k.encode() + b'": ' + v for k, v in extra_as_text.items()) + b"}"


NO_TYPE = {k: v for k, v in event("e").items() if k != "type"}
NO_TIME = {k: v for k, v in event("e").items() if k != "timestamp"}
NINES = b"9" * 400

# field-level errors: (route kind, row as sent, the field the first error must name)
INVALID_ROWS = [
    pytest.param("event", raw(event("e", timestamp="yesterday")), "timestamp", id="time-text"),
    pytest.param("event", raw(event("e", type="teleport")), "type", id="unknown-type"),
    pytest.param("event", raw(NO_TYPE), "type", id="no-type"),
    pytest.param("event", raw(event("e", user_id=None)), "user_id", id="no-identity"),
    pytest.param("event", raw(event("e", value="12")), "value", id="number-as-text"),
    pytest.param("event", raw(event("e", properties=[1, 2])), "properties", id="list-for-object"),
    pytest.param("event", raw(event("x" * 600)), "event_id", id="id-too-long"),
    pytest.param("event", raw({**event("e"), "event_id": 5}), "event_id", id="id-number"),
    pytest.param("event", raw(event("e"), value=b"1e999"), "value", id="float-overflow"),
    pytest.param("event", raw(event("e"), value=NINES), "value", id="400-digits"),
    pytest.param("event", raw(NO_TIME, timestamp=b"1e999"), "timestamp", id="time-overflow"),
    pytest.param("event", raw(NO_TIME, timestamp=NINES), "timestamp", id="time-400-digits"),
    pytest.param(
        "decision",
        raw(decision("d", items=[{"item_id": "a", "cond_propensity": 1.7}])),
        "items[0].cond_propensity",
        id="propensity-over-1",
    ),
    pytest.param(
        "decision",
        raw(decision("d", items=[{"item_id": "a", "position": 10**30}])),
        "items[0].position",
        id="huge-position",
    ),
    pytest.param("decision", raw(decision("d", items="sku-1")), "items", id="text-for-list"),
    pytest.param("decision", raw(decision("d", logits=[1.0, "x"])), "logits[1]", id="text-in-logits"),
    pytest.param("item", raw(item("i", embedding=[1e39])), "embedding[0]", id="float32-overflow"),
    pytest.param("item", raw(item("i", valid_from=[])), "valid_from", id="list-for-time"),
    pytest.param("item", raw(item("")), "item_id", id="empty-id"),
    pytest.param("item", raw(item("i", features="cheap")), "features", id="text-for-object"),
]


@pytest.mark.parametrize(("kind", "row", "field"), INVALID_ROWS)
def test_a_rejected_row_names_the_field(client: TestClient, kind: str, row: bytes, field: str) -> None:
    response = post(client, ROUTES[kind], row)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["statuses"] == ["rejected"]
    assert body["rejected"] == 1
    assert body["errors"]["0"][0].startswith(f"{field}: "), body["errors"]


# numbers that pass the type checks but overflow on the way to a row (a float, or * 1000 as µs)
OVERFLOWING = [
    pytest.param("item", raw(item("i"), features=b'{"price": ' + NINES + b"}"), id="item-features-int"),
    pytest.param("decision", raw(decision("d"), context=b'{"n": ' + NINES + b"}"), id="decision-context-int"),
    pytest.param("event", raw(NO_TIME, timestamp=b"1e306"), id="event-timestamp-1e306"),
    pytest.param("event", raw(NO_TIME, timestamp=b"-1e306"), id="event-timestamp-minus-1e306"),
    pytest.param(
        "item", raw(item("i"), valid_from=b"1.7976931348623157e308"), id="item-valid-from-max-float"
    ),
    pytest.param("decision", raw(decision("d"), timestamp=b"1e307"), id="decision-timestamp-1e307"),
]


@pytest.mark.parametrize(("kind", "row"), OVERFLOWING)
def test_numbers_that_overflow_a_conversion_are_not_a_5xx(make_client: Any, kind: str, row: bytes) -> None:
    """Stored or rejected with its field named, never a 500 that drops the batch's good rows too."""
    client = make_client(raise_server_exceptions=False)
    body = b"[" + json.dumps(record(kind, "good")).encode() + b", " + row + b"]"

    response = post(client, ROUTES[kind], body)

    assert response.status_code == 200, response.text
    assert response.json()["statuses"][0] == "accepted"
    assert response.json()["statuses"][1] in ("accepted", "rejected")
    assert "good" in ids_of(service_of(client).store, kind)


@pytest.mark.parametrize(
    ("route_kind", "row"),
    [
        ("decision", event("e-on-decisions")),
        ("item", event("e-on-items")),
        ("event", decision("d-on-events")),
        ("event", item("i-on-events")),
        ("decision", item("i-on-decisions")),
        ("item", decision("d-on-items")),
    ],
)
def test_a_record_of_another_kind_is_rejected_on_the_route(
    client: TestClient, route_kind: str, row: dict[str, Any]
) -> None:
    response = post(client, ROUTES[route_kind], json.dumps([row, record(route_kind, "fine")]).encode())

    assert response.status_code == 200
    assert response.json()["statuses"] == ["rejected", "accepted"]
    assert "unknown field" in " ".join(response.json()["errors"]["0"])
    (quarantined,) = sealed_tables(service_of(client).store, ["quarantine"])["quarantine"].to_pylist()
    assert quarantined["kind"] == route_kind
    assert json.loads(quarantined["raw"]) == row


@pytest.mark.parametrize("body", [b'"a string"', b"42", b"null", b"true", b"[1, 2]", b"[[]]"])
def test_json_values_that_are_not_objects_are_rejected_rows(client: TestClient, body: bytes) -> None:
    response = post(client, ROUTES["event"], body)
    assert response.status_code == 422
    expected = len(json.loads(body)) if body.startswith(b"[") else 1
    assert response.json()["statuses"] == ["rejected"] * expected


# --- a batch with some bad rows stores the good ones and quarantines the bad ones ---------------


@pytest.mark.parametrize("media", [JSON, NDJSON])
def test_a_mixed_batch_stores_the_good_rows_and_quarantines_the_bad(client: TestClient, media: str) -> None:
    bad = event("bad-1", timestamp="not a time")
    rows: list[Any] = [event("good-1"), bad, event("good-2", type="purchase", value=10.0)]
    body = json.dumps(rows).encode() if media == JSON else ndjson([*rows, b'{"truncated": '])

    response = post(client, ROUTES["event"], body, media)

    assert response.status_code == 200
    result = response.json()
    statuses = ["accepted", "rejected", "accepted"] + (["rejected"] if media == NDJSON else [])
    assert result["statuses"] == statuses
    assert (result["accepted"], result["rejected"]) == (2, len(statuses) - 2)
    assert set(result["errors"]) == {str(i) for i, s in enumerate(statuses) if s == "rejected"}
    assert result["errors"]["1"][0].startswith("timestamp: ")

    tables = sealed_tables(service_of(client).store)
    assert sorted(tables["events"].column("event_id").to_pylist()) == ["good-1", "good-2"]
    quarantine = {q["record_id"]: q for q in tables["quarantine"].to_pylist()}
    assert quarantine["bad-1"]["reason"] == "invalid"
    assert quarantine["bad-1"]["kind"] == "event"
    assert quarantine["bad-1"]["source"] == "http"
    assert quarantine["bad-1"]["errors"][0].startswith("timestamp: ")
    assert json.loads(quarantine["bad-1"]["raw"]) == bad
    if media == NDJSON:
        assert quarantine[None]["raw"] == '{"truncated":'


def test_no_row_stored_is_a_422_with_every_status(client: TestClient) -> None:
    rows = [event("a", type="nope"), event("b", timestamp=None), {"not": "an event"}]
    response = post(client, ROUTES["event"], json.dumps(rows).encode())

    assert response.status_code == 422
    assert response.json()["statuses"] == ["rejected"] * 3
    assert set(response.json()["errors"]) == {"0", "1", "2"}
    tables = sealed_tables(service_of(client).store)
    assert tables["events"].num_rows == 0
    assert tables["quarantine"].num_rows == 3


def test_a_bad_row_sent_twice_is_quarantined_once(client: TestClient) -> None:
    bad = json.dumps(event("twice", type="nope")).encode()
    assert post(client, ROUTES["event"], bad).status_code == 422
    assert post(client, ROUTES["event"], bad).status_code == 422
    assert sealed_tables(service_of(client).store)["quarantine"].num_rows == 1


@pytest.mark.parametrize("rows", [3, 300])
def test_a_small_body_is_prepared_on_the_loop_a_large_one_on_a_worker_thread_alike(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    """Bodies up to INLINE_BYTES skip the worker thread's round trip; either way every row gets
    the same outcome. A large body's rows are queued for the commit by the thread that prepared
    them, not after a detour through the event loop."""
    threaded: list[object] = []
    to_thread = asyncio.to_thread
    loop_thread: list[int] = []
    queued_from: list[int] = []
    submit_for = GroupCommit.submit_for

    async def counted(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        threaded.append(func)
        return await to_thread(func, *args, **kwargs)

    def traced(self: GroupCommit, *args: Any) -> None:
        queued_from.append(threading.get_ident())
        submit_for(self, *args)

    async def on_the_loop(*args: Any, **kwargs: Any) -> RowResults:
        loop_thread.append(threading.get_ident())
        return await append_body(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    monkeypatch.setattr(GroupCommit, "submit_for", traced)
    monkeypatch.setattr(ingest_routes, "append_body", on_the_loop)
    good = [event(f"inline-{rows}-{i}") for i in range(rows)]
    body = ndjson([*good, {**event(f"inline-{rows}-bad"), "type": "clik"}, good[0]])
    r = post(client, ROUTES["event"], body, NDJSON)
    assert r.status_code == 200
    assert r.json()["statuses"] == ["accepted"] * rows + ["rejected", "duplicate"]
    assert bool(threaded) == (len(body) > INLINE_BYTES)
    assert (queued_from == loop_thread) == (len(body) <= INLINE_BYTES)
    assert len(queued_from) == len(loop_thread) == 1
    store = service_of(client).store
    assert sum(1 for i in ids_of(store, "event") if i.startswith(f"inline-{rows}-")) == rows


# --- bodies that cannot be split, empty bodies, content types, sizes -------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'[{"event_id": "e1", "timestamp": ', id="truncated-array"),
        pytest.param(b'[{"event_id": "e1"} {"event_id": "e2"}]', id="missing-comma"),
        pytest.param(b"[{}] trailing", id="trailing-garbage"),
        pytest.param(b"[\xff\xfe]", id="invalid-utf8"),
        pytest.param(b"[" * 100_000, id="deep-nesting"),
        pytest.param(b"[" + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"]", id="deep-objects"),
    ],
)
def test_a_body_that_cannot_be_split_is_a_400_and_quarantined_whole(client: TestClient, body: bytes) -> None:
    response = post(client, ROUTES["event"], body)

    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("body: ")
    (quarantined,) = sealed_tables(service_of(client).store)["quarantine"].to_pylist()
    assert quarantined["raw"] == body.decode("utf-8", errors="backslashreplace")
    assert quarantined["kind"] == "event"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xfe\xfd", id="not-utf8-at-all"),
        pytest.param(b'{"event_id": "e1", "type": "cl\xffck"}', id="bad-byte-in-a-string"),
        pytest.param(b'[{"event_id": "e1", "type": "cl\xffck"}]', id="bad-byte-in-an-array-row"),
        pytest.param(b'{"a": ' * 100_000, id="deeply-nested-object"),
        pytest.param(b"\xef\xbb\xbf" + json.dumps(event("bom")).encode(), id="byte-order-mark"),
    ],
)
def test_invalid_utf8_and_deep_nesting_never_fail_the_server(client: TestClient, body: bytes) -> None:
    """Whether such a body is one bad row (422) or no rows at all (400), it is kept in quarantine."""
    response = post(client, ROUTES["event"], body)

    assert response.status_code in (400, 422), response.text
    if response.status_code == 422:
        assert response.json()["statuses"] == ["rejected"]
    row = body[1:-1] if body.startswith(b"[") else body.strip()  # an array's bad row is kept on its own
    raws = sealed_tables(service_of(client).store)["quarantine"].column("raw").to_pylist()
    assert raws == [row.decode("utf-8", errors="backslashreplace")]


@pytest.mark.parametrize(
    ("body", "media"), [(b"", JSON), (b"  \r\n\t ", JSON), (b"", NDJSON), (b"\n\n \n", NDJSON)]
)
def test_an_empty_body_is_a_400(client: TestClient, body: bytes, media: str) -> None:
    response = post(client, ROUTES["event"], body, media)
    assert response.status_code == 400
    assert "empty body" in response.json()["error"]
    assert sealed_tables(service_of(client).store)["quarantine"].num_rows == 0


@pytest.mark.parametrize("body", [b"[]", b" [ ] ", b"[\n]"])
def test_an_empty_array_is_a_400_and_nothing_is_kept(client: TestClient, body: bytes) -> None:
    response = post(client, ROUTES["event"], body, JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "body: expected at least one record, found an empty array"
    assert sealed_tables(service_of(client).store)["quarantine"].num_rows == 0


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/xml", "application/x-www-form-urlencoded", "application/jsonl", "json"],
)
def test_another_content_type_is_a_415(client: TestClient, content_type: str | None) -> None:
    response = post(client, ROUTES["event"], json.dumps(event("e")).encode(), content_type)
    assert response.status_code == 415
    assert response.json()["error"].startswith("content-type: ")
    assert response.json()["hint"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/x-ndjson; charset=utf-8"],
)
def test_content_type_parameters_and_case_are_accepted(client: TestClient, content_type: str) -> None:
    response = post(client, ROUTES["event"], json.dumps(event("e")).encode(), content_type)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_method_on_an_ingest_route_is_a_405_that_names_post(client: TestClient, method: str) -> None:
    """The ingest routes are served ahead of FastAPI's router, which would answer the same."""
    response = client.request(method, ROUTES["event"])
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"].startswith("method: ")


def test_the_ingest_routes_are_served_without_fastapi_routing(client: TestClient) -> None:
    """No dependency resolution, no request object: the ingest routes never reach the router
    (which documents them but does not hold them)."""
    paths = {getattr(route, "path", None) for route in client.app.router.routes}  # type: ignore[attr-defined]
    assert not paths & set(ROUTES.values())
    documented = client.get("/openapi.json").json()["paths"]
    assert all("post" in documented[path] for path in ROUTES.values())
    assert post(client, ROUTES["event"], json.dumps(event("e")).encode(), JSON).status_code == 200
    assert post(client, ROUTES["event"] + "/", json.dumps(event("f")).encode(), JSON).status_code == 200


def test_a_client_gone_before_its_body_ends_gets_no_answer_and_nothing_is_stored(client: TestClient) -> None:
    app = client.app
    messages = iter(
        [{"type": "http.request", "body": b'{"event_id": "e', "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": ROUTES["event"],
        "headers": [(b"content-type", JSON.encode())],
        "app": app,
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[operator, arg-type]
    assert sent == []
    assert sum(service_of(client).store.unsealed().values()) == 0


def padded_batch(size: int) -> bytes:
    """An NDJSON batch of exactly `size` bytes (blank-padded)."""
    body = ndjson([event(f"pad-{i}") for i in range(3)])
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_a_body_at_the_limit_is_accepted(make_client: Any) -> None:
    client = make_client(max_body_bytes=4096)
    response = post(client, ROUTES["event"], padded_batch(4096), NDJSON)
    assert response.status_code == 200
    assert response.json()["accepted"] == 3


def test_a_body_over_the_declared_limit_is_a_413(make_client: Any) -> None:
    client = make_client(max_body_bytes=4096)
    response = post(client, ROUTES["event"], padded_batch(4097), NDJSON)
    assert response.status_code == 413
    assert "4,096" in response.json()["error"]
    assert response.json()["hint"]
    assert sealed_tables(service_of(client).store)["quarantine"].num_rows == 0


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_streamed_body_without_content_length_is_limited_too(make_client: Any) -> None:
    client = make_client(max_body_bytes=4096)
    request = client.build_request(
        "POST", ROUTES["event"], content=chunks(padded_batch(4097)), headers={"content-type": NDJSON}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"

    assert client.send(request).status_code == 413
    streamed_ok = post(client, ROUTES["event"], chunks(padded_batch(4096)), NDJSON)
    assert streamed_ok.status_code == 200
    assert streamed_ok.json()["accepted"] == 3


@pytest.mark.parametrize(("limit", "status"), [(50_000, 413), (200_000, 400)])
def test_deep_nesting_is_a_413_over_the_limit_and_a_400_under_it(
    make_client: Any, limit: int, status: int
) -> None:
    client = make_client(max_body_bytes=limit)
    assert post(client, ROUTES["event"], b"[" * 100_000).status_code == status


# --- concurrency: group commit --------------------------------------------------------------

THREADS, REQUESTS = 8, 50


def test_concurrent_requests_are_group_committed_and_stored_exactly_once(client: TestClient) -> None:
    """Every thread sends its own events plus one shared event per round (a retry race)."""
    results: dict[int, list[httpx.Response]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def sender(t: int) -> None:
        try:
            start.wait()
            results[t] = [
                post(client, ROUTES["event"], ndjson([event(f"t{t}-r{r}"), event(f"shared-{r}")]), NDJSON)
                for r in range(REQUESTS)
            ]
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    service = service_of(client)
    commits_before = service.committer.commits
    threads = [threading.Thread(target=sender, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors

    shared: Counter[tuple[int, str]] = Counter()
    for t, responses in results.items():
        assert len(responses) == REQUESTS
        for r, response in enumerate(responses):
            assert response.status_code == 200
            own, other = response.json()["statuses"]
            assert own == "accepted", (t, r)
            shared[(r, other)] += 1
    for r in range(REQUESTS):
        assert shared[(r, "accepted")] == 1
        assert shared[(r, "duplicate")] == THREADS - 1

    commits = service.committer.commits - commits_before
    assert 0 < commits < THREADS * REQUESTS, f"{commits} commits for {THREADS * REQUESTS} requests"

    ids = ids_of(service.store, "event")
    assert len(ids) == len(set(ids)) == THREADS * REQUESTS + REQUESTS
    assert set(ids) == {f"t{t}-r{r}" for t in range(THREADS) for r in range(REQUESTS)} | {
        f"shared-{r}" for r in range(REQUESTS)
    }
