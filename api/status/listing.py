"""A project's listings and its WebSocket snapshot, each costing one page.

The snapshot is the counts plus the newest page of images in the spec's summary shape,
halved until its JSON fits SNAPSHOT_MAX_BYTES, with a cursor for the rest over HTTP.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from api.errors import ApiErrorCode, UnprocessableError
from api.schemas import ProjectImagesPublic, ProjectPublic
from api.status.cursors import Cursor, Order, decode_cursor
from api.status.links import Linker
from api.status.queries import count_by_state, list_project_images, list_project_rows
from api.status.similar import list_similar_images
from api.status.views import image_public, image_summaries

SNAPSHOT_PAGE = 100
SNAPSHOT_MAX_BYTES = 256 * 1024


def _position(offset: int, cursor: str | None) -> Cursor | None:
    if cursor is not None and offset:
        raise UnprocessableError(
            "give `cursor` or `offset`, not both", code=ApiErrorCode.INVALID_CURSOR
        )
    return decode_cursor(cursor) if cursor is not None else None


def project_public(
    session: Session,
    linker: Linker,
    project_id: int,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
    order: Order = Order.OLDEST,
) -> ProjectPublic:
    after = _position(offset, cursor)
    counts = count_by_state(session, project_id)
    page = list_project_images(session, project_id, limit, offset=offset, after=after, order=order)
    return ProjectPublic(
        project_id=project_id,
        counts=counts,
        total=sum(counts.values()),
        images=[image_public(image, linker) for image in page.images],
        next_cursor=page.next_cursor,
    )


def project_images(
    session: Session,
    linker: Linker,
    project_id: int,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
    order: Order = Order.OLDEST,
) -> ProjectImagesPublic:
    after = _position(offset, cursor)
    counts = count_by_state(session, project_id)
    page = list_project_rows(session, project_id, limit, offset=offset, after=after, order=order)
    return ProjectImagesPublic(
        images=image_summaries(page.images, linker),
        limit=limit,
        offset=offset,
        total=sum(counts.values()),
        next_cursor=page.next_cursor,
    )


def similar_images(
    session: Session,
    linker: Linker,
    project_id: int,
    image_id: uuid.UUID,
    max_distance: int,
    limit: int,
    offset: int,
    cursor: str | None,
) -> ProjectImagesPublic:
    """Near duplicates rank by distance, not by the listing's key, so they page by offset."""
    if cursor is not None:
        raise UnprocessableError(
            "`similar_to` pages by `offset`, not `cursor`", code=ApiErrorCode.INVALID_CURSOR
        )
    images, total = list_similar_images(session, project_id, image_id, max_distance, limit, offset)
    return ProjectImagesPublic(
        images=image_summaries(images, linker),
        limit=limit,
        offset=offset,
        total=total,
    )


def snapshot(
    session: Session, linker: Linker, project_id: int, last_event_id: int | None
) -> dict[str, Any]:
    """`{"type": "snapshot", project_id, counts, total, images, next_cursor, order,
    last_event_id}`, at most SNAPSHOT_MAX_BYTES of JSON whatever the project's size."""
    counts = count_by_state(session, project_id)
    limit = SNAPSHOT_PAGE
    while True:
        page = list_project_rows(session, project_id, limit, order=Order.NEWEST)
        message = {
            "type": "snapshot",
            "project_id": project_id,
            "counts": {state.value: count for state, count in counts.items()},
            "total": sum(counts.values()),
            "images": [s.model_dump(mode="json") for s in image_summaries(page.images, linker)],
            "next_cursor": page.next_cursor,
            "order": Order.NEWEST.value,
            "last_event_id": last_event_id,
        }
        if limit == 1 or len(json.dumps(message)) <= SNAPSHOT_MAX_BYTES:
            return message
        limit //= 2
