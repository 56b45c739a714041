"""Projects: a page of a project's images with their states and links, and WebSocket tokens.

Pages are keyset-paginated: pass a page's `next_cursor` as `?cursor=` for the next one
(stable while images are added: every image is seen exactly once). `offset` stays for the
spec's shape, bounded, and costs the rows it skips.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.access.auth import OPEN_KEY_ID
from api.access.guard import GuardedRoute
from api.deps import (
    AccessDep,
    LimitQuery,
    LinkerDep,
    OffsetQuery,
    PrincipalDep,
    ScopedProjectDep,
    SessionDep,
    get_principal,
)
from api.errors import ApiError, ApiErrorCode
from api.intake.dedupe import project_dedupes, set_project_dedupe
from api.schemas import (
    ProjectImagesPublic,
    ProjectPublic,
    ProjectSettingsPublic,
    WsTokenPublic,
    errors,
)
from api.status.cursors import MAX_CURSOR_CHARS, Order
from api.status.listing import project_images, project_public, similar_images
from api.status.similar import MAX_DISTANCE

logger = logging.getLogger(__name__)
# Every route here needs a key once any exists, whatever its own parameters say.
router = APIRouter(
    prefix="/projects",
    tags=["projects"],
    dependencies=[Depends(get_principal)],
    route_class=GuardedRoute,
)

CursorQuery = Annotated[
    str | None,
    Query(
        # Documented, but checked by `decode_cursor`: an overlong cursor is one the API did
        # not give, so it is our 422 `invalid_cursor`, not FastAPI's `validation_error`.
        json_schema_extra={"maxLength": MAX_CURSOR_CHARS},
        description=(
            "The `next_cursor` of the previous page (its order wins over `order`), and no"
            " `offset`; any other value is 422 `invalid_cursor`."
        ),
    ),
]
OrderQuery = Annotated[Order, Query(description="`oldest` first (default) or `newest` first.")]
_ERRORS = errors(401, 404, 422, 503)


@router.get("/{project_id}", response_model=ProjectPublic, responses=_ERRORS)
def read_project(
    project_id: ScopedProjectDep,
    session: SessionDep,
    linker: LinkerDep,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
    cursor: CursorQuery = None,
    order: OrderQuery = Order.OLDEST,
) -> ProjectPublic:
    """Counts by state, then a page of the project's images with their versions."""
    return project_public(session, linker, project_id, limit, offset, cursor, order)


@router.get(
    "/{project_id}/images",
    response_model=ProjectImagesPublic,
    responses=errors(401, 404, 409, 422, 503),
)
def read_project_images(
    project_id: ScopedProjectDep,
    session: SessionDep,
    linker: LinkerDep,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
    cursor: CursorQuery = None,
    order: OrderQuery = Order.OLDEST,
    similar_to: uuid.UUID | None = None,
    max_distance: Annotated[int, Query(ge=0, le=MAX_DISTANCE)] = 10,
) -> ProjectImagesPublic:
    """The spec's shape: `{"images": [{image_id, state, project_id, versions}]}`, paginated.

    With `similar_to`, only the project's near duplicates of that image: those whose
    64-bit perceptual hash differs in at most `max_distance` bits, nearest first, paged by
    `offset` (404 if the image is not in the project, 409 `image_not_prepared` until it
    has a hash).
    """
    if similar_to is not None:
        return similar_images(
            session, linker, project_id, similar_to, max_distance, limit, offset, cursor
        )
    return project_images(session, linker, project_id, limit, offset, cursor, order)


@router.get("/{project_id}/settings", response_model=ProjectSettingsPublic, responses=_ERRORS)
def read_project_settings(
    project_id: ScopedProjectDep, session: SessionDep
) -> ProjectSettingsPublic:
    """The project's options (every default until set)."""
    return ProjectSettingsPublic(dedupe=project_dedupes(session, project_id))


@router.put(
    "/{project_id}/settings",
    response_model=ProjectSettingsPublic,
    responses=errors(400, 401, 404, 413, 422, 503),
)
def update_project_settings(
    project_id: ScopedProjectDep, body: ProjectSettingsPublic, session: SessionDep
) -> ProjectSettingsPublic:
    """Set the project's options. `dedupe`: answer uploads of bytes already `done` in this
    project with that image (`duplicate_of`) instead of processing them again."""
    set_project_dedupe(session, project_id, body.dedupe)
    return body


@router.post("/{project_id}/ws-token", response_model=WsTokenPublic, responses=_ERRORS)
def create_ws_token(
    project_id: ScopedProjectDep, principal: PrincipalDep, access: AccessDep, request: Request
) -> WsTokenPublic:
    """A token for the project's WebSocket, valid for WS_TOKEN_TTL_SECONDS.

    Browsers cannot send an Authorization header on a WebSocket, so they connect to
    `ws_url` (which carries the token as `?token=`) instead.
    """
    http_url = str(request.url_for("project_events", project_id=project_id))
    ws_url = "ws" + http_url.removeprefix("http")
    if access.ws_tokens is None:
        if principal.key_id is not None:
            # Keys stored in Postgres were created, but the API was started without a secret.
            logger.error("a WebSocket token was asked for, but WS_TOKEN_SECRET is not set")
            raise ApiError(
                "WS_TOKEN_SECRET is not configured", code=ApiErrorCode.WS_TOKEN_SECRET_MISSING
            )
        return WsTokenPublic(token=None, expires_at=None, ws_url=ws_url)
    token, expires_at = access.ws_tokens.issue(project_id, principal.key_id or OPEN_KEY_ID)
    return WsTokenPublic(token=token, expires_at=expires_at, ws_url=f"{ws_url}?token={token}")
