"""The upload-link flow: a presigned S3 POST now, a confirmation later.

The image starts in `init` and its workflow starts at once, durably waiting for the
confirmation; on expiry the workflow removes any late object and ends the image in `error`
with `upload_expired`. The confirmation becomes a workflow update, so the workflow alone
decides the image's state, and the answer says whether the upload was accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ConflictError, ServiceUnavailableError, error_for_code
from api.registry import (
    check_replay,
    forget_image,
    processing_input,
    register_image,
    sanitize_filename,
    start_image_workflow,
)
from api.resources import Resources
from core.contracts import (
    CONFIRM_UPLOAD_UPDATE,
    ConfirmUploadInput,
    ErrorCode,
    ImageState,
    UploadConfirmation,
    staging_key_for,
    workflow_id_for,
)
from core.inspection import MEDIA_TYPES
from core.logging import bind_image_context
from core.models import Image
from core.storage import ObjectMissingError

CONFIRM_TIMEOUT_SECONDS = 30.0


@dataclass
class UploadLink:
    image_id: uuid.UUID
    workflow_id: str
    url: str
    params: dict[str, str]
    expires_at: datetime


# The Content-Type a link's POST must carry, exactly: an allowed format's, by extension.
_EXTENSION_FORMATS = {
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "avif": "AVIF",
    "heic": "HEIF",
    "heif": "HEIF",
}


def content_type_for(filename: str) -> str:
    """Only ever an allowlisted image type, never SVG or HTML; JPEG when unknown. The type
    a file is served with comes from what it decodes as, not from this."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return MEDIA_TYPES[_EXTENSION_FORMATS.get(extension, "JPEG")]


async def create_upload_link(
    resources: Resources, filename: str, project_id: int, idempotency_key: str | None
) -> UploadLink:
    """Register an `init` image with its waiting workflow, and sign a POST for its key."""
    settings = resources.settings
    image_id = uuid.uuid4()
    fingerprint = hashlib.sha256(f"link\n{filename}".encode()).hexdigest()
    row = Image(
        id=image_id,
        project_id=project_id,
        state=ImageState.INIT.value,
        source_key=staging_key_for(str(image_id)),
        original_filename=sanitize_filename(filename),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint if idempotency_key else None,
    )
    image = await run_in_threadpool(register_image, resources.sessions, row)
    bind_image_context(
        image_id=image.id, project_id=image.project_id, workflow_id=workflow_id_for(str(image.id))
    )
    if image.id != image_id:
        check_replay(image, fingerprint)
        if image.state != ImageState.INIT:
            raise ConflictError(
                f"image {image.id} of this key has been uploaded already", code="already_uploaded"
            )
    try:
        workflow_id = await start_image_workflow(
            resources.temporal, settings, processing_input(image, settings)
        )
    except BaseException:
        if image.id == image_id:
            await run_in_threadpool(
                forget_image, resources.sessions, resources.storage, image_id, image.source_key
            )
        raise
    return _sign(resources, image, workflow_id, filename)


def _sign(resources: Resources, image: Image, workflow_id: str, filename: str) -> UploadLink:
    """A replayed request gets a fresh signature that still ends when the first one does."""
    settings = resources.settings
    created = image.created_at if image.created_at else datetime.now(UTC)
    expires_at = created + timedelta(seconds=settings.upload_link_expiry_seconds)
    remaining = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
    url, params = resources.storage.presign_post(
        image.source_key, settings.max_upload_bytes, remaining, content_type_for(filename)
    )
    return UploadLink(image.id, workflow_id, url, params, expires_at)


async def confirm_upload(resources: Resources, image: Image) -> ImageState:
    """Answer the state the image is in once its upload is accepted, or raise why not."""
    state = ImageState(image.state)
    if state in (ImageState.UPLOADED, ImageState.PROCESSING, ImageState.DONE):
        return state  # confirmed before: confirming again is harmless
    if state == ImageState.ERROR:
        raise error_for_code(image.error_code or "image_failed", "the image has already failed")
    try:
        await run_in_threadpool(resources.storage.size_of, image.source_key)
    except ObjectMissingError as error:
        raise ConflictError(
            "nothing has been uploaded to the link yet", code=ErrorCode.UPLOAD_MISSING
        ) from error
    confirmation = await _execute_confirmation(resources.temporal, image.id)
    if confirmation.state == ImageState.ERROR:
        code = confirmation.error_code or ErrorCode.INVALID_IMAGE
        raise error_for_code(code, confirmation.error_message or code)
    return ImageState.UPLOADED


async def _execute_confirmation(client: Client, image_id: uuid.UUID) -> UploadConfirmation:
    handle = client.get_workflow_handle(workflow_id_for(str(image_id)))
    try:
        async with asyncio.timeout(CONFIRM_TIMEOUT_SECONDS):
            confirmation: UploadConfirmation = await handle.execute_update(
                CONFIRM_UPLOAD_UPDATE,
                ConfirmUploadInput(str(image_id)),
                result_type=UploadConfirmation,
            )
            return confirmation
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorCode.UPLOAD_EXPIRED:
            raise ConflictError(cause.message, code=ErrorCode.UPLOAD_EXPIRED) from error
        raise ConflictError("the upload cannot be confirmed", code="not_confirmable") from error
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            # A workflow still waiting for its upload only ends by expiring.
            raise ConflictError(
                "the upload link has expired", code=ErrorCode.UPLOAD_EXPIRED
            ) from error
        raise ServiceUnavailableError("the upload could not be confirmed now") from error
    except RuntimeError as error:  # the lazy client cannot reach Temporal
        raise ServiceUnavailableError("the upload could not be confirmed now") from error
    except TimeoutError as error:
        raise ServiceUnavailableError("the upload check is taking too long") from error
