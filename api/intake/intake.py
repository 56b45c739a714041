"""`ImageIntake`: the one owner of getting an image in, for both upload flows.

Built once per request from the process's clients (like the activity classes, given their
clients), it runs the sequence both flows share:

    register the row -> bind the log context -> replay check -> start the workflow

and has ONE undo path: on any failure it removes what this request left (its staged object,
its row), never an earlier request's. It answers domain values; the routes shape the HTTP.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.access.auth import Principal
from api.errors import ApiErrorCode, ConflictError
from api.intake.dedupe import find_duplicate
from api.intake.ingress import ReceivedUpload, image_row, receive_upload
from api.intake.registry import (
    check_replay,
    delete_locked_row,
    discard_object,
    lock_image_row,
    processing_input,
    project_presets,
    register_image,
    sanitize_filename,
    start_image_workflow,
    workflow_started,
)
from api.intake.upload_links import UploadLink, confirm_upload, sign_upload_link
from core.contracts import ImageProcessingInput, ImageState, staging_key_for, workflow_id_for
from core.logging import bind_image_context
from core.models import Image
from core.settings import Settings
from core.storage import Storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admitted:
    """An image whose workflow runs: this request's, or the earlier one its key replays."""

    image_id: uuid.UUID
    project_id: int
    state: ImageState
    workflow_id: str
    # Set when dedupe answered an earlier `done` image with these bytes: nothing new was kept.
    duplicate_of: uuid.UUID | None = None


@dataclass(frozen=True)
class _Claim:
    """What one request asks to register, and what is left to undo if it fails."""

    row: Image
    fingerprint: str | None
    source_etag: str | None  # the object a direct upload wrote (None: not yet)
    uploaded: bool  # whether this request's bytes are already in storage
    on_replay: Callable[[Image], None] | None = None


class ImageIntake:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: Storage,
        temporal: Client,
        settings: Settings,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.temporal = temporal
        self.settings = settings

    async def accept_upload(
        self, request: Request, principal: Principal, idempotency_key: str | None
    ) -> Admitted:
        """Direct upload: stream the body to storage, then register and start its workflow."""
        upload = await receive_upload(
            request, self.storage, self.settings, principal.require_project
        )
        duplicate = await self._duplicate(upload, idempotency_key)
        if duplicate is not None:
            return duplicate
        claim = _Claim(image_row(upload, idempotency_key), upload.sha256, upload.etag, True)
        image = await self._admit(claim)
        if image.id == upload.image_id:
            logger.info("accepted image %s for project %s", image.id, image.project_id)
        return _admitted(image)

    async def _duplicate(
        self, upload: ReceivedUpload, idempotency_key: str | None
    ) -> Admitted | None:
        """With dedupe on, bytes already `done` in the project answer that image; this
        request's staged copy is dropped (on a failed lookup too: nothing was registered)."""
        try:
            earlier = await run_in_threadpool(
                find_duplicate,
                self.sessions,
                upload.project_id,
                upload.sha256,
                upload.dedupe,
                idempotency_key,
            )
        except BaseException:
            await run_in_threadpool(discard_object, self.storage, upload.source_key)
            raise
        if earlier is None:
            return None
        await run_in_threadpool(discard_object, self.storage, upload.source_key)
        return Admitted(
            earlier.id,
            earlier.project_id,
            ImageState.DONE,
            workflow_id_for(str(earlier.id)),
            duplicate_of=earlier.id,
        )

    async def create_link(
        self, filename: str, project_id: int, idempotency_key: str | None
    ) -> UploadLink:
        """Upload link: register an `init` image with its waiting workflow; sign a POST."""
        image_id = uuid.uuid4()
        fingerprint = hashlib.sha256(f"link\n{filename}".encode()).hexdigest()
        row = Image(
            id=image_id,
            project_id=project_id,
            state=ImageState.INIT,
            source_key=staging_key_for(str(image_id)),
            original_filename=sanitize_filename(filename),
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint if idempotency_key else None,
        )
        claim = _Claim(row, fingerprint, None, False, on_replay=_still_awaiting_upload)
        image = await self._admit(claim)
        return sign_upload_link(self.storage, self.settings, image, filename)

    async def confirm(self, image: Image) -> ImageState:
        """The state the image is in once its link's upload is accepted, or raise why not."""
        return await confirm_upload(self.storage, self.temporal, image)

    async def _admit(self, claim: _Claim) -> Image:
        image: Image | None = None
        try:
            image = await run_in_threadpool(register_image, self.sessions, claim.row)
            bind_image_context(
                image_id=image.id,
                project_id=image.project_id,
                workflow_id=workflow_id_for(str(image.id)),
            )
            replay = image.id != claim.row.id
            if replay:
                await self._replayed(claim, image)
            presets = await run_in_threadpool(project_presets, self.sessions, image.project_id)
            request = processing_input(image, self.settings, claim.source_etag, presets)
            if replay:
                # The earlier request may have died before it started it.
                await self._start_replayed(image, request)
            else:
                await start_image_workflow(self.temporal, self.settings, request)
        except BaseException:
            await self._undo(claim, image)
            raise
        return image

    async def _start_replayed(self, earlier: Image, request: ImageProcessingInput) -> None:
        """Start (or join) the earlier request's workflow while holding its row, so that
        request's undo cannot delete the row under this request's answer: it waits, then
        finds the workflow and keeps the image; or it went first, and this one says retry."""
        session = self.sessions()
        try:
            if not await run_in_threadpool(lock_image_row, session, earlier.id):
                raise ConflictError(
                    "a request with this key is being undone; retry", code=ApiErrorCode.RETRY
                )
            await start_image_workflow(self.temporal, self.settings, request)
        finally:
            await run_in_threadpool(session.close)

    async def _replayed(self, claim: _Claim, earlier: Image) -> None:
        """The key was used before: drop this request's copy; the earlier image answers."""
        if claim.uploaded:
            # The same bytes, streamed in the same parts, were stored with the same ETag.
            await run_in_threadpool(discard_object, self.storage, claim.row.source_key)
        check_replay(earlier, claim.fingerprint)
        if claim.on_replay is not None:
            claim.on_replay(earlier)

    async def _undo(self, claim: _Claim, registered: Image | None) -> None:
        """The one undo path. Never raises; the staging sweep is the backstop."""
        if registered is None:  # nothing was inserted
            if claim.uploaded:
                await run_in_threadpool(discard_object, self.storage, claim.row.source_key)
        elif registered.id == claim.row.id:  # this request's row and object
            await self._forget(registered)
        # else: a replay, whose own copy is gone already; the earlier image is not ours

    async def _forget(self, image: Image) -> None:
        """Undo this request's registration, unless its workflow runs after all (a replay
        of the key started it, or the start that failed here had reached Temporal): then
        the image was accepted, and stays. The row goes first, under its lock, and the
        object only once the row is gone: a row left without its object would be accepted
        again by a retry of the key, and fail; an object left alone the sweep removes."""
        session = self.sessions()
        try:
            if await run_in_threadpool(lock_image_row, session, image.id):
                if await workflow_started(self.temporal, image.id):
                    logger.warning("kept image %s: its workflow was started", image.id)
                    return
                await run_in_threadpool(delete_locked_row, session, image.id)
        except Exception:
            # Row and object both stay: a retry of the key starts the workflow for them.
            logger.exception("could not remove the row of undone image %s", image.id)
            return
        finally:
            await run_in_threadpool(session.close)
        await run_in_threadpool(discard_object, self.storage, image.source_key)


def _still_awaiting_upload(earlier: Image) -> None:
    if earlier.state != ImageState.INIT:
        raise ConflictError(
            f"image {earlier.id} of this key has been uploaded already",
            code=ApiErrorCode.ALREADY_UPLOADED,
        )


def _admitted(image: Image) -> Admitted:
    return Admitted(image.id, image.project_id, image.state, workflow_id_for(str(image.id)))
