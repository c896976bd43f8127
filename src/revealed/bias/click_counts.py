"""The sufficient statistics of the click models, aggregated by the engine, and read back into numpy.

Every function here takes the ``clicks`` table, one row per (session, displayed position):

============  ========  ===================================================================
column        type      meaning
============  ========  ===================================================================
``session``   string    one ranked list shown once (a decision id)
``query_id``  string    the grouping key of the list (a normalised query, a page id)
``item_id``   string    the item shown at that position
``position``  integer   0-based display rank; a session has positions ``0..n-1``, no gaps
``clicked``   boolean   whether the item was clicked
============  ========  ===================================================================

and returns one small table per model family, so the models scale with the number of distinct
(query, item, position) cells or (query, ranking, click pattern) rows, not with the sessions:

===========================  ==========================================  ========================
table                        one row per                                 used by
===========================  ==========================================  ========================
`pbm_counts`                 (query, item, position)                     PBM (EM)
`ubm_counts`                 (query, item, position, previous_click)     UBM (EM)
`first_last_click_counts`    (query, item, position)                     cascade, DCM, SDBN
                                                                         (closed forms)
`click_pattern_counts`       (query, ranking, click pattern)             DBN and DCM (EM); every
                                                                         model's likelihood
===========================  ==========================================  ========================

``previous_click`` is one more than the rank of the nearest click above, 0 when there is none
(the UBM convention of `revealed.sim.clickmodels`). The expressions are backend-neutral: windows
have explicit orderings, the ranking is built by sorting collected structs (which PySpark
compiles), and there are no quantiles and no Python UDFs.

`encode_pairs` and `pattern_matrices` turn the fetched Arrow tables into integer codes and
``(positions, patterns)`` matrices for the numpy fits in `revealed.bias.clickmodels`.

>>> import ibis
>>> clicks = ibis.memtable(
...     {
...         "session": ["s1", "s1", "s2", "s2"],
...         "query_id": ["q", "q", "q", "q"],
...         "item_id": ["a", "b", "b", "a"],
...         "position": [0, 1, 0, 1],
...         "clicked": [False, True, True, True],
...     }
... )
>>> con = ibis.duckdb.connect()
>>> con.to_pyarrow(pbm_counts(clicks).order_by(["item_id", "position"])).to_pylist()[0]
{'query_id': 'q', 'item_id': 'a', 'position': 0, 'impressions': 1, 'clicks': 0}
>>> patterns = con.to_pyarrow(click_pattern_counts(clicks).order_by("items"))
>>> patterns.column("items").to_pylist(), patterns.column("clicks").to_pylist()
([['a', 'b'], ['b', 'a']], [[False, True], [True, True]])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CLICKS_COLUMNS",
    "PatternMatrices",
    "check_clicks",
    "click_pattern_counts",
    "encode_pairs",
    "first_last_click_counts",
    "flat_pattern_pairs",
    "lookup_pairs",
    "pattern_matrices",
    "pbm_counts",
    "session_shape_errors",
    "ubm_counts",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

#: the input contract: column -> what its type must be
CLICKS_COLUMNS: Final = {
    "session": "string",
    "query_id": "string",
    "item_id": "string",
    "position": "integer",
    "clicked": "boolean",
}
_PAIR: Final = ["query_id", "item_id"]
_CELL: Final = ["query_id", "item_id", "position"]


def check_clicks(clicks: ibis.Table) -> ibis.Table:
    """The contract's columns of ``clicks`` (``position`` as int64), or a ValueError naming the field."""
    if not isinstance(clicks, ibis.Table):
        raise ValueError(f"clicks: expected an ibis.Table, found {type(clicks).__name__}")
    schema = clicks.schema()
    missing = [c for c in CLICKS_COLUMNS if c not in schema]
    if missing:
        raise ValueError(
            f"clicks: missing column {missing[0]!r}; expected columns {', '.join(CLICKS_COLUMNS)} "
            f"(one row per session and displayed position), found {list(schema.names)}"
        )
    for column, kind in CLICKS_COLUMNS.items():
        dtype = schema[column]
        ok = {"string": dtype.is_string(), "integer": dtype.is_integer(), "boolean": dtype.is_boolean()}
        if not ok[kind]:
            raise ValueError(
                f"clicks.{column}: expected a {kind} column, found {dtype}; cast it, "
                f"e.g. clicks.mutate({column}=clicks.{column}.cast({kind!r}))"
            )
    return clicks.select(*CLICKS_COLUMNS).mutate(position=clicks.position.cast(dt.int64))


def _counts(table: ibis.Table, keys: list[str], **sums: ibis.Value) -> ibis.Table:
    aggregates = {name: value.cast(dt.int64).sum() for name, value in sums.items()}
    return table.group_by(keys).aggregate(impressions=table.count(), **aggregates)


def pbm_counts(clicks: ibis.Table) -> ibis.Table:
    """Impressions and clicks per (query_id, item_id, position): all that PBM's likelihood reads."""
    t = check_clicks(clicks)
    return _counts(t, _CELL, clicks=t.clicked)


def ubm_counts(clicks: ibis.Table) -> ibis.Table:
    """Impressions and clicks per (query_id, item_id, position, previous_click).

    ``previous_click`` is one more than the position of the nearest click above in the same
    session, 0 when nothing above was clicked.
    """
    t = check_clicks(clicks)
    above = ibis.window(group_by="session", order_by="position", rows=(None, -1))
    previous = ibis.cases((t.clicked, t.position + 1), else_=0).max().over(above)
    t = t.mutate(previous_click=previous.coalesce(0).cast(dt.int64))
    return _counts(t, [*_CELL, "previous_click"], clicks=t.clicked)


def first_last_click_counts(clicks: ibis.Table) -> ibis.Table:
    """Counts per (query_id, item_id, position) relative to each session's first and last click.

    Columns: ``impressions``, ``clicks``; ``above_first`` (at or above the session's first click,
    or anywhere in a session without clicks) and ``first_clicks``; ``above_last`` and
    ``last_clicks`` likewise for the last click; ``final_clicks``, clicks on a session's final
    position (a click there says nothing about continuing).
    """
    t = check_clicks(clicks)
    session = ibis.window(group_by="session")
    t = t.mutate(
        first=ibis.cases((t.clicked, t.position), else_=None).min().over(session),
        last=ibis.cases((t.clicked, t.position), else_=None).max().over(session),
        end=t.position.max().over(session),
    )
    return _counts(
        t,
        _CELL,
        clicks=t.clicked,
        above_first=t.first.isnull() | (t.position <= t.first),
        first_clicks=t.position == t.first.coalesce(-1),
        above_last=t.last.isnull() | (t.position <= t.last),
        last_clicks=t.position == t.last.coalesce(-1),
        final_clicks=t.clicked & (t.position == t.end),
    )


def click_pattern_counts(clicks: ibis.Table) -> ibis.Table:
    """Sessions per (query_id, ranking, click pattern): every click model's full likelihood.

    ``items`` is the session's ranking (item ids in display order) and ``clicks`` the clicked
    flags in the same order; ``sessions`` counts the sessions that showed exactly that.
    """
    t = check_clicks(clicks)
    step = ibis.struct({"position": t.position, "item_id": t.item_id, "clicked": t.clicked})
    sessions = t.group_by(["session", "query_id"]).aggregate(steps=step.collect())
    ordered = sessions.steps.sort()  # structs sort field by field: by position
    sessions = sessions.mutate(
        items=ordered.map(lambda s: s.item_id), clicks=ordered.map(lambda s: s.clicked)
    )
    return sessions.group_by(["query_id", "items", "clicks"]).aggregate(sessions=sessions.count())


def session_shape_errors(clicks: ibis.Table) -> ibis.Table:
    """Sessions whose positions are not ``0..n-1`` once each (the result should be empty).

    A session passes when it has ``n`` rows, its positions span ``0..n-1`` and their sum and sum
    of squares are those of ``0..n-1``: that catches gaps, 1-based numbering and repeated rows
    in one aggregation, 7x cheaper than counting distinct positions (a repeat hides only if
    other repeats restore both sums exactly, e.g. 2, 3, 7 twice in place of 1, 5, 6).
    """
    t = check_clicks(clicks)
    p = t.position
    shape = t.group_by("session").aggregate(
        n=t.count(), lowest=p.min(), highest=p.max(), total=p.sum(), squares=(p * p).sum()
    )
    n = shape.n
    expected = (n * (n - 1) / 2 != shape.total) | (n * (n - 1) * (2 * n - 1) / 6 != shape.squares)
    return shape.filter((shape.lowest != 0) | (shape.highest + 1 != n) | expected)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return array.cast(pa.large_string()) if pa.types.is_string(array.type) else array


def encode_pairs(
    query_id: pa.Array | pa.ChunkedArray, item_id: pa.Array | pa.ChunkedArray
) -> tuple[IntArray, pa.Table]:
    """Each row's index into the distinct (query_id, item_id) pairs, and those pairs as a table
    sorted by query_id then item_id."""
    queries = pc.dictionary_encode(_array(query_id))
    items = pc.dictionary_encode(_array(item_id))
    n_items = max(len(items.dictionary), 1)
    key = queries.indices.to_numpy().astype(np.int64) * n_items + items.indices.to_numpy()
    keys = len(queries.dictionary) * n_items
    if keys <= 4 * len(key) + 1_000_000:  # a dense table beats sorting the keys
        seen = np.zeros(keys, dtype=np.bool_)
        seen[key] = True
        unique, index = np.flatnonzero(seen), (np.cumsum(seen) - 1)[key]
    else:
        unique, index = np.unique(key, return_inverse=True)
    pairs = pa.table(
        {
            "query_id": queries.dictionary.take(pa.array(unique // n_items)).cast(pa.string()),
            "item_id": items.dictionary.take(pa.array(unique % n_items)).cast(pa.string()),
        }
    )
    order = pc.sort_indices(pairs, sort_keys=[(c, "ascending") for c in _PAIR]).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))  # sorted pairs, whatever order the engine returned rows in
    return rank[index], pairs.take(pa.array(order))


def lookup_pairs(
    pairs: pa.Table, query_id: pa.Array | pa.ChunkedArray, item_id: pa.Array | pa.ChunkedArray
) -> IntArray:
    """Each (query_id, item_id)'s row in ``pairs`` (distinct pairs), -1 where it is not there."""
    known = len(pairs)
    both = [
        pa.concat_arrays([_array(pairs.column(c)), _array(v)])
        for c, v in zip(_PAIR, (query_id, item_id), strict=True)
    ]
    index, _ = encode_pairs(*both)
    row = np.full(int(index.max(initial=-1)) + 1, -1, dtype=np.int64)
    row[index[:known]] = np.arange(known)
    return row[index[known:]]


@dataclass(frozen=True, eq=False)
class PatternMatrices:
    """`click_pattern_counts` as matrices shaped ``(positions, patterns)``, so each rank is contiguous.

    ``pair`` indexes the (query, item) shown (-1 past the end of a shorter session), ``clicked``
    the flags, ``valid`` which cells exist; per pattern, ``weight`` counts its sessions, ``last``
    is the last clicked position (-1 without clicks) and ``length`` the number of positions.
    """

    pair: IntArray
    clicked: BoolArray
    valid: BoolArray
    weight: FloatArray
    last: IntArray
    length: IntArray

    @cached_property
    def cells(self) -> IntArray | slice:
        """Flat indices of the existing cells (every cell when all sessions have full length)."""
        return slice(None) if bool(self.valid.all()) else np.flatnonzero(self.valid)

    def flat(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``values`` (shaped like ``pair``, or one per pattern) at the existing cells, flattened."""
        full = np.broadcast_to(values, self.pair.shape) if values.ndim == 1 else values
        return np.ascontiguousarray(full).reshape(-1)[self.cells]

    def blocks(self, size: int = 16_384) -> list[PatternMatrices]:
        """Views of ``size`` patterns each: EM passes over blocks keep their temporaries in cache."""
        return [
            PatternMatrices(
                self.pair[:, i : i + size],
                self.clicked[:, i : i + size],
                self.valid[:, i : i + size],
                self.weight[i : i + size],
                self.last[i : i + size],
                self.length[i : i + size],
            )
            for i in range(0, self.pair.shape[1], size)
        ]

    def gather(self, values: FloatArray, unseen: float = 0.0) -> FloatArray:
        """Per cell, ``values[pair]``: ``unseen`` where ``pair == len(values)``, 0 past a session's end."""
        return np.concatenate([values, [unseen, 0.0]])[self.pair]

    def per_rank(self, values: npt.NDArray[Any]) -> FloatArray:
        """Sums per rank over the sessions (``values`` shaped like ``pair``, weighted by ``weight``).

        ``einsum`` rather than a matrix product: BLAS threads spin and stall on a busy machine.
        """
        return np.asarray(np.einsum("kr,r->k", values, self.weight, dtype=np.float64), dtype=np.float64)


def pattern_matrices(patterns: pa.Table, pair_of: IntArray) -> PatternMatrices:
    """Lay out ``patterns`` given each flattened ranking entry's pair index ``pair_of``."""
    _check_patterns(patterns)
    items = patterns.column("items").combine_chunks()
    flags = patterns.column("clicks").combine_chunks()
    length = pc.list_value_length(items).to_numpy(zero_copy_only=False).astype(np.int64)
    if not np.array_equal(length, pc.list_value_length(flags).to_numpy(zero_copy_only=False)):
        raise ValueError("patterns: expected 'items' and 'clicks' lists of equal length in every row")
    rows, k = len(length), int(length.max(initial=0))
    parent = np.repeat(np.arange(rows), length)
    start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    position = np.arange(len(parent)) - np.repeat(start, length)
    pair = np.full((k, rows), -1, dtype=np.int64)
    pair[position, parent] = pair_of
    clicked = np.zeros((k, rows), dtype=np.bool_)
    clicked[position, parent] = pc.list_flatten(flags).to_numpy(zero_copy_only=False)
    last = np.where(clicked.any(axis=0), k - 1 - np.argmax(clicked[::-1], axis=0), -1)
    weight = patterns.column("sessions").to_numpy().astype(np.float64)
    return PatternMatrices(pair, clicked, pair >= 0, weight, last.astype(np.int64), length)


def flat_pattern_pairs(patterns: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(query_id, item_id) of every ranking entry of ``patterns``, flattened in row order."""
    _check_patterns(patterns)
    items = patterns.column("items").combine_chunks()
    parent = pc.list_parent_indices(items)
    return _array(patterns.column("query_id")).take(parent), pc.list_flatten(items)


def _check_patterns(patterns: pa.Table) -> None:
    required = ("query_id", "items", "clicks", "sessions")
    if not isinstance(patterns, pa.Table) or not set(required) <= set(patterns.column_names):
        found = patterns.column_names if isinstance(patterns, pa.Table) else type(patterns).__name__
        raise ValueError(
            f"patterns: expected click_pattern_counts(clicks) as a pyarrow.Table with {list(required)}, "
            f"found {found}"
        )
