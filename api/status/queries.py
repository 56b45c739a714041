"""Read queries for the status endpoints, each costing what one page costs.

Pages walk the (project_id, created_at, id) index by keyset; counts read the
per-(project, state) counter rows the `images_count_states` trigger keeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import Session, selectinload

from api.status.cursors import Cursor, Order
from core.contracts import ImageState
from core.models import Image, ProjectStateCount, Version

AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Page:
    images: Sequence[Image]
    next_cursor: str | None


@dataclass(frozen=True)
class VersionRow:
    name: str
    key: str
    content_type: str
    format: str = "auto"


@dataclass
class ImageRow:
    """What a summary needs of an image: read as plain rows, about 10x cheaper than the
    ORM's objects (a page of 1000 with its 4000 versions)."""

    id: uuid.UUID
    project_id: int
    state: str
    source_key: str
    format: str | None
    versions: list[VersionRow]
    content_sha256: str | None = None
    blurhash: str | None = None
    thumbhash: str | None = None
    dominant_color: str | None = None
    average_color: str | None = None
    phash: int | None = None


@dataclass(frozen=True)
class RowPage:
    images: Sequence[ImageRow]
    next_cursor: str | None


def get_image(session: Session, image_id: uuid.UUID) -> Image | None:
    return session.scalar(
        select(Image).where(Image.id == image_id).options(selectinload(Image.versions))
    )


def _paged(
    statement: AnySelect, limit: int, offset: int, after: Cursor | None, order: Order
) -> AnySelect:
    """`statement` restricted to one page, after `after` or from `offset`, plus one row
    (which says whether another page follows, without a count)."""
    key = tuple_(Image.created_at, Image.id)
    if after is not None:
        position = tuple_(after.created_at, after.image_id)
        statement = statement.where(key > position if order is Order.OLDEST else key < position)
    if order is Order.OLDEST:
        statement = statement.order_by(Image.created_at, Image.id)
    else:
        statement = statement.order_by(Image.created_at.desc(), Image.id.desc())
    return statement.limit(limit + 1).offset(offset)


def _next_cursor(rows: Sequence[Any], limit: int, order: Order) -> str | None:
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return Cursor(order, last.created_at, last.id).encode()


def list_project_images(
    session: Session,
    project_id: int,
    limit: int,
    *,
    offset: int = 0,
    after: Cursor | None = None,
    order: Order = Order.OLDEST,
) -> Page:
    """One page of the project as ORM objects, after `after` (whose order wins) or from
    `offset`."""
    order = after.order if after is not None else order
    statement = _paged(
        select(Image).where(Image.project_id == project_id), limit, offset, after, order
    )
    rows = session.scalars(statement.options(selectinload(Image.versions))).all()
    return Page(rows[:limit], _next_cursor(rows, limit, order))


_FACT_COLUMNS = (
    Image.content_sha256,
    Image.blurhash,
    Image.thumbhash,
    Image.dominant_color,
    Image.average_color,
    Image.phash,
)


def _image_row(row: Any) -> ImageRow:
    facts = {column.key: getattr(row, column.key) for column in _FACT_COLUMNS}
    return ImageRow(row.id, row.project_id, row.state, row.source_key, row.format, [], **facts)


def list_project_rows(
    session: Session,
    project_id: int,
    limit: int,
    *,
    offset: int = 0,
    after: Cursor | None = None,
    order: Order = Order.OLDEST,
) -> RowPage:
    """The same page as `list_project_images`, as the plain rows a summary needs."""
    order = after.order if after is not None else order
    columns = select(
        Image.id,
        Image.project_id,
        Image.state,
        Image.source_key,
        Image.format,
        Image.created_at,
        *_FACT_COLUMNS,
    ).where(Image.project_id == project_id)
    rows = session.execute(_paged(columns, limit, offset, after, order)).all()
    images = {row.id: _image_row(row) for row in rows[:limit]}
    if images:
        versions = select(
            Version.image_id, Version.name, Version.key, Version.content_type, Version.format
        )
        for version in session.execute(versions.where(Version.image_id.in_(list(images)))):
            images[version.image_id].versions.append(
                VersionRow(version.name, version.key, version.content_type, version.format)
            )
    return RowPage(list(images.values()), _next_cursor(rows, limit, order))


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
