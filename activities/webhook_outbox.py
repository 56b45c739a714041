"""The image activities' side of webhooks: record deliveries with the final state, start them.

The image workflow neither waits for nor knows about deliveries: they cost it no history
event, and a project without endpoints costs one indexed lookup in the final write.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client

from core.contracts import ImageState
from core.settings import Settings
from core.webhooks.contracts import WebhookEvent
from core.webhooks.outbox import EVENT_FOR_STATE, enqueue_deliveries, pending_deliveries
from core.webhooks.starting import start_delivery

# Starting a workflow is one RPC; a Temporal that does not answer in this long fails the
# activity, whose retry starts the recorded deliveries again.
START_TIMEOUT_SECONDS = 30.0


class DeliveryStarter:
    """Starts delivery workflows from the activity threads, on the worker's event loop."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, settings: Settings) -> None:
        self._client = client
        self._loop = loop
        self._settings = settings

    def start(self, delivery_ids: list[str]) -> None:
        for delivery_id in delivery_ids:
            started = asyncio.run_coroutine_threadsafe(
                start_delivery(self._client, self._settings, delivery_id), self._loop
            )
            started.result(timeout=START_TIMEOUT_SECONDS)


class WebhookOutbox:
    """`record` runs inside the transaction that changed the state; `dispatch` right after it."""

    def __init__(self, sessions: sessionmaker[Session], starter: DeliveryStarter | None) -> None:
        self._sessions = sessions
        self._starter = starter

    def record(
        self, session: Session, image_id: uuid.UUID, project_id: int, state: ImageState
    ) -> list[str]:
        event = EVENT_FOR_STATE.get(state)
        if event is None or self._starter is None:
            return []
        run_id = activity.info().workflow_run_id or ""
        return enqueue_deliveries(session, image_id, project_id, run_id, event)

    def dispatch(self, image_id: uuid.UUID, state: ImageState, recorded: list[str]) -> None:
        if self._starter is None or state not in EVENT_FOR_STATE:
            return
        ids = recorded
        if not ids and activity.info().attempt > 1:
            # An earlier attempt may have committed its rows, then died before starting them.
            run_id = activity.info().workflow_run_id or ""
            with self._sessions() as session:
                ids = pending_deliveries(session, image_id, run_id)
        self._starter.start(ids)

    def record_project_event(
        self, session: Session, project_id: int, event: WebhookEvent
    ) -> list[str]:
        """Deliveries of a project's event (no image), once per workflow run."""
        if self._starter is None:
            return []
        run_id = activity.info().workflow_run_id or ""
        return enqueue_deliveries(session, None, project_id, run_id, event)

    def start(self, delivery_ids: list[str]) -> None:
        if self._starter is not None and delivery_ids:
            self._starter.start(delivery_ids)
