"""Every error revealed raises on purpose, in one tree.

Each carries the HTTP status a server should answer with and a hint that says how to fix it::

    RevealedError                        (500)
    ├── ValidationFailed, ValueError     (422)  a record broke the data contract; holds FieldErrors
    ├── UnknownKind, ValueError          (400)  neither a decision, an event nor an item
    ├── UnsupportedFile, ValueError      (415)  a bulk file whose format cannot be read
    ├── StoreError                       (503)
    │   ├── StoreLocked                  (503)  another process holds the sealer lease
    │   └── VersionVacuumed, LookupError (410)  a pinned table version whose files were vacuumed
    └── MissingDependency, ImportError   (501)  an optional extra is not installed

>>> issubclass(ValidationFailed, ValueError), ValidationFailed.status
(True, 422)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "MissingDependency",
    "RevealedError",
    "StoreError",
    "StoreLocked",
    "UnknownKind",
    "UnsupportedFile",
    "ValidationFailed",
    "VersionVacuumed",
]


class RevealedError(Exception):
    """Base of every error revealed raises deliberately."""

    status: ClassVar[int] = 500
    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (hint: {self.hint})" if self.hint else text


class ValidationFailed(RevealedError, ValueError):
    """A record broke the data contract; `errors` names each field at fault."""

    status = 422

    def __init__(self, errors: list[str], *, hint: str = "") -> None:
        super().__init__("; ".join(errors), hint=hint)
        self.errors = errors


class UnknownKind(RevealedError, ValueError):
    """A record that is neither a decision, an event nor an item."""

    status = 400


class UnsupportedFile(RevealedError, ValueError):
    """A bulk file in a format revealed cannot read."""

    status = 415


class StoreError(RevealedError):
    """The store cannot do what was asked right now."""

    status = 503


class StoreLocked(StoreError):
    """Another process holds the sealer lease of this journal."""


class VersionVacuumed(StoreError, LookupError):
    """A pinned table version whose data files were removed by vacuum."""

    status = 410


class MissingDependency(RevealedError, ImportError):
    """An optional extra is needed for this feature."""

    status = 501
