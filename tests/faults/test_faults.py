"""Nothing accepted is lost or duplicated, whichever process or service dies.

Each scenario runs a batch through real processes, breaks something in the middle, and
checks that every image reaches `done` with exactly one row and one object per version.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from typing import Any

import httpx
import websockets
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment

from activities.cleanup import CleanupActivities
from core.contracts import SweepInput
from core.link_lifetime import superseded_keep
from core.models import Image, Version
from core.presets import DEFAULT_FORMATS, PRESET_NAMES
from core.storage import Storage
from core.temporal import connect_temporal
from tests.api.conftest import serve
from tests.e2e.helpers import upload
from tests.factories import jpeg_bytes
from tests.faults.product import FaultProduct

BATCH = 50
RECOVERY_SECONDS = 180
OUTAGE_SECONDS = 20


async def upload_batch(product: FaultProduct, project_id: int, count: int) -> list[str]:
    photo = jpeg_bytes(1000, 750)
    limit = asyncio.Semaphore(8)

    async def one(client: httpx.AsyncClient, n: int) -> str:
        async with limit:
            return await upload(client, project_id, f"{n}.jpg", photo)

    async with product.client() as client:
        return list(await asyncio.gather(*(one(client, n) for n in range(count))))


def states(product: FaultProduct, project_id: int) -> dict[str, int]:
    engine = create_engine(product.settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Image.state, func.count())
                .where(Image.project_id == project_id)
                .group_by(Image.state)
            ).all()
    finally:
        engine.dispose()
    return {state: count for state, count in rows}


async def wait_for_count(product: FaultProduct, project_id: int, state: str, count: int) -> None:
    """Poll Postgres (as an operator would) until `count` images are in `state`."""
    async with asyncio.timeout(RECOVERY_SECONDS):
        while True:
            if states(product, project_id).get(state, 0) >= count:
                return
            await asyncio.sleep(0.3)


def assert_exactly_once(product: FaultProduct, project_id: int, image_ids: list[str]) -> None:
    """One row per image, a version row per preset and format, and after the staging
    cleanup's sweep of pending objects, exactly the objects those rows name: no leftovers.

    An attempt killed between writing its object and recording its row leaves that object
    in `pending_objects` (docs/fencing.md); the sweep is what removes it, as in production.
    """
    engine = create_engine(product.settings.database_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(
                select(Version.image_id, Version.key)
                .join(Image)
                .where(Image.project_id == project_id)
            ).all()
        sweeps = CleanupActivities(
            Storage.from_settings(product.settings), sessionmaker(engine), product.settings
        )
        # As the cleanup does once every superseded object is due (they are kept for the
        # links handed out before them).
        every_due = int(superseded_keep(product.settings).total_seconds()) + 60
        ActivityEnvironment().run(sweeps.sweep_pending_objects, SweepInput(0, 1000, every_due))
    finally:
        engine.dispose()
    assert states(product, project_id) == {"done": len(image_ids)}
    per_image = Counter(str(image_id) for image_id, _ in versions)
    assert sorted(per_image) == sorted(image_ids)
    # Each spec preset in each default format.
    assert set(per_image.values()) == {len(PRESET_NAMES) * len(DEFAULT_FORMATS)}
    storage = Storage.from_settings(product.settings)
    keys = [k for k, _ in _all_objects(storage, f"{project_id}/")]
    assert sorted(keys) == sorted(key for _, key in versions)
    working = [k for k, _ in _all_objects(storage, "work/") if k.split("/")[1] in image_ids]
    assert working == []


def _upload_objects(storage: Storage) -> int:
    """Staged and sealed upload objects: a refused upload leaves neither."""
    return len(_all_objects(storage, "staging/")) + len(_all_objects(storage, "originals/"))


def _all_objects(storage: Storage, prefix: str) -> list[tuple[str, Any]]:
    return [item for page in storage.list_pages(prefix, 1000) for item in page]


async def test_kill_9_every_worker_mid_batch(fault_product: FaultProduct) -> None:
    project_id = fault_product.new_project_id()
    image_ids = await upload_batch(fault_product, project_id, BATCH)
    await wait_for_count(fault_product, project_id, "done", 5)
    fault_product.kill_workers()
    assert states(fault_product, project_id).get("done", 0) < BATCH, "killed too late"
    await asyncio.sleep(2)
    fault_product.start_workers()
    await wait_for_count(fault_product, project_id, "done", BATCH)
    assert_exactly_once(fault_product, project_id, image_ids)


async def test_s3_down_for_20_seconds_mid_batch(fault_product: FaultProduct) -> None:
    project_id = fault_product.new_project_id()
    image_ids = await upload_batch(fault_product, project_id, BATCH // 2)
    await wait_for_count(fault_product, project_id, "done", 3)
    fault_product.stop_s3()
    async with fault_product.client() as client:
        refused = await client.post(
            "/upload_image", data={"project_id": "1"}, files={"file": ("a.jpg", jpeg_bytes(64, 48))}
        )
    assert refused.status_code == 503
    assert refused.headers["retry-after"]
    await asyncio.sleep(OUTAGE_SECONDS)
    fault_product.start_s3()
    await wait_for_count(fault_product, project_id, "done", len(image_ids))
    assert_exactly_once(fault_product, project_id, image_ids)


async def test_postgres_down_for_20_seconds_mid_batch(fault_product: FaultProduct) -> None:
    project_id = fault_product.new_project_id()
    image_ids = await upload_batch(fault_product, project_id, BATCH // 2)
    await wait_for_count(fault_product, project_id, "done", 3)
    fault_product.stop_postgres()
    await asyncio.sleep(OUTAGE_SECONDS)
    fault_product.start_postgres()
    await wait_for_count(fault_product, project_id, "done", len(image_ids))
    assert_exactly_once(fault_product, project_id, image_ids)


async def next_event_for(
    socket: websockets.ClientConnection, image_id: str, predicate: Any
) -> dict[str, Any]:
    async with asyncio.timeout(RECOVERY_SECONDS):
        while True:
            event: dict[str, Any] = json.loads(await socket.recv())
            if event.get("image_id") == image_id and predicate(event):
                return event


def reset(product: FaultProduct, workflow_id: str) -> None:
    """What an operator runs to retry a failed image (the Web UI's Reset does the same)."""
    subprocess.run(
        [
            str(product.temporal_cli),
            "workflow",
            "reset",
            "--address",
            product.settings.temporal_address,
            "--workflow-id",
            workflow_id,
            "--type",
            "FirstWorkflowTask",
            "--reason",
            "storage is back",
        ],
        check=True,
        capture_output=True,
    )


async def test_an_outage_beyond_the_retry_budget_then_a_reset(
    fault_product: FaultProduct,
) -> None:
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
        image = (await api.get(f"/images/{image_id}")).json()
        assert (image["state"], image["error"]["code"]) == ("error", "storage_unavailable")
        await wait_for_workflow(fault_product, f"image-{image_id}", WorkflowExecutionStatus.FAILED)

        fault_product.start_s3()
        reset(fault_product, f"image-{image_id}")
        await next_event_for(socket, image_id, lambda e: e.get("state") == "done")
        image = (await api.get(f"/images/{image_id}")).json()
    assert image["state"] == "done" and image["error"] is None
    assert all(image["versions"].values())
    assert_exactly_once(fault_product, project_id, [image_id])


async def wait_for_workflow(
    product: FaultProduct, workflow_id: str, status: WorkflowExecutionStatus
) -> None:
    client = await connect_temporal(product.settings)
    handle = client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(RECOVERY_SECONDS):
        while True:
            if (await handle.describe()).status == status:
                return
            await asyncio.sleep(0.5)


async def test_postgres_down_at_ingress_answers_503_and_keeps_nothing(
    fault_product: FaultProduct,
) -> None:
    storage = Storage.from_settings(fault_product.settings)
    before = _upload_objects(storage)
    fault_product.stop_postgres()
    try:
        async with fault_product.client() as client:
            refused = await client.post(
                "/upload_image",
                data={"project_id": "1"},
                files={"file": ("a.jpg", jpeg_bytes(64, 48))},
            )
    finally:
        fault_product.start_postgres()
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        503,
        "dependency_unavailable",
    )
    assert int(refused.headers["retry-after"]) > 0
    assert _upload_objects(storage) == before


async def test_temporal_down_at_ingress_answers_503_and_keeps_nothing(
    fault_product: FaultProduct,
) -> None:
    project_id = fault_product.new_project_id()
    storage = Storage.from_settings(fault_product.settings)
    before = _upload_objects(storage)
    fault_product.stop_temporal()
    try:
        async with fault_product.client() as client:
            refused = await client.post(
                "/upload_image",
                data={"project_id": str(project_id)},
                files={"file": ("a.jpg", jpeg_bytes(64, 48))},
            )
    finally:
        fault_product.start_temporal()
    assert refused.status_code == 503
    assert states(fault_product, project_id) == {}
    assert _upload_objects(storage) == before
    # and the product recovers by itself once Temporal is back
    image_ids = await upload_batch(fault_product, project_id, 2)
    await wait_for_count(fault_product, project_id, "done", 2)
    assert_exactly_once(fault_product, project_id, image_ids)


async def test_sigterm_lets_in_flight_work_finish(fault_product: FaultProduct) -> None:
    """A worker told to stop finishes what it holds, exits cleanly, and loses nothing."""
    project_id = fault_product.new_project_id()
    fault_product.kill_workers()
    fault_product.start_workers(count=1)
    (worker,) = fault_product.workers
    image_ids = await upload_batch(fault_product, project_id, 6)
    await wait_for_count(fault_product, project_id, "processing", 1)
    started = time.monotonic()
    worker.terminate()
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 25  # within WORKER_GRACEFUL_SHUTDOWN_SECONDS
    assert "worker stopped" in worker.log_path.read_text()
    fault_product.workers.clear()
    fault_product.start_workers()
    await wait_for_count(fault_product, project_id, "done", len(image_ids))
    assert_exactly_once(fault_product, project_id, image_ids)
