"""API keys over HTTP (admin scope): list, create, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from revealed.errors import RevealedError
from revealed.keys import ApiKey
from revealed.server.deps import ServiceDep, require
from revealed.server.models import CreatedKeyOut, CreateKey, KeyOut, Problem

__all__ = ["router"]


class UnknownKey(RevealedError, LookupError):
    status = 404


router = APIRouter(
    prefix="/v1/keys",
    tags=["admin"],
    dependencies=[require("admin")],
    responses={
        400: {"model": Problem, "description": "a body that is not JSON"},
        401: {"model": Problem},
        403: {"model": Problem},
        422: {"model": Problem, "description": "a body that breaks the request schema"},
    },
)


def _out(key: ApiKey) -> KeyOut:
    return KeyOut(
        key_id=key.key_id,
        name=key.name,
        scopes=list(key.scopes),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.get("", response_model=list[KeyOut], summary="List keys (never their tokens)")
def list_keys(service: ServiceDep) -> list[KeyOut]:
    return [_out(k) for k in service.keys.list()]


@router.post(
    "", response_model=CreatedKeyOut, status_code=201, summary="Create a key; its token is shown once"
)
def create_key(body: CreateKey, service: ServiceDep) -> CreatedKeyOut:
    created = service.keys.create(body.name, list(body.scopes))
    return CreatedKeyOut(**_out(created.key).model_dump(), token=created.token)


@router.delete("/{key_id}", status_code=204, responses={404: {"model": Problem}}, summary="Revoke a key")
def revoke_key(
    key_id: Annotated[str, Path(description="as `GET /v1/keys` lists it", examples=["3f9a1c2e7b40"])],
    service: ServiceDep,
) -> None:
    if not service.keys.revoke(key_id):
        raise UnknownKey(f"key_id: expected a live key, found {key_id!r}")
