"""The Postgres side of writing one derivative: claim its key, then point the version at it.

A resize writes its object under a key of its own (`version_key_for`: the fence and the
attempt), in three steps:

1. `claim`: while its image still accepts versions under its fence, note the key in
   `pending_objects`; a stale attempt is refused here, before it writes anything.
2. It writes the object.
3. `commit`: if still allowed, point the version row at the key and take the key out of
   `pending_objects`, in one transaction that also publishes the version event. The key the
   row pointed at before (an older fence's) goes to `pending_objects`, due only once every
   link to it handed out before the commit has expired (`core.link_lifetime`).

Whatever stays in `pending_objects` (a refused or crashed attempt, a superseded object) is
deleted by the staging cleanup, so a crash between two steps leaves nothing for good.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from activities.records import defer_delete, lock_image
from core.contracts import Fence, ImageState, ResizeResult
from core.events import publish, version_event
from core.fencing import (
    StaleWriteError,
    Verdict,
    VersionRow,
    processing_under,
    version_verdict,
)
from core.models import Image, PendingObject, Version


@dataclass
class Committed:
    """The version as the row now says; `unused`: this attempt's object when another
    attempt's row stood (never linked: delete it now); `superseded`: the object the row
    named before, left to the staging cleanup until links to it have expired."""

    result: ResizeResult
    unused: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Recorded:
    """A version row: what it says, and the fence that wrote it."""

    result: ResizeResult
    token: int


class VersionRecords:
    """`keep`: how long a superseded object outlives its commit (`core.link_lifetime`)."""

    def __init__(self, sessions: sessionmaker[Session], keep: timedelta) -> None:
        self._sessions = sessions
        self._keep = keep

    def claim(self, image_id: uuid.UUID, key: str, fence: Fence) -> None:
        """Note `key` as about to be written, or raise StaleWriteError.

        One statement, without a lock: it only spares a stale attempt the write. The
        commit decides, under the image's row lock.
        """
        accepts = exists().where(Image.id == image_id, processing_under_sql(fence))
        rows = select(literal(key), literal(image_id)).where(accepts)
        statement = insert(PendingObject).from_select(["key", "image_id"], rows)
        with self._sessions.begin() as session:
            claimed = session.scalar(
                statement.on_conflict_do_nothing().returning(PendingObject.key)
            )
        if claimed is None:
            raise StaleWriteError(f"image {image_id} takes no versions under this fence now")

    def commit(
        self,
        image_id: uuid.UUID,
        project_id: int,
        written: ResizeResult,
        fence: Fence,
        announce: bool = True,
    ) -> Committed:
        """Point the version at `written.key`, or answer what an attempt of the same resize
        already recorded; raise StaleWriteError when a newer write forbids both."""
        with self._sessions.begin() as session:
            self._check(session, image_id, fence)
            existing = _version(session, image_id, written.version, written.format)
            row = VersionRow(existing.result.key, existing.token) if existing else None
            verdict = version_verdict(row, written.key, fence)
            if verdict is Verdict.REFUSE:
                raise StaleWriteError(f"{written.version} of {image_id} has a newer fence")
            if verdict is Verdict.KEEP:
                assert existing is not None
                unused = [written.key] if existing.result.key != written.key else []
                return Committed(existing.result, unused)
            claimed = session.scalar(
                delete(PendingObject)
                .where(PendingObject.key == written.key)
                .returning(PendingObject.key)
            )
            if claimed is None:  # the staging cleanup took it: it may be deleted already
                raise StaleWriteError(f"{written.key} was swept before it was recorded")
            upsert_version(session, image_id, written, fence)
            before = existing.result.key if existing else written.key
            superseded = [before] if before != written.key else []
            defer_delete(session, image_id, superseded, self._keep)
            # One event per version, for the format the listing links: the other formats
            # of it are in `GET /images/{id}`.
            if announce:
                event = version_event(
                    image_id,
                    project_id,
                    written.version,
                    written.key,
                    written.width,
                    written.height,
                )
                publish(session, event)
        return Committed(written, superseded=superseded)

    def forget(self, keys: list[str]) -> None:
        """These objects are deleted: the staging cleanup need not look for them."""
        if keys:
            with self._sessions.begin() as session:
                session.execute(delete(PendingObject).where(PendingObject.key.in_(keys)))

    def _check(self, session: Session, image_id: uuid.UUID, fence: Fence) -> None:
        image = lock_image(session, image_id)
        if image is None:
            raise StaleWriteError(f"image {image_id} no longer exists")
        if not processing_under(image.written, fence):
            raise StaleWriteError(
                f"image {image_id} is {image.written.state.value}: it takes no versions now"
            )


def processing_under_sql(write: Fence) -> ColumnElement[bool]:
    """`core.fencing.processing_under` as a condition on the image row (a test holds the
    two to the same answers)."""
    newer_run = and_(
        Image.fence_token < write.token,
        literal(bool(write.run_id)),
        Image.fence_run_id.is_distinct_from(write.run_id),
    )
    return and_(
        Image.fence_token <= write.token,
        or_(Image.state == ImageState.PROCESSING.value, newer_run),
    )


def _version(
    session: Session, image_id: uuid.UUID, name: str, image_format: str
) -> Recorded | None:
    row = session.execute(
        select(
            Version.key,
            Version.width,
            Version.height,
            Version.bytes,
            Version.content_type,
            Version.spec,
            Version.fence_token,
        ).where(Version.image_id == image_id, Version.name == name, Version.format == image_format)
    ).one_or_none()
    if row is None:
        return None
    key, width, height, size, content_type, spec, token = row
    result = ResizeResult(name, key, width, height, size, content_type, image_format, spec)
    return Recorded(result, token)


def upsert_version(
    session: Session, image_id: uuid.UUID, written: ResizeResult, fence: Fence
) -> None:
    values = {
        "image_id": image_id,
        "name": written.version,
        "key": written.key,
        "width": written.width,
        "height": written.height,
        "bytes": written.bytes,
        "content_type": written.content_type,
        "format": written.format,
        "spec": written.spec,
        "fence_token": fence.token,
    }
    statement = insert(Version).values(**values)
    statement = statement.on_conflict_do_update(
        constraint="uq_versions_image_id_name_format",
        set_={k: v for k, v in values.items() if k not in ("image_id", "name", "format")},
    )
    session.execute(statement)
