"""3. Originals are sealed once confirmed.

Through the real API and worker processes: a POST to an upload link after confirmation
changes nothing the image serves; the link's policy takes exactly one allowlisted type; the
original is a download of its verified type and derivatives their own image type; an image
in `error` links nothing and keeps no object. The seal itself, against the real S3 and
Postgres: pinned to the verified ETag, idempotent, and never moving a row that moved on.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cleanup import CleanupActivities
from activities.uploads import UploadActivities
from core.contracts import (
    ImageState,
    SealInput,
    SweepInput,
    original_key_for,
    staging_key_for,
)
from core.models import Image
from core.settings import Settings
from core.storage import ObjectMissingError, Storage
from tests.activities.test_cleanup import own_bucket
from tests.e2e.conftest import Product
from tests.e2e.helpers import assert_gone, eventually, wait_until_final
from tests.e2e.test_upload_links import create_link, post_to_storage
from tests.factories import jpeg_bytes, photo
from tests.hostile import SVG_XXE, png_with_broken_idat

FIRST = jpeg_bytes(800, 600)
SECOND = jpeg_bytes(640, 480)


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=True) as client:
        return await client.get(url)


async def post_as(link: dict[str, Any], data: bytes, content_type: str) -> httpx.Response:
    fields = {**link["params"], "Content-Type": content_type}
    async with httpx.AsyncClient() as s3:
        return await s3.post(link["upload_link"], data=fields, files={"file": ("f", data)})


async def test_a_post_after_confirmation_changes_nothing_the_image_serves(
    product: Product,
) -> None:
    async with product.client() as client:
        link = await create_link(client, product.new_project_id(), "holiday.jpg")
        assert (await post_to_storage(link, FIRST)).status_code in (200, 201, 204)
        assert (await client.post(link["confirm_url"])).status_code == 202
        image = await wait_until_final(client, link["image_id"])
        # The link is still valid: post other bytes, and even markup, to it.
        for late in (SECOND, SVG_XXE):
            assert (await post_to_storage(link, late)).status_code in (200, 201, 204)
        again = (await client.get(f"/images/{link['image_id']}")).json()
    assert image["state"] == "done" and (image["width"], image["height"]) == (800, 600)
    original = await fetch(again["versions"]["original"])
    assert hashlib.sha256(original.content).digest() == hashlib.sha256(FIRST).digest()
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["content-disposition"] == "attachment"
    thumb = await fetch(again["versions"]["thumb"])
    assert thumb.headers["content-type"] == "image/jpeg"
    assert not [url for url in again["versions"].values() if "staging/" in url]


async def test_the_link_policy_takes_exactly_one_allowlisted_type(product: Product) -> None:
    async with product.client() as client:
        png = await create_link(client, product.new_project_id(), "drawing.png")
        svg = await create_link(client, product.new_project_id(), "drawing.svg")
    assert png["params"]["Content-Type"] == "image/png"
    assert svg["params"]["Content-Type"] == "image/jpeg"  # never a type from the request
    for refused_type in ("image/svg+xml", "text/html", "image/jpeg", "image/png; x=y"):
        refused = await post_as(png, SVG_XXE, refused_type)
        assert refused.status_code == 403, (refused_type, refused.text)
    assert (await post_as(png, FIRST, "image/png")).status_code in (200, 201, 204)


async def test_an_image_in_error_links_nothing_and_keeps_no_upload(
    product: Product, storage: Storage
) -> None:
    async with product.client() as client:
        link = await create_link(client, product.new_project_id(), "notes.jpg")
        await post_to_storage(link, b"not an image at all")
        refused = await client.post(link["confirm_url"])
        assert refused.status_code == 415
        await wait_until_final(client, link["image_id"])
        # A POST to the refused image's link, later, is stored but never served.
        assert (await post_to_storage(link, FIRST)).status_code in (200, 201, 204)
        image = (await client.get(f"/images/{link['image_id']}")).json()
        direct = await client.post(
            "/upload_image",
            data={"project_id": str(product.new_project_id())},
            files={"file": ("b.png", png_with_broken_idat(photo(400, 300)))},
        )
        failed = await wait_until_final(client, direct.json()["image_id"])
    assert image["state"] == "error"
    assert image["versions"] == dict.fromkeys(image["versions"])  # every link null
    assert failed["state"] == "error" and failed["error"]["code"] == "invalid_image"
    assert failed["versions"] == dict.fromkeys(failed["versions"])

    def nothing_kept() -> None:
        for key in (staging_key_for(failed["image_id"]), original_key_for(failed["image_id"])):
            assert_gone(storage, key)

    await eventually(nothing_kept)


async def test_the_sealed_original_is_a_download_of_its_verified_type(
    product: Product, storage: Storage
) -> None:
    async with product.client() as client:
        response = await client.post(
            "/upload_image",
            data={"project_id": str(product.new_project_id())},
            files={"file": ("page.html", FIRST, "text/html")},  # what the client claims
        )
        image = await wait_until_final(client, response.json()["image_id"])
    original = await fetch(image["versions"]["original"])
    assert original.content == FIRST
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["content-disposition"] == "attachment"
    stored = storage.client.head_object(
        Bucket=storage.bucket, Key=original_key_for(image["image_id"])
    )
    assert (stored["ContentType"], stored["ContentDisposition"]) == ("image/jpeg", "attachment")
    with pytest.raises(ObjectMissingError):
        storage.size_of(staging_key_for(image["image_id"]))


def staged_image(
    storage: Storage,
    sessions: sessionmaker[Session],
    state: ImageState,
    data: bytes = FIRST,
    error_code: str | None = None,
) -> tuple[str, str]:
    image_id = str(uuid.uuid4())
    put = storage.client.put_object(Bucket=storage.bucket, Key=staging_key_for(image_id), Body=data)
    with sessions.begin() as session:
        session.add(
            Image(
                id=uuid.UUID(image_id),
                project_id=5,
                state=state.value,
                source_key=staging_key_for(image_id),
                format="JPEG",
                error_code=error_code,
            )
        )
    return image_id, put["ETag"]


def seal(activities: UploadActivities, image_id: str, etag: str) -> None:
    request = SealInput(
        image_id, staging_key_for(image_id), original_key_for(image_id), etag, "JPEG"
    )
    ActivityEnvironment().run(activities.seal, request)


def source_key(sessions: sessionmaker[Session], image_id: str) -> str:
    with sessions() as session:
        row = session.get(Image, uuid.UUID(image_id))
        assert row is not None
        return row.source_key


def test_the_seal_is_pinned_to_the_verified_etag_and_idempotent(
    settings: Settings, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    activities = UploadActivities(storage, sessions, settings)
    image_id, etag = staged_image(storage, sessions, ImageState.UPLOADED)
    # The staged object was replaced after it was verified: nothing is sealed.
    storage.client.put_object(Bucket=storage.bucket, Key=staging_key_for(image_id), Body=SECOND)
    with pytest.raises(ApplicationError) as refused:
        seal(activities, image_id, etag)
    assert refused.value.type == "upload_changed" and refused.value.non_retryable
    with pytest.raises(ObjectMissingError):
        storage.size_of(original_key_for(image_id))

    image_id, etag = staged_image(storage, sessions, ImageState.UPLOADED)
    seal(activities, image_id, etag)
    seal(activities, image_id, etag)  # a rerun: the staged object is gone, the seal holds
    assert source_key(sessions, image_id) == original_key_for(image_id)
    sealed = storage.client.get_object(Bucket=storage.bucket, Key=original_key_for(image_id))
    assert sealed["Body"].read() == FIRST
    with pytest.raises(ObjectMissingError):
        storage.size_of(staging_key_for(image_id))


def test_the_seal_never_moves_a_row_that_moved_on(
    settings: Settings, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    activities = UploadActivities(storage, sessions, settings)
    for later, code in ((ImageState.PROCESSING, None), (ImageState.ERROR, "invalid_image")):
        image_id, etag = staged_image(storage, sessions, later, error_code=code)
        seal(activities, image_id, etag)  # a late attempt: the copy is harmless, the row stays
        assert source_key(sessions, image_id) == staging_key_for(image_id)
    # After a transient fault, a reset takes the image up again: sealing is its next step.
    image_id, etag = staged_image(
        storage, sessions, ImageState.ERROR, error_code="storage_unavailable"
    )
    seal(activities, image_id, etag)
    assert source_key(sessions, image_id) == original_key_for(image_id)


def test_the_sweep_removes_staged_uploads_nothing_needs(
    settings: Settings, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    with own_bucket(storage) as bucket:
        sweep_own_bucket(settings, bucket, sessions)


def sweep_own_bucket(settings: Settings, storage: Storage, sessions: sessionmaker[Session]) -> None:
    """In a bucket of its own, so that no other test's uploads are swept."""
    sweeper = CleanupActivities(storage, sessions, settings)
    waiting, _ = staged_image(storage, sessions, ImageState.UPLOADED)
    done, _ = staged_image(storage, sessions, ImageState.DONE)
    refused, _ = staged_image(storage, sessions, ImageState.ERROR)
    with sessions.begin() as session:
        row = session.get(Image, uuid.UUID(refused))
        assert row is not None
        row.error_code = "unsupported_format"
    orphan = str(uuid.uuid4())
    storage.put_bytes(staging_key_for(orphan), FIRST, "image/jpeg", "private")
    time.sleep(1.1)  # S3 dates objects by the second
    ActivityEnvironment().run(sweeper.sweep_originals, SweepInput(older_than_seconds=1))
    assert storage.size_of(staging_key_for(waiting)) == len(FIRST)
    for gone in (done, refused, orphan):
        with pytest.raises(ObjectMissingError):
            storage.size_of(staging_key_for(gone))
