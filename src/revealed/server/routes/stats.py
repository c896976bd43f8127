"""GET /v1/stats: what the store holds (read scope)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from revealed.pipeline.stats import store_stats
from revealed.server.deps import ServiceDep, require
from revealed.server.models import Problem

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["read"])


@router.get(
    "/stats",
    responses={401: {"model": Problem}, 403: {"model": Problem}},
    dependencies=[require("read")],
    summary="Rows per table, events per type, decisions per surface and model version",
)
async def stats(service: ServiceDep) -> dict[str, Any]:
    return await run_in_threadpool(store_stats, service.store)
