"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from revealed.server.deps import ServiceDep, require
from revealed.server.models import Health, Problem

__all__ = ["router"]

router = APIRouter(tags=["operations"])

_METRICS_EXAMPLE: Final = """\
# HELP revealed_rows_total Records received, by table, event type and outcome.
# TYPE revealed_rows_total counter
revealed_rows_total{status="accepted",table="events",type="click"} 1000.0
revealed_rows_total{status="rejected",table="events",type="-"} 2.0
# HELP revealed_request_seconds Request latency by route and status code.
# TYPE revealed_request_seconds histogram
revealed_request_seconds_bucket{code="200",le="0.005",route="/v1/events"} 3.0
revealed_request_seconds_bucket{code="200",le="+Inf",route="/v1/events"} 3.0
revealed_request_seconds_count{code="200",route="/v1/events"} 3.0
revealed_request_seconds_sum{code="200",route="/v1/events"} 0.0061
# HELP revealed_journal_unsealed_rows Journal rows not yet sealed, by table.
# TYPE revealed_journal_unsealed_rows gauge
revealed_journal_unsealed_rows{table="events"} 1000
# HELP revealed_seal_lag_seconds Age of the oldest acknowledged row not yet sealed.
# TYPE revealed_seal_lag_seconds gauge
revealed_seal_lag_seconds 1.800
"""


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
    responses={
        200: {"content": {"text/plain": {"example": _METRICS_EXAMPLE}}},
        401: {"model": Problem},
        403: {"model": Problem},
    },
    dependencies=[require("read")],
    summary="Prometheus metrics",
)
async def metrics(service: ServiceDep) -> Response:
    """Rows by table, type and outcome; request latency; journal rows not yet sealed; seal lag."""
    text = await run_in_threadpool(service.metrics.render)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
