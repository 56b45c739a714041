"""Images: direct upload, upload links and their confirmation, and one image's status.

Thin: `ImageIntake` (api.intake) owns the upload flows; these shape their HTTP answers.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.responses import RedirectResponse

from api.access.guard import GuardedRoute
from api.deps import (
    IdempotencyKeyDep,
    IntakeDep,
    LinkerDep,
    PrincipalDep,
    ScopedImageDep,
    SettingsDep,
    TemporalDep,
    UploadQuotaDep,
    UploadSlotDep,
    get_principal,
)
from api.errors import NotFoundError
from api.intake.intake import Admitted
from api.schemas import ImageAccepted, ImageLinkCreate, ImagePublic, ImageUploadLink, errors
from api.status.negotiation import best_format
from api.status.progress import RUNNING_STATES, live_progress
from api.status.views import image_public
from core.contracts import MAX_PROJECT_ID, ImageState, workflow_id_for

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
                        "project_id": {
                            "type": "integer",
                            "format": "int64",
                            "minimum": 1,
                            "maximum": MAX_PROJECT_ID,
                        },
                        "file": {"type": "string", "format": "binary"},
                        # Absent: the project's setting decides (PUT /projects/{id}/settings).
                        "dedupe": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


def _accepted(request: Request, admitted: Admitted) -> ImageAccepted:
    return ImageAccepted(
        image_id=admitted.image_id,
        project_id=admitted.project_id,
        state=admitted.state,
        workflow_id=admitted.workflow_id,
        status_url=str(request.url_for("read_image", image_id=admitted.image_id)),
        duplicate_of=admitted.duplicate_of,
    )


# Its body streams to S3 under its own bounds (MAX_UPLOAD_BYTES, the deadline and rate).
DIRECT_UPLOAD_ROUTE = "/upload_image"


@router.post(
    DIRECT_UPLOAD_ROUTE,
    status_code=202,
    response_model=ImageAccepted,
    responses={
        200: {"model": ImageAccepted, "description": "An exact duplicate (dedupe on)"},
        **errors(400, 401, 404, 408, 409, 413, 415, 422, 429, 503),
    },
    openapi_extra=_UPLOAD_BODY,
)
async def create_image_upload(
    request: Request,
    response: Response,
    intake: IntakeDep,
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
    admitted = await intake.accept_upload(request, principal, idempotency_key)
    if admitted.duplicate_of is not None:
        response.status_code = 200  # nothing new was accepted
    return _accepted(request, admitted)


@router.post(
    "/images/",
    status_code=201,
    response_model=ImageUploadLink,
    responses=errors(400, 401, 404, 409, 413, 422, 429, 503),
)
async def create_image_link(
    body: ImageLinkCreate,
    request: Request,
    intake: IntakeDep,
    settings: SettingsDep,
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
    link = await intake.create_link(body.filename, body.project_id, idempotency_key)
    return ImageUploadLink(
        image_id=link.image_id,
        project_id=body.project_id,
        state=ImageState.INIT,
        upload_link=link.url,
        params=link.params,
        expires_at=link.expires_at,
        max_bytes=settings.max_upload_bytes,
        workflow_id=link.workflow_id,
        status_url=str(request.url_for("read_image", image_id=link.image_id)),
        confirm_url=str(request.url_for("confirm_image_upload", image_id=link.image_id)),
    )


@router.post(
    "/images/{image_id}/uploaded",
    status_code=202,
    response_model=ImageAccepted,
    responses=errors(401, 404, 409, 413, 415, 422, 503),
)
async def confirm_image_upload(
    image: ScopedImageDep, request: Request, intake: IntakeDep
) -> ImageAccepted:
    """Confirm that the file was posted to the upload link; processing starts once it checks out.

    409 `upload_missing` if nothing was uploaded yet (the link stays usable), 409
    `upload_expired` after expiry, 413/415/422 if the uploaded file is refused.
    """
    state = await intake.confirm(image)
    admitted = Admitted(image.id, image.project_id, state, workflow_id_for(str(image.id)))
    return _accepted(request, admitted)


@router.get("/images/{image_id}", response_model=ImagePublic, responses=errors(401, 404, 503))
async def read_image(
    image: ScopedImageDep, linker: LinkerDep, temporal: TemporalDep, settings: SettingsDep
) -> ImagePublic:
    """One image: state, dimensions, error, a link per ready version, and live progress."""
    # Signing a link is an HMAC, microseconds: no presign, so no threadpool hop.
    public = image_public(image, linker)
    if image.state in RUNNING_STATES:
        public.progress = await live_progress(
            temporal, image.id, settings.status_query_timeout_seconds
        )
    return public


VersionName = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
AcceptHeader = Annotated[str | None, Header(max_length=1024)]


@router.get(
    "/images/{image_id}/versions/{name}",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the best stored format"}, **errors(401, 404, 503)},
)
async def read_image_version(
    image: ScopedImageDep, name: VersionName, linker: LinkerDep, accept: AcceptHeader = None
) -> RedirectResponse:
    """Redirect to the version in the best stored format the `Accept` header names
    (AVIF, then WebP, else the JPEG/PNG), with `Vary: Accept` for caches in between."""
    stored = {v.format: v for v in image.versions if v.name == name}
    chosen = best_format(accept, [f for f in ("auto", "webp", "avif") if f in stored])
    if chosen is None:
        raise NotFoundError(f"image {image.id} has no version {name}")
    version = stored[chosen]
    url = linker.link(image.project_id, version.key, version.content_type)
    return RedirectResponse(url, status_code=302, headers={"Vary": "Accept"})
