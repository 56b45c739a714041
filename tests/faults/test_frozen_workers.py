"""A worker frozen (SIGSTOP) while it holds an activity, then resumed after the image
completed elsewhere: Postgres, the event stream and the objects stay exactly as if it had
never resumed.

Each scenario runs real workers from `tests.faults.role_worker`: one that takes the
activity and holds its first attempt until the test has frozen it, one that runs the
workflows, and a normal `worker.py` started once the first is frozen.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from sqlalchemy import create_engine, select
from temporalio.client import WorkflowFailureError

from core.contracts import workflow_id_for
from core.models import Image, PendingObject, Version
from core.presets import PRESETS
from core.storage import Storage
from core.temporal import connect_temporal
from devstack.processes import ManagedProcess
from tests.e2e.helpers import upload
from tests.factories import jpeg_bytes
from tests.faults.product import FaultProduct

ROLE_WORKER = [sys.executable, "-m", "tests.faults.role_worker"]
WITHIN_SECONDS = 240
QUIET_SECONDS = 3


@pytest.fixture
def roles(fault_product: FaultProduct) -> Iterator[FaultProduct]:
    """No worker but the ones a scenario starts; two plain ones again afterwards."""
    for worker in list(fault_product.workers):
        fault_product.resume(worker)
        fault_product.kill_worker(worker)
    yield fault_product
    for worker in list(fault_product.workers):
        fault_product.resume(worker)
        fault_product.kill_worker(worker)
    fault_product.start_workers()


def role(product: FaultProduct, *args: str) -> ManagedProcess:
    worker = product.start_worker([*ROLE_WORKER, *args])
    wait_for_line(worker, r"role worker polling")
    return worker


def wait_for_line(worker: ManagedProcess, pattern: str, count: int = 1) -> list[str]:
    deadline = time.monotonic() + WITHIN_SECONDS
    while time.monotonic() < deadline:
        lines = re.findall(f".*{pattern}.*", worker.log_path.read_text(errors="replace"))
        if len(lines) >= count:
            return lines
        assert worker.poll() is None, f"{worker.name} exited; see {worker.log_path}"
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in {worker.log_path} within {WITHIN_SECONDS}s")


@asynccontextmanager
async def event_log(product: FaultProduct, project_id: int) -> AsyncIterator[list[Any]]:
    """Every event of the project's WebSocket while the block runs."""
    url = product.base_url.replace("http", "ws") + f"/ws/projects/{project_id}"
    seen: list[Any] = []
    async with websockets.connect(url) as socket:
        await socket.recv()  # the snapshot

        async def follow() -> None:
            async for message in socket:
                event = json.loads(message)
                if event.get("type") != "ping":
                    seen.append(event)

        task = asyncio.create_task(follow())
        try:
            yield seen
        finally:
            task.cancel()


def snapshot(product: FaultProduct, project_id: int, image_id: str) -> dict[str, Any]:
    """The image's row, its version and pending rows, and every object it has."""
    engine = create_engine(product.settings.database_url)
    try:
        with engine.connect() as connection:
            image = connection.execute(select(Image).where(Image.id == image_id)).one()._asdict()
            versions = [
                row._asdict()
                for row in connection.execute(
                    select(Version).where(Version.image_id == image_id).order_by(Version.name)
                )
            ]
            pending = connection.scalars(
                select(PendingObject.key).where(PendingObject.image_id == image_id)
            ).all()
    finally:
        engine.dispose()
    storage = Storage.from_settings(product.settings)
    objects = {
        key: storage.client.head_object(Bucket=storage.bucket, Key=key)["ETag"]
        for prefix in (f"{project_id}/{image_id}/", f"originals/{image_id}")
        for page in storage.list_pages(prefix, 1000)
        for key, _ in page
    }
    return {"image": image, "versions": versions, "pending": sorted(pending), "objects": objects}


async def outcome(product: FaultProduct, image_id: str) -> str:
    client = await connect_temporal(product.settings)
    handle = client.get_workflow_handle(workflow_id_for(image_id))
    async with asyncio.timeout(WITHIN_SECONDS):
        try:
            await handle.result()
        except WorkflowFailureError:
            return "failed"
    return "completed"


async def resume_and_compare(
    product: FaultProduct,
    frozen: ManagedProcess,
    project_id: int,
    image_id: str,
    events: list[Any],
    released: int,
) -> None:
    """Resume `frozen`, let its held attempts end, and find nothing changed: the only
    change allowed is a held attempt taking back its own claims, which name no object
    (a retry leaves an earlier attempt's claim for it, or for the sweep)."""
    before, events_before = snapshot(product, project_id, image_id), len(events)
    product.resume(frozen)
    lines = await asyncio.to_thread(wait_for_line, frozen, f"released .* {image_id}", released)
    await asyncio.sleep(QUIET_SECONDS)  # any event it caused would be in by now
    after = snapshot(product, project_id, image_id)
    claims_before, claims_after = set(before.pop("pending")), set(after.pop("pending"))
    assert after == before, lines
    assert claims_after <= claims_before and not (claims_before - claims_after) & set(
        after["objects"]
    )
    assert events[events_before:] == []


async def upload_one(product: FaultProduct, project_id: int, data: bytes) -> str:
    async with product.client() as client:
        return await upload(client, project_id, "frozen.jpg", data)


def final_states(events: list[Any], image_id: str) -> list[str]:
    return [e["state"] for e in events if e.get("image_id") == image_id and e["type"] == "state"]


async def test_a_prepare_resumed_after_done(roles: FaultProduct) -> None:
    product, project_id = roles, roles.new_project_id()
    role(product, "--no-remote-activities")
    holder = role(product, "--no-workflows", "--hold", "prepare_image", "--shared-slots", "1")
    async with event_log(product, project_id) as events:
        image_id = await upload_one(product, project_id, jpeg_bytes(1000, 750))
        await asyncio.to_thread(wait_for_line, holder, f"holding prepare_image {image_id}")
        product.freeze(holder)
        product.start_worker()
        assert await outcome(product, image_id) == "completed"
        await resume_and_compare(product, holder, project_id, image_id, events, released=1)
    assert final_states(events, image_id) == ["uploaded", "processing", "done"]


async def test_every_resize_resumed_after_the_image_was_prepared_again(
    roles: FaultProduct,
) -> None:
    product, project_id = roles, roles.new_project_id()
    role(product, "--no-remote-activities")
    holder = role(product, "--no-workflows", "--hold", "resize_image", "--shared-slots", "1")
    async with event_log(product, project_id) as events:
        image_id = await upload_one(product, project_id, jpeg_bytes(1000, 750))
        pattern = f"holding resize_image {image_id}"
        await asyncio.to_thread(wait_for_line, holder, pattern, len(PRESETS))
        product.freeze(holder)
        product.start_worker()
        assert await outcome(product, image_id) == "completed"
        await resume_and_compare(
            product, holder, project_id, image_id, events, released=len(PRESETS)
        )
    assert final_states(events, image_id)[-1] == "done"
    versions = [e["version"] for e in events if e["type"] == "version"]
    assert sorted(versions) == sorted(preset.name for preset in PRESETS)


async def test_a_finish_resumed_after_another_worker_finished(roles: FaultProduct) -> None:
    product, project_id = roles, roles.new_project_id()
    holder = role(product, "--hold", "finish_image", "--workflow-slots", "1")
    async with event_log(product, project_id) as events:
        image_id = await upload_one(product, project_id, jpeg_bytes(1000, 750))
        await asyncio.to_thread(wait_for_line, holder, f"holding finish_image {image_id}")
        product.freeze(holder)
        product.start_worker()
        assert await outcome(product, image_id) == "completed"
        await resume_and_compare(product, holder, project_id, image_id, events, released=1)
    assert final_states(events, image_id) == ["uploaded", "processing", "done"]


async def test_a_fail_resumed_after_the_image_failed(roles: FaultProduct) -> None:
    product, project_id = roles, roles.new_project_id()
    role(product, "--no-remote-activities")
    holder = role(product, "--no-workflows", "--hold", "fail_image", "--shared-slots", "1")
    truncated = jpeg_bytes(1000, 750)[:5000]  # its header passes, its decode fails
    async with event_log(product, project_id) as events:
        image_id = await upload_one(product, project_id, truncated)
        await asyncio.to_thread(wait_for_line, holder, f"holding fail_image {image_id}")
        product.freeze(holder)
        product.start_worker()
        assert await outcome(product, image_id) == "failed"
        await resume_and_compare(product, holder, project_id, image_id, events, released=1)
    assert final_states(events, image_id) == ["uploaded", "processing", "error"]
