"""Typed dependencies, declared once and used in route signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import AccessControl, Principal
from api.dependency_errors import dependency_errors
from api.errors import BadRequestError, ForbiddenError, RateLimitedError
from api.guard import principal_from_state
from api.links import Linker
from api.rate_limit import take_upload_slot
from api.resources import Resources
from api.upload_slots import UploadSlots
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


def get_linker(request: Request, resources: ResourcesDep) -> Linker:
    """Signs the links of one response, for the API's own base URL and one expiry window."""
    signer = resources.links
    return Linker(signer, str(request.base_url), signer.expiry())


LinkerDep = Annotated[Linker, Depends(get_linker)]


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


def get_access(request: Request) -> AccessControl:
    access: AccessControl = request.app.state.access
    return access


AccessDep = Annotated[AccessControl, Depends(get_access)]
# auto_error=False: a missing key is our 401 (with our body), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An API key; needed with AUTH_MODE=keys.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_principal(
    request: Request, resources: ResourcesDep, access: AccessDep, bearer: BearerDep
) -> Principal:
    """The caller's key and scope; 401 without a valid key (AUTH_MODE=keys).

    `api.guard` has checked the key already, before the body was read; this answers what
    it found, and checks the key itself only for an app without the guard.
    """
    found = principal_from_state(request.state)
    if found is not None:
        return found
    with dependency_errors():
        return access.authenticate(resources.sessions, bearer.credentials if bearer else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
ProjectIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]


def get_scoped_project(project_id: ProjectIdPath, principal: PrincipalDep) -> int:
    """The path's project, or 404 (as for a project that does not exist) outside the scope."""
    principal.require_project(project_id)
    return project_id


ScopedProjectDep = Annotated[int, Depends(get_scoped_project)]


def require_all_projects(principal: PrincipalDep) -> Principal:
    """For operator routes such as /metrics: a key scoped to every project (or open mode)."""
    if not principal.all_projects:
        raise ForbiddenError("this route needs a key scoped to all projects")
    return principal


AllProjectsDep = Annotated[Principal, Depends(require_all_projects)]


def count_upload(resources: ResourcesDep, access: AccessDep, principal: PrincipalDep) -> None:
    """Spend one of the key's uploads this minute; 429 with Retry-After when none is left.

    Runs before the body is read, so a refused upload stores nothing.
    """
    limit = access.upload_rate_limit_per_minute
    if limit == 0 or principal.key_id is None:
        return
    with dependency_errors():
        retry_after = take_upload_slot(resources.sessions, principal.key_id, limit)
    if retry_after is not None:
        raise RateLimitedError(
            f"at most {limit} uploads per minute for this key", retry_after_seconds=retry_after
        )


UploadQuotaDep = Annotated[None, Depends(count_upload)]


async def hold_upload_slot(request: Request, principal: PrincipalDep) -> AsyncIterator[None]:
    """One of the key's concurrent direct uploads (UPLOAD_CONCURRENCY_PER_KEY); 429 if none."""
    slots: UploadSlots = request.app.state.upload_slots
    with slots.hold(principal.key_id):
        yield


UploadSlotDep = Annotated[None, Depends(hold_upload_slot)]
