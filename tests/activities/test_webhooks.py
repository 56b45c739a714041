"""Delivery attempts in `ActivityEnvironment`, against the real Postgres and S3, and a
receiver on 127.0.0.1 (the SSRF refusal needs the private-network setting off, which the
product processes have on)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhook_records import AttemptRecord, DeliveryRecords
from activities.webhooks import WebhookActivities
from api.webhooks.deliveries import WebhookDeliveries
from core.models import Image, WebhookDelivery, WebhookEndpoint
from core.settings import Settings
from core.storage import Storage
from core.webhooks.contracts import AttemptInput, DeliveryStatus, WebhookEvent
from core.webhooks.outbox import enqueue_deliveries, orphaned_deliveries
from core.webhooks.signing import new_secret
from tests.webhook_receiver import Receiver, Script, running_receiver

_projects = itertools.count(770_000 + os.getpid() % 1000 * 100)


def new_delivery(sessions: sessionmaker[Session], url: str, enabled: bool = True) -> str:
    image_id, project_id = uuid.uuid4(), next(_projects)
    with sessions.begin() as session:
        session.add(Image(id=image_id, project_id=project_id, state="done", source_key="k"))
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            project_id=project_id,
            url=url,
            events=[WebhookEvent.IMAGE_DONE.value],
            secret=new_secret(),
            enabled=True,
        )
        session.add(endpoint)
        session.flush()
        [delivery_id] = enqueue_deliveries(
            session, image_id, project_id, "run-1", WebhookEvent.IMAGE_DONE
        )
        # Twice: the same id, still one row.
        assert enqueue_deliveries(
            session, image_id, project_id, "run-1", WebhookEvent.IMAGE_DONE
        ) == [delivery_id]
        endpoint.enabled = enabled
    return delivery_id


def delivery_row(sessions: sessionmaker[Session], delivery_id: str) -> WebhookDelivery:
    with sessions() as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row


def attempt(activities: WebhookActivities, delivery_id: str) -> None:
    ActivityEnvironment().run(activities.deliver, AttemptInput(delivery_id))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


def test_a_private_address_is_refused_with_the_setting_off(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage, receiver: Receiver
) -> None:
    strict = settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allow_private_networks": False}
    )
    activities = WebhookActivities(storage, sessions, strict)
    for url in (receiver.url("/private"), f"http://localhost:{receiver.port}/private"):
        delivery_id = new_delivery(sessions, url)
        with pytest.raises(ApplicationError) as refused:
            attempt(activities, delivery_id)
        assert (refused.value.type, refused.value.non_retryable) == ("address_refused", True)
        row = delivery_row(sessions, delivery_id)
        assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 1)
    assert receiver.requests_to("/private") == []


def test_http_is_refused_unless_allowed(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage, receiver: Receiver
) -> None:
    https_only = settings.model_copy(update={"webhook_allow_http": False})
    delivery_id = new_delivery(sessions, receiver.url("/plain"))
    with pytest.raises(ApplicationError) as refused:
        attempt(WebhookActivities(storage, sessions, https_only), delivery_id)
    assert refused.value.type == "url_refused"
    assert receiver.requests_to("/plain") == []


def test_delivered_and_disabled_send_nothing(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage, receiver: Receiver
) -> None:
    activities = WebhookActivities(storage, sessions, settings)
    url = receiver.script("/once", Script())
    delivered = new_delivery(sessions, url)
    attempt(activities, delivered)
    attempt(activities, delivered)  # a duplicate attempt after a crash: skipped
    assert len(receiver.requests_to("/once")) == 1
    assert delivery_row(sessions, delivered).status == DeliveryStatus.DELIVERED
    disabled = new_delivery(sessions, receiver.url("/off"), enabled=False)
    with pytest.raises(ApplicationError) as refused:
        attempt(activities, disabled)
    assert refused.value.type == "endpoint_disabled"
    assert receiver.requests_to("/off") == []


def test_a_project_without_endpoints_records_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        before = session.scalar(select(func.count()).select_from(WebhookDelivery))
        ids = enqueue_deliveries(session, uuid.uuid4(), 999_999, "run", WebhookEvent.IMAGE_DONE)
        after = session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert ids == []
    assert before == after


def test_a_late_attempt_never_reopens_a_delivery_given_up_on(
    sessions: sessionmaker[Session],
) -> None:
    """The retry period ran out while an attempt was still posting: the workflow gave up,
    then the attempt got its 503. Reopened, the row would be `pending` with no workflow
    sending it, and a client could not redeliver it."""
    records = DeliveryRecords(sessions)
    delivery_id = new_delivery(sessions, "https://receiver.example/hook")
    records.give_up(delivery_id, "retry period over")

    records.record_attempt(
        delivery_id, AttemptRecord(DeliveryStatus.PENDING, 503, "http_status: HTTP 503")
    )
    assert delivery_row(sessions, delivery_id).status == DeliveryStatus.FAILED

    # What a late attempt that did get through says is still worth keeping.
    records.record_attempt(delivery_id, AttemptRecord(DeliveryStatus.DELIVERED, 200))
    assert delivery_row(sessions, delivery_id).status == DeliveryStatus.DELIVERED


def test_an_answer_with_a_nul_byte_is_recorded_as_delivered(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage, receiver: Receiver
) -> None:
    """Postgres text holds no NUL: an answer carrying one made the record fail, and the
    receiver got the event again on every retry for days."""
    url = receiver.script("/nul", Script(body=b"ok\x00!"))
    delivery_id = new_delivery(sessions, url)

    attempt(WebhookActivities(storage, sessions, settings), delivery_id)

    row = delivery_row(sessions, delivery_id)
    assert row.status == DeliveryStatus.DELIVERED and row.response_body == "ok\ufffd!"
    assert len(receiver.requests_to("/nul")) == 1


def test_a_redelivery_whose_start_was_lost_is_relayed(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """The API reopened the delivery, then died before starting its workflow: the relay,
    which starts what was recorded but never attempted, must start it."""
    delivery_id = new_delivery(sessions, "https://receiver.example/hook")
    DeliveryRecords(sessions).record_attempt(
        delivery_id, AttemptRecord(DeliveryStatus.DELIVERED, 200)
    )
    row = delivery_row(sessions, delivery_id)
    api = WebhookDeliveries(sessions, settings, None)  # type: ignore[arg-type]
    api._reopen(row.project_id, row.endpoint_id, delivery_id)

    # What `orphaned_deliveries` picks (its batch is the whole database's oldest, which
    # other tests' rows may fill): pending, never attempted, the redelivery's number.
    reopened = delivery_row(sessions, delivery_id)
    assert (reopened.status, reopened.attempts, reopened.redeliveries) == ("pending", 0, 1)
    with sessions() as session:
        assert orphaned_deliveries(session, 0)  # the relay's query sees such rows
