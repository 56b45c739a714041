"""The upload-link flow's own parts: a presigned S3 POST now, a confirmation later.

`ImageIntake` (api.intake.intake) registers the image and starts its workflow.

The image starts in `init` and its workflow starts at once, durably waiting for the
confirmation; on expiry the workflow removes any late object and ends the image in `error`
with `upload_expired`. The confirmation becomes a workflow update, so the workflow alone
decides the image's state, and the answer says whether the upload was accepted.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiErrorCode, ConflictError, ServiceUnavailableError, error_for_code
from core.contracts import (
    CONFIRM_UPLOAD_UPDATE,
    ConfirmUploadInput,
    ErrorCode,
    ImageState,
    UploadConfirmation,
    workflow_id_for,
)
from core.inspection import MEDIA_TYPES
from core.models import Image
from core.settings import Settings
from core.storage import ObjectMissingError, Storage

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


def sign_upload_link(
    storage: Storage, settings: Settings, image: Image, filename: str
) -> UploadLink:
    """A replayed request gets a fresh signature that still ends when the first one does."""
    created = image.created_at if image.created_at else datetime.now(UTC)
    expires_at = created + timedelta(seconds=settings.upload_link_expiry_seconds)
    remaining = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
    url, params = storage.presign_post(
        image.source_key, settings.max_upload_bytes, remaining, content_type_for(filename)
    )
    return UploadLink(image.id, workflow_id_for(str(image.id)), url, params, expires_at)


async def confirm_upload(storage: Storage, temporal: Client, image: Image) -> ImageState:
    """Answer the state the image is in once its upload is accepted, or raise why not."""
    state = image.state
    if state in (ImageState.UPLOADED, ImageState.PROCESSING, ImageState.DONE):
        return state  # confirmed before: confirming again is harmless
    if state == ImageState.ERROR:
        raise error_for_code(
            image.error_code or ApiErrorCode.IMAGE_FAILED, "the image has already failed"
        )
    try:
        await run_in_threadpool(storage.size_of, image.source_key)
    except ObjectMissingError as error:
        raise ConflictError(
            "nothing has been uploaded to the link yet", code=ErrorCode.UPLOAD_MISSING
        ) from error
    confirmation = await _execute_confirmation(temporal, image.id)
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
        raise ConflictError(
            "the upload cannot be confirmed", code=ApiErrorCode.NOT_CONFIRMABLE
        ) from error
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
