"""Reprocessing and retries when processes die: kill -9 of every worker mid-run still ends
with every image current, one object per version and format, and no orphans; a failed
image is taken up again through `POST /images/{id}/retry`, once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import websockets
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment

from activities.cleanup import CleanupActivities
from core.contracts import SweepInput
from core.link_lifetime import superseded_keep
from core.models import Image, PendingObject, Version
from core.storage import Storage
from tests.api.conftest import serve
from tests.e2e.helpers import upload
from tests.factories import jpeg_bytes
from tests.faults.product import FaultProduct
from tests.faults.test_faults import (
    RECOVERY_SECONDS,
    _all_objects,
    next_event_for,
    upload_batch,
    wait_for_count,
    wait_for_workflow,
)

IMAGES = 16
SPEC = [
    {"name": "thumb", "width": 200, "height": 160, "formats": ["auto", "webp"]},
    {"name": "big_thumb", "width": 700, "height": 700, "formats": ["auto", "webp"]},
    {"name": "big_1920", "width": 1920, "height": 1080, "formats": ["auto", "webp"]},
    {"name": "d2500", "width": 2500, "height": 2500, "formats": ["auto", "webp", "avif"]},
    {"name": "square_400", "width": 400, "height": 400, "fit": "cover", "formats": ["webp"]},
]
ROWS_PER_IMAGE = 2 + 2 + 2 + 3 + 1


async def progress(client: httpx.AsyncClient, project_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = (await client.get(f"/projects/{project_id}/reprocess")).json()
    return answer


async def until(client: httpx.AsyncClient, project_id: int, check: Any) -> dict[str, Any]:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        answer = await progress(client, project_id)
        if check(answer):
            return answer
        await asyncio.sleep(0.3)
    raise AssertionError(f"reprocess of {project_id} never got there: {answer}")


async def test_kill_9_every_worker_mid_reprocess(fault_product: FaultProduct) -> None:
    project_id = fault_product.new_project_id()
    image_ids = await upload_batch(fault_product, project_id, IMAGES)
    await wait_for_count(fault_product, project_id, "done", IMAGES)
    async with fault_product.client() as client:
        stored = await client.put(f"/projects/{project_id}/presets", json={"presets": SPEC})
        assert stored.status_code == 200, stored.text
        seen = await until(client, project_id, lambda p: p.get("images_seen", 0) >= 2)
        fault_product.kill_workers()
        assert seen["images_seen"] < IMAGES, "killed too late"
        await asyncio.sleep(2)
        fault_product.start_workers()
        # While no worker runs, the progress query cannot be answered (503): polled on.
        done = await until(client, project_id, lambda p: p.get("state") == "done")
    assert done["images_failed"] == 0, done
    assert_current_and_no_orphans(fault_product, project_id, image_ids)


def assert_current_and_no_orphans(
    product: FaultProduct, project_id: int, image_ids: list[str]
) -> None:
    """One row per (image, preset, format), each pointing at an object; every other object
    of the project is in `pending_objects` (the replaced ones kept for old links), and after
    the cleanup's sweep of pending objects once they are due, there is none."""
    engine = create_engine(product.settings.database_url)
    storage = Storage.from_settings(product.settings)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Version.image_id, Version.name, Version.format, Version.key, Version.width)
                .join(Image)
                .where(Image.project_id == project_id)
            ).all()
            pending = set(connection.scalars(select(PendingObject.key)))
        unnamed = {key for key, _ in _all_objects(storage, f"{project_id}/")} - {
            row.key for row in rows
        }
        assert unnamed and unnamed <= pending  # the old 150x120 thumbs, at least
        sweeps = CleanupActivities(storage, sessionmaker(engine), product.settings)
        # As the cleanup does once every superseded object is due (they are kept for the
        # links handed out before them).
        every_due = int(superseded_keep(product.settings).total_seconds()) + 60
        ActivityEnvironment().run(sweeps.sweep_pending_objects, SweepInput(0, 1000, every_due))
    finally:
        engine.dispose()
    per_image = Counter(str(row.image_id) for row in rows)
    assert sorted(per_image) == sorted(image_ids)
    assert set(per_image.values()) == {ROWS_PER_IMAGE}
    assert {row.width for row in rows if row.name == "thumb"} == {200}
    keys = sorted(key for key, _ in _all_objects(storage, f"{project_id}/"))
    assert keys == sorted(row.key for row in rows)


async def test_a_failed_image_is_retried_through_the_api(fault_product: FaultProduct) -> None:
    project_id = fault_product.new_project_id()
    impatient = fault_product.settings.model_copy(update={"activity_max_attempts": 2})
    ws_url = fault_product.base_url.replace("http", "ws") + f"/ws/projects/{project_id}"
    fault_product.kill_workers()
    async with serve(impatient) as api, websockets.connect(ws_url) as socket:
        await socket.recv()  # the snapshot
        image_id = await upload(api, project_id, "unlucky.jpg", jpeg_bytes(1000, 750))
        fault_product.stop_s3()
        fault_product.start_workers()
        failed = await next_event_for(socket, image_id, lambda e: e.get("state") == "error")
        assert failed["error_code"] == "storage_unavailable"
        await wait_for_workflow(fault_product, f"image-{image_id}", WorkflowExecutionStatus.FAILED)
        fault_product.start_s3()
        first = await api.post(f"/images/{image_id}/retry")
        assert (first.status_code, first.json()["outcome"]) == (202, "retrying"), first.text
        retried = await api.post(f"/projects/{project_id}/retry")
        assert retried.status_code == 202, retried.text
        # The image's retry is running: the project's joins it (or no longer sees it in
        # `error`), and never resets it a second time.
        outcomes = {i["image_id"]: i["outcome"] for i in retried.json()["images"]}
        assert outcomes.get(image_id, "already_retrying") == "already_retrying", outcomes
        await next_event_for(socket, image_id, lambda e: e.get("state") == "done")
        image = (await api.get(f"/images/{image_id}")).json()
        again = await api.post(f"/images/{image_id}/retry")
    assert image["state"] == "done" and image["error"] is None
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_retryable")
