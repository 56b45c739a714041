"""Projects: every image of a project with its state and links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import SessionDep, StorageDep
from api.queries import count_by_state, list_project_images
from api.schemas import ProjectImagesPublic, ProjectPublic
from api.views import image_summary, project_public

router = APIRouter(prefix="/projects", tags=["projects"])

ProjectIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@router.get("/{project_id}", response_model=ProjectPublic)
def read_project(
    project_id: ProjectIdPath,
    session: SessionDep,
    storage: StorageDep,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> ProjectPublic:
    """Counts by state, then the project's images (oldest first) with their versions."""
    return project_public(session, storage, project_id, limit, offset)


@router.get("/{project_id}/images", response_model=ProjectImagesPublic)
def read_project_images(
    project_id: ProjectIdPath,
    session: SessionDep,
    storage: StorageDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> ProjectImagesPublic:
    """The spec's shape: `{"images": [{image_id, state, project_id, versions}]}`, paginated."""
    counts = count_by_state(session, project_id)
    images = list_project_images(session, project_id, limit, offset)
    return ProjectImagesPublic(
        images=[image_summary(image, storage) for image in images],
        limit=limit,
        offset=offset,
        total=sum(counts.values()),
    )
