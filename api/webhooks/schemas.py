"""What clients send and receive about webhooks. Secrets appear only in `WebhookSecret`."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.webhooks.addresses import MAX_URL_CHARS
from core.webhooks.contracts import DeliveryStatus, WebhookEvent

# How long a rotated secret keeps signing next to the new one, unless the rotation says.
DEFAULT_PREVIOUS_SECRET_SECONDS = 24 * 3600
MAX_PREVIOUS_SECRET_SECONDS = 7 * 24 * 3600
PREVIOUS_SECRET_EXPIRY = (
    "Until when deliveries also carry a signature made with the secret the last rotation "
    "replaced; null when there is none."
)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=MAX_URL_CHARS, examples=["https://example.com/hooks/imgproc"]
    )
    events: list[WebhookEvent] = Field(
        min_length=1, max_length=len(WebhookEvent), examples=[["image.done", "image.error"]]
    )


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: `0` or "no" is not a boolean to the document, so not to us either.
    enabled: bool = Field(strict=True)


class WebhookRotate(BaseModel):
    """Optional body of `rotate-secret`."""

    model_config = ConfigDict(extra="forbid")

    previous_valid_seconds: int = Field(
        default=DEFAULT_PREVIOUS_SECRET_SECONDS,
        ge=0,
        le=MAX_PREVIOUS_SECRET_SECONDS,
        strict=True,
        description=(
            "How long deliveries stay signed with the replaced secret too, one signature "
            "per secret (Standard Webhooks), so the receiver can switch without a gap. "
            "0 stops it now, as for a leaked secret."
        ),
    )


class WebhookPublic(BaseModel):
    """An endpoint, without its secret."""

    id: uuid.UUID
    project_id: int
    url: str
    events: list[WebhookEvent]
    enabled: bool
    # `disabled` (turned off by a client) or `gone` (the receiver answered 410).
    disabled_reason: str | None
    created_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        default=None, description=PREVIOUS_SECRET_EXPIRY
    )


class WebhookSecret(BaseModel):
    """The signing secret (`whsec_...`): shown now, and never again. Store it."""

    id: uuid.UUID
    secret: str
    previous_secret_expires_at: datetime | None = Field(
        default=None, description=PREVIOUS_SECRET_EXPIRY
    )


class WebhookCreated(WebhookPublic):
    secret: str


class WebhooksPublic(BaseModel):
    webhooks: list[WebhookPublic]


class DeliveryPublic(BaseModel):
    id: str = Field(description="Also the `webhook-id` header receivers dedupe on.")
    webhook_id: uuid.UUID
    image_id: uuid.UUID | None
    event: WebhookEvent
    status: DeliveryStatus
    attempts: int
    redeliveries: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    response_body: str | None = Field(description="At most 1 KiB of the last answer.")
    delivered_at: datetime | None
    created_at: datetime


class DeliveriesPublic(BaseModel):
    deliveries: list[DeliveryPublic]
    limit: int
    offset: int
    total: int
