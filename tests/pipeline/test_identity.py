"""dedupe, stitch and sessionize on small hand-made tables (DuckDB through Ibis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pyarrow as pa
import pytest

from revealed.pipeline.identity import dedupe, identities, sessionize, with_person

T0 = datetime(2026, 1, 5, tzinfo=UTC)
TIME = pa.timestamp("us", tz="UTC")
EVENTS = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("session_id", pa.string()),
        ("timestamp", TIME),
        ("received_at", TIME),
    ]
)


@pytest.fixture(scope="module")
def con() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


def events(rows: list[tuple[str, str, str | None, str | None, str | None, float]]) -> ibis.Table:
    """(event_id, type, user_id, anonymous_id, session_id, minutes after T0)."""
    data = [
        {
            "event_id": e,
            "type": t,
            "user_id": u,
            "anonymous_id": a,
            "session_id": s,
            "timestamp": T0 + timedelta(minutes=m),
            "received_at": T0 + timedelta(minutes=m),
        }
        for e, t, u, a, s, m in rows
    ]
    return ibis.memtable(pa.Table.from_pylist(data, schema=EVENTS))


def test_dedupe_keeps_the_first_received_copy(con: ibis.BaseBackend) -> None:
    rows = pa.Table.from_pylist(
        [
            {"event_id": "e1", "type": "click", "timestamp": T0, "received_at": T0 + timedelta(seconds=5)},
            {"event_id": "e1", "type": "dwell", "timestamp": T0, "received_at": T0},
            {"event_id": "e2", "type": "click", "timestamp": T0, "received_at": T0},
        ],
        schema=pa.schema(
            [("event_id", pa.string()), ("type", pa.string()), ("timestamp", TIME), ("received_at", TIME)]
        ),
    )
    out = con.to_pyarrow(dedupe(ibis.memtable(rows), "event_id").order_by("event_id")).to_pylist()
    assert [(r["event_id"], r["type"]) for r in out] == [("e1", "dwell"), ("e2", "click")]


def test_anonymous_activity_is_stitched_to_the_user_who_identified(con: ibis.BaseBackend) -> None:
    t = events(
        [
            ("e1", "click", None, "a1", None, 0),
            ("e2", "identify", "u1", "a1", None, 5),
            ("e3", "click", "u1", None, None, 6),
            ("e4", "identify", "u2", "a1", None, 50),  # a later claim does not move a1
            ("e5", "click", None, "a9", None, 7),  # never identified
            ("e6", "click", None, None, "s-7", 8),  # only a session
        ]
    )
    out = con.to_pyarrow(with_person(t, identities(t)).order_by("event_id")).to_pylist()
    assert [r["person"] for r in out] == ["u1", "u1", "u1", "u2", "anon:a9", "session:s-7"]


def test_sessions_break_after_the_gap_and_a_client_session_wins(con: ibis.BaseBackend) -> None:
    t = events(
        [
            ("e1", "click", "u1", None, None, 0),
            ("e2", "click", "u1", None, None, 29),
            ("e3", "click", "u1", None, None, 60),  # 31 minutes later: a new session
            ("e4", "click", "u1", None, "client-s", 61),  # the client's session id wins
            ("e5", "click", "u2", None, None, 0),
        ]
    )
    p = with_person(t, identities(t))
    activity = p.select(person=p.person, timestamp=p.timestamp, session_id=p.session_id, row_id=p.event_id)
    out = con.to_pyarrow(sessionize(activity, gap=timedelta(minutes=30)).order_by("row_id")).to_pylist()
    sessions = [r["session"] for r in out]
    assert sessions[0] == sessions[1] != sessions[2]
    assert sessions[3] == "client-s"
    assert sessions[4] != sessions[0]
    assert sessions[0].startswith("u1#")
