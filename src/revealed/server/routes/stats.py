"""GET /v1/stats: what the store holds (read scope)."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from revealed.pipeline.stats import store_stats
from revealed.server.deps import ServiceDep, require
from revealed.server.models import Problem

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["read"])

#: what a store answers after one decision, one event and one rejected event were ingested
_EXAMPLE: Final[dict[str, Any]] = {
    "decisions": 1,
    "events": 1,
    "items": 0,
    "quarantine": 1,
    "events_by_type": {"click": 1},
    "decisions_by_surface": {"search": 1},
    "decisions_by_model_version": {"ranker / 2026.01.3": 1},
    "quarantine_by_reason": {"event / invalid": 1},
    "time_range": {
        "decisions": ["2026-01-31T12:00:00Z", "2026-01-31T12:00:00Z"],
        "events": ["2026-01-31T12:00:05Z", "2026-01-31T12:00:05Z"],
        "received": ["2026-01-31T12:00:06.218Z", "2026-01-31T12:00:06.344Z"],
    },
    "journal_unsealed": {"decisions": 0, "events": 0, "items": 0, "quarantine": 0},
    "table_versions": {"decisions": 1, "events": 1, "items": 0, "quarantine": 1},
}


@router.get(
    "/stats",
    responses={
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
        401: {"model": Problem},
        403: {"model": Problem},
    },
    dependencies=[require("read")],
    summary="Rows per table, events per type, decisions per surface and model version",
)
async def stats(service: ServiceDep) -> dict[str, Any]:
    return await run_in_threadpool(store_stats, service.store)
