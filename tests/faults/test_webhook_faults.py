"""Webhook deliveries survive kill -9 of every worker: each event arrives, none twice."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import create_engine, func, select

from core.models import WebhookDelivery
from tests.e2e.webhook_helpers import add_webhook, verified_payload
from tests.faults.product import FaultProduct
from tests.faults.test_faults import RECOVERY_SECONDS, upload_batch, wait_for_count
from tests.webhook_receiver import Script, running_receiver

IMAGES = 12


def delivery_states(product: FaultProduct, project_id: int) -> dict[str, int]:
    engine = create_engine(product.settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(WebhookDelivery.status, func.count())
                .where(WebhookDelivery.project_id == project_id)
                .group_by(WebhookDelivery.status)
            ).all()
    finally:
        engine.dispose()
    return {status: count for status, count in rows}


async def wait_for_deliveries(
    product: FaultProduct, project_id: int, status: str, count: int
) -> None:
    async with asyncio.timeout(RECOVERY_SECONDS):
        while True:
            if delivery_states(product, project_id).get(status, 0) >= count:
                return
            await asyncio.sleep(0.3)


async def test_kill_9_every_worker_with_deliveries_pending(fault_product: FaultProduct) -> None:
    project_id = fault_product.new_project_id()
    with running_receiver() as receiver:
        # The first answers fail, so deliveries are still being retried when the workers die.
        url = receiver.script("/hook", Script(failures=IMAGES, failure_status=503))
        async with fault_product.client() as client:
            hook = await add_webhook(client, project_id, url)
        await upload_batch(fault_product, project_id, IMAGES)
        await wait_for_count(fault_product, project_id, "done", 3)
        await wait_for_deliveries(fault_product, project_id, "pending", 2)
        fault_product.kill_workers()
        assert delivery_states(fault_product, project_id).get("delivered", 0) < IMAGES
        await asyncio.sleep(2)
        fault_product.start_workers()
        await wait_for_count(fault_product, project_id, "done", IMAGES)
        await wait_for_deliveries(fault_product, project_id, "delivered", IMAGES)
        await asyncio.sleep(3)  # a duplicate success would have come by now
        got = receiver.requests_to("/hook")
    successes = Counter(r.headers["webhook-id"] for r in got if r.answered == 200)
    assert len(successes) == IMAGES
    assert set(successes.values()) == {1}, successes
    images = {verified_payload(r, hook["secret"])["data"]["image_id"] for r in got}
    assert len(images) == IMAGES
    assert delivery_states(fault_product, project_id) == {"delivered": IMAGES}
