"""Dependencies of the routes: the service state and API-key scopes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from revealed.errors import RevealedError
from revealed.keys import ApiKey, KeyStore
from revealed.server.metrics import Metrics
from revealed.settings import Settings
from revealed.store import GroupCommit, Store
from revealed.store.seal import BackgroundSealer

__all__ = ["Forbidden", "Service", "ServiceDep", "Unauthorized", "authorize", "require"]


@dataclass
class Service:
    """What a running service holds, built once in the app's lifespan."""

    settings: Settings
    store: Store
    committer: GroupCommit
    keys: KeyStore
    metrics: Metrics
    sealer: BackgroundSealer


class Unauthorized(RevealedError, PermissionError):
    status = 401


class Forbidden(RevealedError, PermissionError):
    status = 403


async def _service(request: Request) -> Service:
    """Async, so FastAPI calls it on the event loop (a plain function would cost a worker thread's
    round trip on every request)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


def _token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return headers.get("x-api-key")


def authorize(headers: Mapping[str, str], service: Service, scope: str) -> ApiKey | None:
    """With keys configured, the key in a request's headers (lower-case names): valid (401
    otherwise) and holding `scope` (403 otherwise); None when no keys are configured."""
    if not service.keys.enforced():
        return None
    token = _token(headers)
    key = service.keys.verify(token) if token else None
    if key is None:
        raise Unauthorized(
            "expected a valid API key, found " + ("none" if not token else "an unknown or revoked key"),
            hint="send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        )
    if not key.allows(scope):
        raise Forbidden(
            f"expected a key with the {scope!r} scope, found one with {', '.join(key.scopes)}",
            hint="create a key with that scope: revealed keys create NAME --scope " + scope,
        )
    return key


def require(scope: str) -> Any:
    """A dependency: `authorize` the request's headers for `scope` (the ingest routes, served
    outside FastAPI's router, call `authorize` themselves)."""

    async def check(request: Request, service: ServiceDep) -> ApiKey | None:
        return authorize(request.headers, service, scope)

    return Depends(check)
