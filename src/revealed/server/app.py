"""create_app(settings): the ingestion service (FastAPI), its lifespan, errors and OpenAPI document."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from revealed import __version__
from revealed.errors import RevealedError
from revealed.keys import KeyStore
from revealed.schema.records import Decision, Event, Item
from revealed.server.deps import Service
from revealed.server.metrics import Metrics
from revealed.server.models import problem, problem_of
from revealed.server.routes import health, ingest, keys, stats
from revealed.settings import Settings
from revealed.store import Store
from revealed.store.bodies import warm_up
from revealed.store.seal import BackgroundSealer

__all__ = ["create_app"]

log = logging.getLogger("revealed.server")

_DESCRIPTION = """\
The front door of revealed: applications send the **decisions** their models serve, the
**events** users produce, and **item** features. Every row is validated against the v1 data
contract; a response is sent only after its rows are committed to the journal (durable), and it
reports each row as accepted, duplicate, conflict or rejected (with field-level errors). Rejected
rows are kept in quarantine, never dropped.

With API keys configured, send one as `Authorization: Bearer <key>` (or `X-API-Key`): `ingest`
keys write, `read` keys read stats and metrics, `admin` keys manage keys.
"""


class _Latency:
    """Pure ASGI middleware timing every request into the latency histogram."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            service: Service | None = getattr(scope["app"].state, "service", None)
            if service is not None:
                service.metrics.latency.labels(path, str(code)).observe(time.perf_counter() - start)


def _problem(status: int, error: str, hint: str = "") -> JSONResponse:
    return JSONResponse(problem(error, hint), status_code=status)


def create_app(settings: Settings) -> FastAPI:
    """The service over the store in `settings.data_dir` (opened when the app starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings)
        committer = store.group_commit()
        sealer = BackgroundSealer(store, interval_s=settings.seal_interval_s)
        metrics = Metrics(unsealed=store.unsealed, seal_lag_s=store.seal_lag_s)
        app.state.service = Service(
            settings, store, committer, KeyStore(settings.data_dir / "keys.sqlite"), metrics, sealer
        )
        sealer.start()
        await asyncio.to_thread(warm_up)
        # everything built so far lives as long as the process: out of the collector's sight,
        # full collections under load walk only what requests allocate. A request's rows are
        # acyclic and die with it, so the young generation is collected every 50,000 allocations
        # rather than 700: most of a batch is freed by reference counting before it is scanned.
        threshold = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, *threshold[1:])
        try:
            yield
        finally:
            gc.set_threshold(*threshold)
            sealer.stop()
            app.state.service.keys.close()
            store.close()

    app = FastAPI(title="revealed", version=__version__, description=_DESCRIPTION, lifespan=lifespan)
    app.add_middleware(ingest.IngestRoutes)
    app.add_middleware(_Latency)  # the outer one: it times the ingest routes too
    for router in (stats.router, keys.router, health.router):
        app.include_router(router)

    @app.exception_handler(RevealedError)
    async def revealed_error(request: Request, exc: RevealedError) -> JSONResponse:
        return JSONResponse(problem_of(exc), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _problem(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return _problem(422, errors or "invalid request")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=[*ingest.documented.routes, *app.routes],
            )
            _, components = msgspec.json.schema_components(
                [Decision, Event, Item], ref_template="#/components/schemas/{name}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The factory `revealed serve` hands to uvicorn workers (settings from the environment)."""
    return create_app(Settings.from_env())
