"""Reprocessing on the real stack: a preset added, a preset changed, pause and resume, a
second run that changes nothing, and one image alone; the spec's shapes stay the same. A
link handed out before a change serves the old bytes until it expires; the cleanup's sweep
deletes the replaced objects once due."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import websockets
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.cleanup import CleanupActivities
from core.contracts import SweepInput
from core.models import Image, PendingObject, Version
from core.reprocess_contracts import reprocess_queue_for
from core.settings import Settings
from core.storage import Storage
from tests.e2e.conftest import Product
from tests.e2e.helpers import upload, wait_until_final
from tests.e2e.webhook_helpers import (
    add_webhook,
    all_settled,
    verified_payload,
    wait_for_deliveries,
)
from tests.factories import encoded, photo
from tests.webhook_receiver import Script, running_receiver

IMAGES = 30
SPEC_NAMES = {"original", "thumb", "big_thumb", "big_1920", "d2500"}
SPEC = [
    {"name": "thumb", "width": 150, "height": 120, "formats": ["auto", "webp"]},
    {"name": "big_thumb", "width": 700, "height": 700, "formats": ["auto", "webp"]},
    {"name": "big_1920", "width": 1920, "height": 1080, "formats": ["auto", "webp"]},
    {"name": "d2500", "width": 2500, "height": 2500, "formats": ["auto", "webp"]},
]
SQUARE = {"name": "square_400", "width": 400, "height": 400, "fit": "cover", "formats": ["webp"]}
RUN_SECONDS = 120


async def upload_many(client: httpx.AsyncClient, project_id: int, count: int) -> list[str]:
    data = [encoded(photo(640 + i, 480, seed=i), "JPEG", quality=85) for i in range(count)]
    ids = await asyncio.gather(
        *(upload(client, project_id, f"{i}.jpg", d) for i, d in enumerate(data))
    )
    for image_id in ids:
        assert (await wait_until_final(client, image_id))["state"] == "done"
    return list(ids)


async def finished_run(client: httpx.AsyncClient, project_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        progress: dict[str, Any] = (await client.get(f"/projects/{project_id}/reprocess")).json()
        if progress["state"] in ("done", "cancelled"):
            return progress
        await asyncio.sleep(0.3)
    raise AssertionError(f"the reprocess of {project_id} did not finish in {RUN_SECONDS}s")


async def put_presets(client: httpx.AsyncClient, project_id: int, presets: list[Any]) -> int:
    response = await client.put(f"/projects/{project_id}/presets", json={"presets": presets})
    assert response.status_code == 200, response.text
    assert response.json()["reprocess_workflow_id"] == f"reprocess-project-{project_id}"
    version: int = response.json()["version"]
    return version


def rows(sessions: sessionmaker[Session], project_id: int) -> list[Any]:
    with sessions() as session:
        return list(
            session.execute(
                select(Version.image_id, Version.name, Version.format, Version.key, Version.width)
                .join(Image)
                .where(Image.project_id == project_id)
            ).all()
        )


def objects(storage: Storage, project_id: int) -> set[str]:
    return {key for page in storage.list_pages(f"{project_id}/", 1000) for key, _ in page}


async def fetch(url: str) -> httpx.Response:
    """What a client gets for a listing's link: a 307 to a presign, followed."""
    async with httpx.AsyncClient(follow_redirects=True) as client:
        return await client.get(url)


def link_expiry(url: str) -> int:
    """The expiry a `/links/<payload>.<mac>` URL carries (api/status/links.py)."""
    payload = url.rsplit("/", 1)[1].split(".", 1)[0]
    return int(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).split(b"\n")[0])


def due_times(sessions: sessionmaker[Session], keys: set[str]) -> tuple[list[datetime], datetime]:
    """The pending rows' due times for `keys`, and Postgres' clock (the one they use)."""
    with sessions() as session:
        due = session.scalars(select(PendingObject.delete_after).where(PendingObject.key.in_(keys)))
        times = [d for d in due if d is not None]
        return times, session.scalar(select(func.now())) or datetime.now(UTC)


def sweep(
    storage: Storage, sessions: sessionmaker[Session], settings: Settings, ahead: int
) -> None:
    """The cleanup's pending sweep as if `ahead` seconds later (claims of running attempts,
    younger than an hour, are left alone as the schedule would)."""
    activities = CleanupActivities(storage, sessions, settings)
    ActivityEnvironment().run(activities.sweep_pending_objects, SweepInput(3600, 1000, ahead))


async def test_presets_added_and_changed_reach_every_image(
    product: Product, sessions: sessionmaker[Session], storage: Storage, settings: Settings
) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        ids = await upload_many(client, project_id, IMAGES)
        version = await put_presets(client, project_id, [*SPEC, SQUARE])
        progress = await finished_run(client, project_id)
        assert progress["presets_version"] == version
        assert progress["images_rendered"] == IMAGES, progress
        squares = [r for r in rows(sessions, project_id) if r.name == "square_400"]
        assert len(squares) == IMAGES and {r.format for r in squares} == {"webp"}
        old_thumbs = {r.key for r in rows(sessions, project_id) if r.name == "thumb"}
        # A client read the listing before the change: a link to a 150x120 thumb.
        before = (await client.get(f"/projects/{project_id}/images")).json()
        old_link = before["images"][0]["versions"]["thumb"]
        old_bytes = (await fetch(old_link)).content

        thumb = {**SPEC[0], "width": 200, "height": 160}
        await put_presets(client, project_id, [thumb, *SPEC[1:], SQUARE])
        progress = await finished_run(client, project_id)
        assert progress["images_rendered"] == IMAGES, progress
        current = rows(sessions, project_id)
        thumbs = [r for r in current if r.name == "thumb"]
        assert len(thumbs) == 2 * IMAGES and {r.width for r in thumbs} == {200}
        assert len(current) == IMAGES * 9  # 4 presets x (auto, webp) + square_400 webp
        # The link from before still serves the old bytes: the old objects are kept, due
        # only after every link handed out before the commit has expired.
        assert (await fetch(old_link)).content == old_bytes
        assert objects(storage, project_id) == {r.key for r in current} | old_thumbs
        due, db_now = due_times(sessions, old_thumbs)
        assert len(due) == len(old_thumbs)
        assert link_expiry(old_link) < min(due).timestamp()
        # The sweep at the link's expiry leaves them; once they are due, it deletes them,
        # and every object in the bucket is one a row names.
        sweep(storage, sessions, settings, math.floor(link_expiry(old_link) - time.time()))
        assert (await fetch(old_link)).content == old_bytes
        sweep(storage, sessions, settings, math.ceil((max(due) - db_now).total_seconds()) + 1)
        stored = objects(storage, project_id)
        assert not old_thumbs & stored
        assert stored == {r.key for r in current}
        assert (await fetch(old_link)).status_code == 404

        again = await client.post(f"/projects/{project_id}/reprocess")
        assert again.status_code == 202, again.text
        progress = await finished_run(client, project_id)
        assert (progress["images_current"], progress["images_rendered"]) == (IMAGES, 0), progress
        assert objects(storage, project_id) == stored

        listing = (await client.get(f"/projects/{project_id}/images")).json()
        spec_keys = {"image_id", "project_id", "state", "versions"}
        assert all(spec_keys <= set(image) for image in listing["images"])
        assert all(set(i["versions"]) == SPEC_NAMES | {"square_400"} for i in listing["images"])
        one = (await client.get(f"/images/{ids[0]}")).json()
        assert one["version_details"]["thumb"]["width"] == 200
        assert set(one["formats"]["thumb"]) == {"auto", "webp"}


async def task_queue_of(product: Product, workflow_id: str) -> str:
    temporal = await Client.connect(product.temporal_address)
    description = await temporal.get_workflow_handle(workflow_id).describe()
    return str(description.raw_description.execution_config.task_queue.name)


async def test_runs_and_single_images_go_on_the_reprocess_queue(
    product: Product, settings: Settings
) -> None:
    """Their own queue and slots: however many projects reprocess, uploads keep theirs."""
    project_id = product.new_project_id()
    expected = reprocess_queue_for(settings.temporal_task_queue)
    async with product.client() as client:
        ids = await upload_many(client, project_id, 2)
        await put_presets(client, project_id, [*SPEC, SQUARE])
        assert (await finished_run(client, project_id))["images_rendered"] == 2
        assert await task_queue_of(product, f"reprocess-project-{project_id}") == expected
        one = await client.post(f"/images/{ids[0]}/reprocess")
        assert one.status_code == 202, one.text
        assert await task_queue_of(product, one.json()["workflow_id"]) == expected


async def test_pause_resume_and_one_image(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        ids = await upload_many(client, project_id, 8)
        heavy = [{**p, "formats": ["auto", "webp", "avif"]} for p in SPEC]
        await put_presets(client, project_id, heavy)
        paused = await client.post(f"/projects/{project_id}/reprocess", json={"action": "pause"})
        assert paused.status_code == 202, paused.text
        deadline = time.monotonic() + 30
        while (await client.get(f"/projects/{project_id}/reprocess")).json()["state"] != "paused":
            assert time.monotonic() < deadline, "never paused"
            await asyncio.sleep(0.2)
        held = (await client.get(f"/projects/{project_id}/reprocess")).json()
        await asyncio.sleep(2)
        still = (await client.get(f"/projects/{project_id}/reprocess")).json()
        assert still["images_seen"] == held["images_seen"] < 8, still
        resumed = await client.post(f"/projects/{project_id}/reprocess", json={"action": "resume"})
        assert resumed.status_code == 202
        progress = await finished_run(client, project_id)
        assert progress["images_rendered"] + progress["images_current"] == 8, progress
        image = (await client.get(f"/images/{ids[0]}")).json()
        assert set(image["formats"]["d2500"]) == {"auto", "webp", "avif"}

        idle = await client.post(f"/projects/{project_id}/reprocess", json={"action": "pause"})
        assert (idle.status_code, idle.json()["error"]["code"]) == (409, "not_reprocessing")
        bad = await client.post(f"/projects/{project_id}/reprocess", json={"action": "explode"})
        assert bad.status_code == 422

        one = await client.post(f"/images/{ids[1]}/reprocess")
        assert one.status_code == 202, one.text
        assert one.json()["workflow_id"] == f"reprocess-image-{ids[1]}"


async def test_the_end_of_a_run_is_a_reprocess_done_webhook(product: Product) -> None:
    project_id = product.new_project_id()
    with running_receiver() as receiver:
        async with product.client() as client:
            url = receiver.script("/runs", Script())
            hook = await add_webhook(client, project_id, url, ("reprocess.done",))
            await upload_many(client, project_id, 2)
            await put_presets(client, project_id, [*SPEC, SQUARE])
            await finished_run(client, project_id)
            await wait_for_deliveries(client, project_id, hook["id"], all_settled(1))
            got = receiver.requests_to("/runs")
    assert len(got) == 1
    payload = verified_payload(got[0], hook["secret"])
    assert payload["type"] == "reprocess.done"
    assert payload["data"] == {"project_id": project_id}


async def test_progress_is_pushed_on_the_projects_websocket(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        await upload_many(client, project_id, 2)
        async with websockets.connect(product.ws_url(project_id, api=1)) as socket:
            assert json.loads(await socket.recv())["type"] == "snapshot"
            version = await put_presets(client, project_id, [*SPEC, SQUARE])
            async with asyncio.timeout(RUN_SECONDS):
                while True:
                    event = json.loads(await socket.recv())
                    if event["type"] == "reprocess" and event["state"] == "done":
                        break
    assert event["presets_version"] == version
    assert (event["images_seen"], event["images_rendered"]) == (2, 2)
