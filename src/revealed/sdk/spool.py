"""A bounded on-disk spool of batches the server could not take, replayed oldest first.

Each batch is one file `<seq>-<kind>.ndjson`, written to a temporary name, fsynced and renamed,
so a crash leaves either the whole batch or nothing. One process owns a spool directory at a time
(flock on `spool.lock`).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolFull", "Spooled"]


class SpoolFull(OSError):
    """The spool holds `max_bytes` already; the batch was not written."""


@dataclass(frozen=True)
class Spooled:
    path: Path
    kind: str

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    """Ordered, bounded, crash-safe batch files in one directory.

    >>> import tempfile, pathlib
    >>> spool = Spool(pathlib.Path(tempfile.mkdtemp()), max_bytes=1000)
    >>> spool.push("event", b'{"event_id":"a"}\\n'); spool.push("decision", b'{"decision_id":"d"}\\n')
    >>> [(s.kind, s.read()) for s in spool.pending()]
    [('event', b'{"event_id":"a"}\\n'), ('decision', b'{"decision_id":"d"}\\n')]
    """

    def __init__(self, directory: Path, *, max_bytes: int = 256 << 20) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / "spool.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise RuntimeError(
                f"spool {directory} is used by another process; give each client its own"
            ) from exc
        for leftover in directory.glob("*.tmp"):
            leftover.unlink()
        files = sorted(directory.glob("*.ndjson"))
        self._next = int(files[-1].name.split("-", 1)[0]) + 1 if files else 0
        self._bytes = sum(f.stat().st_size for f in files)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.ndjson"))

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def push(self, kind: str, body: bytes) -> None:
        """Append a batch durably; SpoolFull when it would exceed the bound."""
        if self._bytes + len(body) > self.max_bytes:
            raise SpoolFull(f"spool {self.directory} holds {self._bytes:,} bytes of {self.max_bytes:,}")
        final = self.directory / f"{self._next:020d}-{kind}.ndjson"
        tmp = final.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(final)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._next += 1
        self._bytes += len(body)

    def pending(self) -> list[Spooled]:
        """Spooled batches, oldest first."""
        return [Spooled(p, p.stem.split("-", 1)[1]) for p in sorted(self.directory.glob("*.ndjson"))]

    def remove(self, item: Spooled) -> None:
        size = item.path.stat().st_size
        item.path.unlink()
        self._bytes -= size

    def close(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
