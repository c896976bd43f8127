"""The journal: ids, duplicates and conflicts, group commit, trimming, sequences."""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.store.commit_hold import hold_commits

from revealed.errors import StoreLocked
from revealed.settings import Settings
from revealed.store import GroupCommit, Status, Store
from revealed.store.entries import Prepared
from revealed.store.ingest import append_rows, prepare, prepare_batch
from revealed.store.journal import Journal
from revealed.store.seal import BackgroundSealer, SealerLease, seal
from revealed.store.tables import Tables

T0 = 1_767_225_600_000


def click(i: int, **extra: object) -> dict[str, object]:
    return {"event_id": f"e{i}", "timestamp": T0 + i, "type": "click", "user_id": "u", **extra}


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Store(Settings(data_dir=tmp_path)) as s:
        yield s


def test_first_copy_wins_duplicates_are_dropped_and_conflicts_quarantined(store: Store) -> None:
    first = store.ingest([click(1), click(2)])
    assert first.counts == {"accepted": 2}
    again = store.ingest([click(1), click(2, item_id="other"), click(3)])
    assert again.counts == {"duplicate": 1, "conflict": 1, "accepted": 1}
    within = store.ingest([click(4), click(4), click(4, item_id="x")])
    assert within.counts == {"accepted": 1, "duplicate": 1, "conflict": 1}
    store.seal()
    events = store.table("events").to_pyarrow_table()
    assert sorted(events.column("event_id").to_pylist()) == ["e1", "e2", "e3", "e4"]
    row = {r["event_id"]: r for r in events.to_pylist()}["e2"]
    assert row["item_id"] is None, "the first copy wins"
    quarantine = store.table("quarantine").to_pyarrow_table().to_pylist()
    assert sorted(q["record_id"] for q in quarantine) == ["e2", "e4"]
    assert all(q["reason"] == "id_conflict" and "different payload" in q["errors"][0] for q in quarantine)
    assert all('"item_id"' in q["raw"] for q in quarantine), "the conflicting payload is kept"


def test_invalid_rows_are_quarantined_with_raw_and_errors_in_the_same_batch(store: Store) -> None:
    report = store.ingest([click(1), {**click(2), "type": "clik"}, b"{not json", {"neither": 1}])
    assert report.counts == {"accepted": 1, "rejected": 3}
    store.seal()
    rows = {q["reason"]: q for q in store.table("quarantine").to_pyarrow_table().to_pylist()}
    assert set(rows) == {"invalid", "unknown_kind"}
    assert store.count("quarantine") == 3
    assert store.count("events") == 1


def test_group_commit_coalesces_concurrent_appends_and_acks_each(store: Store) -> None:
    group = GroupCommit(store.journal)
    results: dict[int, list[Status]] = {}

    def work(t: int) -> None:
        for b in range(20):
            entries = [
                prepare("event", click(t * 10_000 + b * 10 + i), received_us=T0 * 1000) for i in range(10)
            ]
            results[t * 100 + b] = group.append(entries)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    group.close()
    assert len(results) == 160
    assert all(s == [Status.ACCEPTED] * 10 for s in results.values())
    assert group.commits < 160, "concurrent appends share transactions"
    assert store.journal.pending()["events"] == 1600


def test_appends_of_one_group_commit_see_each_other_in_order(store: Store) -> None:
    """A group commit appends each caller's rows in turn in one transaction: a later append that
    repeats an earlier one's id is a duplicate or a conflict, as if committed after it."""
    first = Prepared.of([prepare("event", click(i), received_us=T0 * 1000) for i in range(3)])
    later = Prepared.of(
        [
            prepare("event", click(0), received_us=T0 * 1000),  # the same payload again
            prepare("event", click(1, value=2.0), received_us=T0 * 1000),  # another payload, a known id
            prepare("event", click(3), received_us=T0 * 1000),
        ]
    )
    statuses = store.journal.append_all([first, later])
    assert statuses == [
        [Status.ACCEPTED] * 3,
        [Status.DUPLICATE, Status.CONFLICT, Status.ACCEPTED],
    ]
    assert store.journal.pending()["events"] == 4
    assert store.journal.pending()["quarantine"] == 1


def test_a_failed_group_commit_stores_none_of_its_appends(store: Store) -> None:
    good = Prepared.of([prepare("event", click(1), received_us=T0 * 1000)])
    with pytest.raises(AttributeError):
        store.journal.append_all([good, None])  # type: ignore[list-item]
    assert store.journal.pending()["events"] == 0
    assert store.journal.append(good) == [Status.ACCEPTED], "rolled back, so still new"


def test_group_commit_reports_failures_to_every_waiter(store: Store) -> None:
    group = GroupCommit(store.journal)
    store.journal.close()
    with pytest.raises(Exception, match="closed"):
        group.append([prepare("event", click(1), received_us=T0 * 1000)])
    group.close()


def test_a_group_stops_growing_at_its_byte_bound(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    appends = [Prepared.of([prepare("event", click(i), received_us=T0 * 1000)]) for i in range(7)]
    one = appends[0].nbytes
    assert one > 0
    assert all(a.nbytes == one for a in appends)
    group = GroupCommit(store.journal, max_bytes=int(2.5 * one))
    groups, entered, release = hold_commits(store.journal, monkeypatch)
    futures = [group.submit(appends[0])]
    assert entered.wait(10)
    futures += [group.submit(a) for a in appends[1:]]
    release.set()
    assert [f.result(10) for f in futures] == [[Status.ACCEPTED]] * 7
    assert groups == [1, 2, 2, 2]
    group.close()


def test_a_small_append_counts_its_bytes_as_sent(store: Store) -> None:
    """A few events journaled as values still weigh what they carry: a 1 MB event is 1 MB to a group."""
    body = msgspec.json.encode(click(1, properties={"text": "x" * 1_000_000}))
    prepared = prepare_batch("event", [body], received_us=T0 * 1000)
    assert prepared.tables["events"].values is not None  # the small-append path
    assert prepared.nbytes >= 1_000_000


def test_an_append_that_fails_its_group_fails_alone(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group whose commit fails is committed again one append at a time: its other appends are
    stored and told so, and only the failing one gets the error."""
    good = [Prepared.of([prepare("event", click(i), received_us=T0 * 1000)]) for i in range(3)]
    rows = good[2].tables["events"]
    bad = Prepared(1, {"no_such_table": rows}, [])
    group = GroupCommit(store.journal)
    groups, entered, release = hold_commits(store.journal, monkeypatch)
    first = group.submit(good[0])
    assert entered.wait(10)
    queued = [group.submit(p) for p in (good[1], bad, good[2])]
    release.set()
    assert first.result(10) == [Status.ACCEPTED]
    assert queued[0].result(10) == [Status.ACCEPTED]
    with pytest.raises(sqlite3.OperationalError):
        queued[1].result(10)
    assert queued[2].result(10) == [Status.ACCEPTED]
    assert groups[:2] == [1, 3]  # the group of three failed, then each went alone
    assert store.journal.pending()["events"] == 3
    group.close()


def test_group_commit_settles_event_loop_waiters_and_threads_alike(store: Store) -> None:
    """Waiters on two event loops and a thread share commits, each gets its own statuses, and a
    failed commit reaches the loops too."""
    group = GroupCommit(store.journal)

    def batch(first: int) -> Prepared:
        return Prepared.of(
            [prepare("event", click(i), received_us=T0 * 1000) for i in range(first, first + 3)]
        )

    async def on_a_loop(first: int) -> list[list[Status]]:
        results = await asyncio.gather(*(group.append_async(batch(first + 10 * k)) for k in range(20)))
        return [*results, await group.append_async(batch(first))]  # a retry of the first batch

    results: dict[str, list[list[Status]]] = {}
    threads = [
        threading.Thread(target=lambda n=n: results.__setitem__(n, asyncio.run(on_a_loop(int(n) * 1000))))
        for n in ("0", "1")
    ]
    for t in threads:
        t.start()
    results["thread"] = [group.append(batch(5000)) for _ in range(2)]
    for t in threads:
        t.join()
    for n in ("0", "1"):
        assert results[n] == [[Status.ACCEPTED] * 3] * 20 + [[Status.DUPLICATE] * 3]
    assert results["thread"] == [[Status.ACCEPTED] * 3, [Status.DUPLICATE] * 3]
    store.journal.close()
    with pytest.raises(Exception, match="closed"):
        asyncio.run(group.append_async(batch(9000)))
    group.close()


def test_a_waiter_that_gave_up_does_not_keep_its_group_from_being_told(store: Store) -> None:
    group = GroupCommit(store.journal)
    batches = [Prepared.of([prepare("event", click(i), received_us=T0 * 1000)]) for i in range(2)]

    async def main() -> list[Status]:
        with store.journal._lock:  # the commit thread waits here: both appends join one group
            gives_up = asyncio.ensure_future(group.append_async(batches[0]))
            stays = asyncio.ensure_future(group.append_async(batches[1]))
            await asyncio.sleep(0.05)
            gives_up.cancel()
            await asyncio.sleep(0)
        return await asyncio.wait_for(stays, timeout=10)

    assert asyncio.run(main()) == [Status.ACCEPTED]
    assert store.journal.pending()["events"] == 2, "the append whose waiter left is stored all the same"
    group.close()


def test_trim_to_empty_then_append_more_sequences_never_restart(tmp_path: Path) -> None:
    with Store(Settings(data_dir=tmp_path)) as store:
        store.ingest([click(i) for i in range(10)])
        store.seal()
        assert store.journal.pending()["events"] == 0
        assert store.journal.last_seq("events") == 1, "one journal row per committed batch"
    with Store(Settings(data_dir=tmp_path)) as store:  # reopened: the sequence is persisted
        store.ingest([click(i) for i in range(10, 25)])
        assert store.journal.last_seq("events") == 2
        assert store.unsealed()["events"] == 15
        report = store.seal()
        assert report.sealed["events"] == 15
        assert store.count("events") == 25
        assert store.tables.watermark("events", store.journal.app_id) == 2


def test_a_trim_lets_appends_in_between_its_steps(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trim deletes in steps of a few thousand rows, each its own transaction, and pauses
    between them with the write lock free, so a commit waits for one step and not for the whole
    trim; a step stops at the sealed end."""
    for n in range(12):
        store.ingest([click(n * 50 + i) for i in range(50)])
    through = store.journal.last_seq("events") - 2  # the last two batches stay
    pauses: list[int] = []

    class Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            assert not store.journal._lock.locked()
            pauses.append(store.journal.pending()["events"])
            if len(pauses) == 1:  # an append between two steps goes straight in
                assert store.ingest([click(10_000)]).counts["accepted"] == 1

    monkeypatch.setattr(importlib.import_module("revealed.store.journal"), "time", Clock())
    assert store.journal.trim("events", through=through, step_rows=120) == 500
    assert pauses == [450, 300 + 1, 150 + 1, 100 + 1], "3 batches of 50 a step, the append kept"


def test_journal_identity_is_a_uuid_not_a_path(tmp_path: Path) -> None:
    with Store(Settings(data_dir=tmp_path / "a")) as a, Store(Settings(data_dir=tmp_path / "b")) as b:
        assert a.journal.app_id != b.journal.app_id
        assert len(a.journal.app_id) == 36
    with Store(Settings(data_dir=tmp_path / "a")) as again:
        assert again.journal.app_id == a.journal.app_id


def test_ids_older_than_the_retention_are_forgotten(store: Store) -> None:
    store.ingest([click(1)])
    assert store.journal.prune_ids(before_us=0) == 0
    assert store.journal.prune_ids(before_us=2**62) == 1
    assert store.ingest([click(1)]).counts == {"accepted": 1}, "past retention, the pipeline dedupes by id"


def test_the_same_bad_record_twice_is_quarantined_once(store: Store) -> None:
    bad = [{**click(1), "type": "clik"}, b"{not json", {**click(2), "type": "clik"}]
    first = store.ingest(bad)
    again = store.ingest([*bad, bad[0]])
    assert first.counts == {"rejected": 3}
    assert again.counts == {"rejected": 4}, "the client still learns each record is bad"
    store.seal()
    assert store.count("quarantine") == 3
    ids = store.table("quarantine").to_pyarrow_table().column("quarantine_id").to_pylist()
    assert len(set(ids)) == 3


def test_a_conflict_is_quarantined_as_it_was_sent(store: Store) -> None:
    store.ingest([click(1)])
    sent = b'{"event_id": "e1", "timestamp": "2026-01-01T00:00:00Z", "type": "save", "user_id": "u"}'
    assert store.ingest([sent], source="upload.ndjson:7").counts == {"conflict": 1}
    store.seal()
    (row,) = store.table("quarantine").to_pyarrow_table().to_pylist()
    assert (row["raw"], row["source"], row["reason"]) == (sent.decode(), "upload.ndjson:7", "id_conflict")


def test_a_retry_of_the_same_stored_row_in_another_form_is_a_duplicate(store: Store) -> None:
    """The digest is of the stored row, not of the bytes sent: the service's hot path (epoch
    milliseconds) and the general path (an RFC 3339 time) agree, whatever the key order, the
    whitespace or an integral value's spelling."""
    row = {"event_id": "e1", "timestamp": T0, "type": "dwell", "user_id": "u", "value": 5}
    sent = json.dumps({**row, "properties": {"b": 1, "a": [2, 3]}}).encode()
    retries = [
        json.dumps(  # keys in another order, no whitespace, 5.0 for 5
            {"properties": {"a": [2, 3], "b": 1}, **{**row, "value": 5.0}}, separators=(",", ":")
        ).encode(),
        json.dumps(
            {**row, "timestamp": "2026-01-01T00:00:00Z", "properties": {"a": [2, 3], "b": 1}}
        ).encode(),
        json.dumps(
            {**row, "timestamp": "2026-01-01T01:00:00+01:00", "properties": {"b": 1, "a": [2, 3]}}
        ).encode(),
    ]
    changed = json.dumps({**row, "properties": {"b": 1, "a": [3, 2]}}).encode()
    assert append_rows(store.journal, "event", [sent]).statuses == [Status.ACCEPTED]
    assert append_rows(store.journal, "event", [*retries, changed]).statuses == [
        *[Status.DUPLICATE] * 3,
        Status.CONFLICT,
    ]
    for retry in retries:  # and as an object, which takes the general path (files, the SDK in process)
        assert append_rows(store.journal, "event", [json.loads(retry)]).statuses == [Status.DUPLICATE]


#: (id, payload variant) pairs: few ids, so batches repeat and conflict within and across appends
_SENDS = st.lists(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), max_size=7), max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_SENDS)
def test_each_id_is_stored_once_as_first_sent_and_every_row_told_its_fate(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[int, int]]]
) -> None:
    """Against a model of the contract: the first copy of an id is accepted, the same payload
    again is a duplicate, another payload a conflict; whatever shortcut an append takes (every id
    new, or some known), nothing is lost and nothing stored twice."""
    first: dict[int, int] = {}
    with Store(Settings(data_dir=tmp_path_factory.mktemp("journal"))) as store:
        for batch in batches:
            expected = []
            for i, v in batch:
                if i not in first:
                    first[i] = v
                    expected.append(Status.ACCEPTED)
                else:
                    expected.append(Status.DUPLICATE if first[i] == v else Status.CONFLICT)
            raws = [msgspec.json.encode(click(i, item_id=f"v{v}")) for i, v in batch]
            assert append_rows(store.journal, "event", raws).statuses == expected
        store.seal()
        rows = store.table("events").to_pyarrow_table().to_pylist()
    assert sorted(r["event_id"] for r in rows) == sorted(f"e{i}" for i in first)
    assert {r["event_id"]: r["item_id"] for r in rows} == {f"e{i}": f"v{v}" for i, v in first.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_SENDS, bad=st.sets(st.integers(0, 40), max_size=4))
def test_a_group_commit_is_one_append_of_its_appends_rows_in_order(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[int, int]]], bad: set[int]
) -> None:
    """Committed together, appends get the statuses they would get one after another (the first
    copy of an id wins whichever append sent it; bad rows are rejected where they stand), and
    the group adds one journal row per table, not one per append."""
    raws = [
        [
            b"{not json" if n * 7 + j in bad else msgspec.json.encode(click(i, item_id=f"v{v}"))
            for j, (i, v) in enumerate(batch)
        ]
        for n, batch in enumerate(batches)
    ]
    with Store(Settings(data_dir=tmp_path_factory.mktemp("one-by-one"))) as store:
        expected = [append_rows(store.journal, "event", rows).statuses for rows in raws]
    with Store(Settings(data_dir=tmp_path_factory.mktemp("grouped"))) as store:
        grouped = store.journal.append_all([prepare_batch("event", rows) for rows in raws])
        journal_rows = {
            t: len(store.journal.read(t, after=0, limit=1 << 30)) for t in ("events", "quarantine")
        }
    assert grouped == expected
    flat = [s for statuses in expected for s in statuses]
    assert journal_rows["events"] == (Status.ACCEPTED in flat)
    assert journal_rows["quarantine"] == any(s in (Status.REJECTED, Status.CONFLICT) for s in flat)


def _events(first: int, n: int, received_us: int) -> Prepared:
    """An append of `n` events from body lines (the service's path), `first` its first id."""
    lines = [msgspec.json.encode(click(first + i, item_id=f"i{i}")) for i in range(n)]
    return prepare_batch("event", lines, received_us=received_us)


def _encodings(store: Store) -> list[int]:
    return [row[0] for row in store.journal._query("SELECT encoding FROM journal_events ORDER BY seq")]


def test_small_appends_are_journaled_as_rows_and_read_back_as_arrow_each_row_as_received(
    store: Store,
) -> None:
    """A commit group of small appends keeps their values in the journal (MessagePack), a group
    with a large append keeps Arrow; reading gives one batch per run of the former, each row as
    its own Arrow conversion would give it, receipt times included."""
    small = [_events(n * 10, n + 1, T0 * 1000 + n) for n in range(3)]
    large = _events(100, 65, T0 * 1000 + 9)
    later = [_events(200 + n * 10, 2, T0 * 1000 + 20 + n) for n in range(2)]
    assert all(p.tables["events"].batch is None for p in [*small, *later])
    assert large.tables["events"].batch is not None
    merged = Prepared.merge(small).tables["events"]
    assert merged.batch is None
    assert len(merged.values or ()) == 6
    store.journal.append_all(small[:2])
    store.journal.append_all(small[2:])
    store.journal.append_all([_events(50, 1, T0 * 1000 + 10), large])
    for p in later:
        store.journal.append_all([p])
    assert _encodings(store) == [1, 1, 0, 1, 1]
    batches = store.journal.read("events", after=0, limit=1 << 30)
    assert [b.seq for b in batches] == [2, 3, 5]
    expected = [
        pa.concat_batches([p.built().tables["events"].batch for p in part])
        for part in (small, [_events(50, 1, T0 * 1000 + 10), large], later)
    ]
    assert [b.batch for b in batches] == expected
    assert batches[0].batch.column("received_at").to_pylist() == [
        datetime.fromtimestamp(T0 / 1000 + n / 1e6, UTC) for n in (0, 1, 1, 2, 2, 2)
    ]
    # a read stops after the journal row that reaches its limit, and goes on from there
    (first,) = store.journal.read("events", after=0, limit=3)
    assert (first.seq, first.batch.num_rows) == (1, 3)
    part = store.journal.read("events", after=1, limit=1 << 30, through=4)
    assert [(b.seq, b.batch.num_rows) for b in part] == [(2, 3), (3, 66), (4, 2)]


def test_a_read_of_many_small_journal_rows_gives_each_row_once_in_order(store: Store) -> None:
    """Statements grow past 16 journal rows while the rows are small: across their pages, every
    row is read once, in sequence order, and the limit still holds."""
    for n in range(3_000):
        store.journal.append_all([_events(n, 1, T0 * 1000 + n)])
    (whole,) = store.journal.read("events", after=0, limit=1 << 30)
    assert whole.seq == 3_000
    assert whole.batch.column("event_id").to_pylist() == [f"e{n}" for n in range(3_000)]
    part = store.journal.read("events", after=100, limit=1_500)
    assert [(b.seq, b.batch.num_rows) for b in part] == [(1_600, 1_500)]


def test_values_that_a_small_append_dropped_are_not_journaled(store: Store) -> None:
    """On the exact path (some ids repeat or are known), only the accepted rows of a group's
    values are journaled."""
    store.journal.append_all([_events(0, 2, T0 * 1000)])
    again = prepare_batch(
        "event",
        [msgspec.json.encode(click(i, item_id=v)) for i, v in [(1, "i1"), (2, "x"), (2, "x"), (0, "y")]],
        received_us=T0 * 1000 + 1,
    )
    assert store.journal.append_all([again]) == [
        [Status.DUPLICATE, Status.ACCEPTED, Status.DUPLICATE, Status.CONFLICT]
    ]
    assert _encodings(store) == [1, 1]
    (rows,) = store.journal.read("events", after=0, limit=1 << 30)
    assert rows.batch.column("event_id").to_pylist() == ["e0", "e1", "e2"]
    assert rows.batch.column("item_id").to_pylist() == ["i0", "i1", "x"]


def test_a_journal_made_before_encodings_were_kept_reads_its_rows_as_arrow(tmp_path: Path) -> None:
    """Journal rows written before the `encoding` column existed are Arrow batches."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.append_all([Prepared.of([prepare("event", click(1), received_us=T0 * 1000)])])
    journal.close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE journal_events DROP COLUMN encoding")
    journal = Journal(path)
    journal.append_all([_events(2, 1, T0 * 1000)])
    batches = journal.read("events", after=0, limit=1 << 30)
    assert [b.batch.column("event_id").to_pylist() for b in batches] == [["e1"], ["e2"]]
    journal.close()


@pytest.mark.parametrize("nul", [False, True], ids=["json", "bound"])
def test_an_append_larger_than_one_insert_statement_is_counted_whole(store: Store, nul: bool) -> None:
    """Ids go to SQLite as one JSON array, or (when one holds a NUL, where SQLite's JSON strings
    end) bound in statements of 10,000 rows: the shortcut must count across them, and one known
    id in the last statement must send the whole append down the exact path."""
    many = [msgspec.json.encode(click(i)) for i in range(25_000)]
    if nul:
        many[0] = msgspec.json.encode({**click(0), "event_id": "e\x000"})
    assert set(append_rows(store.journal, "event", many).statuses) == {Status.ACCEPTED}
    again = [msgspec.json.encode(click(i)) for i in range(25_000, 49_999)] + [many[-1]]
    statuses = append_rows(store.journal, "event", again).statuses
    assert statuses[:-1] == [Status.ACCEPTED] * 24_999
    assert statuses[-1] is Status.DUPLICATE
    store.seal()
    assert store.count("events") == 49_999


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8), split=st.integers(0, 8))
def test_any_id_is_known_exactly_as_sent(
    tmp_path_factory: pytest.TempPathFactory, ids: list[str], split: int
) -> None:
    """Ids reach SQLite as JSON (or bound one by one when one holds a NUL): whatever characters
    an id has (quotes, escapes, NUL, emoji), it is stored once, exactly, and told apart from
    every other; a retry of it is a duplicate."""
    raws = [msgspec.json.encode({**click(0), "event_id": i}) for i in ids]
    first = list(dict.fromkeys(ids))
    with Store(Settings(data_dir=tmp_path_factory.mktemp("ids"))) as store:
        statuses = append_rows(store.journal, "event", raws[:split]).statuses
        statuses += append_rows(store.journal, "event", raws[split:]).statuses
        assert statuses == [
            Status.ACCEPTED if ids.index(i) == n else Status.DUPLICATE for n, i in enumerate(ids)
        ]
        assert set(append_rows(store.journal, "event", raws).statuses) == {Status.DUPLICATE}
        known = store.journal._query("SELECT id, length(digest) FROM ids_events")
        store.seal()
        stored = store.table("events").to_pyarrow_table().column("event_id").to_pylist()
    assert sorted(known) == sorted((i, 16) for i in first)
    assert sorted(stored) == sorted(first)


def test_a_seal_is_due_once_enough_rows_wait_or_the_oldest_has_waited_the_lag(tmp_path: Path) -> None:
    with Store(Settings(data_dir=tmp_path / "rows", seal_after_rows=3, seal_max_lag_s=3600.0)) as store:
        assert not store.seal_due(), "nothing waits"
        store.ingest([click(1), click(2)])
        assert not store.seal_due()
        store.ingest([click(3)])
        assert store.seal_due()
        store.seal()
        assert not store.seal_due(), "sealed rows are trimmed from the journal"
    with Store(Settings(data_dir=tmp_path / "lag", seal_max_lag_s=0.2)) as store:
        store.ingest([click(1)])
        assert not store.seal_due()
        time.sleep(0.25)
        assert store.seal_due()


def test_a_seal_hands_delta_one_contiguous_chunk_of_many_small_appends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single events under load leave a journal row or two per commit; the Parquet writer takes
    many small chunks several times slower than one."""
    written: list[int] = []
    append = Tables.append

    def spy(self: Tables, table: Any, data: Any, **kw: Any) -> None:
        written.append(data.column(0).num_chunks)
        append(self, table, data, **kw)

    monkeypatch.setattr(Tables, "append", spy)
    for i in range(50):  # journal rows of both encodings: from objects (Arrow) and lines (values)
        if i % 2:
            store.ingest([click(i)])
        else:
            append_rows(store.journal, "event", [msgspec.json.encode(click(i))])
    assert _encodings(store) == [1, 0] * 25
    store.seal()
    assert written == [1]
    assert store.count("events") == 50


def test_a_seal_stops_at_the_last_row_committed_when_it_began(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers that keep appending while a seal commits must not keep it committing a few rows at
    a time: what arrives meanwhile waits for the next seal."""
    store.ingest([click(i) for i in range(10)])
    append = Tables.append
    arrived = iter(range(100, 105))

    def append_while_writers_write(self: Tables, *args: Any, **kwargs: Any) -> None:
        append(self, *args, **kwargs)
        for i in arrived:  # writers append during the first commit
            store.ingest([click(i)])

    monkeypatch.setattr(Tables, "append", append_while_writers_write)
    assert store.seal().sealed == {"events": 10}
    assert store.table("events").version() == 1, "one Delta commit for the rows there at the start"
    assert store.journal.pending()["events"] == 5
    assert store.seal().sealed == {"events": 5}
    assert store.count("events") == 15


def test_a_seal_opens_no_table_whose_stream_is_empty(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    open_table = Tables.open

    def counted(self: Tables, name: str, version: int | None = None) -> DeltaTable:
        opened.append(name)
        return open_table(self, name, version)

    monkeypatch.setattr(Tables, "open", counted)
    store.ingest([click(1)])
    store.seal()
    assert opened == ["events"]
    store.seal()
    assert opened == ["events"], "nothing to seal or trim: no table is opened"


def test_a_seal_sees_what_another_sealer_committed_since_its_last_seal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sealer keeps its tables open between seals. Another process's sealer may have sealed
    rows since, and died before trimming them from the journal: the kept table must be brought up
    to date first: its old watermark would write those rows again, and only losing the commit
    race would stop them."""
    with Store(Settings(data_dir=tmp_path)) as first, Store(Settings(data_dir=tmp_path)) as second:
        first.ingest([click(i) for i in range(10)])
        first.seal()  # keeps `events` open at this version
        second.ingest([click(i) for i in range(10, 20)])
        monkeypatch.setattr(second.journal, "trim", lambda table, through: 0)  # dies before trimming
        assert second.seal().sealed == {"events": 10}
        first.ingest([click(i) for i in range(20, 25)])
        report = first.seal()
        assert report.sealed == {"events": 5}
        assert report.races == 0, "a table left behind would only learn of it by losing a commit race"
        ids = first.table("events").to_pyarrow_table().column("event_id").to_pylist()
        assert sorted(ids) == sorted(f"e{i}" for i in range(25)), "every row once"
        assert first.journal.pending()["events"] == 0


def test_a_seal_after_another_writer_committed_to_the_table_keeps_every_row_once(tmp_path: Path) -> None:
    """A compaction by another process between two seals is seen by the kept table."""
    with Store(Settings(data_dir=tmp_path)) as sealer:
        for start in (0, 10, 20):
            sealer.ingest([click(i) for i in range(start, start + 10)])
            sealer.seal()
        with Store(Settings(data_dir=tmp_path)) as other:
            other.compact()
            assert other.table("events").to_pyarrow_table().num_rows == 30
        sealer.ingest([click(i) for i in range(30, 40)])
        assert sealer.seal().sealed == {"events": 10}
        ids = sealer.table("events").to_pyarrow_table().column("event_id").to_pylist()
        assert sorted(ids) == sorted(f"e{i}" for i in range(40))
        assert sealer.tables.watermark("events", sealer.journal.app_id) == 4


def test_a_writer_waiting_on_another_queues_on_the_lock_not_in_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers in other processes (here: another connection) queue on the journal's write lock
    (an flock, which wakes the next writer the moment it is released) rather than in SQLite's
    busy handler, which polls with sleeps of up to 100 ms: a tail of that much latency on every
    request that meets another worker's commit. The waiting writer asks for the lock while the
    holder has it, and begins its transaction only once the holder's is over."""
    path = tmp_path / "journal.sqlite"
    first, second = Journal(path), Journal(path)
    flock = fcntl.flock
    asked: list[tuple[int, float]] = []

    def traced(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX:
            asked.append((threading.get_ident(), time.monotonic()))
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", traced)
    begun: list[float] = []
    second._db.set_trace_callback(lambda sql: begun.append(time.monotonic()) if "BEGIN" in sql else None)
    holder = first._transaction()
    holder.__enter__()
    ready = Prepared.of([prepare("event", click(1), received_us=T0 * 1000)])  # Arrow work done here
    waiter = threading.Thread(target=lambda: second.append(ready))
    waiter.start()
    time.sleep(0.2)
    releasing = time.monotonic()
    holder.__exit__(None, None, None)
    waiter.join(10)
    assert [t for ident, t in asked if ident == waiter.ident and t < releasing], "it queued on the lock"
    assert begun, "it committed"
    assert min(begun) > releasing, "it began its transaction only once the holder's was over"
    assert second.pending()["events"] == 1
    first.close()
    second.close()


def test_a_checkpoint_folds_the_wal_back_and_loses_nothing(store: Store) -> None:
    for start in range(0, 3000, 1000):
        store.ingest([click(i) for i in range(start, start + 1000)])
    wal = store.journal.path.with_name(store.journal.path.name + "-wal")
    assert wal.stat().st_size > 0
    store.journal.checkpoint(above_bytes=0)
    assert wal.stat().st_size == 0, "truncated"
    assert store.journal.pending()["events"] == 3000
    assert store.ingest([click(3000)]).counts == {"accepted": 1}
    assert store.ingest([click(0)]).counts == {"duplicate": 1}, "the id index came through"


def test_reads_do_not_wait_for_a_commit_in_progress(store: Store) -> None:
    """The sealer's and the metrics' reads use a connection of their own: a commit holding the
    writer (here for 1 s, as a slow fsync would) must not hold them up, nor they it."""
    journal = store.journal
    store.ingest([click(i) for i in range(10)])
    holding = threading.Event()

    def slow_commit() -> None:
        with journal._lock, journal._transaction():
            holding.set()
            time.sleep(1.0)

    writer = threading.Thread(target=slow_commit)
    writer.start()
    holding.wait(5)
    start = time.monotonic()
    batches = journal.read("events", after=0, limit=100)
    pending, first, last = (
        journal.pending()["events"],
        journal.first_seq("events"),
        journal.last_seq("events"),
    )
    took = time.monotonic() - start
    writer.join()
    assert sum(b.batch.num_rows for b in batches) == pending == 10
    assert first == last == 1
    assert took < 0.5, f"the reads waited {took:.2f} s for the commit"


def test_one_sealer_per_journal_a_held_lease_stops_every_other_sealer(tmp_path: Path) -> None:
    """While a process holds the sealer lease, no other sealer of the journal seals a row: not
    another process's `seal`, nor a background sealer, which simply tries again later."""
    settings = Settings(data_dir=tmp_path, seal_max_lag_s=0.0)  # a seal is due at every look
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from revealed.store.seal import SealerLease; "
            "lease = SealerLease(Path(sys.argv[1])); assert lease.acquire(); print('held', flush=True); "
            "sys.stdin.read()",
            str(tmp_path / "journal" / "seal.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        with Store(settings) as store:
            store.ingest([click(i) for i in range(5)], kind="event")
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"held\n"
            with pytest.raises(StoreLocked, match="another process is sealing"):
                store.seal()
            sealer = BackgroundSealer(store, interval_s=0.01)
            sealer.start()
            time.sleep(0.2)
            assert store.seal_due()
            assert store.unsealed()["events"] == 5
            assert sealer.last_report is None
            assert sealer.failures == 0

            holder.communicate(b"", timeout=30)  # the holder exits: its lease goes with it
            sealer.stop()  # it seals (at its next look, or as it stops) now that the lease is free
            assert sealer.last_report is not None
            assert (sealer.failures, store.unsealed()["events"], store.count("events")) == (0, 0, 5)
    finally:
        holder.kill()


def test_a_seal_takes_at_most_its_byte_bound_per_delta_commit_and_every_row_once(tmp_path: Path) -> None:
    """Long strings: a read stops at its byte bound (after at least one journal row), so a seal
    never concatenates more than Arrow's 2 GB string columns hold, and still seals every row."""
    with Store(Settings(data_dir=tmp_path)) as store:
        big = "x" * 200_000
        for a in range(10):  # ten journal rows of about 1 MB each
            store.ingest([click(a * 5 + i, properties={"text": big}) for i in range(5)], kind="event")
        batches = store.journal.read("events", after=0, limit=10**6, max_bytes=2_500_000)
        assert len(batches) == 3  # the third reaches the bound
        assert len(store.journal.read("events", after=0, limit=10**6, max_bytes=1)) == 1

        report = seal(store.journal, store.tables, SealerLease(tmp_path / "lease"), batch_bytes=2_500_000)
        assert report.sealed == {"events": 50}
        events = DeltaTable(str(tmp_path / "tables" / "events"))
        commits = [c for c in events.history() if c.get("operation") == "WRITE"]
        assert len(commits) == 4  # 3 + 3 + 3 + 1 journal rows
        ids = events.to_pyarrow_table(columns=["event_id"]).column(0).to_pylist()
        assert sorted(ids) == sorted(f"e{i}" for i in range(50))
        assert store.journal.pending()["events"] == 0
