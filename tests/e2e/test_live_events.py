"""WebSocket events across processes: two API processes, workers in their own processes.

Events travel worker → Postgres NOTIFY → every API process → its sockets, so a client
connected to one API sees work uploaded through the other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from core.presets import PRESET_NAMES
from tests.e2e.conftest import Product
from tests.e2e.helpers import DONE_WITHIN_SECONDS, download, upload, wait_until_final
from tests.factories import jpeg_bytes


async def receive(socket: websockets.ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await socket.recv())
    return message


async def events_until_final(
    socket: websockets.ClientConnection, image_ids: set[str]
) -> list[dict[str, Any]]:
    """Every event about `image_ids`, until each has reached done or error."""
    events: list[dict[str, Any]] = []
    pending = set(image_ids)
    async with asyncio.timeout(DONE_WITHIN_SECONDS):
        while pending:
            event = await receive(socket)
            if event.get("image_id") not in image_ids:
                continue
            events.append(event)
            if event["type"] == "state" and event["state"] in ("done", "error"):
                pending.discard(event["image_id"])
    return events


def assert_ordered(events: list[dict[str, Any]]) -> None:
    """uploaded, processing, then the four versions in any order, then done."""
    kinds = [e["state"] if e["type"] == "state" else "version" for e in events]
    assert kinds == ["uploaded", "processing", *["version"] * 4, "done"], kinds
    assert sorted(e["version"] for e in events if e["type"] == "version") == sorted(PRESET_NAMES)


async def test_a_client_on_the_other_api_sees_every_event_in_order(product: Product) -> None:
    project_id = product.new_project_id()
    async with websockets.connect(product.ws_url(project_id, api=1)) as socket:
        snapshot = await receive(socket)
        assert snapshot["type"] == "snapshot"
        assert (snapshot["project_id"], snapshot["images"]) == (project_id, [])
        async with product.client(api=0) as client:
            image_ids = {
                await upload(client, project_id, f"{n}.jpg", jpeg_bytes(1200 + n, 900))
                for n in range(3)
            }
        events = await events_until_final(socket, image_ids)

    for image_id in image_ids:
        assert_ordered([e for e in events if e["image_id"] == image_id])
    thumb = next(e for e in events if e.get("version") == "thumb")
    image, _ = await download(thumb["url"])
    assert image.size == (thumb["width"], thumb["height"])


async def test_the_snapshot_lists_what_happened_before_connecting(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client(api=1) as client:
        image_id = await upload(client, project_id, "before.jpg", jpeg_bytes(800, 600))
        await wait_until_final(client, image_id)
    async with websockets.connect(product.ws_url(project_id, api=0)) as socket:
        snapshot = await receive(socket)
        await socket.send(json.dumps({"type": "ping"}))
        assert await receive(socket) == {"type": "pong"}
    assert snapshot["counts"]["done"] == 1
    (image,) = snapshot["images"]
    assert (image["image_id"], image["state"]) == (image_id, "done")
    assert all(image["versions"].values())


async def test_a_client_that_stops_reading_does_not_stall_the_others(product: Product) -> None:
    project_id = product.new_project_id()
    async with (
        websockets.connect(product.ws_url(project_id), max_queue=1) as stalled,
        websockets.connect(product.ws_url(project_id, api=1)) as reader,
    ):
        await receive(stalled)
        await receive(reader)
        async with product.client() as client:
            image_id = await upload(client, project_id, "x.jpg", jpeg_bytes(640, 480))
        events = await events_until_final(reader, {image_id})
    assert events[-1]["state"] == "done"
