"""Facts from the single decode, through the real stack: a direct upload and an upload
link both get placeholders, colours, a perceptual hash and the SHA-256 of their bytes, in
the image document, the project's listings and the WebSocket `done` event."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any

import websockets

from tests.e2e.conftest import Product
from tests.e2e.helpers import DONE_WITHIN_SECONDS, upload, wait_until_final
from tests.e2e.test_upload_links import create_link, post_to_storage
from tests.factories import jpeg_bytes

FACT_FIELDS = {"blurhash", "thumbhash", "dominant_color", "average_color", "phash", "sha256"}


def assert_facts(facts: dict[str, Any], data: bytes) -> None:
    assert set(facts) == FACT_FIELDS
    assert facts["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(facts["blurhash"]) == 28
    assert re.fullmatch(r"#[0-9a-f]{6}", facts["dominant_color"])
    assert re.fullmatch(r"#[0-9a-f]{6}", facts["average_color"])
    assert re.fullmatch(r"[0-9a-f]{16}", facts["phash"])
    assert facts["thumbhash"]


async def done_event(socket: websockets.ClientConnection, image_id: str) -> dict[str, Any]:
    async with asyncio.timeout(DONE_WITHIN_SECONDS):
        while True:
            event: dict[str, Any] = json.loads(await socket.recv())
            if event.get("image_id") == image_id and event.get("state") == "done":
                return event


async def test_both_upload_flows_record_and_show_the_facts(product: Product) -> None:
    project_id = product.new_project_id()
    direct_data, link_data = jpeg_bytes(1600, 1200), jpeg_bytes(1200, 900)
    async with websockets.connect(product.ws_url(project_id)) as socket:
        await socket.recv()  # the snapshot
        async with product.client() as client:
            direct_id = await upload(client, project_id, "a.jpg", direct_data)
            event = await done_event(socket, direct_id)
            assert_facts(event["facts"], direct_data)

            link = await create_link(client, project_id, "b.jpg")
            await post_to_storage(link, link_data)
            assert (await client.post(link["confirm_url"])).status_code == 202
            linked = await wait_until_final(client, link["image_id"])
            assert_facts(linked["facts"], link_data)

            direct = await wait_until_final(client, direct_id)
            assert_facts(direct["facts"], direct_data)
            assert direct["facts"] == event["facts"]
            project = (await client.get(f"/projects/{project_id}")).json()
            listing = (await client.get(f"/projects/{project_id}/images")).json()
    for items in (project["images"], listing["images"]):
        by_id = {item["image_id"]: item for item in items}
        assert_facts(by_id[direct_id]["facts"], direct_data)
        assert_facts(by_id[link["image_id"]]["facts"], link_data)
