"""Request and response models of the service, for validation where speed does not matter and for
the OpenAPI document (the hot ingest path encodes its responses with msgspec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue

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

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": "content-type: expected application/json or "
                    "application/x-ndjson, found text/csv",
                    "hint": "send an object or array as application/json, or an object per line as "
                    "application/x-ndjson",
                }
            ]
        }
    }


def problem(error: str, hint: str = "") -> dict[str, str | None]:
    """A `Problem` body, as the routes answer it (no hint is null)."""
    return {"error": error, "hint": hint or None}


def problem_of(exc: RevealedError) -> dict[str, str | None]:
    """The `Problem` body of an error revealed raised on purpose: its message and hint."""
    return problem(str(exc.args[0]) if exc.args else type(exc).__name__, exc.hint)


class Health(BaseModel):
    status: str

    model_config = {"json_schema_extra": {"examples": [{"status": "ready"}]}}


_KEY_EXAMPLE: dict[str, JsonValue] = {
    "key_id": "3f9a1c2e7b40",
    "name": "event-loader",
    "scopes": ["ingest"],
    "created_at": 1769860800,
    "revoked_at": None,
}


class KeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at: int = Field(description="Unix time, seconds")
    revoked_at: int | None = Field(description="Unix time, seconds; null while the key is live")

    model_config = {"json_schema_extra": {"examples": [_KEY_EXAMPLE]}}


class CreateKey(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["event-loader"])
    scopes: list[Literal["ingest", "read", "admin"]] = Field(min_length=1, examples=[["ingest"]])


class CreatedKeyOut(KeyOut):
    token: str = Field(description="shown once; only its SHA-256 digest is stored")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {**_KEY_EXAMPLE, "token": "rvk_3f9a1c2e7b40_Yx3vQ0h9bKp2LwN8sT5eR1uJ6cF4mA7dZ0gH2iK9oPq"}
            ]
        }
    }
