"""Typed settings, built once at the entry point and passed down (no module-level singletons)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_DATA_DIR", "Settings"]

DEFAULT_DATA_DIR = Path("revealed-data")


@dataclass(frozen=True)
class Settings:
    """Where the store lives and how it behaves.

    >>> Settings.from_env({"REVEALED_DATA": "/tmp/x"}).data_dir
    PosixPath('/tmp/x')
    """

    data_dir: Path = DEFAULT_DATA_DIR
    seal_batch_rows: int = 200_000
    vacuum_retention_hours: float = 168.0
    id_retention_days: float = 30.0
    #: the largest request body the service accepts (413 beyond)
    max_body_bytes: int = 16 << 20
    #: how often the service's background sealer looks at the journal; it seals once
    #: `seal_after_rows` rows wait there, or once the oldest has waited `seal_max_lag_s` (0: seal
    #: whatever is there at each look). Fewer, larger seals cost less per row and make fewer files.
    seal_interval_s: float = 1.0
    seal_after_rows: int = 100_000
    seal_max_lag_s: float = 5.0
    #: how long the group commit waits for more requests to share a transaction; 0 takes only what
    #: is already queued (requests arriving during a commit share the next one)
    commit_window_s: float = 0.0
    #: the pipeline engine's memory budget (DuckDB's memory_limit); beyond it, it spills to
    #: `<data_dir>/tmp`. Arrow buffers handed back to Python come on top.
    engine_memory: str = "2GB"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "REVEALED_DATA" in env:
            values["data_dir"] = Path(env["REVEALED_DATA"])
        if "REVEALED_ENGINE_MEMORY" in env:
            values["engine_memory"] = env["REVEALED_ENGINE_MEMORY"]
        if "REVEALED_MAX_BODY_BYTES" in env:
            values["max_body_bytes"] = int(env["REVEALED_MAX_BODY_BYTES"])
        if "REVEALED_SEAL_MAX_LAG_S" in env:
            values["seal_max_lag_s"] = float(env["REVEALED_SEAL_MAX_LAG_S"])
        if "REVEALED_SEAL_AFTER_ROWS" in env:
            values["seal_after_rows"] = int(env["REVEALED_SEAL_AFTER_ROWS"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
