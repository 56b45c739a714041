"""Read queries for the status endpoints, each costing what one page costs.

Pages walk the (project_id, created_at, id) index by keyset; counts read the
per-(project, state) counter rows the `images_count_states` trigger keeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, selectinload

from api.cursors import Cursor, Order
from core.contracts import ImageState
from core.models import Image, ProjectStateCount


@dataclass(frozen=True)
class Page:
    images: Sequence[Image]
    next_cursor: str | None


def get_image(session: Session, image_id: uuid.UUID) -> Image | None:
    return session.scalar(
        select(Image).where(Image.id == image_id).options(selectinload(Image.versions))
    )


def list_project_images(
    session: Session,
    project_id: int,
    limit: int,
    *,
    offset: int = 0,
    after: Cursor | None = None,
    order: Order = Order.OLDEST,
) -> Page:
    """One page of the project, after `after` (whose order wins) or from `offset`."""
    order = after.order if after is not None else order
    key = tuple_(Image.created_at, Image.id)
    statement = select(Image).where(Image.project_id == project_id)
    if after is not None:
        position = tuple_(after.created_at, after.image_id)
        statement = statement.where(key > position if order is Order.OLDEST else key < position)
    if order is Order.OLDEST:
        statement = statement.order_by(Image.created_at, Image.id)
    else:
        statement = statement.order_by(Image.created_at.desc(), Image.id.desc())
    # One row more than asked says whether another page follows, without a count.
    statement = statement.limit(limit + 1).offset(offset).options(selectinload(Image.versions))
    rows = session.scalars(statement).all()
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], Cursor(order, last.created_at, last.id).encode())


def count_by_state(session: Session, project_id: int) -> dict[ImageState, int]:
    rows = session.execute(
        select(ProjectStateCount.state, ProjectStateCount.images).where(
            ProjectStateCount.project_id == project_id
        )
    ).all()
    counts = dict.fromkeys(ImageState, 0)
    for state, count in rows:
        counts[ImageState(state)] = count
    return counts
