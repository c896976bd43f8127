"""Client: what it does with each kind of answer (retry, give up, report) and the counters."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
from sdk_fakes import FAST, URL, FakeServer

from revealed.sdk import AsyncClient, Client, RecordError
from revealed.sdk.core import Core

pytestmark = pytest.mark.timeout(60)
MakeClient = Callable[..., Client]


@pytest.mark.parametrize(
    "failures",
    [
        ["connect"],
        ["connect", "connect", "connect"],
        [500],
        [502, 503],
        [503, 503, 503],
        [504],
        [429],
        [429, "connect", 500],
    ],
)
def test_transient_failures_are_retried_then_each_record_is_delivered_once(
    make_client: MakeClient, failures: list[Any]
) -> None:
    server = FakeServer(script=failures)
    errors: list[RecordError] = []
    client = make_client(via=server, batch_size=5, flush_interval_s=60, max_retries=5, on_error=errors.append)
    ids = [client.log_event("click", n=n) for n in range(5)]
    assert client.flush(timeout_s=10)

    seen = server.requests()
    assert len(seen) == len(failures) + 1
    assert all(s.ids == ids for s in seen)  # the retry carries the same ids
    assert server.delivered() == ids
    assert client.stats.retries == len(failures)
    assert client.stats.accepted == 5
    assert (client.stats.failed, client.stats.dropped, client.stats.duplicate) == (0, 0, 0)
    assert errors == []


def test_a_retry_after_a_lost_reply_is_a_duplicate_not_a_second_copy(make_client: MakeClient) -> None:
    server = FakeServer(script=["stored-then-503"])
    client = make_client(via=server, batch_size=3, flush_interval_s=60)
    ids = [client.log_event("click") for _ in range(3)]
    assert client.flush(timeout_s=10)
    assert [s.ids for s in server.requests()] == [ids, ids]
    assert server.delivered() == ids
    assert client.stats.duplicate == 3
    assert client.stats.accepted == 0
    assert client.stats.retries == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 413, 415, 422, 425])
def test_a_4xx_is_never_retried_and_reaches_on_error(make_client: MakeClient, status: int) -> None:
    server = FakeServer(script=[status])
    errors: list[RecordError] = []
    client = make_client(via=server, batch_size=3, flush_interval_s=60, on_error=errors.append)
    ids = [client.log_event("click") for _ in range(3)]
    assert client.flush(timeout_s=10)

    assert len(server.requests()) == 1
    assert client.stats.retries == 0
    assert client.stats.failed == 3
    assert client.stats.accepted == 0
    assert errors == [
        RecordError("event", record_id, f"http {status}", [f"the server said {status}"]) for record_id in ids
    ]

    # the client keeps working afterwards
    later = client.log_event("click")
    assert client.flush(timeout_s=10)
    assert server.delivered() == [later]


def test_a_4xx_without_a_json_body_still_reports_the_body(make_client: MakeClient) -> None:
    server = FakeServer(script=[lambda request: httpx.Response(413, text="Request Entity Too Large")])
    errors: list[RecordError] = []
    client = make_client(via=server, flush_interval_s=60, on_error=errors.append)
    event_id = client.log_event("click")
    assert client.flush(timeout_s=10)
    assert errors == [RecordError("event", event_id, "http 413", ["Request Entity Too Large"])]
    assert client.stats.failed == 1


def _reject_bad(record: dict[str, Any]) -> list[str]:
    return [f"bad: expected false, found {record['bad']}"] if record.get("bad") else []


def test_rejected_rows_reach_on_error_with_their_field_errors(make_client: MakeClient) -> None:
    server = FakeServer(reject=_reject_bad)
    errors: list[RecordError] = []
    results: list[tuple[str, list[dict[str, Any]], list[str]]] = []
    client = make_client(
        via=server,
        batch_size=4,
        flush_interval_s=60,
        on_error=errors.append,
        on_result=lambda kind, records, statuses: results.append((kind, records, statuses)),
    )
    good = client.log_event("click")
    bad = client.log_event("click", bad=True)
    client.log_event("click", event_id=good)  # the same id again: duplicate, or conflict if the ms changed
    other = client.log_event("click")
    assert client.flush(timeout_s=10)

    assert len(server.requests()) == 1  # a 200 with per-row statuses is final
    (result,) = results
    kind, records, statuses = result
    assert kind == "event"
    assert [r["event_id"] for r in records] == [good, bad, good, other]
    assert statuses[:2] == ["accepted", "rejected"]
    assert statuses[2] in ("duplicate", "conflict")
    assert statuses[3] == "accepted"
    assert errors == [RecordError("event", bad, "rejected", ["bad: expected false, found True"])]
    assert client.stats.rejected == 1
    assert client.stats.accepted == 2
    assert client.stats.duplicate + client.stats.conflict == 1
    assert client.stats.failed == 0


def test_a_422_with_every_row_rejected_is_final_and_reported(make_client: MakeClient) -> None:
    server = FakeServer(reject=_reject_bad)
    errors: list[RecordError] = []
    statuses: list[list[str]] = []
    client = make_client(
        via=server,
        batch_size=2,
        flush_interval_s=60,
        on_error=errors.append,
        on_result=lambda kind, records, s: statuses.append(s),
    )
    ids = [client.log_event("click", bad=True) for _ in range(2)]
    assert client.flush(timeout_s=10)
    assert len(server.requests()) == 1
    assert statuses == [["rejected", "rejected"]]
    assert [(e.record_id, e.status) for e in errors] == [(i, "rejected") for i in ids]
    assert all(e.errors == ["bad: expected false, found True"] for e in errors)
    assert client.stats.rejected == 2
    assert client.stats.retries == 0


def test_on_result_gets_every_batch_with_its_statuses(make_client: MakeClient) -> None:
    results: list[tuple[str, list[str], list[str]]] = []
    client = make_client(
        batch_size=2,
        flush_interval_s=60,
        on_result=lambda kind, records, statuses: results.append(
            (kind, [r.get("event_id") or r.get("decision_id") for r in records], statuses)
        ),
    )
    ids = [client.log_event("view") for _ in range(3)]
    decision = client.log_decision(["a"])
    assert client.flush(timeout_s=10)
    assert sorted(results) == sorted(
        [
            ("event", ids[:2], ["accepted", "accepted"]),
            ("event", ids[2:], ["accepted"]),
            ("decision", [decision], ["accepted"]),
        ]
    )


def test_retries_give_up_after_max_retries_and_without_spool_the_records_are_dropped(
    make_client: MakeClient,
) -> None:
    server = FakeServer()
    server.down = True
    errors: list[RecordError] = []
    client = make_client(via=server, batch_size=4, flush_interval_s=60, max_retries=3, on_error=errors.append)
    for _ in range(4):
        client.log_event("click")
    assert client.flush(timeout_s=10)

    assert len(server.requests()) == 4  # the first attempt and 3 retries
    assert client.stats.retries == 3
    assert client.stats.dropped == 4
    assert client.stats.spooled == 0
    (error,) = errors
    assert (error.kind, error.record_id, error.status) == ("event", None, "dropped")
    assert "4 records dropped" in error.errors[0]
    assert "no spool_dir" in error.errors[0]


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    core = Core.build(
        "http://revealed.test",
        api_key=None,
        batch_size=10,
        flush_interval_s=1.0,
        max_retries=5,
        backoff_base_s=0.1,
        backoff_max_s=1.0,
        spool_dir=None,
        spool_max_bytes=1,
        on_error=None,
        on_result=None,
    )
    for attempt, cap in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (10, 1.0)]:
        delays = [core.backoff(attempt) for _ in range(500)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # jittered over the whole range, not a constant
        assert len(set(delays)) > 400


def _timed(script: list[int]) -> tuple[FakeServer, list[float]]:
    """A server that answers `script` first and then normally, noting when each request came."""
    times: list[float] = []
    server = FakeServer()

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        status = script.pop(0) if script else 200
        if status == 200:
            return server.ingest(
                "event", [msgspec.json.decode(line) for line in request.content.splitlines()]
            )
        return httpx.Response(status, json={"error": "later", "hint": None})

    server.fallback = answer
    return server, times


#: the backoff each retry waits, made fixed (no jitter) so the waits can be measured
_WAITS = [0.05, 0.1, 0.2]


def _fixed_backoff(monkeypatch: pytest.MonkeyPatch, asked: list[int]) -> None:
    def backoff(self: Core, attempt: int) -> float:
        asked.append(attempt)
        return _WAITS[attempt]

    monkeypatch.setattr(Core, "backoff", backoff)


def test_each_retry_waits_its_backoff_first(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    _fixed_backoff(monkeypatch, asked)
    server, times = _timed([503, 503, 429])
    client = make_client(via=server, batch_size=2, flush_interval_s=60, max_retries=5)
    client.log_event("click")
    client.log_event("click")
    assert client.flush(timeout_s=10)

    assert asked == [0, 1, 2]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert all(gap >= wait * 0.9 for gap, wait in zip(gaps, _WAITS, strict=True)), gaps


def test_an_async_client_waits_its_backoff_before_each_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    _fixed_backoff(monkeypatch, asked)
    server, times = _timed([503, 503, 429])

    async def main() -> None:
        options = {**FAST, "batch_size": 2, "flush_interval_s": 60, "max_retries": 5}
        async with AsyncClient(URL, transport=httpx.MockTransport(server), **options) as client:
            client.log_event("click")
            client.log_event("click")
            assert await client.flush(timeout_s=10)

    asyncio.run(main())
    assert asked == [0, 1, 2]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= wait * 0.9 for gap, wait in zip(gaps, _WAITS, strict=True)), gaps


def test_a_client_with_nothing_logged_closes_without_a_request() -> None:
    server = FakeServer()
    client = Client("http://revealed.test", transport=httpx.MockTransport(server), **FAST)
    client.close()
    assert server.requests() == []
