"""The outbox relay: start deliveries that were recorded but never started.

The activity that records an image's final state starts its deliveries right after the
commit, and its retry starts them again if it died in between. If nothing retries it
(its attempts were spent, or a newer write made the retry a no-op), the rows would wait
forever: every worker process sweeps for them periodically. Starting is idempotent (one
workflow id per delivery), so several workers sweeping at once start each one once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from core.settings import Settings
from core.webhooks.outbox import orphaned_deliveries
from core.webhooks.starting import start_delivery

logger = logging.getLogger(__name__)


async def relay_once(client: Client, settings: Settings, sessions: sessionmaker[Session]) -> int:
    """Start every orphaned delivery found; how many."""

    def find() -> list[tuple[str, int]]:
        with sessions() as session:
            return orphaned_deliveries(session, settings.webhook_relay_age_seconds)

    orphans = await asyncio.to_thread(find)
    for delivery_id, redeliveries in orphans:
        await start_delivery(client, settings, delivery_id, redeliveries)
    if orphans:
        logger.info("started %d webhook deliveries that were never started", len(orphans))
    return len(orphans)


async def run_relay(
    client: Client, settings: Settings, sessions: sessionmaker[Session], stop: asyncio.Event
) -> None:
    """Sweep every WEBHOOK_RELAY_INTERVAL_SECONDS until `stop`; outages are logged, not fatal."""
    while not stop.is_set():
        try:
            await relay_once(client, settings, sessions)
        except (DBAPIError, RPCError, RuntimeError):
            logger.exception("the webhook relay could not sweep; trying again later")
        except Exception:
            # A bug here must not take the worker's image work down with it: say so loudly.
            logger.exception("the webhook relay failed unexpectedly; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.webhook_relay_interval_seconds)
