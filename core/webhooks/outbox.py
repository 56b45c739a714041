"""The webhook outbox: delivery rows written in the same transaction as an image's final state.

Writing them with the state means an event is never lost between "the image is done" and
"its deliveries exist"; their deterministic ids mean a retried write never adds a second.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.contracts import ImageState
from core.models import WebhookDelivery, WebhookEndpoint
from core.webhooks.contracts import DeliveryStatus, WebhookEvent, delivery_id_for

EVENT_FOR_STATE = {
    ImageState.DONE: WebhookEvent.IMAGE_DONE,
    ImageState.ERROR: WebhookEvent.IMAGE_ERROR,
}


def enqueue_deliveries(
    session: Session,
    image_id: uuid.UUID | None,
    project_id: int,
    run_id: str,
    event: WebhookEvent,
) -> list[str]:
    """One pending delivery per enabled endpoint of the project that wants `event`.

    A project without endpoints costs one indexed lookup and writes nothing.
    """
    endpoint_ids = list(
        session.scalars(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.project_id == project_id,
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.events.contains([event.value]),
            )
        )
    )
    if not endpoint_ids:
        return []
    rows = [
        {
            "id": delivery_id_for(str(endpoint_id), str(image_id or ""), run_id, event.value),
            "endpoint_id": endpoint_id,
            "project_id": project_id,
            "image_id": image_id,
            "run_id": run_id,
            "event": event.value,
            "status": DeliveryStatus.PENDING.value,
        }
        for endpoint_id in endpoint_ids
    ]
    session.execute(insert(WebhookDelivery).values(rows).on_conflict_do_nothing())
    return [str(row["id"]) for row in rows]


def pending_deliveries(session: Session, image_id: uuid.UUID, run_id: str) -> list[str]:
    """What an earlier attempt recorded for this run and may have died before starting."""
    return list(
        session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.image_id == image_id,
                WebhookDelivery.run_id == run_id,
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
            )
        )
    )


RELAY_BATCH = 100


def orphaned_deliveries(session: Session, older_than_seconds: float) -> list[tuple[str, int]]:
    """Pending deliveries never attempted, recorded a while ago: (id, redeliveries).

    A started delivery makes its first attempt within seconds, so these are the ones whose
    start was lost (a crash after the commit that nothing retried), oldest first.
    """
    cutoff = func.now() - timedelta(seconds=older_than_seconds)
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.redeliveries)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.attempts == 0,
            WebhookDelivery.created_at < cutoff,
        )
        .order_by(WebhookDelivery.created_at)
        .limit(RELAY_BATCH)
    )
    return [(row.id, row.redeliveries) for row in rows]
