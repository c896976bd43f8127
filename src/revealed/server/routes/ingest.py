"""POST /v1/decisions, /v1/events, /v1/items: one JSON object, a JSON array, or NDJSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

import msgspec
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from revealed.errors import RevealedError
from revealed.schema.records import Kind
from revealed.server.deps import Service, authorize
from revealed.server.models import IngestResult, Problem, problem, problem_of
from revealed.store.bodies import JSON, NDJSON, append_body

__all__ = ["IngestRoutes", "documented"]

_ENCODE: Final = msgspec.json.Encoder().encode


class UnsupportedMediaType(RevealedError, ValueError):
    status = 415


class BodyTooLarge(RevealedError, ValueError):
    status = 413


_EXAMPLES: Final[dict[str, Any]] = {
    "decision": {
        "decision_id": "7f3c9a1e-0d1b-4c57-9a55-7b7a8e0c1d2f",
        "timestamp": "2026-01-31T12:00:00Z",
        "user_id": "u-42",
        "surface": "search",
        "query_id": "q:running shoes",
        "model": "ranker",
        "model_version": "2026.01.3",
        "context": {"device": "ios"},
        "items": [
            {"item_id": "sku-1", "score": 2.1, "cond_propensity": 0.61},
            {"item_id": "sku-7", "score": 1.4, "cond_propensity": 0.55},
        ],
        "policy": {"name": "plackett_luce", "temperature": 1.0},
    },
    "event": {
        "event_id": "c1a2b3d4-0000-4000-8000-000000000001",
        "timestamp": 1769860805000,
        "type": "click",
        "user_id": "u-42",
        "decision_id": "7f3c9a1e-0d1b-4c57-9a55-7b7a8e0c1d2f",
        "item_id": "sku-7",
    },
    "item": {
        "item_id": "sku-7",
        "valid_from": "2026-01-01T00:00:00Z",
        "features": {"price": 89.0, "brand": "x"},
    },
}


def _openapi(kind: Kind) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{kind.capitalize()}"}
    example = _EXAMPLES[kind]
    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": {"oneOf": [ref, {"type": "array", "items": ref}]},
                    "examples": {
                        "one": {"summary": f"one {kind}", "value": example},
                        "many": {"summary": f"a batch of {kind}s", "value": [example]},
                    },
                },
                NDJSON: {
                    "schema": {"type": "string"},
                    "example": msgspec.json.encode(example).decode() + "\n",
                },
            },
        }
    }


_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    422: {"model": IngestResult, "description": "no row was stored: every row was rejected or conflicted"},
    400: {
        "model": Problem,
        "description": "an empty body or array, or one that is not JSON (kept in quarantine)",
    },
    401: {"model": Problem, "description": "keys are configured and no valid key was sent"},
    403: {"model": Problem, "description": "the key lacks the ingest scope"},
    413: {"model": Problem, "description": "the body exceeds the configured limit"},
    415: {
        "model": Problem,
        "description": "the content type is neither application/json nor application/x-ndjson",
    },
}


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to store, nobody to answer."""


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(
            f"body: expected at most {limit:,} bytes, found {int(declared):,}", hint="send smaller batches"
        )
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"body: expected at most {limit:,} bytes, found more", hint="send smaller batches"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _media_type(headers: Mapping[str, str]) -> str:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in (JSON, NDJSON):
        raise UnsupportedMediaType(
            f"content-type: expected {JSON} or {NDJSON}, found {media or 'none'}",
            hint="send an object or array as application/json, or an object per line as application/x-ndjson",
        )
    return media


async def _ingest(
    kind: Kind, service: Service, headers: Mapping[str, str], receive: Receive
) -> tuple[int, bytes]:
    """The status and JSON body of one POST: rows stored and counted, each row's outcome."""
    authorize(headers, service, "ingest")
    media = _media_type(headers)
    body = await _read_body(receive, headers.get("content-length"), service.settings.max_body_bytes)
    results = await append_body(service.committer, kind, body, media, source="http")
    for labels, count in results.tally.items():  # one increment per label set, not per row
        service.metrics.rows.labels(*labels).inc(count)
    counts = results.counts()
    payload = {
        **counts,
        "statuses": results.statuses,  # a StrEnum encodes as its value
        "errors": {str(i): e for i, e in results.errors.items()},
    }
    stored = counts["accepted"] + counts["duplicate"]
    return 200 if stored else 422, _ENCODE(payload)


class IngestRoutes:
    """Pure ASGI middleware that serves the ingest routes ahead of FastAPI's router.

    A single-event POST spends most of its time on the event loop in framework machinery (route
    matching, dependency resolution, request and response objects): served here, one costs about
    half as much CPU. The routes are described to OpenAPI by `documented`, and a request to one
    carries its documented route in `scope["route"]`, as FastAPI's router would set it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        served = _ROUTES.get(scope["path"].rstrip("/")) if scope["type"] == "http" else None
        if served is None:
            await self.app(scope, receive, send)
            return
        scope["route"], kind = served
        if scope["method"] != "POST":
            await _respond(send, 405, _ENCODE(problem("method: expected POST")), [(b"allow", b"POST")])
            return
        # the first of repeated headers wins, as in Starlette's Headers
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        try:
            status, body = await _ingest(kind, scope["app"].state.service, headers, receive)
        except _Disconnected:
            return
        except RevealedError as exc:  # as the app's handler answers it, without a Response object
            status, body = exc.status, _ENCODE(problem_of(exc))
        await _respond(send, status, body)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _described(kind: Kind) -> Any:
    async def post() -> IngestResult:  # pragma: no cover - served by IngestRoutes, never called
        raise NotImplementedError("served by IngestRoutes")

    post.__doc__ = (
        f"Store {kind}s: one JSON object, a JSON array, or NDJSON lines. Idempotent on {kind}_id: "
        "the first copy wins, a retry is a duplicate, another payload under a known id is quarantined. "
        "The response is sent only after the rows are committed to the journal; rows that break the "
        "contract are quarantined with their field-level errors while the rest are stored."
    )
    return post


#: the OpenAPI description of the ingest routes (never mounted: `IngestRoutes` serves them)
documented = APIRouter(prefix="/v1", tags=["ingest"])
for _kind in ("decision", "event", "item"):
    documented.add_api_route(
        f"/{_kind}s",
        _described(_kind),
        methods=["POST"],
        response_model=IngestResult,
        responses=_RESPONSES,
        openapi_extra=_openapi(_kind),
        summary=f"Store {_kind}s",
        name=f"post_{_kind}s",
    )
#: path -> (its documented route, the kind it takes)
_ROUTES: Final[dict[str, tuple[APIRoute, Kind]]] = {
    r.path: (r, cast("Kind", r.path.removeprefix("/v1/").removesuffix("s")))
    for r in documented.routes
    if isinstance(r, APIRoute)
}
