"""2. Bounded request bodies, authentication first.

Through real API processes: the key is checked before a byte of the body is read, JSON
bodies are bounded by their declared length and while they stream, unknown fields are
refused, uploads keep a pace and a per-key concurrency cap, multipart framing is bounded,
pagination answers 422 and a database outage 503 on every route.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.storage import Storage
from devstack.processes import stop_all
from tests.e2e.conftest import Product
from tests.e2e.helpers import orphans_since, upload
from tests.e2e.test_hostile_inputs import assert_nothing_stored, originals
from tests.factories import jpeg_bytes
from tests.security.conftest import SecureApi, start_api
from tests.security.rawhttp import RawConnection, multipart_head

JPEG = jpeg_bytes(320, 240)
ANSWER_WITHIN = 5.0


async def declared_but_unsent(api: SecureApi, path: str, headers: dict[str, str]) -> int:
    """The status answered to a request whose huge body never comes."""
    connection = await RawConnection.open(api.port)
    try:
        await connection.send_head("POST", path, {"Content-Length": str(200 * 2**20), **headers})
        return (await connection.response(ANSWER_WITHIN)).status
    finally:
        await connection.close()


async def test_the_key_is_checked_before_any_body_is_read(secure_api: SecureApi) -> None:
    json_type = {"Content-Type": "application/json"}
    form_type = {"Content-Type": "multipart/form-data; boundary=b"}
    for path, content_type in (("/images/", json_type), ("/upload_image", form_type)):
        for key in (None, "not-a-key"):
            auth = {"Authorization": f"Bearer {key}"} if key else {}
            assert await declared_but_unsent(secure_api, path, content_type | auth) == 401, path
    # With a valid key, a JSON body too large by its Content-Length is refused unread.
    auth = {"Authorization": f"Bearer {secure_api.tenant.key}"}
    assert await declared_but_unsent(secure_api, "/images/", json_type | auth) == 413


async def chunked(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_json_bodies_are_bounded_while_streaming_and_unknown_fields_refused(
    secure_api: SecureApi,
) -> None:
    tenant = secure_api.tenant
    padded = f'{{"filename": "a.jpg", "project_id": {tenant.project_id}, "pad": "'.encode()
    body = padded + b"a" * 200_000 + b'"}'
    async with secure_api.client(tenant.key) as client:
        streamed = await client.post(
            "/images/", content=chunked(body), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["error"]["code"] == "payload_too_large"
        unknown = await client.post(
            "/images/", json={"filename": "a.jpg", "project_id": tenant.project_id, "x": 1}
        )
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["error"]["code"] == "validation_error"
        fine = await client.post(
            "/images/", json={"filename": "a.jpg", "project_id": tenant.project_id}
        )
        assert fine.status_code == 201, fine.text


async def start_slow_upload(api: SecureApi, key: str) -> RawConnection:
    connection = await RawConnection.open(api.port)
    head = multipart_head(api.tenant.project_id)
    await connection.send_head(
        "POST",
        "/upload_image",
        {
            "Authorization": f"Bearer {key}",
            "Content-Type": "multipart/form-data; boundary=raw-boundary",
            "Content-Length": str(2 * 2**20),
        },
    )
    await connection.send(head + JPEG[:100])
    return connection


async def test_a_slow_upload_is_refused_and_leaves_nothing(
    secure_api: SecureApi, storage: Storage, sessions: sessionmaker[Session], product: Product
) -> None:
    before = originals(storage)
    connection = await start_slow_upload(secure_api, secure_api.tenant.key)
    try:
        # UPLOAD_RATE_GRACE_SECONDS=2 at 64 KiB/s: far behind after a few seconds.
        response = await connection.response(within=15)
    finally:
        await connection.close()
    assert response.status == 408, response.body
    assert response.json()["error"]["code"] == "upload_too_slow"
    await asyncio.sleep(0.5)  # the aborted object is removed just after the answer
    assert orphans_since(before, storage, sessions) == set()


async def test_one_key_may_stream_only_so_many_uploads_at_once(secure_api: SecureApi) -> None:
    tenant = secure_api.tenant
    slow = await start_slow_upload(secure_api, tenant.key)
    try:
        await asyncio.sleep(0.3)  # the slow upload holds the key's one slot
        async with secure_api.client(tenant.key) as client:
            second = await client.post(
                "/upload_image",
                data={"project_id": str(tenant.project_id)},
                files={"file": ("b.jpg", JPEG)},
            )
            assert second.status_code == 429, second.text
            assert second.json()["error"]["code"] == "rate_limited"
            assert second.headers["Retry-After"] == "1"
            # Another key is not held back by this one.
            async with secure_api.client(secure_api.operator_key) as operator:
                await upload(operator, tenant.project_id, "c.jpg", JPEG)
            assert (await slow.response(within=15)).status == 408
            await upload(client, tenant.project_id, "d.jpg", JPEG)  # the slot is free again
    finally:
        await slow.close()


def form(
    project_id: int, *, preamble: bytes = b"", epilogue: bytes = b"", extra: str = ""
) -> bytes:
    return (
        preamble
        + multipart_head(project_id).replace(
            b"Content-Type: image/jpeg\r\n", f"Content-Type: image/jpeg\r\n{extra}".encode()
        )
        + JPEG
        + b"\r\n--raw-boundary--\r\n"
        + epilogue
    )


BIG_HEADERS = "".join(f"X-Padding-{i}: {'p' * 1500}\r\n" for i in range(3))
FRAMING = {
    "4 KiB preamble": {"preamble": b"\r\n" * 2048},
    "4 KiB epilogue": {"epilogue": b"e" * 4096},
    "4.5 KiB of part headers": {"extra": BIG_HEADERS},
}


@pytest.mark.parametrize("case", list(FRAMING))
async def test_multipart_framing_is_bounded(
    case: str, product: Product, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    project_id = product.new_project_id()
    before = originals(storage)
    body = form(project_id, **FRAMING[case])  # type: ignore[arg-type]
    async with product.client() as client:
        response = await client.post(
            "/upload_image",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=raw-boundary"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"
    assert_nothing_stored(product, storage, sessions, project_id, before)


async def test_a_small_preamble_and_epilogue_are_still_accepted(product: Product) -> None:
    body = form(product.new_project_id(), preamble=b"\r\n", epilogue=b"\r\n")
    async with product.client() as client:
        response = await client.post(
            "/upload_image",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=raw-boundary"},
        )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("query", ["offset=-1", "offset=1000001", f"offset={2**63}", "limit=0"])
async def test_pagination_out_of_bounds_answers_422(product: Product, query: str) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        for path in (f"/projects/{project_id}", f"/projects/{project_id}/images"):
            response = await client.get(f"{path}?{query}")
            assert response.status_code == 422, (path, query, response.text)
            assert response.json()["error"]["code"] == "validation_error"


@pytest.fixture
def api_without_database(
    secure_api: SecureApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureApi]:
    """The secure API's settings, with DATABASE_URL pointing where nothing listens."""
    env = {
        **secure_api.env,
        # Port 1: refused at once, never taken by another test's process.
        "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/nothing",
    }
    logs = tmp_path_factory.mktemp("no-db-logs")
    base_url, process = start_api("no-db-api", env, logs)
    try:
        yield SecureApi(base_url, process, secure_api.tenant, secure_api.operator_key, "", env)
    finally:
        stop_all([process], grace=10)


async def test_a_database_outage_answers_503_on_every_route(
    api_without_database: SecureApi,
) -> None:
    api = api_without_database
    project_id = api.tenant.project_id
    form_upload = {"data": {"project_id": str(project_id)}, "files": {"file": ("x.jpg", JPEG)}}
    routes: list[tuple[str, str, dict[str, object]]] = [
        ("GET", f"/projects/{project_id}", {}),
        ("GET", f"/projects/{project_id}/images", {}),
        ("GET", f"/images/{uuid.uuid4()}", {}),
        ("POST", f"/images/{uuid.uuid4()}/uploaded", {}),
        ("POST", "/images/", {"json": {"filename": "x.jpg", "project_id": project_id}}),
        ("POST", "/upload_image", form_upload),
    ]
    async with api.client(api.tenant.key) as client:
        for method, path, arguments in routes:
            response = await client.request(method, path, **arguments)  # type: ignore[arg-type]
            assert response.status_code == 503, (method, path, response.text)
            assert response.json()["error"]["code"] == "dependency_unavailable"
            assert "Retry-After" in response.headers
    log = await asyncio.to_thread(Path(api.process.log_path).read_text)
    assert "Traceback" not in log
