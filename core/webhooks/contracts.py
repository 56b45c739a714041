"""Plain data contracts of webhook delivery, shared by the api, the workflow and the activities.

Only the standard library is imported here, so the workflow sandbox can load this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

DELIVERY_WORKFLOW_NAME = "WebhookDeliveryWorkflow"
DELIVER_ACTIVITY = "deliver_webhook"
GIVE_UP_ACTIVITY = "give_up_webhook"

# The part of every delivery id receivers see (`webhook-id`); Standard Webhooks' `msg_` style.
DELIVERY_ID_PREFIX = "msg_"
# Receivers must answer within this; Standard Webhooks senders commonly allow 10-15 s.
ATTEMPT_TIMEOUT_SECONDS = 10.0
# Stored of each answer, at most: enough to see an error message, never a whole page.
RESPONSE_BODY_BYTES = 1024


class WebhookEvent(StrEnum):
    IMAGE_DONE = "image.done"
    IMAGE_ERROR = "image.error"
    # A project's reprocess run finished: every image is current (`data`: the project id).
    REPROCESS_DONE = "reprocess.done"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryFailure(StrEnum):
    """`ApplicationError.type` of an attempt, and the delivery's `last_error` code."""

    HTTP_STATUS = "http_status"  # a non-2xx answer: retried
    UNREACHABLE = "unreachable"  # DNS, connect, TLS or timeout: retried
    GONE = "gone"  # 410: the endpoint is disabled, never retried
    REDIRECT_REFUSED = "redirect_refused"  # 3xx: redirects are never followed
    ADDRESS_REFUSED = "address_refused"  # the host resolves to a non-public address
    URL_REFUSED = "url_refused"  # a scheme the settings do not allow
    PAYLOAD_TOO_LARGE = "payload_too_large"
    ENDPOINT_DISABLED = "endpoint_disabled"  # deleted or turned off while pending
    EXPIRED = "expired"  # the retry period ran out


NON_RETRYABLE_FAILURES: tuple[str, ...] = (
    DeliveryFailure.GONE,
    DeliveryFailure.REDIRECT_REFUSED,
    DeliveryFailure.ADDRESS_REFUSED,
    DeliveryFailure.URL_REFUSED,
    DeliveryFailure.PAYLOAD_TOO_LARGE,
    DeliveryFailure.ENDPOINT_DISABLED,
)


def delivery_id_for(endpoint_id: str, image_id: str, run_id: str, event: str) -> str:
    """The same event of the same run for the same endpoint always gets the same id."""
    digest = hashlib.sha256(f"{endpoint_id}|{image_id}|{run_id}|{event}".encode()).hexdigest()
    return f"{DELIVERY_ID_PREFIX}{digest[:40]}"


def delivery_workflow_id_for(delivery_id: str, redelivery: int = 0) -> str:
    """Retries and crashes reuse the id (one workflow); a manual redelivery gets the next."""
    suffix = f"-r{redelivery}" if redelivery else ""
    return f"webhook-{delivery_id}{suffix}"


def delivery_queue_for(task_queue: str) -> str:
    """Deliveries have their own queue and slots: slow receivers never hold up images."""
    return f"{task_queue}-webhooks"


@dataclass
class DeliveryInput:
    delivery_id: str
    # The retry policy, from the settings of whoever started the delivery.
    retry_period_seconds: float
    initial_retry_seconds: float
    max_retry_interval_seconds: float


@dataclass
class AttemptInput:
    delivery_id: str


@dataclass
class GiveUpInput:
    delivery_id: str
    reason: str
