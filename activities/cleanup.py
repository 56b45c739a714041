"""Staging cleanup: remove what never became an image, or outlived its image's processing.

Each sweep lists one key space page by page, and a page is a batch: the image ids in it
are looked up with one query, the doomed keys go in one `delete_objects` call, and the
activity heartbeats. Only objects older than the threshold are considered (by their S3
`LastModified`), so uploads and processing still in flight are never touched.

- `staging/<id>`, an upload as it landed, once nothing needs it: no image row (a direct
  upload whose row was never inserted, or whose undo failed), or an image that has sealed
  its original, or that is `done`, or that failed for good. A late POST to an upload
  link lands here too, after its image was sealed or refused; it is never linked.
  Kept: an image still waiting for it (`init`, or `uploaded` and not yet sealed), and one
  that failed on a transient fault before sealing, for a reset.
- `originals/<id>` with no image row: a sealed original whose row is gone, or a direct
  upload from before sealing whose row was never inserted.
- `work/<id>/working` whose image is `done`, `error` or gone: a working copy the
  workflow could not delete.
- Multipart uploads never completed nor aborted, anywhere in the bucket.
- Derivatives in `pending_objects` (see `activities.version_records`): written by an
  attempt that was refused or crashed before its row, or left by a failed image, once
  older than the threshold; superseded by a newer row or a removed preset, once their
  `delete_after` is past (links to them handed out before the commit have expired by
  then). They are found in Postgres, not by listing the bucket.

Keys that do not have exactly these shapes are left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import classify_errors
from core.contracts import (
    ABORT_UPLOADS_ACTIVITY,
    ORIGINALS_PREFIX,
    RESUMABLE_ERROR_TYPES,
    STAGING_PREFIX,
    SWEEP_ORIGINALS_ACTIVITY,
    SWEEP_PENDING_OBJECTS_ACTIVITY,
    SWEEP_WORKING_COPIES_ACTIVITY,
    WORKING_PREFIX,
    ImageState,
    SweepInput,
    SweepResult,
    staging_key_for,
    working_key_for,
)
from core.models import Image, PendingObject, Version
from core.settings import Settings
from core.storage import Storage

FINISHED_STATES = frozenset({ImageState.DONE.value, ImageState.ERROR.value})

# (key, image id) pairs of one batch -> the keys to delete.
Candidates = list[tuple[str, uuid.UUID]]


class CleanupActivities:
    def __init__(
        self, storage: Storage, sessions: sessionmaker[Session], settings: Settings
    ) -> None:
        # `settings` is taken like every activity class's; the threshold comes with each
        # request, so that the schedule that starts the workflow decides it.
        self._storage = storage
        self._sessions = sessions
        self._settings = settings

    def all(self) -> Sequence[Callable[..., Any]]:
        return [
            self.sweep_originals,
            self.sweep_working_copies,
            self.abort_uploads,
            self.sweep_pending_objects,
        ]

    @activity.defn(name=SWEEP_ORIGINALS_ACTIVITY)
    @classify_errors
    def sweep_originals(self, request: SweepInput) -> SweepResult:
        """Delete old staged uploads nothing needs, and old originals with no image row."""
        staged = self._sweep(STAGING_PREFIX, _staging_id, self._unneeded_staging, request)
        result = self._sweep(ORIGINALS_PREFIX, _original_id, self._orphans, request)
        result.removed += staged.removed
        result.failed += staged.failed
        activity.logger.info(
            "deleted %d staged uploads and orphan originals (%d refused)",
            result.removed,
            result.failed,
        )
        return result

    @activity.defn(name=SWEEP_WORKING_COPIES_ACTIVITY)
    @classify_errors
    def sweep_working_copies(self, request: SweepInput) -> SweepResult:
        """Delete old working copies of images that are `done`, `error` or gone."""
        result = self._sweep(WORKING_PREFIX, _working_id, self._stale, request)
        activity.logger.info(
            "deleted %d stale working copies (%d refused)", result.removed, result.failed
        )
        return result

    @activity.defn(name=ABORT_UPLOADS_ACTIVITY)
    @classify_errors
    def abort_uploads(self, request: SweepInput) -> SweepResult:
        """Abort multipart uploads initiated before the threshold."""
        cutoff = _cutoff(request)
        result = SweepResult()
        for page in self._storage.list_multipart_upload_pages(request.batch_size):
            for key, upload_id, initiated in page:
                if initiated < cutoff and self._storage.abort_multipart_upload(key, upload_id):
                    result.removed += 1
                # One call per upload, so a page may take long: beat for each (the SDK
                # throttles heartbeats, so this costs nothing).
                activity.heartbeat(result.removed)
        activity.logger.info("aborted %d stale multipart uploads", result.removed)
        return result

    @activity.defn(name=SWEEP_PENDING_OBJECTS_ACTIVITY)
    @classify_errors
    def sweep_pending_objects(self, request: SweepInput) -> SweepResult:
        """Delete pending derivatives that are due and that no version row points at."""
        result = SweepResult()
        due = pending_due(_cutoff(request), request.due_within_seconds)
        while (batch := self._sweep_pending_batch(due, request.batch_size)) is not None:
            removed, refused = batch
            result.removed += removed
            result.failed += refused
            activity.heartbeat(result.removed)
            if removed == 0:
                break  # only refusals left: the next run tries them again
        activity.logger.info(
            "deleted %d pending objects (%d refused)", result.removed, result.failed
        )
        return result

    def _sweep_pending_batch(self, due: ColumnElement[bool], size: int) -> tuple[int, int] | None:
        """One batch: (deleted, refused), or None once nothing due is pending.

        The rows stay locked while their objects are deleted, so a resize that commits
        meanwhile waits, then finds its key gone and is refused, never pointing at a
        deleted object.
        """
        with self._sessions.begin() as session:
            rows = session.execute(
                select(PendingObject.key, PendingObject.image_id)
                .where(due)
                .order_by(PendingObject.created_at)
                .limit(size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return None
            image_ids = {image_id for _, image_id in rows}
            used = set(session.scalars(select(Version.key).where(Version.image_id.in_(image_ids))))
            doomed = [key for key, _ in rows if key not in used]
            refused = set(self._storage.delete_many(doomed)) if doomed else set()
            done = [key for key, _ in rows if key not in refused]
            session.execute(delete(PendingObject).where(PendingObject.key.in_(done)))
        for key in refused:
            activity.logger.warning("S3 refused to delete %s", key)
        return len(doomed) - len(refused), len(refused)

    def _sweep(
        self,
        prefix: str,
        image_id_of: Callable[[str], uuid.UUID | None],
        choose: Callable[[Candidates], list[str]],
        request: SweepInput,
    ) -> SweepResult:
        cutoff = _cutoff(request)
        result = SweepResult()
        for page in self._storage.list_pages(prefix, request.batch_size):
            candidates = [
                (key, image_id)
                for key, modified in page
                if modified < cutoff and (image_id := image_id_of(key)) is not None
            ]
            doomed = choose(candidates) if candidates else []
            refused = self._storage.delete_many(doomed) if doomed else []
            for key in refused:
                activity.logger.warning("S3 refused to delete %s", key)
            result.removed += len(doomed) - len(refused)
            result.failed += len(refused)
            activity.heartbeat(result.removed)
        return result

    def _orphans(self, candidates: Candidates) -> list[str]:
        states = self._states({image_id for _, image_id in candidates})
        return [key for key, image_id in candidates if image_id not in states]

    def _stale(self, candidates: Candidates) -> list[str]:
        states = self._states({image_id for _, image_id in candidates})
        return [
            key
            for key, image_id in candidates
            if image_id not in states or states[image_id] in FINISHED_STATES
        ]

    def _unneeded_staging(self, candidates: Candidates) -> list[str]:
        rows = self._staging_rows({image_id for _, image_id in candidates})
        return [key for key, image_id in candidates if _staging_unneeded(key, rows.get(image_id))]

    def _staging_rows(
        self, image_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[str, str, str | None]]:
        """(state, source key, error code) of each image that has a row: one query."""
        with self._sessions() as session:
            rows = session.execute(
                select(Image.id, Image.state, Image.source_key, Image.error_code).where(
                    Image.id.in_(image_ids)
                )
            )
            return {image_id: (state, key, code) for image_id, state, key, code in rows}

    def _states(self, image_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The state of each image that has a row: one query for the whole batch."""
        with self._sessions() as session:
            rows = session.execute(select(Image.id, Image.state).where(Image.id.in_(image_ids)))
            return {image_id: state for image_id, state in rows}


def pending_due(cutoff: datetime, due_within_seconds: int = 0) -> ColumnElement[bool]:
    """Which pending objects the sweep may delete: an attempt's own (no `delete_after`) once
    older than `cutoff`; a superseded one once its `delete_after` is past, by Postgres'
    clock, the one that set it (plus `due_within_seconds`, to sweep as if later)."""
    now = func.now() + timedelta(seconds=due_within_seconds)
    return or_(
        and_(PendingObject.delete_after.is_(None), PendingObject.created_at < cutoff),
        PendingObject.delete_after < now,
    )


def _cutoff(request: SweepInput) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=request.older_than_seconds)


def _staging_unneeded(key: str, row: tuple[str, str, str | None] | None) -> bool:
    if row is None:
        return True  # no image: an orphan
    state, source_key, error_code = row
    if source_key != key or state == ImageState.DONE:
        return True  # sealed (or processed): a leftover or a late POST
    return state == ImageState.ERROR and error_code not in RESUMABLE_ERROR_TYPES


def _staging_id(key: str) -> uuid.UUID | None:
    """`staging/<id>` -> id."""
    image_id = _canonical_uuid(key.removeprefix(STAGING_PREFIX))
    return image_id if image_id is not None and key == staging_key_for(str(image_id)) else None


def _original_id(key: str) -> uuid.UUID | None:
    """`originals/<id>` -> id."""
    return _canonical_uuid(key.removeprefix(ORIGINALS_PREFIX))


def _working_id(key: str) -> uuid.UUID | None:
    """`work/<id>/working` -> id."""
    image_id = _canonical_uuid(key.removeprefix(WORKING_PREFIX).split("/", 1)[0])
    if image_id is None or key != working_key_for(str(image_id)):
        return None
    return image_id


def _canonical_uuid(text: str) -> uuid.UUID | None:
    try:
        value = uuid.UUID(text)
    except ValueError:
        return None
    return value if str(value) == text else None
