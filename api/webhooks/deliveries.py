"""`WebhookDeliveries`: one endpoint's deliveries, newest first, and sending one again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import ConflictError, NotFoundError, ServiceUnavailableError
from api.webhooks.schemas import DeliveriesPublic, DeliveryPublic
from core.models import WebhookDelivery, WebhookEndpoint
from core.settings import Settings
from core.webhooks.contracts import DeliveryStatus, WebhookEvent
from core.webhooks.starting import start_delivery


def delivery_public(delivery: WebhookDelivery) -> DeliveryPublic:
    return DeliveryPublic(
        id=delivery.id,
        webhook_id=delivery.endpoint_id,
        image_id=delivery.image_id,
        event=WebhookEvent(delivery.event),
        status=DeliveryStatus(delivery.status),
        attempts=delivery.attempts,
        redeliveries=delivery.redeliveries,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        last_attempt_at=delivery.last_attempt_at,
        response_body=delivery.response_body,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


def _owned(project_id: int, webhook_id: uuid.UUID) -> Any:
    return (WebhookDelivery.project_id == project_id) & (WebhookDelivery.endpoint_id == webhook_id)


class WebhookDeliveries:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, temporal: Client):
        self._sessions = sessions
        self._settings = settings
        self._temporal = temporal

    def page(
        self, project_id: int, webhook_id: uuid.UUID, limit: int, offset: int
    ) -> DeliveriesPublic:
        with self._sessions() as session:
            _require_endpoint(session, project_id, webhook_id)
            total = session.scalar(select(func.count()).where(_owned(project_id, webhook_id)))
            rows = session.scalars(
                select(WebhookDelivery)
                .where(_owned(project_id, webhook_id))
                .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
                .limit(limit)
                .offset(offset)
            )
            deliveries = [delivery_public(row) for row in rows]
        return DeliveriesPublic(deliveries=deliveries, limit=limit, offset=offset, total=total or 0)

    async def redeliver(
        self, project_id: int, webhook_id: uuid.UUID, delivery_id: str
    ) -> DeliveryPublic:
        """Send it again under the same `webhook-id`, in a workflow of its own."""
        delivery, previous = await run_in_threadpool(
            self._reopen, project_id, webhook_id, delivery_id
        )
        try:
            await start_delivery(self._temporal, self._settings, delivery_id, delivery.redeliveries)
        except (RPCError, RuntimeError) as error:
            # The lazily connected client raises RuntimeError while it cannot reach Temporal.
            await run_in_threadpool(self._restore, delivery_id, delivery.redeliveries, previous)
            raise ServiceUnavailableError("the workflow service is unavailable") from error
        return delivery

    def _reopen(
        self, project_id: int, webhook_id: uuid.UUID, delivery_id: str
    ) -> tuple[DeliveryPublic, _Before]:
        with self._sessions.begin() as session:
            endpoint = _require_endpoint(session, project_id, webhook_id)
            delivery = session.scalar(
                select(WebhookDelivery)
                .where(_owned(project_id, webhook_id), WebhookDelivery.id == delivery_id)
                .with_for_update()
            )
            if delivery is None:
                raise NotFoundError(f"delivery {delivery_id} does not exist")
            if delivery.status == DeliveryStatus.PENDING:
                raise ConflictError("the delivery is still pending", code="delivery_pending")
            if not endpoint.enabled:
                raise ConflictError("the webhook is disabled", code="webhook_disabled")
            previous = _Before(delivery.status, delivery.attempts)
            # Attempts count afresh: a redelivery not yet attempted is one the outbox relay
            # starts if this request's start is lost (the API process dies right here).
            delivery.status = DeliveryStatus.PENDING.value
            delivery.attempts = 0
            delivery.redeliveries += 1
            session.flush()
            return delivery_public(delivery), previous

    def _restore(self, delivery_id: str, redelivery: int, before: _Before) -> None:
        """The workflow could not be started: the delivery is as it was, unless the
        redelivery went ahead meanwhile (the start had reached Temporal after all, or the
        relay started it)."""
        with self._sessions.begin() as session:
            session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    WebhookDelivery.redeliveries == redelivery,
                    WebhookDelivery.attempts == 0,
                )
                .values(status=before.status, attempts=before.attempts)
            )


@dataclass(frozen=True)
class _Before:
    """A delivery as it was before a redelivery reopened it."""

    status: str
    attempts: int


def _require_endpoint(session: Session, project_id: int, webhook_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == webhook_id, WebhookEndpoint.project_id == project_id
        )
    )
    if endpoint is None:
        raise NotFoundError(f"webhook {webhook_id} does not exist")
    return endpoint
