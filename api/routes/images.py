"""Images: the direct upload, and one image's status."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.dependency_errors import dependency_errors
from api.deps import ResourcesDep, SessionDep, StorageDep
from api.errors import NotFoundError
from api.ingress import (
    ReceivedUpload,
    forget_image,
    receive_upload,
    record_image,
    start_processing,
)
from api.queries import get_image
from api.resources import Resources
from api.schemas import ErrorPublic, ImageAccepted, ImagePublic
from api.views import image_public
from core.contracts import ImageState

logger = logging.getLogger(__name__)
router = APIRouter(tags=["images"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["project_id", "file"],
                    "properties": {
                        "project_id": {"type": "integer", "minimum": 1},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic} for status in (400, 413, 415, 422, 503)
}


@router.post(
    "/upload_image",
    status_code=202,
    response_model=ImageAccepted,
    responses=_UPLOAD_ERRORS,
    openapi_extra=_UPLOAD_BODY,
)
async def create_image_upload(request: Request, resources: ResourcesDep) -> ImageAccepted:
    """Upload a photo (multipart `project_id` + `file`) and start its processing.

    The body is streamed to object storage, never held whole in memory. The answer comes
    once the original is stored and its workflow has started; poll `status_url`.
    """
    with dependency_errors():
        upload = await receive_upload(request, resources.storage, resources.settings)
    try:
        with dependency_errors():
            await run_in_threadpool(record_image, resources.sessions, upload)
            workflow_id = await start_processing(resources.temporal, resources.settings, upload)
    except BaseException:
        await run_in_threadpool(_forget_quietly, resources, upload)
        raise
    logger.info("accepted image %s for project %s", upload.image_id, upload.project_id)
    return ImageAccepted(
        image_id=upload.image_id,
        project_id=upload.project_id,
        state=ImageState.UPLOADED,
        workflow_id=workflow_id,
        status_url=str(request.url_for("read_image", image_id=upload.image_id)),
    )


def _forget_quietly(resources: Resources, upload: ReceivedUpload) -> None:
    try:
        forget_image(resources.sessions, resources.storage, upload)
    except Exception:
        logger.exception("could not undo rejected image %s", upload.image_id)


@router.get(
    "/images/{image_id}", response_model=ImagePublic, responses={404: {"model": ErrorPublic}}
)
def read_image(image_id: uuid.UUID, session: SessionDep, storage: StorageDep) -> ImagePublic:
    """One image: its state, dimensions, error if any, and a link per ready version."""
    image = get_image(session, image_id)
    if image is None:
        raise NotFoundError(f"image {image_id} does not exist")
    return image_public(image, storage)
