"""Typed dependencies, declared once and used in route signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from api.errors import BadRequestError
from api.resources import Resources
from core.storage import Storage


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_session(resources: ResourcesDep) -> Iterator[Session]:
    with resources.sessions() as session:
        yield session


def get_storage(resources: ResourcesDep) -> Storage:
    return resources.storage


SessionDep = Annotated[Session, Depends(get_session)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def get_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Repeat a request safely: the same key (per project) answers the "
            "same image, with one workflow and one set of objects.",
        ),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if not 1 <= len(idempotency_key) <= 255 or not idempotency_key.isprintable():
        raise BadRequestError(
            "Idempotency-Key must be 1 to 255 printable characters",
            code="invalid_idempotency_key",
        )
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(get_idempotency_key)]
