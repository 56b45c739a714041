"""Webhooks: a project's endpoints, their signing secrets, and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from starlette.concurrency import run_in_threadpool

from api.access.guard import GuardedRoute
from api.deps import (
    ControlQuotaDep,
    DeliveryIdPath,
    LimitQuery,
    OffsetQuery,
    ScopedProjectDep,
    WebhookDeliveriesDep,
    WebhookEndpointsDep,
    WebhookIdPath,
    get_principal,
)
from api.schemas import errors
from api.webhooks.schemas import (
    DeliveriesPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookRotate,
    WebhookSecret,
    WebhooksPublic,
    WebhookUpdate,
)

# Every route here needs a key once any exists, whatever its own parameters say.
router = APIRouter(
    prefix="/projects/{project_id}/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(get_principal)],
    # The key is checked, and the JSON body bounded, before FastAPI reads the body.
    route_class=GuardedRoute,
)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return errors(401, 404, 503, *statuses)


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    responses=_errors(400, 409, 413, 422, 429),
    dependencies=[ControlQuotaDep],
)
def create_webhook(
    project_id: ScopedProjectDep, body: WebhookCreate, endpoints: WebhookEndpointsDep
) -> WebhookCreated:
    """Add an endpoint for `events`. The answer carries its signing secret, shown only now.

    `url` must be https (unless WEBHOOK_ALLOW_HTTP) and reach a public address.
    """
    return endpoints.create(project_id, body)


@router.get("", response_model=WebhooksPublic, responses=_errors())
def read_webhooks(project_id: ScopedProjectDep, endpoints: WebhookEndpointsDep) -> WebhooksPublic:
    """The project's endpoints, oldest first, without their secrets."""
    return endpoints.list(project_id)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookPublic,
    responses=_errors(400, 413, 422, 429),
    dependencies=[ControlQuotaDep],
)
def update_webhook(
    project_id: ScopedProjectDep,
    webhook_id: WebhookIdPath,
    body: WebhookUpdate,
    endpoints: WebhookEndpointsDep,
) -> WebhookPublic:
    """Enable or disable an endpoint (one the receiver disabled with 410 Gone, too)."""
    return endpoints.set_enabled(project_id, webhook_id, body.enabled)


@router.delete(
    "/{webhook_id}", status_code=204, responses=_errors(429), dependencies=[ControlQuotaDep]
)
def delete_webhook(
    project_id: ScopedProjectDep, webhook_id: WebhookIdPath, endpoints: WebhookEndpointsDep
) -> Response:
    """Remove an endpoint and its delivery history; pending deliveries stop."""
    endpoints.delete(project_id, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookSecret,
    responses=_errors(400, 413, 422, 429),
    dependencies=[ControlQuotaDep],
)
def rotate_webhook_secret(
    project_id: ScopedProjectDep,
    webhook_id: WebhookIdPath,
    endpoints: WebhookEndpointsDep,
    body: Annotated[WebhookRotate | None, Body()] = None,
) -> WebhookSecret:
    """A new signing secret, shown only now; every attempt from now on is signed with it.

    The secret it replaces goes on signing next to it (a second signature in
    `webhook-signature`) for `previous_valid_seconds`, a day unless the body says; `0`
    stops it at once. No body is the same as `{}`.
    """
    return endpoints.rotate(project_id, webhook_id, body or WebhookRotate())


@router.get("/{webhook_id}/deliveries", response_model=DeliveriesPublic, responses=_errors())
async def read_webhook_deliveries(
    project_id: ScopedProjectDep,
    webhook_id: WebhookIdPath,
    deliveries: WebhookDeliveriesDep,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> DeliveriesPublic:
    """The endpoint's deliveries, newest first: status, attempts, the last answer."""
    return await run_in_threadpool(deliveries.page, project_id, webhook_id, limit, offset)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    dependencies=[ControlQuotaDep],
    status_code=202,
    response_model=DeliveryPublic,
    responses=_errors(409, 503, 429),
)
async def redeliver_webhook(
    project_id: ScopedProjectDep,
    webhook_id: WebhookIdPath,
    delivery_id: DeliveryIdPath,
    deliveries: WebhookDeliveriesDep,
) -> DeliveryPublic:
    """Send a delivered or failed delivery again, with the same `webhook-id`.

    409 `delivery_pending` while it is still being tried, `webhook_disabled` if the
    endpoint is off.
    """
    return await deliveries.redeliver(project_id, webhook_id, delivery_id)
