"""Request and response models of the service, for validation where speed does not matter and for
the OpenAPI document (the hot ingest path encodes its responses with msgspec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from revealed.errors import RevealedError

__all__ = [
    "CreateKey",
    "CreatedKeyOut",
    "Health",
    "IngestResult",
    "KeyOut",
    "Problem",
    "problem",
    "problem_of",
]

RowStatus = Literal["accepted", "duplicate", "conflict", "rejected"]


class IngestResult(BaseModel):
    """The outcome of a batch: counts, and each row's status in the order sent."""

    accepted: int = Field(description="rows stored for the first time")
    duplicate: int = Field(description="rows whose id was already stored with the same payload (dropped)")
    conflict: int = Field(description="rows whose id was already stored with another payload (quarantined)")
    rejected: int = Field(description="rows that broke the data contract (quarantined with their errors)")
    statuses: list[RowStatus] = Field(description="one status per row, in the order sent")
    errors: dict[str, list[str]] = Field(description="field-level errors by row index (as a string)")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "accepted": 1,
                    "duplicate": 0,
                    "conflict": 0,
                    "rejected": 1,
                    "statuses": ["accepted", "rejected"],
                    "errors": {"1": ["items[3].cond_propensity: expected a number in (0, 1], found 1.7"]},
                }
            ]
        }
    }


class Problem(BaseModel):
    """An error: what went wrong and how to fix it."""

    error: str
    hint: str | None = None


def problem(error: str, hint: str = "") -> dict[str, str | None]:
    """A `Problem` body, as the routes answer it (no hint is null)."""
    return {"error": error, "hint": hint or None}


def problem_of(exc: RevealedError) -> dict[str, str | None]:
    """The `Problem` body of an error revealed raised on purpose: its message and hint."""
    return problem(str(exc.args[0]) if exc.args else type(exc).__name__, exc.hint)


class Health(BaseModel):
    status: str


class KeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at: int
    revoked_at: int | None


class CreateKey(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["event-loader"])
    scopes: list[Literal["ingest", "read", "admin"]] = Field(min_length=1, examples=[["ingest"]])


class CreatedKeyOut(KeyOut):
    token: str = Field(description="shown once; only its SHA-256 digest is stored")
