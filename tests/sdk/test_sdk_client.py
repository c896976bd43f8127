"""Client: log_* return at once with ids and timestamps, records go out as NDJSON batches."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import msgspec
import pytest
from sdk_fakes import FakeServer, wait_until

from revealed.sdk import Client

pytestmark = pytest.mark.timeout(60)
MakeClient = Callable[..., Client]


def test_log_returns_a_client_side_id_and_adds_an_epoch_ms_timestamp(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(flush_interval_s=60)
    before = time.time_ns() // 1_000_000
    event_id = client.log_event("click", user_id="u1", item_id="sku-7")
    decision_id = client.log_decision(["sku-1", "sku-7"], user_id="u1")
    after = time.time_ns() // 1_000_000
    assert isinstance(event_id, str)
    assert event_id
    assert isinstance(decision_id, str)
    assert decision_id
    assert event_id != decision_id
    assert server.requests() == []  # nothing sent yet: log_* only buffer
    assert client.flush(timeout_s=5)

    (event,) = server.requests("event")[0].records
    assert event == {
        "type": "click",
        "user_id": "u1",
        "item_id": "sku-7",
        "event_id": event_id,
        "timestamp": event["timestamp"],
    }
    (decision,) = server.requests("decision")[0].records
    assert decision["decision_id"] == decision_id
    assert decision["items"] == [{"item_id": "sku-1"}, {"item_id": "sku-7"}]
    for record in (event, decision):
        assert isinstance(record["timestamp"], int)
        assert before <= record["timestamp"] <= after


def test_a_given_id_and_timestamp_are_kept(server: FakeServer, make_client: MakeClient) -> None:
    client = make_client()
    assert client.log_event("click", event_id="e-mine", timestamp=1_769_860_805_000) == "e-mine"
    items = [{"item_id": "sku-1", "score": 2.1, "cond_propensity": 0.6}]
    assert client.log_decision(items, decision_id="d-mine", timestamp="2026-01-31T12:00:00Z") == "d-mine"
    assert client.log_item("sku-1", features={"price": 9.5}) == "sku-1"
    assert client.flush(timeout_s=5)

    assert server.requests("event")[0].records == [
        {"type": "click", "event_id": "e-mine", "timestamp": 1_769_860_805_000}
    ]
    assert server.requests("decision")[0].records == [
        {"items": items, "decision_id": "d-mine", "timestamp": "2026-01-31T12:00:00Z"}
    ]
    assert server.requests("item")[0].records == [{"item_id": "sku-1", "features": {"price": 9.5}}]


def test_ids_are_unique_across_100k_calls_and_two_clients(
    server: FakeServer, make_client: MakeClient
) -> None:
    first, second = make_client(batch_size=5000), make_client(batch_size=5000)
    ids = [first.log_event("view") for _ in range(100_000)]
    ids += [second.log_event("view") for _ in range(10_000)]
    ids += [first.log_decision(["a"]) for _ in range(1_000)]
    ids += [second.log_decision(["a"]) for _ in range(1_000)]
    assert len(set(ids)) == len(ids) == 112_000
    assert first.flush(timeout_s=20)
    assert second.flush(timeout_s=20)
    assert sorted(server.delivered("event") + server.delivered("decision")) == sorted(ids)


def test_records_go_as_ndjson_to_their_endpoints(server: FakeServer, make_client: MakeClient) -> None:
    client = make_client(flush_interval_s=60)
    event_ids = [client.log_event("click", n=n) for n in range(3)]
    decision_id = client.log_decision(["sku-1"])
    client.log_item("sku-1", valid_from="2026-01-01T00:00:00Z")
    assert client.flush(timeout_s=5)

    paths = {s.kind: s.path for s in server.requests()}
    assert paths == {"event": "/v1/events", "decision": "/v1/decisions", "item": "/v1/items"}
    for seen in server.requests():
        assert seen.headers["content-type"] == "application/x-ndjson"
        assert "authorization" not in seen.headers
    assert server.delivered("event") == event_ids
    assert server.delivered("decision") == [decision_id]
    assert server.delivered("item") == ["sku-1"]
    assert client.stats.accepted == 5
    assert client.stats.batches == 3


def test_the_body_is_one_json_object_per_line(make_client: MakeClient) -> None:
    bodies: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return FakeServer().ingest("event", [msgspec.json.decode(x) for x in request.content.splitlines()])

    client = make_client(via=FakeServer(script=[record]), flush_interval_s=60)
    ids = [client.log_event("click", note="a\nb") for _ in range(3)]
    assert client.flush(timeout_s=5)
    (body,) = bodies
    assert body.endswith(b"\n")
    assert body.count(b"\n") == 3
    assert [msgspec.json.decode(line)["event_id"] for line in body.splitlines()] == ids


def test_the_api_key_is_sent_as_a_bearer_token(server: FakeServer, make_client: MakeClient) -> None:
    client = make_client(api_key="rk_secret")
    client.log_event("click")
    client.log_decision(["a"])
    assert client.flush(timeout_s=5)
    assert {s.headers["authorization"] for s in server.requests()} == {"Bearer rk_secret"}


def test_a_full_batch_is_sent_without_waiting_for_the_interval(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(batch_size=10, flush_interval_s=60)
    first = [client.log_event("view") for _ in range(10)]
    assert wait_until(lambda: len(server.requests()) == 1, timeout_s=5)
    assert server.requests()[0].ids == first

    rest = [client.log_event("view") for _ in range(5)]  # less than a batch: waits
    time.sleep(0.2)
    assert len(server.requests()) == 1
    assert client.flush(timeout_s=5)
    assert [s.ids for s in server.requests()] == [first, rest]


def test_a_large_backlog_is_split_into_batches_of_batch_size(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(batch_size=7, flush_interval_s=60)
    ids = [client.log_event("view") for _ in range(100)]
    assert client.flush(timeout_s=5)
    assert all(1 <= len(s.records) <= 7 for s in server.requests())
    assert [i for s in server.requests() for i in s.ids] == ids


def test_a_partial_batch_is_sent_after_flush_interval(server: FakeServer, make_client: MakeClient) -> None:
    client = make_client(batch_size=1000, flush_interval_s=0.05)
    ids = [client.log_event("view") for _ in range(3)]
    assert wait_until(lambda: server.delivered() == ids, timeout_s=5)  # no flush() call


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Client("http://revealed.test", batch_size=0)
