"""Reprocessing: a project's run (`POST/GET /projects/{id}/reprocess`) and one image's
(`POST /images/{id}/reprocess`). Thin: `Reprocessing` (api.presets) talks to Temporal."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Body, Depends

from api.access.guard import GuardedRoute
from api.deps import (
    ControlQuotaDep,
    PresetStoreDep,
    ReprocessingDep,
    ScopedImageDep,
    ScopedProjectDep,
    get_principal,
)
from api.errors import ApiErrorCode, ConflictError
from api.presets.reprocess import Action
from api.presets.schemas import (
    ImageReprocessAccepted,
    ReprocessAccepted,
    ReprocessProgressPublic,
    ReprocessRequest,
)
from api.schemas import errors
from core.contracts import ImageState
from core.reprocess_contracts import reprocess_workflow_id

router = APIRouter(
    tags=["reprocessing"], dependencies=[Depends(get_principal)], route_class=GuardedRoute
)


@router.post(
    "/projects/{project_id}/reprocess",
    dependencies=[ControlQuotaDep],
    status_code=202,
    response_model=ReprocessAccepted,
    responses=errors(400, 401, 404, 409, 413, 422, 503, 429),
)
async def reprocess_project(
    project_id: ScopedProjectDep,
    store: PresetStoreDep,
    reprocessing: ReprocessingDep,
    body: ReprocessRequest = Body(default_factory=ReprocessRequest),  # noqa: B008
) -> ReprocessAccepted:
    """Bring the project's images to its current presets, or steer the running run.

    Only what is missing or outdated is rendered; running it again changes nothing for
    images already current. `pause`, `resume` and `cancel` answer 409 `not_reprocessing`
    when no run is going.
    """
    action = Action(body.action)
    if action is Action.START:
        version = (await store.current(project_id)).version
        workflow_id = await reprocessing.start(project_id, version, resume=True)
    else:
        await reprocessing.control(project_id, action)
        workflow_id = reprocess_workflow_id(project_id)
    return ReprocessAccepted(project_id=project_id, action=action.value, workflow_id=workflow_id)


@router.get(
    "/projects/{project_id}/reprocess",
    response_model=ReprocessProgressPublic,
    responses=errors(401, 404, 503),
)
async def read_reprocess(
    project_id: ScopedProjectDep, reprocessing: ReprocessingDep
) -> ReprocessProgressPublic:
    """The run's progress (live from its `progress` query), or the last run's outcome."""
    progress = await reprocessing.progress(project_id)
    if progress is None:
        return ReprocessProgressPublic(project_id=project_id, state="none")
    return ReprocessProgressPublic(**asdict(progress))


@router.post(
    "/images/{image_id}/reprocess",
    dependencies=[ControlQuotaDep],
    status_code=202,
    response_model=ImageReprocessAccepted,
    responses=errors(401, 404, 409, 503, 429),
)
async def reprocess_image(
    image: ScopedImageDep, reprocessing: ReprocessingDep
) -> ImageReprocessAccepted:
    """Bring one `done` image to its project's current presets (409 `image_not_done`
    otherwise: an image still being processed gets them from its own run)."""
    if image.state != ImageState.DONE:
        raise ConflictError(
            f"image {image.id} is {image.state.value}, not done", code=ApiErrorCode.IMAGE_NOT_DONE
        )
    workflow_id = await reprocessing.image(str(image.id), image.project_id)
    return ImageReprocessAccepted(image_id=str(image.id), workflow_id=workflow_id)
