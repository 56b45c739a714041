"""The deployment's topology, natively: one Temporal, one Postgres, one S3, two API
processes and three worker processes (the `product` fixture), as compose runs it.

Uploads alternate between the APIs, and each image is read back through the other one.
The workflow histories prove the work was shared: every ActivityTaskStarted event names
the identity (`pid@host`) of the worker process that ran the activity.
"""

from __future__ import annotations

import asyncio
import collections
import logging

import httpx
from temporalio.client import Client

from core.contracts import workflow_id_for
from core.presets import PRESETS
from tests.e2e.conftest import WORKERS, Product
from tests.e2e.helpers import upload, wait_until_final
from tests.factories import jpeg_bytes

logger = logging.getLogger(__name__)
IMAGES = 12


async def test_two_apis_and_three_workers_share_the_work(
    product: Product, temporal_client: Client
) -> None:
    assert len(product.base_urls) == 2 and len(product.workers) == WORKERS == 3
    project_id = product.new_project_id()
    data = jpeg_bytes(1200, 900)
    clients = [product.client(api) for api in range(2)]
    try:
        uploaded = await asyncio.gather(
            *(upload(clients[i % 2], project_id, f"{i}.jpg", data) for i in range(IMAGES))
        )
        # Read each image through the API that did not take its upload.
        finals = await asyncio.gather(
            *(
                wait_until_final(clients[(i + 1) % 2], image_id)
                for i, image_id in enumerate(uploaded)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert len(set(uploaded)) == IMAGES
    for image in finals:
        assert image["state"] == "done", image
        assert all(image["versions"][preset.name] for preset in PRESETS), image

    runs, workers_per_image = await activity_runs_by_identity(temporal_client, uploaded)
    logger.info("activities per worker identity: %s", dict(runs))
    pids = {str(worker.process.pid) for worker in product.workers}
    assert {identity.split("@")[0] for identity in runs} <= pids, runs
    assert len(runs) >= 2, f"one worker did everything: {dict(runs)}"
    assert sum(runs.values()) >= IMAGES * (1 + len(PRESETS))  # prepare, resizes
    # Each image's resizes ran on the worker that prepared it, from its in-memory copy.
    assert all(len(identities) == 1 for identities in workers_per_image), workers_per_image
    await assert_listed_for_project(clients_base=product.base_urls, project_id=project_id)


async def activity_runs_by_identity(
    client: Client, image_ids: list[str]
) -> tuple[collections.Counter[str], list[set[str]]]:
    """How many activities each worker identity started, over these images' histories,
    and for each image the identities that ran its activities."""
    runs: collections.Counter[str] = collections.Counter()
    per_image = []
    for image_id in image_ids:
        history = await client.get_workflow_handle(workflow_id_for(image_id)).fetch_history()
        identities = set()
        for event in history.events:
            if event.HasField("activity_task_started_event_attributes"):
                identity = event.activity_task_started_event_attributes.identity
                runs[identity] += 1
                identities.add(identity)
        per_image.append(identities)
    return runs, per_image


async def assert_listed_for_project(clients_base: list[str], project_id: int) -> None:
    """Both APIs see the same project: one database behind them."""
    for base_url in clients_base:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            listing = (await client.get(f"/projects/{project_id}/images")).json()
        assert listing["total"] == IMAGES
        assert {image["state"] for image in listing["images"]} == {"done"}
