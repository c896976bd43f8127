"""What every world returns: the records a client would have sent, and the truth beside them.

`Simulation.write(out)` lays them out as files that `revealed ingest` reads::

    out/decisions.parquet  out/events.parquet  out/items.parquet
    out/truth/truth.json   out/truth/<table>.parquet

`Truth.params` holds the world's parameters (JSON); `Truth.tables` the per-row truth (relevance
per query and item, the causal touch of each conversion, response quality...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from revealed.sim.frame import DECISIONS, EVENTS, ITEMS

__all__ = ["Simulation", "Truth", "load_function"]

Format = Literal["parquet", "ndjson"]
_RECORD_TABLES: Final = {"decision": "decisions", "event": "events", "item": "items"}
_JSON_FIELDS: Final = frozenset({"context", "policy", "properties", "features"})


def load_function(path: str) -> Callable[..., Any]:
    """The function a `module:function` path names (a policy given on the command line)."""
    module, _, attr = path.partition(":")
    found = getattr(importlib.import_module(module), attr)
    if not callable(found):
        raise ValueError(f"policy: expected {path} to be a function, found {type(found).__name__}")
    return found  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Truth:
    """The ground truth of one simulation: parameters as JSON, per-row truth as Arrow tables."""

    world: str
    seed: int
    params: Mapping[str, Any]
    tables: Mapping[str, pa.Table] = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        doc = {"world": self.world, "seed": self.seed, "params": self.params, "tables": sorted(self.tables)}
        (directory / "truth.json").write_bytes(msgspec.json.format(msgspec.json.encode(doc)))
        for name, table in self.tables.items():
            pq.write_table(table, directory / f"{name}.parquet")

    @classmethod
    def read(cls, directory: Path) -> Truth:
        doc = msgspec.json.decode((directory / "truth.json").read_bytes())
        tables = {name: pq.read_table(directory / f"{name}.parquet") for name in doc["tables"]}
        return cls(doc["world"], doc["seed"], doc["params"], tables)


@dataclass(frozen=True)
class Simulation:
    """The records of one simulated world, in the v1 contract, and its truth."""

    world: str
    seed: int
    decisions: pa.Table
    events: pa.Table
    items: pa.Table
    truth: Truth

    def __post_init__(self) -> None:
        for name, schema in (("decisions", DECISIONS), ("events", EVENTS), ("items", ITEMS)):
            table: pa.Table = getattr(self, name)
            if not table.schema.equals(schema):
                raise ValueError(f"{name}: expected the sim.frame schema, found {table.schema}")

    @property
    def counts(self) -> dict[str, int]:
        return {
            "decisions": self.decisions.num_rows,
            "events": self.events.num_rows,
            "items": self.items.num_rows,
        }

    def write(self, out: Path, *, fmt: Format = "parquet") -> dict[str, Path]:
        """Write the three record tables (Parquet or NDJSON) and the truth; returns the record files."""
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for name in ("decisions", "events", "items"):
            table: pa.Table = getattr(self, name)
            path = out / f"{name}.{fmt}"
            if fmt == "parquet":
                pq.write_table(table, path, compression="zstd")
            else:
                with path.open("wb") as fh:
                    for batch in table.to_batches(max_chunksize=50_000):
                        fh.write(b"".join(msgspec.json.encode(r) + b"\n" for r in _records(batch)))
            written[name] = path
        self.truth.write(out / "truth")
        return written

    def records(self, kind: Literal["decision", "event", "item"]) -> Iterator[dict[str, Any]]:
        """The records of one kind as a client would send them (JSON objects, times in RFC 3339)."""
        for batch in getattr(self, _RECORD_TABLES[kind]).to_batches(max_chunksize=10_000):
            yield from _records(batch)


_DECODE: Final = msgspec.json.Decoder()


def _records(batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    for row in batch.to_pylist():
        record: dict[str, Any] = {}
        for key, value in row.items():
            if value is None:
                continue
            if key in ("timestamp", "valid_from"):
                value = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            elif key in _JSON_FIELDS:
                value = _DECODE.decode(value)
            elif key in ("items", "candidates"):
                value = [{k: v for k, v in it.items() if v is not None} for it in value]
            record[key] = value
        yield record
