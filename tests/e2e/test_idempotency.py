"""Idempotency-Key: repeats and races of one request make one image, workflow and object set."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.contracts import original_key_for
from core.models import Image, Version
from core.presets import DEFAULT_FORMATS, PRESET_NAMES
from core.storage import Storage
from tests.e2e.conftest import Product
from tests.e2e.helpers import eventually, orphans_since, upload_keys, wait_until_final
from tests.e2e.test_upload_flow import list_workflow_statuses
from tests.factories import jpeg_bytes

PHOTO = jpeg_bytes(900, 600)


async def keyed_upload(
    client: httpx.AsyncClient, project_id: int, key: str, data: bytes = PHOTO
) -> httpx.Response:
    return await client.post(
        "/upload_image",
        data={"project_id": str(project_id)},
        files={"file": ("photo.jpg", data)},
        headers={"Idempotency-Key": key},
    )


def project_counts(sessions: sessionmaker[Session], project_id: int) -> tuple[int, int]:
    with sessions() as session:
        images = session.scalar(select(func.count()).where(Image.project_id == project_id))
        versions = session.scalar(
            select(func.count())
            .select_from(Version)
            .join(Image)
            .where(Image.project_id == project_id)
        )
    return images or 0, versions or 0


def objects_of(storage: Storage, image_id: str, project_id: int) -> list[str]:
    keys = []
    for prefix in (f"staging/{image_id}", f"originals/{image_id}", f"{project_id}/"):
        listing = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix)
        keys += [item["Key"] for item in listing.get("Contents", [])]
    return keys


async def assert_one_of_everything(
    product: Product,
    client: httpx.AsyncClient,
    storage: Storage,
    sessions: sessionmaker[Session],
    project_id: int,
    image_id: str,
) -> None:
    image: dict[str, Any] = await wait_until_final(client, image_id)
    assert image["state"] == "done"
    # One row and one object per spec preset and default format.
    versions = len(PRESET_NAMES) * len(DEFAULT_FORMATS)
    assert project_counts(sessions, project_id) == (1, versions)
    assert len(objects_of(storage, image_id, project_id)) == 1 + versions
    statuses = list_workflow_statuses(product, f'ProjectId="{project_id}"')
    assert statuses == {f"image-{image_id}": "WORKFLOW_EXECUTION_STATUS_COMPLETED"}


async def test_a_repeated_request_answers_the_same_image(
    product: Product, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        first = await keyed_upload(client, project_id, "retry-me")
        again = await keyed_upload(client, project_id, "retry-me")
        assert (first.status_code, again.status_code) == (202, 202)
        image_id = first.json()["image_id"]
        assert again.json()["image_id"] == image_id
        await assert_one_of_everything(product, client, storage, sessions, project_id, image_id)
        after_done = await keyed_upload(client, project_id, "retry-me")
        assert (after_done.status_code, after_done.json()["state"]) == (202, "done")
        other_project = await keyed_upload(client, product.new_project_id(), "retry-me")
        assert other_project.json()["image_id"] != image_id  # keys are per project


async def test_concurrent_requests_with_one_key_make_one_image(
    product: Product, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    project_id = product.new_project_id()
    before = upload_keys(storage)
    async with product.client() as first_api, product.client(api=1) as second_api:
        responses = await asyncio.gather(
            *(keyed_upload(c, project_id, "race") for c in (first_api, second_api) * 3)
        )
        assert {r.status_code for r in responses} == {202}
        (image_id,) = {r.json()["image_id"] for r in responses}
        await assert_one_of_everything(product, first_api, storage, sessions, project_id, image_id)
    # The copies the losing requests streamed are gone; the one image keeps one original.
    await eventually(lambda: _assert_equal(orphans_since(before, storage, sessions), set()))
    assert original_key_for(image_id) in upload_keys(storage)


def _assert_equal(got: object, want: object) -> None:
    assert got == want


async def test_a_key_reused_for_other_content_is_refused(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        first = await keyed_upload(client, project_id, "one-photo")
        other = await keyed_upload(client, project_id, "one-photo", jpeg_bytes(300, 200))
    assert first.status_code == 202
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")


async def test_a_repeated_link_request_answers_the_same_image(product: Product) -> None:
    project_id = product.new_project_id()
    body = {"filename": "same.jpg", "project_id": project_id}
    headers = {"Idempotency-Key": "link-key"}
    async with product.client() as client:
        first = await client.post("/images/", json=body, headers=headers)
        again = await client.post("/images/", json=body, headers=headers)
        other = await client.post(
            "/images/", json={**body, "filename": "other.jpg"}, headers=headers
        )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["image_id"] == first.json()["image_id"]
    assert again.json()["params"]["key"] == first.json()["params"]["key"]
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")


async def test_a_malformed_key_is_refused(product: Product) -> None:
    async with product.client() as client:
        response = await keyed_upload(client, product.new_project_id(), "x" * 300)
    assert (response.status_code, response.json()["error"]["code"]) == (
        400,
        "invalid_idempotency_key",
    )
