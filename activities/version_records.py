"""The Postgres side of writing one derivative: claim its key, then point the version at it.

A resize writes one object per format under keys of its own (`version_key_for`: the fence
and the attempt), in three steps, each taken once for all its formats:

1. `claim_all`: while its image still accepts versions under its fence, note the keys in
   `pending_objects`; a stale attempt is refused here, before it writes anything.
2. It writes the objects.
3. `commit_all`: if still allowed, point the version's rows at the keys and take the keys
   out of `pending_objects`, in one transaction that also publishes the version event. A
   key a row pointed at before (an older fence's) goes to `pending_objects`, due only once
   every link to it handed out before the commit has expired (`core.link_lifetime`).

Whatever stays in `pending_objects` (a refused or crashed attempt, a superseded object) is
deleted by the staging cleanup, so a crash between two steps leaves nothing for good.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, literal, or_, select, union_all
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
# What `_lock_with_versions` reads of a version row.
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
        self.claim_all(image_id, [key], fence)

    def claim_all(self, image_id: uuid.UUID, keys: list[str], fence: Fence) -> None:
        """Note `keys` (every format of one resize) as about to be written, or raise
        StaleWriteError.

        One statement, without a lock: it only spares a stale attempt the writes. The
        commit decides, under the image's row lock.
        """
        accepts = exists().where(Image.id == image_id, processing_under_sql(fence))
        rows = union_all(*(select(literal(key), literal(image_id)).where(accepts) for key in keys))
        statement = insert(PendingObject).from_select(["key", "image_id"], rows)
        with self._sessions() as session:
            # A single statement is atomic on its own: no BEGIN and COMMIT round trips.
            connection = session.connection(execution_options=AUTOCOMMIT)
            claimed = connection.scalars(
                statement.on_conflict_do_nothing().returning(PendingObject.key)
            ).all()
        if not claimed:
            raise StaleWriteError(f"image {image_id} takes no versions under this fence now")

    def commit(
        self,
        image_id: uuid.UUID,
        project_id: int,
        written: ResizeResult,
        fence: Fence,
        announce: bool = True,
    ) -> Committed:
        announced = written.format if announce else None
        [committed] = self.commit_all(image_id, project_id, [written], fence, announced)
        return committed

    def commit_all(
        self,
        image_id: uuid.UUID,
        project_id: int,
        written: list[ResizeResult],
        fence: Fence,
        announced: str | None = None,
    ) -> list[Committed]:
        """Point one version's rows, a format each, at the `written` keys, all or none,
        under one lock of the image; per format, or answer what an attempt of the same
        resize already recorded. Raise StaleWriteError when a newer write forbids it.

        `announced`: the format whose new row the WebSocket hears of (the listed one)."""
        with self._sessions.begin() as session:
            existing = _lock_with_versions(session, image_id, written, fence)
            outcomes = [
                self._commit_one(session, image_id, project_id, each, existing, fence, announced)
                for each in written
            ]
            defer_delete(session, image_id, [k for c in outcomes for k in c.superseded], self._keep)
        return outcomes

    def _commit_one(
        self,
        session: Session,
        image_id: uuid.UUID,
        project_id: int,
        written: ResizeResult,
        existing: dict[str, Recorded],
        fence: Fence,
        announced: str | None,
    ) -> Committed:
        recorded = existing.get(written.format)
        row = VersionRow(recorded.result.key, recorded.token) if recorded else None
        verdict = version_verdict(row, written.key, fence)
        if verdict is Verdict.REFUSE:
            raise StaleWriteError(f"{written.version} of {image_id} has a newer fence")
        if verdict is Verdict.KEEP:
            assert recorded is not None
            unused = [written.key] if recorded.result.key != written.key else []
            return Committed(recorded.result, unused)
        if not upsert_claimed(session, image_id, written, fence):
            # The staging cleanup took the claim: the object may be deleted already.
            raise StaleWriteError(f"{written.key} was swept before it was recorded")
        before = recorded.result.key if recorded else written.key
        superseded = [before] if before != written.key else []
        # One event per version, for the format the listing links: the other formats of
        # it are in `GET /images/{id}`.
        if written.format == announced:
            event = version_event(
                image_id, project_id, written.version, written.key, written.width, written.height
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


def _lock_with_versions(
    session: Session, image_id: uuid.UUID, written: list[ResizeResult], fence: Fence
) -> dict[str, Recorded]:
    """Lock the image, raise StaleWriteError unless it takes versions under `fence`, then
    read the rows of `written`'s version, by format.

    Two statements on purpose: read after the lock is granted, the rows are as the last
    commit left them. Joined into the locking SELECT, they would come from that
    statement's snapshot, taken before the wait, and miss what the lock holder just wrote.
    """
    image = lock_image(session, image_id)
    if image is None:
        raise StaleWriteError(f"image {image_id} no longer exists")
    if not processing_under(image.written, fence):
        raise StaleWriteError(
            f"image {image_id} is {image.written.state.value}: it takes no versions now"
        )
    version = written[0].version
    rows = session.execute(
        select(Version.format, *RECORDED_COLUMNS).where(
            Version.image_id == image_id,
            Version.name == version,
            Version.format.in_([each.format for each in written]),
        )
    ).all()
    return {
        row.format: Recorded(
            ResizeResult(
                version, row.key, row.width, row.height, row.bytes, row.content_type,
                row.format, row.spec,
            ),
            row.version_token,
        )
        for row in rows
    }  # fmt: skip


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
