"""Exact duplicates: an upload whose SHA-256 equals a `done` image's in the same project is
answered with that image instead of being processed again. Opt-in, per request (the
`dedupe=true` form field) or per project (`PUT /projects/{id}/settings`); never across
projects, so one tenant's uploads reveal nothing about another's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from core.contracts import ImageState
from core.models import Image, ProjectSettings

TRUE_VALUES = frozenset({"true", "1", "yes"})


def dedupe_requested(fields: dict[str, str]) -> bool | None:
    """The request's `dedupe` field: True, False, or None (absent: the project decides)."""
    if "dedupe" not in fields:
        return None
    return fields["dedupe"].strip().lower() in TRUE_VALUES


def project_dedupes(session: Session, project_id: int) -> bool:
    return bool(
        session.scalar(
            select(ProjectSettings.dedupe).where(ProjectSettings.project_id == project_id)
        )
    )


def find_duplicate(
    sessions: sessionmaker[Session], project_id: int, sha256: str, requested: bool | None
) -> Image | None:
    """The oldest `done` image of the project with these bytes, when dedupe is on: as the
    request says, else as the project's setting says."""
    with sessions() as session:
        if requested is None:
            requested = project_dedupes(session, project_id)
        if not requested:
            return None
        return session.scalar(
            select(Image)
            .where(
                Image.project_id == project_id,
                Image.content_sha256 == sha256,
                Image.state == ImageState.DONE,
            )
            .order_by(Image.created_at, Image.id)
            .limit(1)
        )


def set_project_dedupe(session: Session, project_id: int, dedupe: bool) -> None:
    statement = insert(ProjectSettings).values(project_id=project_id, dedupe=dedupe)
    session.execute(
        statement.on_conflict_do_update(index_elements=["project_id"], set_={"dedupe": dedupe})
    )
    session.commit()
