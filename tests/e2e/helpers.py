"""What a client of the product does: upload, poll, download."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.contracts import ORIGINALS_PREFIX, STAGING_PREFIX
from core.models import Image as ImageRow
from core.storage import ObjectMissingError, Storage

DONE_WITHIN_SECONDS = 60
EVENTUALLY_SECONDS = 10


async def upload(client: httpx.AsyncClient, project_id: int, name: str, data: bytes) -> str:
    response = await client.post(
        "/upload_image", data={"project_id": str(project_id)}, files={"file": (name, data)}
    )
    assert response.status_code == 202, response.text
    image_id: str = response.json()["image_id"]
    return image_id


async def wait_until_final(client: httpx.AsyncClient, image_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + DONE_WITHIN_SECONDS
    while time.monotonic() < deadline:
        image: dict[str, Any] = (await client.get(f"/images/{image_id}")).json()
        if image["state"] in ("done", "error"):
            return image
        await asyncio.sleep(0.2)
    pytest.fail(f"image {image_id} not final within {DONE_WITHIN_SECONDS}s")


async def download(url: str) -> tuple[Image.Image, httpx.Headers]:
    # A listing's link redirects (307) to a presigned S3 URL.
    async with httpx.AsyncClient(follow_redirects=True) as client:
        response = await client.get(url)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image, response.headers


async def eventually(check: Callable[[], None]) -> None:
    """Retry an assertion: some cleanup happens just after the state it follows."""
    deadline = time.monotonic() + EVENTUALLY_SECONDS
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def assert_gone(storage: Storage, key: str) -> None:
    """A plain assert, so that `eventually` retries it: `pytest.raises` fails with an
    exception that is not an AssertionError, which would end the wait at the first try."""
    try:
        storage.size_of(key)
    except ObjectMissingError:
        return
    raise AssertionError(f"{key} is still stored")


def upload_keys(storage: Storage) -> set[str]:
    """Keys of uploads in the bucket, staged (as they land) or sealed as originals."""
    return {
        key
        for prefix in (STAGING_PREFIX, ORIGINALS_PREFIX)
        for page in storage.list_pages(prefix, 1000)
        for key, _ in page
    }


def orphans_since(before: set[str], storage: Storage, sessions: sessionmaker[Session]) -> set[str]:
    """Upload objects made since `before` that belong to no image: what a refused request
    must not leave. Objects other images' workflows seal meanwhile have a row."""
    new = upload_keys(storage) - before
    ids = {key: _image_id(key) for key in new}
    with sessions() as session:
        rows = select(ImageRow.id).where(ImageRow.id.in_({i for i in ids.values() if i}))
        known = set(session.scalars(rows))
    return {key for key, image_id in ids.items() if image_id not in known}


def _image_id(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key.rsplit("/", 1)[1])
    except ValueError:
        return None
