"""Malformed and oversized requests to `POST /upload_image`, through the real API processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.storage import Storage
from tests.e2e.conftest import Product
from tests.e2e.helpers import upload, wait_until_final
from tests.e2e.test_hostile_inputs import assert_nothing_stored, originals, raw_multipart
from tests.factories import jpeg_bytes

LIMIT = 50 * 1024 * 1024  # the default MAX_UPLOAD_BYTES the product runs with
JPEG = jpeg_bytes(320, 240)


def oversized_jpeg() -> bytes:
    return JPEG + b"\x00" * (LIMIT + 1 - len(JPEG))


async def chunks(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def multipart(project_id: int, data: bytes) -> tuple[bytes, str]:
    return raw_multipart(project_id, "big.jpg", data)


async def two_files(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    files = [("file", ("a.jpg", JPEG)), ("file", ("b.jpg", JPEG))]
    return await client.post("/upload_image", data={"project_id": str(project_id)}, files=files)


async def urlencoded(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    return await client.post("/upload_image", data={"project_id": str(project_id), "file": "x"})


async def oversized_with_length(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    body, content_type = multipart(project_id, oversized_jpeg())
    return await client.post("/upload_image", content=body, headers={"Content-Type": content_type})


async def oversized_chunked(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    body, content_type = multipart(project_id, oversized_jpeg())
    return await client.post(
        "/upload_image", content=chunks(body), headers={"Content-Type": content_type}
    )


async def wrong_boundary(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    body, _ = multipart(project_id, JPEG)
    headers = {"Content-Type": "multipart/form-data; boundary=not-the-one-used"}
    return await client.post("/upload_image", content=body, headers=headers)


async def no_boundary(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    body, _ = multipart(project_id, JPEG)
    headers = {"Content-Type": "multipart/form-data"}
    return await client.post("/upload_image", content=body, headers=headers)


async def no_project(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    return await client.post("/upload_image", files={"file": ("a.jpg", JPEG)})


async def no_file(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    return await client.post(
        "/upload_image", data={"project_id": str(project_id)}, files={"other": ("a", b"x")}
    )


async def too_many_fields(client: httpx.AsyncClient, project_id: int) -> httpx.Response:
    fields = {f"field{i}": "x" for i in range(20)} | {"project_id": str(project_id)}
    return await client.post("/upload_image", data=fields, files={"file": ("a.jpg", JPEG)})


REQUESTS = {
    "two file parts": (two_files, 400, "bad_request"),
    "urlencoded body": (urlencoded, 415, "unsupported_media_type"),
    "oversized with Content-Length": (oversized_with_length, 413, "payload_too_large"),
    "oversized, chunked without Content-Length": (oversized_chunked, 413, "payload_too_large"),
    "boundary that does not match the body": (wrong_boundary, 400, "bad_request"),
    "no boundary at all": (no_boundary, 400, "bad_request"),
    "no project_id": (no_project, 422, "validation_error"),
    "no file part": (no_file, 400, "bad_request"),
    "too many fields": (too_many_fields, 400, "bad_request"),
}


@pytest.mark.parametrize("name", list(REQUESTS))
async def test_malformed_request(
    name: str, product: Product, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    send, status, code = REQUESTS[name]
    project_id = product.new_project_id()
    before = originals(storage)
    async with product.client() as client:
        response = await send(client, project_id)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert_nothing_stored(product, storage, sessions, project_id, before)


async def test_a_normal_upload_still_succeeds_afterwards(product: Product) -> None:
    async with product.client() as client:
        image_id = await upload(client, product.new_project_id(), "fine.jpg", jpeg_bytes(800, 600))
        image = await wait_until_final(client, image_id)
    assert image["state"] == "done"
