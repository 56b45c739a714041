"""Near duplicates: a project's images ranked by the Hamming distance of their perceptual
hash (core.facts) to one image's, within a bound. Never across projects."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, cast, func, select
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.orm import Session, selectinload

from api.errors import ApiErrorCode, ConflictError, NotFoundError
from core.models import Image

# 64 bits: a distance above 64 means nothing; ~10 is the usual "same picture" bound.
MAX_DISTANCE = 64


def _distance(reference: int) -> ColumnElement[int]:
    return func.bit_count(cast(Image.phash.op("#")(reference), BIT(64)))


def reference_hash(session: Session, project_id: int, image_id: uuid.UUID) -> int:
    """The hash to compare against; 404 outside the project, 409 until it is prepared."""
    image = session.scalar(
        select(Image).where(Image.id == image_id, Image.project_id == project_id)
    )
    if image is None:
        raise NotFoundError(f"image {image_id} does not exist")
    if image.phash is None:
        raise ConflictError(
            f"image {image_id} has no perceptual hash yet", code=ApiErrorCode.IMAGE_NOT_PREPARED
        )
    return image.phash


def list_similar_images(
    session: Session,
    project_id: int,
    image_id: uuid.UUID,
    max_distance: int,
    limit: int,
    offset: int,
) -> tuple[Sequence[Image], int]:
    """The project's other images within `max_distance`, nearest first, and how many."""
    distance = _distance(reference_hash(session, project_id, image_id))
    matching = (
        Image.project_id == project_id,
        Image.id != image_id,
        Image.phash.is_not(None),
        distance <= max_distance,
    )
    total = session.scalar(select(func.count()).select_from(Image).where(*matching)) or 0
    images = session.scalars(
        select(Image)
        .where(*matching)
        .order_by(distance, Image.created_at, Image.id)
        .limit(limit)
        .offset(offset)
        .options(selectinload(Image.versions))
    ).all()
    return images, total
