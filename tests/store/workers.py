"""Child processes for the store's crash tests: `python workers.py COMMAND DATA ...`.

`append DATA PREFIX N BATCH`: append N events in batches, printing `ack <last index>` after each
commit returns. `seal DATA BATCH [KILL_POINT]`: seal with small batches; with a kill point
(`before_commit`, `after_commit`, `after_trim`), SIGKILL itself there on the 2nd batch.
`sealloop DATA SECONDS`: seal repeatedly for a while.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from revealed.settings import Settings
from revealed.store import Store
from revealed.store.journal import Journal
from revealed.store.tables import Tables

T0 = 1_767_225_600_000


def event(prefix: str, i: int) -> dict[str, object]:
    return {
        "event_id": f"{prefix}-{i}",
        "timestamp": T0 + i,
        "type": "click",
        "user_id": f"u{i % 97}",
        "item_id": f"i{i % 31}",
        "properties": {"i": i},
    }


def append(data: Path, prefix: str, n: int, batch: int) -> None:
    store = Store(Settings(data_dir=data))
    for start in range(0, n, batch):
        store.ingest([event(prefix, i) for i in range(start, min(n, start + batch))], kind="event")
        print(f"ack {min(n, start + batch) - 1}", flush=True)


def seal(data: Path, batch: int, kill_point: str | None) -> None:
    store = Store(Settings(data_dir=data, seal_batch_rows=batch))
    if kill_point == "announce":  # tell the parent about each commit, so it can kill between or within them
        real = Tables.append

        def announce(self: Tables, *args: object, **kwargs: object) -> None:
            real(self, *args, **kwargs)  # type: ignore[arg-type]
            print("commit", flush=True)

        Tables.append = announce  # type: ignore[method-assign]
    elif kill_point:
        calls = {"n": 0}
        real_append, real_trim = Tables.append, Journal.trim

        def die() -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        def append_hook(self: Tables, *args: object, **kwargs: object) -> None:
            calls["n"] += 1
            if kill_point == "before_commit" and calls["n"] == 2:
                die()
            real_append(self, *args, **kwargs)  # type: ignore[arg-type]
            if kill_point == "after_commit" and calls["n"] == 2:
                die()

        def trim_hook(self: Journal, *args: object, **kwargs: object) -> int:
            result = real_trim(self, *args, **kwargs)  # type: ignore[arg-type]
            if kill_point == "after_trim" and args[0] == "events":
                die()
            return result

        Tables.append = append_hook  # type: ignore[method-assign]
        Journal.trim = trim_hook  # type: ignore[method-assign]
    store.seal()
    print("sealed", flush=True)


def seal_loop(data: Path, seconds: float) -> None:
    store = Store(Settings(data_dir=data, seal_batch_rows=500))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        store.seal()
    print("done", flush=True)


if __name__ == "__main__":
    command, data = sys.argv[1], Path(sys.argv[2])
    if command == "append":
        append(data, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif command == "seal":
        seal(data, int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    elif command == "sealloop":
        seal_loop(data, float(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {command!r}")
