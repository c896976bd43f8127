"""API keys: high-entropy tokens stored as SHA-256 digests, with scopes.

A token looks like `rvk_<key id>_<secret>`; only its SHA-256 digest is stored (a slow password
hash buys nothing against 256 random bits and would sit on every request's path). Verification
looks the key id up (cached for a few seconds, so revocation takes effect within that), hashes the
token and compares digests in constant time.

Scopes: `ingest` may only write records; `read` reads stats and metrics (later datasets and
evaluations); `admin` manages keys and may do everything.

>>> import tempfile, pathlib
>>> keys = KeyStore(pathlib.Path(tempfile.mkdtemp()) / "keys.sqlite")
>>> created = keys.create("loader", ["ingest"])
>>> keys.verify(created.token).scopes, keys.verify("rvk_nope_nope")
(('ingest',), None)
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["SCOPES", "ApiKey", "CreatedKey", "KeyStore"]

SCOPES: Final = ("ingest", "read", "admin")
_CACHE_TTL_S: Final = 5.0
#: key ids whose lookups are cached at once: enough for every real key, bounded against floods
_CACHE_SIZE: Final = 4096
#: a key id as `create` makes it (`secrets.token_hex(6)`)
_KEY_ID: Final = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: int
    revoked_at: int | None

    def allows(self, scope: str) -> bool:
        return self.revoked_at is None and (scope in self.scopes or "admin" in self.scopes)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    #: shown once; only its digest is stored
    token: str


class KeyStore:
    """Keys of one data directory, in `keys.sqlite` beside the journal."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "digest BLOB NOT NULL, scopes TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER)"
        )
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, bytes, ApiKey | None]] = {}
        #: (when it was last read, the answer); never read yet: `time.monotonic` may be under the
        #: TTL for a few seconds after boot, so "long ago" must be -inf, not 0
        self._enforced: tuple[float, bool] = (-math.inf, False)

    def create(self, name: str, scopes: list[str]) -> CreatedKey:
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise ValueError(f"scopes: expected some of {', '.join(SCOPES)}, found {scopes!r}")
        key_id = secrets.token_hex(6)
        token = f"rvk_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, name, tuple(dict.fromkeys(scopes)), int(time.time()), None)
        with self._lock:
            self._db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, name, hashlib.sha256(token.encode()).digest(), ",".join(key.scopes), key.created_at),
            )
            self._cache.clear()
            self._enforced = (-math.inf, True)
        return CreatedKey(key, token)

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, name, scopes, created_at, revoked_at FROM keys ORDER BY created_at, key_id"
            ).fetchall()
        return [ApiKey(k, n, tuple(s.split(",")), c, r) for k, n, s, c, r in rows]

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (int(time.time()), key_id),
            )
            self._cache.clear()
            return cur.rowcount == 1

    def enforced(self) -> bool:
        """Whether keys are required: once any key was created (revoking them all keeps the door shut)."""
        checked, value = self._enforced
        if time.monotonic() - checked < _CACHE_TTL_S:
            return value
        with self._lock:
            value = bool(self._db.execute("SELECT count(*) FROM keys").fetchone()[0])
            self._enforced = (time.monotonic(), value)
        return value

    def verify(self, token: str) -> ApiKey | None:
        """The live key a token belongs to, or None.

        A token not shaped like one is refused without a lookup; a key id's lookup is cached,
        found or not (an unknown one too, so a flood of bad tokens costs a lookup per key id and
        TTL, in a cache of bounded size)."""
        parts = token.split("_", 2)
        if len(parts) < 3 or parts[0] != "rvk" or not _KEY_ID.fullmatch(parts[1]):
            return None
        key_id = parts[1]
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is None or now - cached[0] > _CACHE_TTL_S:
            with self._lock:
                row = self._db.execute(
                    "SELECT name, digest, scopes, created_at, revoked_at FROM keys WHERE key_id = ?",
                    (key_id,),
                ).fetchone()
            if row is None:
                cached = (now, b"", None)
            else:
                name, digest, scopes, created, revoked = row
                cached = (now, digest, ApiKey(key_id, name, tuple(scopes.split(",")), created, revoked))
            self._cache.pop(key_id, None)
            self._cache[key_id] = cached
            if len(self._cache) > _CACHE_SIZE:
                del self._cache[next(iter(self._cache))]  # the entry cached longest ago
        _, digest, key = cached
        # the digest is compared even for an unknown key id (against nothing), in constant time
        if not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), digest) or key is None:
            return None
        return None if key.revoked_at is not None else key

    def close(self) -> None:
        self._db.close()
