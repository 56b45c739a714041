"""5. Browser-facing hardening, through real API processes.

A Host allowlist against DNS rebinding and, while no key is needed, no cross-site form
posts; nosniff, a CSP and no framing; /docs served offline; no token in a log line; and an
open WebSocket closed once its key is revoked.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core.models import ApiKey
from core.storage import Storage
from tests.e2e.conftest import Product
from tests.e2e.test_access_control import keys_command
from tests.e2e.test_hostile_inputs import assert_nothing_stored, originals
from tests.factories import jpeg_bytes
from tests.security.conftest import SecureApi

JPEG = jpeg_bytes(320, 240)


async def test_only_loopback_host_names_are_served_in_open_mode(product: Product) -> None:
    port = product.base_url.rsplit(":", 1)[1]
    path = f"/projects/{product.new_project_id()}"
    async with product.client() as client:
        for host in ("evil.example", f"rebound.example:{port}", "10.0.0.1"):
            refused = await client.get(path, headers={"Host": host})
            assert refused.status_code == 400, host
            assert refused.json()["error"]["code"] == "host_not_allowed"
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            assert (await client.get(path, headers={"Host": host})).status_code == 200
    with pytest.raises(InvalidStatus):
        await websockets.connect(
            product.ws_url(1), additional_headers={"Host": "evil.example"}, open_timeout=10
        )


CROSS_SITE = {
    "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
    "Sec-Fetch-Site same-site": {"Sec-Fetch-Site": "same-site"},
    "a foreign Origin": {"Origin": "http://evil.example"},
    "Origin null": {"Origin": "null"},
}


@pytest.mark.parametrize("case", list(CROSS_SITE))
async def test_cross_site_posts_are_refused_in_open_mode(
    case: str, product: Product, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    project_id = product.new_project_id()
    before = originals(storage)
    headers = CROSS_SITE[case]
    async with product.client() as client:
        direct = await client.post(
            "/upload_image",
            data={"project_id": str(project_id)},
            files={"file": ("a.jpg", JPEG)},
            headers=headers,
        )
        link = await client.post(
            "/images/", json={"filename": "a.jpg", "project_id": project_id}, headers=headers
        )
    for response in (direct, link):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "cross_site_request"
    assert_nothing_stored(product, storage, sessions, project_id, before)


async def test_the_apis_own_page_may_still_post(product: Product) -> None:
    own = {"Origin": product.base_url, "Sec-Fetch-Site": "same-origin"}
    async with product.client() as client:
        response = await client.post(
            "/upload_image",
            data={"project_id": str(product.new_project_id())},
            files={"file": ("a.jpg", JPEG)},
            headers=own,
        )
    assert response.status_code == 202, response.text


def csp(response: httpx.Response) -> dict[str, str]:
    directives = (part.strip() for part in response.headers["content-security-policy"].split(";"))
    return {name: rest for name, _, rest in (d.partition(" ") for d in directives if d)}


async def test_the_page_and_the_api_send_nosniff_csp_and_refuse_framing(
    product: Product,
) -> None:
    async with product.client() as client:
        page = await client.get("/")
        api = await client.get(f"/projects/{product.new_project_id()}")
        script = await client.get("/static/app.js")
        missing = await client.get("/no-such-route")
    for response in (page, api, script, missing):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert csp(response)["frame-ancestors"] == "'none'"
    policy = csp(page)
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert "unsafe-inline" not in policy["style-src"]
    assert "<script>" not in page.text and "<style>" not in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert csp(api)["default-src"] == "'none'"


async def test_docs_are_served_offline_by_the_api(product: Product) -> None:
    async with product.client() as client:
        docs = await client.get("/docs")
        assert docs.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", docs.text)
        assert urls, docs.text
        for url in urls:
            assert url.startswith("/"), f"/docs loads {url} from elsewhere"
            asset = await client.get(url)
            assert asset.status_code == 200, url
        assert (await client.get("/openapi.json")).status_code == 200
    assert "cdn" not in docs.text.lower()
    assert "'unsafe-inline'" not in csp(docs)["script-src"]


async def ws_token(api: SecureApi, key: str, project_id: int) -> str:
    async with api.client(key) as client:
        response = await client.post(f"/projects/{project_id}/ws-token")
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


async def first_message(url: str, **options: Any) -> dict[str, Any]:
    async with websockets.connect(url, open_timeout=10, **options) as socket:
        message: dict[str, Any] = json.loads(await socket.recv())
    return message


def ws_url(api: SecureApi, project_id: int, token: str | None = None) -> str:
    url = api.base_url.replace("http://", "ws://") + f"/ws/projects/{project_id}"
    return f"{url}?token={token}" if token else url


async def test_tokens_never_reach_the_logs(secure_api: SecureApi) -> None:
    tenant = secure_api.tenant
    token = await ws_token(secure_api, tenant.key, tenant.project_id)
    snapshot = await first_message(ws_url(secure_api, tenant.project_id, token))
    assert snapshot["type"] == "snapshot"
    await asyncio.sleep(0.5)  # the log lines of the closed socket
    log = await asyncio.to_thread(secure_api.log_text)
    assert f"/ws/projects/{tenant.project_id}?token=" in log, "the socket was not logged"
    for secret in (token, token.split(".")[1], tenant.key):
        assert secret not in log


async def test_revoking_a_key_closes_its_open_sockets(
    stored_key_api: SecureApi, subprocess_env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    api, project_id = stored_key_api, stored_key_api.tenant.project_id
    created = keys_command(subprocess_env, "create", "--project", str(project_id))
    fields = dict(line.split(maxsplit=1) for line in created.splitlines()[:3])
    key, key_id = fields["key"], uuid.UUID(fields["id"])
    try:
        token = await ws_token(api, key, project_id)
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            websockets.connect(ws_url(api, project_id, token), open_timeout=10) as by_token,
            websockets.connect(
                ws_url(api, project_id), additional_headers=headers, open_timeout=10
            ) as by_key,
        ):
            for socket in (by_token, by_key):
                assert json.loads(await socket.recv())["type"] == "snapshot"
            keys_command(subprocess_env, "revoke", str(key_id))
            for socket in (by_token, by_key):
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(30):
                        while True:
                            await socket.recv()  # pings until the key check closes it
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        # A token minted before the revocation opens nothing either.
        async with websockets.connect(ws_url(api, project_id, token), open_timeout=10) as late:
            with pytest.raises(ConnectionClosed) as refused:
                await late.recv()
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008
    finally:
        with sessions.begin() as session:
            session.execute(delete(ApiKey).where(ApiKey.id == key_id))
