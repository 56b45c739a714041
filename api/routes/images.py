"""Images: direct upload, upload links and their confirmation, and one image's status."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.dependency_errors import dependency_errors
from api.deps import (
    IdempotencyKeyDep,
    PrincipalDep,
    ResourcesDep,
    UploadQuotaDep,
    UploadSlotDep,
    get_principal,
)
from api.duplicates import find_duplicate
from api.errors import NotFoundError
from api.guard import GuardedRoute
from api.ingress import ReceivedUpload, image_row, receive_upload
from api.progress import RUNNING_STATES, live_progress
from api.queries import get_image
from api.registry import (
    check_replay,
    discard_object,
    forget_image,
    processing_input,
    register_image,
    start_image_workflow,
)
from api.resources import Resources
from api.schemas import ErrorPublic, ImageAccepted, ImageLinkCreate, ImagePublic, ImageUploadLink
from api.upload_links import confirm_upload, create_upload_link
from api.views import image_public
from core.contracts import ImageState, workflow_id_for
from core.logging import bind_image_context
from core.models import Image

logger = logging.getLogger(__name__)
# Every route here needs a key once any exists, whatever its own parameters say.
router = APIRouter(tags=["images"], dependencies=[Depends(get_principal)], route_class=GuardedRoute)

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


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorPublic} for status in statuses}


def _accepted(
    request: Request, image_id: uuid.UUID, project_id: int, state: ImageState
) -> ImageAccepted:
    return ImageAccepted(
        image_id=image_id,
        project_id=project_id,
        state=state,
        workflow_id=workflow_id_for(str(image_id)),
        status_url=str(request.url_for("read_image", image_id=image_id)),
    )


# Its body streams to S3 under its own bounds (MAX_UPLOAD_BYTES, the deadline and rate).
DIRECT_UPLOAD_ROUTE = "/upload_image"


@router.post(
    DIRECT_UPLOAD_ROUTE,
    status_code=202,
    response_model=ImageAccepted,
    responses=_errors(400, 401, 404, 408, 413, 415, 422, 429, 503),
    openapi_extra=_UPLOAD_BODY,
)
async def create_image_upload(
    request: Request,
    response: Response,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKeyDep,
    principal: PrincipalDep,
    _quota: UploadQuotaDep,
    _slot: UploadSlotDep,
) -> ImageAccepted:
    """Upload a photo (multipart `project_id` + `file`) and start its processing.

    The body is streamed to object storage, never held whole in memory. The answer comes
    once the original is stored and its workflow has started; poll `status_url`.

    With dedupe on (the `dedupe=true` form field, or the project's setting), bytes equal
    to an image already `done` in this project answer 200 with that image as
    `duplicate_of`, and nothing new is stored or processed.
    """
    with dependency_errors():
        upload = await receive_upload(
            request, resources.storage, resources.settings, principal.require_project
        )
    try:
        with dependency_errors():
            duplicate = await run_in_threadpool(
                find_duplicate, resources.sessions, upload.project_id, upload.sha256, upload.dedupe
            )
            if duplicate is not None:
                return await _duplicate(request, response, resources, upload, duplicate)
            image = await run_in_threadpool(
                register_image, resources.sessions, image_row(upload, idempotency_key)
            )
    except BaseException:
        await run_in_threadpool(discard_object, resources.storage, upload.source_key)
        raise
    bind_image_context(
        image_id=image.id, project_id=image.project_id, workflow_id=workflow_id_for(str(image.id))
    )
    if image.id != upload.image_id:
        return await _replay(request, resources, image, upload)
    try:
        await start_image_workflow(
            resources.temporal,
            resources.settings,
            processing_input(image, resources.settings, upload.etag),
        )
    except BaseException:
        await run_in_threadpool(
            forget_image, resources.sessions, resources.storage, image.id, image.source_key
        )
        raise
    logger.info("accepted image %s for project %s", image.id, image.project_id)
    return _accepted(request, image.id, image.project_id, ImageState.UPLOADED)


async def _duplicate(
    request: Request,
    response: Response,
    resources: Resources,
    upload: ReceivedUpload,
    earlier: Image,
) -> ImageAccepted:
    """Dedupe found these bytes done in the project: answer that image, keep nothing new."""
    await run_in_threadpool(discard_object, resources.storage, upload.source_key)
    response.status_code = 200  # nothing new was accepted
    answer = _accepted(request, earlier.id, earlier.project_id, ImageState.DONE)
    answer.duplicate_of = earlier.id
    return answer


async def _replay(
    request: Request, resources: Resources, earlier: Image, upload: ReceivedUpload
) -> ImageAccepted:
    """The key was used before: drop this copy, and answer (and finish starting) the first."""
    await run_in_threadpool(discard_object, resources.storage, upload.source_key)
    check_replay(earlier, upload.sha256)
    # The same bytes, streamed in the same parts, were stored with the same ETag.
    await start_image_workflow(
        resources.temporal,
        resources.settings,
        processing_input(earlier, resources.settings, upload.etag),
    )
    return _accepted(request, earlier.id, earlier.project_id, ImageState(earlier.state))


@router.post(
    "/images/",
    status_code=201,
    response_model=ImageUploadLink,
    responses=_errors(401, 404, 413, 422, 429, 503),
)
async def create_image_link(
    body: ImageLinkCreate,
    request: Request,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKeyDep,
    principal: PrincipalDep,
    _quota: UploadQuotaDep,
) -> ImageUploadLink:
    """Get a presigned S3 POST for one file; confirm with `confirm_url` once uploaded.

    Send every `params` entry as a form field, unchanged, then the file as the last field,
    `file`. The link accepts up to `max_bytes`, with exactly the Content-Type in `params`
    (from the filename's extension: JPEG, PNG, WebP, GIF, AVIF or HEIC), until `expires_at`.
    Once confirmed, the file is sealed as the image's original: posting to the link again
    changes nothing the image serves.
    """
    principal.require_project(body.project_id)
    with dependency_errors():
        link = await create_upload_link(resources, body.filename, body.project_id, idempotency_key)
    return ImageUploadLink(
        image_id=link.image_id,
        project_id=body.project_id,
        state=ImageState.INIT,
        upload_link=link.url,
        params=link.params,
        expires_at=link.expires_at,
        max_bytes=resources.settings.max_upload_bytes,
        workflow_id=link.workflow_id,
        status_url=str(request.url_for("read_image", image_id=link.image_id)),
        confirm_url=str(request.url_for("confirm_image_upload", image_id=link.image_id)),
    )


@router.post(
    "/images/{image_id}/uploaded",
    status_code=202,
    response_model=ImageAccepted,
    responses=_errors(401, 404, 409, 413, 415, 422, 503),
)
async def confirm_image_upload(
    image_id: uuid.UUID, request: Request, resources: ResourcesDep, principal: PrincipalDep
) -> ImageAccepted:
    """Confirm that the file was posted to the upload link; processing starts once it checks out.

    409 `upload_missing` if nothing was uploaded yet (the link stays usable), 409
    `upload_expired` after expiry, 413/415/422 if the uploaded file is refused.
    """
    image = await _load_image(resources, image_id, principal)
    with dependency_errors():
        state = await confirm_upload(resources, image)
    return _accepted(request, image.id, image.project_id, state)


@router.get("/images/{image_id}", response_model=ImagePublic, responses=_errors(401, 404))
async def read_image(
    image_id: uuid.UUID, resources: ResourcesDep, principal: PrincipalDep
) -> ImagePublic:
    """One image: state, dimensions, error, a link per ready version, and live progress."""
    image = await _load_image(resources, image_id, principal)
    public = await run_in_threadpool(image_public, image, resources.storage)
    if image.state in RUNNING_STATES:
        public.progress = await live_progress(
            resources.temporal, image.id, resources.settings.status_query_timeout_seconds
        )
    return public


async def _load_image(resources: Resources, image_id: uuid.UUID, principal: Principal) -> Image:
    def load() -> Image | None:
        with resources.sessions() as session:
            return get_image(session, image_id)

    with dependency_errors():
        image = await run_in_threadpool(load)
    # Another tenant's image answers exactly as a missing one.
    if image is None or not principal.can_use(image.project_id):
        raise NotFoundError(f"image {image_id} does not exist")
    return image
