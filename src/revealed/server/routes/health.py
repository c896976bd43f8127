"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from revealed.server.deps import ServiceDep, require
from revealed.server.models import Health, Problem

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, responses={503: {"model": Problem}}, summary="The store is writable"
)
async def readyz(service: ServiceDep) -> Response | Health:
    if await run_in_threadpool(service.store.journal.writable):
        return Health(status="ready")
    return Response('{"error":"the journal is not writable"}', status_code=503, media_type="application/json")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"model": Problem}, 403: {"model": Problem}},
    dependencies=[require("read")],
    summary="Prometheus metrics",
)
async def metrics(service: ServiceDep) -> Response:
    """Rows by table, type and outcome; request latency; journal rows not yet sealed; seal lag."""
    text = await run_in_threadpool(service.metrics.render)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
