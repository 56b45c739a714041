"""The Postgres side of reprocessing one image: read what it has, commit what was rendered.

A reprocess writes only to a `done` image, and only over version rows no newer fence
wrote. Its commit is one transaction under the image's row lock: the new rows point at the
new objects, the rows of removed presets go, and every object no row points at any more
goes to `pending_objects`. An object a row named before (replaced, or its preset removed)
is due only once every link to it handed out before the commit has expired
(`core.link_lifetime`), and the cleanup's sweep deletes it then: a client never gets a link
to a deleted object. The caller deletes at once only this attempt's own objects that no
row took (never linked); what a crash leaves, the cleanup takes too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from activities.records import LockedImage, defer_delete, lock_image, mark_pending
from activities.version_records import upsert_claimed
from core.contracts import Fence, ImageState, ResizeResult
from core.events import publish, version_event
from core.models import Image, PendingObject, Version
from core.preset_sets import current_presets
from core.presets import Preset
from core.reprocess_plan import StoredVersion


@dataclass(frozen=True)
class ImageSnapshot:
    state: ImageState
    project_id: int
    source_key: str
    presets: list[Preset]
    stored: list[StoredVersion]
    # The preset version the plan was made for: a commit under a newer one is refused.
    presets_version: int = 0


@dataclass
class ReprocessCommit:
    """Whether the image still took it; the objects written that no row took (delete them
    now), and those the rows stopped naming (the cleanup deletes them once due)."""

    applied: bool
    unused: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)


class _Swept(Exception):
    """The cleanup took the claim of a written key: its object may be deleted already."""


class ReprocessRecords:
    """`keep`: how long a superseded object outlives its commit (`core.link_lifetime`)."""

    def __init__(self, sessions: sessionmaker[Session], keep: timedelta) -> None:
        self._sessions = sessions
        self._keep = keep

    def snapshot(self, image_id: uuid.UUID) -> ImageSnapshot | None:
        with self._sessions() as session:
            image = session.get(Image, image_id)
            if image is None:
                return None
            rows = session.execute(
                select(
                    Version.name, Version.format, Version.key, Version.spec, Version.fence_token
                ).where(Version.image_id == image_id)
            ).all()
            current = current_presets(session, image.project_id)
            stored = [StoredVersion(*row) for row in rows]
            return ImageSnapshot(
                image.state,
                image.project_id,
                image.source_key,
                current.presets,
                stored,
                current.version,
            )

    def claim(self, image_id: uuid.UUID, keys: list[str]) -> None:
        """Note objects about to be written, so a crash before the commit leaves none."""
        with self._sessions.begin() as session:
            mark_pending(session, image_id, keys)

    def commit(
        self,
        # `announced`: the (name, format) pairs whose new rows the WebSocket hears of.
        image_id: uuid.UUID,
        written: list[ResizeResult],
        removed: list[StoredVersion],
        fence: Fence,
        announced: frozenset[tuple[str, str]] = frozenset(),
        planned_for: int | None = None,
    ) -> ReprocessCommit:
        try:
            return self._commit(image_id, written, removed, fence, announced, planned_for)
        except _Swept:
            # The cleanup took a claim of this (very late) attempt, and may have deleted
            # its object: link none of them; the walk's recheck renders the image again.
            return ReprocessCommit(False, [w.key for w in written])

    def _commit(
        self,
        image_id: uuid.UUID,
        written: list[ResizeResult],
        removed: list[StoredVersion],
        fence: Fence,
        announced: frozenset[tuple[str, str]],
        planned_for: int | None,
    ) -> ReprocessCommit:
        with self._sessions.begin() as session:
            image = lock_image(session, image_id)
            if image is None or image.written.state != ImageState.DONE:
                # Taken up again (a retry) or gone: its own run decides its versions.
                return ReprocessCommit(False, [w.key for w in written])
            if planned_for is not None and self._presets_changed(session, image, planned_for):
                # A late attempt planned for older presets: the newer walk decides.
                return ReprocessCommit(False, [w.key for w in written])
            outcomes = [self._apply(session, image_id, w, fence) for w in written]
            unused = [w.key for w, (took, _) in zip(written, outcomes, strict=True) if not took]
            superseded = [before for _, before in outcomes if before]
            superseded.extend(
                gone for v in removed if (gone := self._remove(session, image_id, v, fence))
            )
            mark_pending(session, image_id, unused)
            defer_delete(session, image_id, superseded, self._keep)
            for w in written:
                if w.key not in unused and (w.version, w.format) in announced:
                    publish(session, _event(image_id, image.project_id, w))
        return ReprocessCommit(True, unused, superseded)

    @staticmethod
    def _presets_changed(session: Session, image: LockedImage, planned_for: int) -> bool:
        return current_presets(session, image.project_id).version != planned_for

    def forget(self, keys: list[str]) -> None:
        if keys:
            with self._sessions.begin() as session:
                session.execute(delete(PendingObject).where(PendingObject.key.in_(keys)))

    def _apply(
        self, session: Session, image_id: uuid.UUID, written: ResizeResult, fence: Fence
    ) -> tuple[bool, str | None]:
        """Point the row at `written.key`; answer whether the row names it now, and the key
        the row stopped naming (if any). Raises `_Swept` (rolling the commit back) when
        the key's claim is gone: taking the claim and writing the row is one statement,
        which waits for a sweep holding the claim and then finds it gone."""
        before = session.execute(
            select(Version.key, Version.fence_token)
            .where(
                Version.image_id == image_id,
                Version.name == written.version,
                Version.format == written.format,
            )
            .with_for_update()
        ).one_or_none()
        if before is not None and before.key == written.key:
            return True, None  # an earlier attempt of this one committed it already
        if before is not None and before.fence_token >= fence.token:
            # A newer write won, or another attempt of this one did first (as a resize's
            # retries, the first commit stands): ours is unused.
            return False, None
        if not upsert_claimed(session, image_id, written, fence):
            raise _Swept(written.key)
        return True, before.key if before is not None else None

    def _remove(
        self, session: Session, image_id: uuid.UUID, version: StoredVersion, fence: Fence
    ) -> str | None:
        gone = session.scalar(
            delete(Version)
            .where(
                Version.image_id == image_id,
                Version.name == version.name,
                Version.format == version.format,
                Version.fence_token <= fence.token,
            )
            .returning(Version.key)
        )
        return str(gone) if gone else None


def _event(image_id: uuid.UUID, project_id: int, written: ResizeResult) -> dict[str, object]:
    return version_event(
        image_id, project_id, written.version, written.key, written.width, written.height
    )
