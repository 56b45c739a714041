"""Exact duplicates: an upload whose SHA-256 equals a `done` image's in the same project is
answered with that image instead of being processed again. Opt-in, per request (the
`dedupe=true` form field) or per project (`PUT /projects/{id}/settings`); never across
projects, so one tenant's uploads reveal nothing about another's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiErrorCode, UnprocessableError
from core.contracts import ImageState
from core.models import Image, ProjectSettings

# The document says boolean: anything else is a client's mistake, refused, never read as off.
_BOOLEANS = {"true": True, "false": False}


def dedupe_requested(fields: dict[str, str]) -> bool | None:
    """The request's `dedupe` field: True, False, or None (absent: the project decides)."""
    if "dedupe" not in fields:
        return None
    value = _BOOLEANS.get(fields["dedupe"].strip().lower())
    if value is None:
        raise UnprocessableError("dedupe must be true or false", code=ApiErrorCode.VALIDATION_ERROR)
    return value


def project_dedupes(session: Session, project_id: int) -> bool:
    return bool(
        session.scalar(
            select(ProjectSettings.dedupe).where(ProjectSettings.project_id == project_id)
        )
    )


def find_duplicate(
    sessions: sessionmaker[Session],
    project_id: int,
    sha256: str,
    requested: bool | None,
    idempotency_key: str | None = None,
) -> Image | None:
    """The oldest `done` image of the project with these bytes, when dedupe is on: as the
    request says, else as the project's setting says. Never for an Idempotency-Key used
    before: that request's image answers (or a 409, for other bytes), not a look-alike."""
    with sessions() as session:
        if idempotency_key is not None and _key_used(session, project_id, idempotency_key):
            return None
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


def _key_used(session: Session, project_id: int, idempotency_key: str) -> bool:
    used = select(Image.id).where(
        Image.project_id == project_id, Image.idempotency_key == idempotency_key
    )
    return session.scalar(used.limit(1)) is not None


def set_project_dedupe(session: Session, project_id: int, dedupe: bool) -> None:
    statement = insert(ProjectSettings).values(project_id=project_id, dedupe=dedupe)
    session.execute(
        statement.on_conflict_do_update(index_elements=["project_id"], set_={"dedupe": dedupe})
    )
    session.commit()
