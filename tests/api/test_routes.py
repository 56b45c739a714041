"""The HTTP surface in process, against the real Postgres, S3 and Temporal.

No worker polls the test task queue here, so accepted images stay `uploaded`; the
end-to-end tests cover processing.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.contracts import ORIGINALS_PREFIX, STAGING_PREFIX, original_key_for
from core.inspection import HEADER_BYTES
from core.models import Image
from core.settings import Settings
from core.storage import PART_SIZE, Storage
from tests.api.conftest import serve
from tests.factories import encoded, jpeg_bytes, noise, photo

JPEG = jpeg_bytes(640, 480)


def upload(project_id: object, data: bytes, filename: str = "photo.jpg") -> dict[str, object]:
    return {"data": {"project_id": str(project_id)}, "files": {"file": (filename, data)}}


def stored_state(storage: Storage, sessions: sessionmaker[Session]) -> tuple[int, int]:
    """How many image rows and staged or original objects exist."""
    with sessions() as session:
        rows = session.scalar(select(func.count()).select_from(Image)) or 0
    objects = sum(
        storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix).get("KeyCount", 0)
        for prefix in (STAGING_PREFIX, ORIGINALS_PREFIX)
    )
    return rows, objects


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "s3": "ok", "temporal": "ok", "auth": "ok"}


async def test_readiness_names_the_dependency_that_is_down(
    settings: Settings, migrated: None, unused_port: int
) -> None:
    broken = settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{unused_port}"})
    async with serve(broken) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["s3"].startswith("down")
    assert ready.json()["checks"]["postgres"] == "ok"


async def test_upload_is_accepted_and_readable(api: httpx.AsyncClient, storage: Storage) -> None:
    # A project of its own: the listing below must hold this image only.
    project_id = 10**9 + uuid.uuid4().int % 10**12
    response = await api.post("/upload_image", **upload(project_id, JPEG))  # type: ignore[arg-type]

    assert response.status_code == 202
    accepted = response.json()
    assert set(accepted) == {
        "image_id",
        "project_id",
        "state",
        "workflow_id",
        "status_url",
        "duplicate_of",
    }
    assert accepted["duplicate_of"] is None
    assert accepted["state"] == "uploaded"
    assert accepted["workflow_id"] == f"image-{accepted['image_id']}"
    image = (await api.get(f"/images/{accepted['image_id']}")).json()
    assert (image["format"], image["width"], image["height"]) == ("JPEG", 640, 480)
    assert image["original_filename"] == "photo.jpg"
    assert image["bytes"] == len(JPEG)
    assert image["versions"]["thumb"] is None
    # No worker polls this test's queue: the upload went straight to its original key, as a
    # download of the type its header showed, and is linked as such (nothing to seal).
    assert image["versions"]["original"] is not None
    stored = storage.client.get_object(
        Bucket=storage.bucket, Key=original_key_for(accepted["image_id"])
    )
    assert stored["Body"].read() == JPEG
    assert (stored["ContentType"], stored["ContentDisposition"]) == ("image/jpeg", "attachment")
    listing = (await api.get(f"/projects/{project_id}/images")).json()
    assert [i["image_id"] for i in listing["images"]] == [accepted["image_id"]]


async def test_a_multipart_original_is_stored_as_a_download_of_its_type(
    api: httpx.AsyncClient, storage: Storage
) -> None:
    # Past one 8 MiB part: the type is decided from the header before the first part goes.
    data = JPEG + b"\x00" * (PART_SIZE * 2)
    response = await api.post("/upload_image", **upload(4242, data))  # type: ignore[arg-type]

    assert response.status_code == 202, response.text
    stored = storage.client.get_object(
        Bucket=storage.bucket, Key=original_key_for(response.json()["image_id"])
    )
    assert (stored["ContentType"], stored["ContentDisposition"]) == ("image/jpeg", "attachment")
    assert stored["Body"].read() == data


@pytest.mark.parametrize(
    ("data", "project_id", "status", "code"),
    [
        (b"just some text", 1, 415, "unsupported_format"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 1, 415, "unsupported_format"),
        (encoded(photo(64, 64), "BMP"), 1, 415, "unsupported_format"),
        (JPEG, "abc", 422, "validation_error"),
        (JPEG, 0, 422, "validation_error"),
        (b"", 1, 422, "invalid_image"),
    ],
)
async def test_bad_uploads_are_refused_and_store_nothing(
    api: httpx.AsyncClient,
    storage: Storage,
    sessions: sessionmaker[Session],
    data: bytes,
    project_id: object,
    status: int,
    code: str,
) -> None:
    before = stored_state(storage, sessions)
    response = await api.post("/upload_image", **upload(project_id, data))  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert stored_state(storage, sessions) == before


async def test_non_multipart_and_missing_parts_are_refused(api: httpx.AsyncClient) -> None:
    as_json = await api.post("/upload_image", json={"project_id": 1})
    assert (as_json.status_code, as_json.json()["error"]["code"]) == (415, "unsupported_media_type")
    no_file = await api.post("/upload_image", data={"project_id": "1"}, files={"x": ("a", b"")})
    assert no_file.status_code == 400
    two_files = await api.post(
        "/upload_image",
        data={"project_id": "1"},
        files=[("file", ("a.jpg", JPEG)), ("file", ("b.jpg", JPEG))],
    )
    assert (two_files.status_code, two_files.json()["error"]["code"]) == (400, "bad_request")


async def test_a_repeated_project_id_is_refused_and_stores_nothing(
    api: httpx.AsyncClient, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    # Checked on arrival, then overwritten: the project checked must be the one used.
    before = stored_state(storage, sessions)
    response = await api.post(
        "/upload_image",
        data={"project_id": ["1", "2"]},
        files={"file": ("a.jpg", JPEG)},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")
    assert stored_state(storage, sessions) == before


async def test_too_large_uploads_get_413_and_store_nothing(
    settings: Settings, migrated: None, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 10_000})
    before = stored_state(storage, sessions)
    async with serve(small) as client:
        response = await client.post("/upload_image", **upload(1, jpeg_bytes(1600, 1200)))  # type: ignore[arg-type]
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
    assert stored_state(storage, sessions) == before


async def test_missing_resources_are_404_with_the_error_body(api: httpx.AsyncClient) -> None:
    missing = await api.get(f"/images/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    malformed = await api.get("/images/not-a-uuid")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (422, "validation_error")


async def test_an_empty_project_has_zero_counts(api: httpx.AsyncClient) -> None:
    body = (await api.get("/projects/987654321")).json()
    assert body["total"] == 0
    assert body["images"] == []
    assert set(body["counts"]) == {"init", "uploaded", "processing", "done", "error"}


async def test_link_requests_are_validated(api: httpx.AsyncClient) -> None:
    for body in (
        {"project_id": 1},
        {"filename": "", "project_id": 1},
        {"filename": "a", "project_id": 0},
    ):
        response = await api.post("/images/", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    unknown = await api.post(f"/images/{uuid.uuid4()}/uploaded")
    assert unknown.status_code == 404


async def test_status_falls_back_to_the_database_when_no_worker_answers(
    settings: Settings, migrated: None, storage: Storage
) -> None:
    unpolled = settings.model_copy(
        update={
            "temporal_task_queue": f"nobody-polls-{uuid.uuid4()}",
            "status_query_timeout_seconds": 0.5,
        }
    )
    async with serve(unpolled) as client:
        accepted = (await client.post("/upload_image", **upload(5, JPEG))).json()  # type: ignore[arg-type]
        image = (await client.get(f"/images/{accepted['image_id']}")).json()
    assert (image["state"], image["progress"]) == ("uploaded", None)


@pytest.mark.parametrize("image_format", ["WEBP", "AVIF"])
async def test_a_webp_or_avif_larger_than_the_sniffed_head_is_accepted(
    api: httpx.AsyncClient, storage: Storage, image_format: str
) -> None:
    """Their openers read the whole file, so only the container header sizes them while
    the body streams (they were refused as broken once past 1 MiB)."""
    data = encoded(noise(1301, 1103), image_format, quality=90)
    assert len(data) > HEADER_BYTES
    project_id = 10**9 + uuid.uuid4().int % 10**12
    name = f"big.{image_format.lower()}"
    response = await api.post("/upload_image", **upload(project_id, data, name))  # type: ignore[arg-type]

    assert response.status_code == 202, response.text
    image = (await api.get(f"/images/{response.json()['image_id']}")).json()
    assert (image["format"], image["width"], image["height"]) == (image_format, 1301, 1103)
