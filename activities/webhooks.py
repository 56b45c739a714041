"""Webhook delivery attempts: one activity call is one POST, recorded in Postgres.

    ApplicationError.type (core.webhooks.contracts.DeliveryFailure)
     ├── retried: http_status (non-2xx), unreachable (DNS, connect, TLS, timeout)
     └── final:   gone (410, the endpoint is disabled), redirect_refused, address_refused,
                  url_refused, payload_too_large, endpoint_disabled

Attempts run on the delivery queue's own worker and thread pool (see worker.py), so a
receiver that takes its full 10 s never holds an image activity's slot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.webhook_http import Answer, WebhookSender
from activities.webhook_metrics import DeliveryMetrics
from activities.webhook_records import (
    AttemptRecord,
    DeliveryRecords,
    PendingDelivery,
    failure,
)
from core.settings import Settings
from core.storage import Storage
from core.webhooks.addresses import AddressRefusedError, UrlRefusedError, parse_url, resolve
from core.webhooks.contracts import (
    DELIVER_ACTIVITY,
    GIVE_UP_ACTIVITY,
    AttemptInput,
    DeliveryFailure,
    DeliveryStatus,
    GiveUpInput,
)
from core.webhooks.payload import PayloadTooLargeError, event_body
from core.webhooks.signing import signed_headers

GONE = 410
# What an attempt answers when its delivery (or its endpoint) was deleted meanwhile.
GONE_STATUS = "gone"


class WebhookActivities:
    def __init__(
        self,
        storage: Storage,
        sessions: sessionmaker[Session],
        settings: Settings,
        metrics: DeliveryMetrics | None = None,
        sender: WebhookSender | None = None,
    ) -> None:
        self._storage = storage
        self._records = DeliveryRecords(sessions)
        self._settings = settings
        self._metrics = metrics or DeliveryMetrics(None)
        self._sender = sender or WebhookSender()

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.deliver, self.give_up]

    @activity.defn(name=DELIVER_ACTIVITY)
    def deliver(self, request: AttemptInput) -> str:
        """POST the event once; raise to be retried, or a non-retryable error to stop.

        Answers the delivery's status: `delivered`, or `gone` if its endpoint was deleted.
        """
        delivery = self._records.load(request.delivery_id)
        if delivery is None:
            return GONE_STATUS
        # Delivered already: a duplicate attempt after a crash sends nothing again.
        if delivery.status is DeliveryStatus.DELIVERED:
            return DeliveryStatus.DELIVERED.value
        if not delivery.endpoint_enabled:
            self._fail(delivery, DeliveryFailure.ENDPOINT_DISABLED, retry=False)
        try:
            answer = self._attempt(delivery)
        except (UrlRefusedError, AddressRefusedError) as error:
            code = (
                DeliveryFailure.URL_REFUSED
                if isinstance(error, UrlRefusedError)
                else DeliveryFailure.ADDRESS_REFUSED
            )
            self._fail(delivery, code, retry=False, detail=str(error))
        except PayloadTooLargeError as error:
            self._fail(delivery, DeliveryFailure.PAYLOAD_TOO_LARGE, retry=False, detail=str(error))
        except (httpx.HTTPError, ConnectionError) as error:
            self._fail(
                delivery, DeliveryFailure.UNREACHABLE, retry=True, detail=type(error).__name__
            )
        self._judge(delivery, answer)
        return DeliveryStatus.DELIVERED.value

    def _attempt(self, delivery: PendingDelivery) -> Answer:
        settings = self._settings
        target = parse_url(delivery.url, settings.webhook_allow_http)
        body = event_body(
            delivery.event,
            delivery.created_at,
            delivery.image,
            self._storage,
            settings.webhook_max_payload_bytes,
            delivery.project_id,
        )
        address = resolve(target, settings.webhook_allow_private_networks)
        headers = signed_headers(
            delivery.secret, delivery.delivery_id, body, previous=delivery.previous_secret
        )
        answer = self._sender.post(target, address, headers, body)
        self._metrics.attempt_seconds.observe(answer.seconds)
        return answer

    def _judge(self, delivery: PendingDelivery, answer: Answer) -> None:
        code = answer.status_code
        if 200 <= code < 300:
            record = AttemptRecord(DeliveryStatus.DELIVERED, code, None, answer.body)
            self._records.record_attempt(delivery.delivery_id, record)
            self._metrics.count("delivered")
            activity.logger.info("delivered %s (%d)", delivery.delivery_id, code)
            return
        if code == GONE:
            self._records.disable_gone(delivery.endpoint_id)
            self._fail(delivery, DeliveryFailure.GONE, retry=False, answer=answer)
        if 300 <= code < 400:
            self._fail(delivery, DeliveryFailure.REDIRECT_REFUSED, retry=False, answer=answer)
        self._fail(delivery, DeliveryFailure.HTTP_STATUS, retry=True, answer=answer)

    def _fail(
        self,
        delivery: PendingDelivery,
        code: DeliveryFailure,
        *,
        retry: bool,
        detail: str = "",
        answer: Answer | None = None,
    ) -> NoReturn:
        """Record the attempt, then raise: retried, or final (the row says `failed`)."""
        status = DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED
        if answer is not None:
            detail = detail or f"HTTP {answer.status_code}"
        record = AttemptRecord(
            status,
            answer.status_code if answer else None,
            failure(code, detail),
            answer.body if answer else None,
        )
        self._records.record_attempt(delivery.delivery_id, record)
        self._metrics.count("retry" if retry else code.value)
        activity.logger.info("delivery %s: %s", delivery.delivery_id, failure(code, detail))
        raise ApplicationError(detail or code.value, type=code.value, non_retryable=not retry)

    @activity.defn(name=GIVE_UP_ACTIVITY)
    def give_up(self, request: GiveUpInput) -> None:
        """The retry period ran out: the delivery ends `failed`, until redelivered."""
        self._records.give_up(request.delivery_id, request.reason)
        self._metrics.count(request.reason)
