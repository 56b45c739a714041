"""4. Decoders and metadata, through the real API and worker processes.

A corrupt PNG, WebP, GIF or AVIF whose header is fine ends in `invalid_image` after one
attempt, never retried; metadata over its bound is refused with `metadata_too_large`, at
the API (direct upload) and at confirmation (upload link).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from core.contracts import PREPARE_ACTIVITY, workflow_id_for
from tests.e2e.conftest import Product
from tests.e2e.helpers import wait_until_final
from tests.e2e.test_upload_links import create_link, post_to_storage
from tests.factories import photo
from tests.hostile import (
    corrupt_avif,
    corrupt_gif,
    corrupt_webp,
    png_with_broken_idat,
    quadrants,
    save,
)

CORRUPT: dict[str, tuple[Callable[[], bytes], str]] = {
    "png with a broken IDAT": (lambda: png_with_broken_idat(photo(400, 300)), "a.png"),
    "corrupt webp": (lambda: corrupt_webp(photo(400, 300)), "a.webp"),
    "corrupt gif": (lambda: corrupt_gif(photo(400, 300)), "a.gif"),
    "corrupt avif": (lambda: corrupt_avif(photo(400, 300)), "a.avif"),
}
# One attempt and the bookkeeping: far below the minutes a retried activity would take.
FAILS_WITHIN_SECONDS = 30
INTERNAL_NAMES = ("Error", "Exception", "Vips", "zlib", "Traceback", "http://", "https://")


async def prepare_attempts(temporal_client: Client, image_id: str) -> list[int]:
    history = await temporal_client.get_workflow_handle(workflow_id_for(image_id)).fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == PREPARE_ACTIVITY
    }
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


@pytest.mark.parametrize("case", list(CORRUPT))
async def test_a_corrupt_file_fails_at_once_as_invalid_image(
    case: str, product: Product, temporal_client: Client
) -> None:
    body, filename = CORRUPT[case]
    started = time.monotonic()
    async with product.client() as client:
        response = await client.post(
            "/upload_image",
            data={"project_id": str(product.new_project_id())},
            files={"file": (filename, body())},
        )
        assert response.status_code == 202, response.text  # the header is fine
        image = await wait_until_final(client, response.json()["image_id"])
    assert time.monotonic() - started < FAILS_WITHIN_SECONDS
    assert (image["state"], image["error"]["code"]) == ("error", "invalid_image"), image
    assert not any(name in image["error"]["message"] for name in INTERNAL_NAMES), image
    assert await prepare_attempts(temporal_client, image["image_id"]) == [1]


OVERSIZED_METADATA = {
    "icc": lambda: save(quadrants(64, 64), "JPEG", icc_profile=bytes(800 * 1024)),
    "exif": lambda: save(quadrants(64, 64), "PNG", exif=b"Exif\0\0" + bytes(100 * 1024)),
}


@pytest.mark.parametrize("kind", list(OVERSIZED_METADATA))
async def test_oversized_metadata_is_refused_with_a_stable_code(
    kind: str, product: Product
) -> None:
    data = OVERSIZED_METADATA[kind]()
    async with product.client() as client:
        direct = await client.post(
            "/upload_image",
            data={"project_id": str(product.new_project_id())},
            files={"file": ("m.img", data)},
        )
        link = await create_link(client, product.new_project_id(), "m.jpg")
        stored = await post_to_storage(link, data)
        assert stored.status_code in (200, 201, 204), stored.text
        confirmed = await client.post(link["confirm_url"])
    for response in (direct, confirmed):
        assert isinstance(response, httpx.Response)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "metadata_too_large"
