"""Fan-out of image events to WebSocket subscribers, one Postgres listener per API process.

The listener has its own connection (a pooled one could be handed to a request while
LISTENing). Every API process listens, so a client sees the same events whichever process
it is connected to, and whichever worker process made the change.

A subscriber that falls behind by more than `QUEUE_SIZE` events is dropped instead of
slowing the others; its client reconnects and gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from core.events import CHANNEL

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256
RECONNECT_SECONDS = (0.5, 1, 2, 5)


class Subscription:
    def __init__(self, project_id: int) -> None:
        self.project_id = project_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = asyncio.Event()

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()


class EventHub:
    def __init__(self, database_url: str) -> None:
        self._conninfo = _libpq_conninfo(database_url)
        self._subscribers: dict[int, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def subscribe(self, project_id: int) -> Subscription:
        subscription = Subscription(project_id)
        self._subscribers[project_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.project_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.project_id]

    def dispatch(self, event: dict[str, Any]) -> None:
        for subscription in list(self._subscribers.get(event.get("project_id", -1), ())):
            subscription.offer(event)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen(resync=failures > 0)
            except (psycopg.Error, OSError):
                self.listening.clear()
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                logger.warning("event listener lost Postgres; retrying in %ss", delay)
                await asyncio.sleep(delay)

    async def _listen(self, *, resync: bool) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True
        ) as connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            if resync:
                # Events may have been missed while disconnected: clients re-read state.
                self._broadcast({"type": "resync"})
            async for notification in connection.notifies():
                self._on_notification(notification.payload)

    def _broadcast(self, event: dict[str, Any]) -> None:
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                subscription.offer(event)

    def _on_notification(self, payload: str) -> None:
        try:
            event = json.loads(payload)
        except json.JSONDecodeError:
            logger.warning("ignoring a malformed event: %.200s", payload)
            return
        self.dispatch(event)


def _libpq_conninfo(database_url: str) -> str:
    """The SQLAlchemy URL as a libpq URL psycopg understands."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
