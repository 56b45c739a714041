"""`GET /metrics`: Prometheus metrics of this API process."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.access.guard import GuardedRoute
from api.deps import AllProjectsDep, ApiMetricsDep, ImageStatesDep
from api.schemas import errors

router = APIRouter(tags=["operations"], route_class=GuardedRoute)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
        **errors(401, 403, 503),
    },
)
async def read_metrics(
    metrics: ApiMetricsDep, image_states: ImageStatesDep, _: AllProjectsDep
) -> Response:
    """Prometheus metrics of this API process, in the text exposition format.

    Counts span every tenant, so with keys configured only an all-projects key reads them.
    """
    if image_states is not None:
        await image_states.refresh()
    body = await run_in_threadpool(generate_latest, metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
