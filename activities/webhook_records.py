"""The Postgres side of a delivery attempt: load what to send, record what happened."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from core.models import Image, WebhookDelivery, WebhookEndpoint
from core.webhooks.contracts import DeliveryFailure, DeliveryStatus
from core.webhooks.signing import still_signing

GONE_REASON = "gone"


@dataclass(frozen=True)
class PendingDelivery:
    delivery_id: str
    status: DeliveryStatus
    event: str
    created_at: datetime
    project_id: int
    url: str
    secret: str = field(repr=False)
    endpoint_enabled: bool
    endpoint_id: uuid.UUID
    image: Image | None
    # A rotated secret still in its overlap: it signs too (`signed_headers`).
    previous_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AttemptRecord:
    status: DeliveryStatus
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None


class DeliveryRecords:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def load(self, delivery_id: str) -> PendingDelivery | None:
        """None once the delivery is gone (its endpoint was deleted)."""
        with self._sessions() as session:
            row = session.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.id == delivery_id)
            ).one_or_none()
            if row is None:
                return None
            delivery, endpoint = row
            image = None
            if delivery.image_id is not None:
                image = session.scalar(
                    select(Image)
                    .options(selectinload(Image.versions))
                    .where(Image.id == delivery.image_id)
                )
            return PendingDelivery(
                delivery_id=delivery.id,
                status=DeliveryStatus(delivery.status),
                event=delivery.event,
                created_at=delivery.created_at,
                project_id=delivery.project_id,
                url=endpoint.url,
                secret=endpoint.secret,
                endpoint_enabled=endpoint.enabled,
                endpoint_id=endpoint.id,
                image=image,
                previous_secret=(
                    endpoint.previous_secret
                    if still_signing(endpoint.previous_secret_expires_at)
                    else None
                ),
            )

    def record_attempt(self, delivery_id: str, record: AttemptRecord) -> None:
        """Count the attempt. A delivered row is never moved back (a late duplicate); a
        failed one only to `delivered`: an attempt that outlived its workflow's retry
        period must not reopen a delivery given up on, which no workflow would then
        send and no client could redeliver."""
        values: dict[str, object] = {
            "attempts": WebhookDelivery.attempts + 1,
            "status": record.status.value,
            "last_status_code": record.status_code,
            "last_error": record.error,
            "last_attempt_at": func.now(),
            "response_body": record.response_body,
        }
        if record.status is DeliveryStatus.DELIVERED:
            values["delivered_at"] = func.now()
        open_statuses = [DeliveryStatus.PENDING.value]
        if record.status is DeliveryStatus.DELIVERED:
            open_statuses.append(DeliveryStatus.FAILED.value)
        with self._sessions.begin() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .where(WebhookDelivery.status.in_(open_statuses))
                .values(**values)
            )

    def give_up(self, delivery_id: str, reason: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .where(WebhookDelivery.status == DeliveryStatus.PENDING.value)
                .values(status=DeliveryStatus.FAILED.value, last_error=reason)
            )

    def disable_gone(self, endpoint_id: uuid.UUID) -> None:
        """The receiver said 410 Gone: stop sending it anything until a client re-enables it."""
        with self._sessions.begin() as session:
            session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id)
                .values(enabled=False, disabled_reason=GONE_REASON)
            )


def failure(code: DeliveryFailure, detail: str = "") -> str:
    """`last_error`: the stable code, then a short detail (bounded by the column)."""
    return f"{code.value}: {detail}"[:255] if detail else code.value
