"""The upload-link flow: presigned S3 POST from a real HTTP client, confirmation, expiry."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from core.contracts import workflow_id_for
from core.presets import PRESETS, fit_within
from core.settings import Settings
from core.storage import Storage
from tests.api.conftest import serve
from tests.e2e.conftest import Product
from tests.e2e.helpers import (
    DONE_WITHIN_SECONDS,
    assert_gone,
    download,
    eventually,
    wait_until_final,
)
from tests.factories import jpeg_bytes


async def create_link(client: httpx.AsyncClient, project_id: int, name: str) -> dict[str, Any]:
    response = await client.post("/images/", json={"filename": name, "project_id": project_id})
    assert response.status_code == 201, response.text
    link: dict[str, Any] = response.json()
    return link


async def post_to_storage(link: dict[str, Any], data: bytes) -> httpx.Response:
    """What a browser form does: the signed fields, then the file, straight to S3."""
    async with httpx.AsyncClient() as s3:
        return await s3.post(
            link["upload_link"], data=link["params"], files={"file": ("upload", data)}
        )


async def test_a_presigned_post_then_confirmation_reaches_done(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        link = await create_link(client, project_id, "holiday.jpg")
        assert link["state"] == "init"
        assert set(link["params"]) >= {"key", "policy", "Content-Type"}
        assert (await client.get(f"/images/{link['image_id']}")).json()["state"] == "init"

        stored = await post_to_storage(link, jpeg_bytes(3000, 2000))
        assert stored.status_code in (200, 201, 204), stored.text
        confirmed = await client.post(link["confirm_url"])
        assert confirmed.status_code == 202, confirmed.text
        again = await client.post(link["confirm_url"])
        assert again.status_code == 202  # confirming twice is harmless
        image = await wait_until_final(client, link["image_id"])

    assert (image["state"], image["width"], image["height"]) == ("done", 3000, 2000)
    assert image["original_filename"] == "holiday.jpg"
    for preset in PRESETS:
        derivative, _ = await download(image["versions"][preset.name])
        assert derivative.size == fit_within(3000, 2000, preset.box)


async def test_confirming_before_uploading_is_refused(product: Product) -> None:
    async with product.client() as client:
        link = await create_link(client, product.new_project_id(), "later.jpg")
        early = await client.post(link["confirm_url"])
        assert early.status_code == 409
        assert early.json()["error"]["code"] == "upload_missing"
        image = (await client.get(f"/images/{link['image_id']}")).json()
    assert image["state"] == "init"  # the link stays usable
    assert image["progress"] == {"state": "init", "versions_done": [], "versions_total": 4}


async def test_an_uploaded_file_that_is_not_an_image_is_refused(
    product: Product, storage: Storage, temporal_client: Client
) -> None:
    async with product.client() as client:
        link = await create_link(client, product.new_project_id(), "notes.png")
        await post_to_storage(link, b"these are notes, not pixels")
        refused = await client.post(link["confirm_url"])
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            415,
            "unsupported_format",
        )
        image = await wait_until_final(client, link["image_id"])
    assert (image["state"], image["error"]["code"]) == ("error", "unsupported_format")
    # The refused file is removed after the error is recorded, before the workflow ends.
    handle = temporal_client.get_workflow_handle(workflow_id_for(link["image_id"]))
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), DONE_WITHIN_SECONDS)
    assert_gone(storage, f"staging/{link['image_id']}")


@pytest.fixture
async def short_links(settings: Settings, product: Product) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose links expire after three seconds; the product's workers do the rest.

    The grace is what production has too (minutes there): a POST that S3 accepted just
    before the policy expired may still be landing when the link's timer fires, and with
    no grace a loaded machine lets it land after the expiry's delete.
    """
    brief = settings.model_copy(
        update={"upload_link_expiry_seconds": 3, "upload_confirm_grace_seconds": 2}
    )
    async with serve(brief) as client:
        yield client


@pytest.fixture
async def small_links(settings: Settings, product: Product) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose links accept at most 10 kB."""
    async with serve(settings.model_copy(update={"max_upload_bytes": 10_000})) as client:
        yield client


async def test_a_file_over_the_size_condition_is_refused_by_storage(
    small_links: httpx.AsyncClient, storage: Storage
) -> None:
    huge = jpeg_bytes(1600, 1200)
    link = await create_link(small_links, 1, "huge.jpg")
    refused = await post_to_storage(link, huge)
    assert refused.status_code == 400
    assert "EntityTooLarge" in refused.text
    assert_gone(storage, f"staging/{link['image_id']}")


async def test_an_expired_link_leaves_nothing_behind(
    short_links: httpx.AsyncClient, storage: Storage
) -> None:
    small = jpeg_bytes(64, 48)
    never_uploaded = await create_link(short_links, 1, "a.jpg")
    never_confirmed = await create_link(short_links, 1, "b.jpg")
    stored = await post_to_storage(never_confirmed, small)
    assert stored.status_code in (200, 201, 204)

    images = [
        await wait_until_final(short_links, link["image_id"])
        for link in (never_uploaded, never_confirmed)
    ]

    for link, image in zip((never_uploaded, never_confirmed), images, strict=True):
        assert (image["state"], image["error"]["code"]) == ("error", "upload_expired")
        await eventually(functools.partial(assert_gone, storage, f"staging/{link['image_id']}"))
        late = await short_links.post(f"/images/{link['image_id']}/uploaded")
        assert (late.status_code, late.json()["error"]["code"]) == (409, "upload_expired")
