"""Retrying failed images: `POST /images/{id}/retry` and `POST /projects/{id}/retry`.

Thin: `Retries` (api.recovery) picks the runs and the reset points.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.access.guard import GuardedRoute
from api.deps import ControlQuotaDep, RetriesDep, ScopedImageDep, ScopedProjectDep, get_principal
from api.errors import ApiErrorCode, ConflictError
from api.recovery.retries import RetryOutcome
from api.recovery.schemas import ProjectRetryPublic, RetryPublic, retry_public
from api.schemas import errors

router = APIRouter(
    tags=["retries"], dependencies=[Depends(get_principal)], route_class=GuardedRoute
)


@router.post(
    "/images/{image_id}/retry",
    dependencies=[ControlQuotaDep],
    status_code=202,
    response_model=RetryPublic,
    responses={200: {"model": RetryPublic}, **errors(401, 404, 409, 503, 429)},
)
async def retry_image(image: ScopedImageDep, retries: RetriesDep) -> RetryPublic | JSONResponse:
    """Take a failed image up again: the latest run of its workflow, reset to just before
    processing. 202 `retrying`; 200 `already_retrying` while a retry runs (nothing is
    done again); 409 `not_retryable` for an image not in `error`, or failed for a reason a
    retry cannot change (an invalid image)."""
    retried = retry_public(await retries.image(image))
    if retried.outcome == RetryOutcome.NOT_RETRYABLE:
        raise ConflictError(
            f"image {image.id} cannot be retried: {retried.reason}",
            code=ApiErrorCode.NOT_RETRYABLE,
        )
    if retried.outcome == RetryOutcome.ALREADY_RETRYING:
        return JSONResponse(retried.model_dump(mode="json"), status_code=200)
    return retried


@router.post(
    "/projects/{project_id}/retry",
    dependencies=[ControlQuotaDep],
    status_code=202,
    response_model=ProjectRetryPublic,
    responses=errors(401, 404, 503, 429),
)
async def retry_project(project_id: ScopedProjectDep, retries: RetriesDep) -> ProjectRetryPublic:
    """Retry every image of the project in `error` for a transient reason (storage or
    database down, processing failed), each as `POST /images/{id}/retry` does; at most
    500 per call (`left` says how many more)."""
    retried, left = await retries.project(project_id)
    return ProjectRetryPublic(
        project_id=project_id, images=[retry_public(r) for r in retried], left=left
    )
