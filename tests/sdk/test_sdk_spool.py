"""Client and the on-disk spool: an unreachable server, replay in order, restarts, the bound."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sdk_fakes import FakeServer, spooled_files, wait_until

from revealed.sdk import Client, RecordError

pytestmark = pytest.mark.timeout(60)
MakeClient = Callable[..., Client]


def test_batches_spill_to_the_spool_and_are_replayed_in_order(
    tmp_path: Path, make_client: MakeClient
) -> None:
    server = FakeServer()
    server.down = True
    client = make_client(via=server, spool_dir=tmp_path, batch_size=5, flush_interval_s=60, max_retries=1)
    logged = [client.log_event("view", n=n) for n in range(5)]
    assert client.flush(timeout_s=10)  # flushed into the spool
    assert len(spooled_files(tmp_path)) == 1
    assert client.stats.spooled == 5

    logged += [client.log_event("view", n=n) for n in range(5, 12)]
    assert client.flush(timeout_s=10)
    assert spooled_files(tmp_path) == [
        "00000000000000000000-event.ndjson",
        "00000000000000000001-event.ndjson",
        "00000000000000000002-event.ndjson",
    ]
    assert client.stats.spooled == 12
    assert (client.stats.dropped, client.stats.accepted) == (0, 0)
    assert server.delivered() == []

    server.recover()
    logged += [client.log_event("view", n=n) for n in range(12, 15)]
    assert client.flush(timeout_s=10)  # the spool is replayed before the new batch is sent
    assert len(server.delivered()) == 15
    delivered_in_requests = [i for s in server.requests() if s.action == "ok" for i in s.ids]
    assert delivered_in_requests == logged  # the order of ids across requests is the logging order
    assert server.delivered() == logged
    assert spooled_files(tmp_path) == []
    assert client.stats.replayed == 12
    assert client.stats.accepted == 15


def test_new_batches_queue_behind_the_spool_across_kinds(tmp_path: Path, make_client: MakeClient) -> None:
    server = FakeServer()
    server.down = True
    client = make_client(via=server, spool_dir=tmp_path, batch_size=2, max_retries=0)
    events = [client.log_event("view") for _ in range(3)]
    decisions = [client.log_decision(["a"]) for _ in range(3)]
    items = [client.log_item(f"sku-{n}") for n in range(3)]
    assert client.flush(timeout_s=10)
    assert client.stats.spooled == 9
    events += [client.log_event("view") for _ in range(3)]
    decisions += [client.log_decision(["a"]) for _ in range(3)]
    assert client.flush(timeout_s=10)

    server.recover()
    assert wait_until(lambda: server.total_delivered() == 15)
    assert server.delivered("event") == events
    assert server.delivered("decision") == decisions
    assert server.delivered("item") == items
    assert wait_until(lambda: client.stats.replayed == 15)  # counted just after the last delivery
    for kind in ("event", "decision", "item"):  # each kind's requests carry its ids in logging order
        assert [i for s in server.requests(kind) if s.action == "ok" for i in s.ids] == server.delivered(kind)


def test_a_new_client_replays_what_a_closed_one_spooled(tmp_path: Path, make_client: MakeClient) -> None:
    server = FakeServer()
    server.down = True
    first = make_client(via=server, spool_dir=tmp_path, batch_size=4, flush_interval_s=60, max_retries=1)
    events = [first.log_event("view") for _ in range(10)]
    decisions = [first.log_decision(["a", "b"]) for _ in range(5)]
    first.close(timeout_s=10)  # the server is still down: everything stays spooled
    assert first.stats.spooled == 15
    assert len(spooled_files(tmp_path)) == 5
    assert server.delivered() == []

    server.recover()
    second = make_client(via=server, spool_dir=tmp_path)  # replays on start, nothing logged
    assert wait_until(lambda: server.total_delivered() == 15)
    assert server.delivered("event") == events
    assert server.delivered("decision") == decisions
    assert wait_until(lambda: spooled_files(tmp_path) == [])
    assert wait_until(lambda: second.stats.replayed == 15)  # counted just after the last delivery
    assert second.stats.accepted == 15


def test_after_a_restart_new_batches_still_queue_behind_the_old_ones(
    tmp_path: Path, make_client: MakeClient
) -> None:
    server = FakeServer()
    server.down = True
    first = make_client(via=server, spool_dir=tmp_path, batch_size=3, flush_interval_s=60, max_retries=0)
    logged = [first.log_event("view") for _ in range(7)]
    first.close(timeout_s=10)

    second = make_client(via=server, spool_dir=tmp_path, batch_size=3, flush_interval_s=60, max_retries=0)
    logged += [second.log_event("view") for _ in range(7)]
    assert second.flush(timeout_s=10)
    assert len(spooled_files(tmp_path)) == 6
    assert server.delivered() == []

    server.recover()
    second.flush()  # wakes the sender, which replays the spool first
    assert wait_until(lambda: len(server.delivered()) == 14)
    assert server.delivered() == logged
    assert [i for s in server.requests() if s.action == "ok" for i in s.ids] == logged


def test_a_second_client_on_the_same_spool_dir_is_refused(tmp_path: Path, make_client: MakeClient) -> None:
    first = make_client(spool_dir=tmp_path)
    with pytest.raises(RuntimeError, match="used by another process"):
        make_client(spool_dir=tmp_path)
    first.close()
    make_client(spool_dir=tmp_path).close()  # free again once the first is closed


def test_the_spool_is_bounded_and_what_does_not_fit_is_dropped(
    tmp_path: Path, make_client: MakeClient
) -> None:
    server = FakeServer()
    server.down = True
    errors: list[RecordError] = []
    limit = 600
    client = make_client(
        via=server,
        spool_dir=tmp_path,
        spool_max_bytes=limit,
        batch_size=2,
        flush_interval_s=60,
        max_retries=0,
        on_error=errors.append,
    )
    logged = []
    for _ in range(10):  # one batch of 2 at a time, so each is spooled or dropped whole
        logged += [client.log_event("view", user_id="u-0123456789"), client.log_event("view")]
        assert client.flush(timeout_s=10)

    files = list(tmp_path.glob("*.ndjson"))
    assert 0 < sum(f.stat().st_size for f in files) <= limit
    stats = client.stats
    assert stats.dropped > 0
    assert stats.spooled == 2 * len(files)
    assert stats.spooled + stats.dropped == 20
    assert len(errors) == stats.dropped // 2
    assert all(e.status == "dropped" and e.record_id is None for e in errors)
    assert all("2 records dropped" in e.errors[0] and "holds" in e.errors[0] for e in errors)

    server.recover()
    client.flush()  # wakes the sender, which replays the spool first
    assert wait_until(lambda: spooled_files(tmp_path) == [])
    assert server.delivered() == logged[: stats.spooled]  # the oldest fit; later ones were dropped


def test_a_crash_leftover_tmp_file_is_removed_and_not_sent(tmp_path: Path, make_client: MakeClient) -> None:
    server = FakeServer()
    server.down = True
    first = make_client(via=server, spool_dir=tmp_path, max_retries=0)
    logged = [first.log_event("view") for _ in range(3)]
    first.close(timeout_s=10)
    # a batch that was being written when the process died: half a line, never renamed
    leftover = tmp_path / "00000000000000000001-event.tmp"
    leftover.write_bytes(b'{"event_id":"torn","type":"vi')

    server.recover()
    second = make_client(via=server, spool_dir=tmp_path)
    assert not leftover.exists()
    assert wait_until(lambda: spooled_files(tmp_path) == [])
    assert server.delivered() == logged
    assert "torn" not in {i for s in server.requests() for i in s.ids}
    second.log_event("view")
    assert second.flush(timeout_s=10)
    assert list(tmp_path.glob("*.tmp")) == []


def test_without_a_spool_an_unreachable_server_drops_records_through_on_error(
    make_client: MakeClient,
) -> None:
    server = FakeServer()
    server.down = True
    errors: list[RecordError] = []
    client = make_client(via=server, batch_size=3, flush_interval_s=60, max_retries=2, on_error=errors.append)
    for _ in range(3):
        client.log_decision(["a"])
    assert client.flush(timeout_s=10)
    assert client.stats.dropped == 3
    assert [(e.kind, e.status) for e in errors] == [("decision", "dropped")]
    assert "server unreachable" in errors[0].errors[0]

    server.recover()  # what comes later is delivered again
    decision = client.log_decision(["b"])
    assert client.flush(timeout_s=10)
    assert server.delivered("decision") == [decision]


def test_a_4xx_on_replay_is_final_and_removes_the_batch(tmp_path: Path, make_client: MakeClient) -> None:
    server = FakeServer()
    server.down = True
    errors: list[RecordError] = []
    first = make_client(via=server, spool_dir=tmp_path, batch_size=2, flush_interval_s=60, max_retries=0)
    bad = [first.log_event("view") for _ in range(2)]
    good = [first.log_event("view") for _ in range(2)]
    first.close(timeout_s=10)
    assert len(spooled_files(tmp_path)) == 2

    server.recover()
    server.script.append(400)
    second = make_client(via=server, spool_dir=tmp_path, on_error=errors.append)
    assert wait_until(lambda: spooled_files(tmp_path) == [] and len(server.delivered()) == 2)
    assert server.delivered() == good
    assert [(e.record_id, e.status) for e in errors] == [(i, "http 400") for i in bad]
    assert second.stats.failed == 2
