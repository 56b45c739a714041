"""Typed dependencies of the webhook routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from api.deps import ResourcesDep, SessionDep
from api.webhooks.deliveries import WebhookDeliveries
from api.webhooks.endpoints import WebhookEndpoints


def get_webhook_endpoints(session: SessionDep, resources: ResourcesDep) -> WebhookEndpoints:
    return WebhookEndpoints(session, resources.settings)


def get_webhook_deliveries(resources: ResourcesDep) -> WebhookDeliveries:
    return WebhookDeliveries(resources.sessions, resources.settings, resources.temporal)


WebhookEndpointsDep = Annotated[WebhookEndpoints, Depends(get_webhook_endpoints)]
WebhookDeliveriesDep = Annotated[WebhookDeliveries, Depends(get_webhook_deliveries)]
WebhookIdPath = Annotated[uuid.UUID, Path()]
DeliveryIdPath = Annotated[str, Path(min_length=44, max_length=44, pattern=r"^msg_[0-9a-f]{40}$")]
