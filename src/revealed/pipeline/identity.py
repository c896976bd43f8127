"""Who did what, once: dedupe by id, stitch anonymous ids to users, and sessionize.

Each step is a pure function from Ibis tables to an Ibis table (no I/O), so the same expression
runs on DuckDB here and on Spark at scale. Every window has an explicit order with tie-breaks,
so every backend picks the same row.

- `dedupe(t, key)`: the first copy of each id by (received_at, timestamp).
- `identities(events)`: anonymous_id -> user_id from `identify` events (the first one wins).
- `with_person(t, identities)`: a `person` column: the user, else the user an anonymous id was
  stitched to, else `anon:<id>`, else `session:<id>`.
- `sessionize(activity, gap)`: a `session` column: the client's `session_id` where it sent one,
  else `<person>#<n>` with a new session after `gap` of inactivity.
"""

from __future__ import annotations

from datetime import timedelta

import ibis
from ibis import _

__all__ = ["dedupe", "identities", "sessionize", "with_person"]


def dedupe(table: ibis.Table, key: str) -> ibis.Table:
    """One row per `key`: the first received, then the earliest. Copies tied on both are one
    record sent twice (ingest quarantines a different payload under a known id), so either may
    be kept.

    Only the keys seen more than once go through the window (a hash count finds them): a window
    over every wide row would hold them all at once, and nearly every id is unique."""
    repeated = table.group_by(key).aggregate(_copies=_.count()).filter(_._copies > 1).select(key)
    single = table.anti_join(repeated, key)
    copies = table.semi_join(repeated, key)
    window = ibis.window(group_by=copies[key], order_by=[copies.received_at, copies.timestamp])
    first = copies.mutate(_copy=ibis.row_number().over(window)).filter(_._copy == 0).drop("_copy")
    return single.union(first)


def identities(events: ibis.Table) -> ibis.Table:
    """(anonymous_id, user_id) from `identify` events; an anonymous id keeps its first user."""
    ident = events.filter(
        (events.type == "identify") & events.anonymous_id.notnull() & events.user_id.notnull()
    )
    window = ibis.window(group_by=ident.anonymous_id, order_by=[ident.timestamp, ident.event_id])
    first = ident.mutate(_n=ibis.row_number().over(window)).filter(_._n == 0)
    return first.select(anonymous_id=first.anonymous_id, stitched_user=first.user_id)


def with_person(table: ibis.Table, ids: ibis.Table) -> ibis.Table:
    """`table` with `person`: the one identity a user's rows share before and after logging in."""
    joined = table.left_join(ids, table.anonymous_id == ids.anonymous_id).drop("anonymous_id_right")
    person = ibis.coalesce(
        joined.user_id,
        joined.stitched_user,
        ibis.literal("anon:") + joined.anonymous_id,
        ibis.literal("session:") + joined.session_id,
    )
    return joined.mutate(person=person).drop("stitched_user")


def sessionize(activity: ibis.Table, *, gap: timedelta = timedelta(minutes=30)) -> ibis.Table:
    """`activity` (person, timestamp, session_id, row_id) with `session`.

    A new session starts at a person's first row and after each gap longer than `gap`; where
    the client sent a `session_id`, it wins."""
    window = ibis.window(group_by=activity.person, order_by=[activity.timestamp, activity.row_id])
    previous = activity.timestamp.lag().over(window)
    starts = activity.mutate(
        _start=ibis.ifelse(previous.isnull() | (activity.timestamp - previous > gap), 1, 0)
    )
    numbered = starts.mutate(
        _n=starts._start.sum().over(
            ibis.window(
                group_by=starts.person,
                order_by=[starts.timestamp, starts.row_id],
                rows=(None, 0),
            )
        )
    )
    computed = numbered.person + ibis.literal("#") + numbered._n.cast("string")
    return numbered.mutate(session=ibis.coalesce(numbered.session_id, computed)).drop("_start", "_n")
