"""Read queries for the status endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from core.contracts import ImageState
from core.models import Image


def get_image(session: Session, image_id: uuid.UUID) -> Image | None:
    return session.scalar(
        select(Image).where(Image.id == image_id).options(selectinload(Image.versions))
    )


def list_project_images(
    session: Session, project_id: int, limit: int, offset: int
) -> Sequence[Image]:
    statement = (
        select(Image)
        .where(Image.project_id == project_id)
        .order_by(Image.created_at, Image.id)
        .limit(limit)
        .offset(offset)
        .options(selectinload(Image.versions))
    )
    return session.scalars(statement).all()


def count_by_state(session: Session, project_id: int) -> dict[ImageState, int]:
    rows = session.execute(
        select(Image.state, func.count())
        .where(Image.project_id == project_id)
        .group_by(Image.state)
    ).all()
    counts = dict.fromkeys(ImageState, 0)
    for state, count in rows:
        counts[ImageState(state)] = count
    return counts
