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


# The unique constraint a version row is upserted on.
VERSION_KEY = "uq_versions_image_id_name_format"
# What `_lock_with_version` reads of a version row.
RECORDED_COLUMNS = (
    Version.key,
    Version.width,
    Version.height,
    Version.bytes,
    Version.content_type,
    Version.spec,
    Version.fence_token.label("version_token"),
)
AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


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
        with self._sessions() as session:
            # A single statement is atomic on its own: no BEGIN and COMMIT round trips.
            connection = session.connection(execution_options=AUTOCOMMIT)
            claimed = connection.scalar(
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
            existing = _lock_with_version(session, image_id, written, fence)
            row = VersionRow(existing.result.key, existing.token) if existing else None
            verdict = version_verdict(row, written.key, fence)
            if verdict is Verdict.REFUSE:
                raise StaleWriteError(f"{written.version} of {image_id} has a newer fence")
            if verdict is Verdict.KEEP:
                assert existing is not None
                unused = [written.key] if existing.result.key != written.key else []
                return Committed(existing.result, unused)
            if not upsert_claimed(session, image_id, written, fence):
                # The staging cleanup took the claim: the object may be deleted already.
                raise StaleWriteError(f"{written.key} was swept before it was recorded")
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


def _lock_with_version(
    session: Session, image_id: uuid.UUID, written: ResizeResult, fence: Fence
) -> Recorded | None:
    """Lock the image, raise StaleWriteError unless it takes versions under `fence`, then
    read the row of `written`'s version and format.

    Two statements on purpose: read after the lock is granted, the row is as the last
    commit left it. Joined into the locking SELECT, it would come from that statement's
    snapshot, taken before the wait, and miss what the lock holder just wrote.
    """
    image = lock_image(session, image_id)
    if image is None:
        raise StaleWriteError(f"image {image_id} no longer exists")
    if not processing_under(image.written, fence):
        raise StaleWriteError(
            f"image {image_id} is {image.written.state.value}: it takes no versions now"
        )
    row = session.execute(
        select(*RECORDED_COLUMNS).where(
            Version.image_id == image_id,
            Version.name == written.version,
            Version.format == written.format,
        )
    ).one_or_none()
    if row is None:
        return None
    result = ResizeResult(
        written.version,
        row.key,
        row.width,
        row.height,
        row.bytes,
        row.content_type,
        written.format,
        row.spec,
    )
    return Recorded(result, row.version_token)


def upsert_claimed(
    session: Session, image_id: uuid.UUID, written: ResizeResult, fence: Fence
) -> bool:
    """`upsert_version`, and take the key out of `pending_objects`, in one statement; only
    while the key is still claimed there (False: the staging cleanup swept it)."""
    claimed = (
        delete(PendingObject)
        .where(PendingObject.key == written.key)
        .returning(PendingObject.key)
        .cte("claimed")
    )
    values = _version_values(image_id, written, fence)
    columns = Version.__table__.c
    rows = select(*(literal(value, columns[name].type) for name, value in values.items()))
    inserted = insert(Version).from_select(list(values), rows.select_from(claimed))
    statement = inserted.on_conflict_do_update(
        constraint=VERSION_KEY, set_=_updated(values)
    ).returning(Version.key)
    return session.scalar(statement) is not None


def upsert_version(
    session: Session, image_id: uuid.UUID, written: ResizeResult, fence: Fence
) -> None:
    values = _version_values(image_id, written, fence)
    statement = insert(Version).values(**values)
    statement = statement.on_conflict_do_update(constraint=VERSION_KEY, set_=_updated(values))
    session.execute(statement)


def _version_values(image_id: uuid.UUID, written: ResizeResult, fence: Fence) -> dict[str, object]:
    return {
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


def _updated(values: dict[str, object]) -> dict[str, object]:
    """What an upsert changes in a version row that exists: all but its identity."""
    return {k: v for k, v in values.items() if k not in ("image_id", "name", "format")}
