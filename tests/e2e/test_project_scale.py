"""A project of 10 000 images on the real stack: cursors, bounded snapshots, resume, links."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import websockets
from sqlalchemy import Engine

from api.status.listing import SNAPSHOT_MAX_BYTES
from bench.rows import insert_done_images
from core.presets import PRESET_NAMES
from tests.e2e.conftest import Product
from tests.e2e.helpers import DONE_WITHIN_SECONDS, download, upload, wait_until_final
from tests.factories import jpeg_bytes

BULK = 10_000


def bulk_project(product: Product, engine: Engine, count: int = BULK) -> int:
    project_id = product.new_project_id()
    with engine.begin() as connection:
        insert_done_images(connection, project_id, count)
    return project_id


async def walk(client: httpx.AsyncClient, project_id: int, **params: Any) -> list[str]:
    """Every image id of the project, page after page by cursor."""
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"/projects/{project_id}/images", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(image["image_id"] for image in page["images"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        await asyncio.sleep(0)


async def test_cursor_paging_sees_every_image_once_while_uploads_continue(
    product: Product, engine: Engine
) -> None:
    project_id = bulk_project(product, engine)
    async with product.client() as client, product.client(api=1) as uploader:
        before = await walk(client, project_id)
        assert len(before) == len(set(before)) == BULK

        async def keep_adding() -> list[str]:
            added = []
            for n in range(4):
                added.append(await upload(uploader, project_id, f"{n}.jpg", jpeg_bytes(640, 480)))
                with engine.begin() as connection:  # and rows straight in, between pages
                    insert_done_images(connection, project_id + 10**9 + n, 1)
            return added

        during, added = await asyncio.gather(walk(client, project_id), keep_adding())
        after = await walk(client, project_id)
        listing = (await client.get(f"/projects/{project_id}/images")).json()
    assert len(during) == len(set(during)), "an image was listed twice"
    assert set(before) <= set(during)  # nothing missed while others were added
    assert after == before + added  # oldest first, every image exactly once
    assert listing["total"] == BULK + len(added) and len(listing["images"]) == 100


async def test_project_defaults_to_a_page_of_100_with_counts_and_a_cursor(
    product: Product, engine: Engine
) -> None:
    project_id = bulk_project(product, engine, 250)
    async with product.client() as client:
        first = (await client.get(f"/projects/{project_id}")).json()
        second = (
            await client.get(f"/projects/{project_id}", params={"cursor": first["next_cursor"]})
        ).json()
        bad = await client.get(f"/projects/{project_id}/images", params={"cursor": "x!"})
    assert len(first["images"]) == 100 and first["counts"]["done"] == first["total"] == 250
    first_ids = {image["image_id"] for image in first["images"]}
    assert not first_ids & {image["image_id"] for image in second["images"]}
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_cursor")


async def receive(socket: websockets.ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await socket.recv())
    return message


async def test_the_snapshot_is_bounded_and_points_to_the_rest(
    product: Product, engine: Engine
) -> None:
    project_id = bulk_project(product, engine)
    async with websockets.connect(product.ws_url(project_id)) as socket:
        raw = await socket.recv()
    snapshot = json.loads(raw)
    assert snapshot["type"] == "snapshot" and len(raw) <= SNAPSHOT_MAX_BYTES
    assert snapshot["counts"]["done"] == snapshot["total"] == BULK
    assert 0 < len(snapshot["images"]) <= 100 and snapshot["order"] == "newest"
    async with product.client() as client:
        rest = await walk(client, project_id, cursor=snapshot["next_cursor"])
    newest = [image["image_id"] for image in snapshot["images"]]
    assert len(set(newest + rest)) == BULK


async def test_a_client_that_reconnects_with_since_loses_no_event(product: Product) -> None:
    project_id = product.new_project_id()
    events: dict[int, dict[str, Any]] = {}
    async with websockets.connect(product.ws_url(project_id)) as socket:
        last_id = (await receive(socket))["last_event_id"]
        async with product.client() as client:
            image_id = await upload(client, project_id, "r.jpg", jpeg_bytes(1200, 900))
            first = await receive(socket)  # one event, then the client drops
            events[first["id"]] = first
            last_id = max(last_id, first["id"])
    async with product.client() as client:
        await wait_until_final(client, image_id)
    # Back on the other API process, as after a restart behind a balancer.
    async with websockets.connect(product.ws_url(project_id, api=1) + f"?since={last_id}") as s:
        assert (await receive(s))["type"] == "resumed"
        async with asyncio.timeout(DONE_WITHIN_SECONDS):
            while not any(e.get("state") == "done" for e in events.values()):
                event = await receive(s)
                if event["type"] in ("state", "version"):
                    events[event["id"]] = event
    ordered = [events[i] for i in sorted(events)]
    kinds = [e["state"] if e["type"] == "state" else e["version"] for e in ordered]
    assert kinds[:2] == ["uploaded", "processing"] and kinds[-1] == "done"
    assert sorted(kinds[2:-1]) == sorted(PRESET_NAMES)


async def test_a_resume_from_before_the_log_gets_a_snapshot(product: Product) -> None:
    project_id = product.new_project_id()
    async with websockets.connect(product.ws_url(project_id) + "?since=-5") as socket:
        assert (await receive(socket))["type"] == "snapshot"


def tampered(link: str, change: Any) -> str:
    """`link` with its payload changed by `change` and its MAC kept."""
    base, _, token = link.rpartition("/")
    payload, _, mac = token.partition(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    edited = base64.urlsafe_b64encode(change(raw).encode()).rstrip(b"=").decode()
    return f"{base}/{edited}.{mac}"


async def test_links_open_their_object_and_nothing_else(product: Product) -> None:
    project_a, project_b = product.new_project_id(), product.new_project_id()
    async with product.client() as client:
        image_a = await upload(client, project_a, "a.jpg", jpeg_bytes(1200, 900))
        image_b = await upload(client, project_b, "b.jpg", jpeg_bytes(640, 480))
        await wait_until_final(client, image_a)
        await wait_until_final(client, image_b)
        listing = (await client.get(f"/projects/{project_a}/images")).json()
    links = listing["images"][0]["versions"]
    thumb, headers = await download(links["thumb"])
    assert thumb.size == (150, 112) and headers["content-type"] == "image/jpeg"
    big, _ = await download(links["big_1920"])
    assert big.size == (1200, 900)

    async with httpx.AsyncClient() as anonymous:
        refusals = [
            links["thumb"][:-2] + ("AA" if not links["thumb"].endswith("AA") else "BB"),
            tampered(links["thumb"], lambda raw: raw.replace(str(image_a), str(image_b))),
            tampered(
                links["thumb"],
                lambda raw: raw.replace(f"\n{project_a}\n", f"\n{project_b}\n").replace(
                    f"{project_a}/{image_a}", f"{project_b}/{image_b}"
                ),
            ),
            links["thumb"].rpartition("/")[0] + "/garbage",
        ]
        for link in refusals:
            response = await anonymous.get(link)
            assert response.status_code == 403, link
            assert response.json()["error"]["code"] == "invalid_link"
