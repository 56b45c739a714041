"""A project's presets: `GET/PUT /projects/{id}/presets`.

Thin: `PresetStore` (api.presets) checks and stores the set. A PUT makes a new version;
uploads accepted from then on use it at once.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends

from api.access.guard import GuardedRoute
from api.deps import (
    ControlQuotaDep,
    PresetStoreDep,
    ReprocessingDep,
    ScopedProjectDep,
    get_principal,
)
from api.errors import ServiceUnavailableError
from api.presets.schemas import PresetSetIn, PresetSetPublic, preset_public
from api.schemas import errors
from core.preset_sets import PresetSet

logger = logging.getLogger(__name__)
router = APIRouter(
    prefix="/projects",
    tags=["presets"],
    dependencies=[Depends(get_principal)],
    route_class=GuardedRoute,
)


def _public(presets: PresetSet) -> PresetSetPublic:
    return PresetSetPublic(
        project_id=presets.project_id,
        version=presets.version,
        presets=[preset_public(preset) for preset in presets.presets],
    )


@router.get(
    "/{project_id}/presets", response_model=PresetSetPublic, responses=errors(401, 404, 503)
)
async def read_presets(project_id: ScopedProjectDep, store: PresetStoreDep) -> PresetSetPublic:
    """The project's current preset set (version 0: the default set, never stored)."""
    return _public(await store.current(project_id))


@router.put(
    "/{project_id}/presets",
    dependencies=[ControlQuotaDep],
    response_model=PresetSetPublic,
    responses=errors(400, 401, 404, 413, 422, 503, 429),
)
async def replace_presets(
    project_id: ScopedProjectDep,
    body: PresetSetIn,
    store: PresetStoreDep,
    reprocessing: ReprocessingDep,
) -> PresetSetPublic:
    """Replace the project's preset set; it becomes the next version.

    Names are 1-32 of a-z, 0-9 and `_`, starting with a letter; the spec's four presets
    stay in every set (their boxes may change); boxes are 1 to 8000 px; every preset has
    at least one format. A set with any problem is refused whole with 422
    `invalid_presets`, naming each problem, and nothing is stored.

    A stored set starts (or is taken up by) the project's reprocess run:
    `reprocess_workflow_id`. It is null if Temporal was unreachable; then start it with
    `POST /projects/{id}/reprocess`.
    """
    stored = await store.replace(project_id, [p.to_preset() for p in body.presets])
    answer = _public(stored)
    try:
        answer.reprocess_workflow_id = await reprocessing.start(project_id, stored.version)
    except ServiceUnavailableError:
        # The set is stored, and new uploads use it; the run can be started later.
        logger.warning(
            "stored presets v%s of %s; reprocess not started", stored.version, project_id
        )
    return answer
