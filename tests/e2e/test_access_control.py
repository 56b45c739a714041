"""Access control through real API processes started with API_KEYS (the `keyed_product`).

Keys, scopes, WebSocket tokens and Origin, the shared upload rate limit, and links.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import websockets
from pydantic import SecretStr
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from websockets.exceptions import ConnectionClosed

from api.access.ws_tokens import WsTokenSigner
from core.models import ApiKey, Image
from core.storage import Storage
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import KeyedProduct, Product, Tenant
from tests.e2e.helpers import orphans_since, upload, upload_keys, wait_until_final
from tests.factories import jpeg_bytes

JPEG = jpeg_bytes(320, 240)
POLICY_VIOLATION = 1008


@dataclass
class Stored:
    """The project's image rows, and every upload object (staged or sealed) in the bucket."""

    rows: int
    keys: set[str]

    def unchanged(self, sessions: sessionmaker[Session], storage: Storage, project_id: int) -> bool:
        after = stored(sessions, storage, project_id)
        return after.rows == self.rows and not orphans_since(self.keys, storage, sessions)


def stored(sessions: sessionmaker[Session], storage: Storage, project_id: int) -> Stored:
    with sessions() as session:
        rows = session.scalar(
            select(func.count()).select_from(Image).where(Image.project_id == project_id)
        )
    return Stored(rows or 0, upload_keys(storage))


def every_route(project_id: int, image_id: uuid.UUID) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request arguments) for each HTTP route that reads or writes a project."""
    link_body = {"filename": "x.jpg", "project_id": project_id}
    webhook_body = {"url": "https://example.com/hook", "events": ["image.done"]}
    form = {"data": {"project_id": str(project_id)}, "files": {"file": ("x.jpg", JPEG)}}
    spec = (("thumb", 150, 120), ("big_thumb", 700, 700), ("big_1920", 1920, 1080))
    presets = [{"name": n, "width": w, "height": h} for n, w, h in (*spec, ("d2500", 9, 9))]
    presets_body = {"presets": presets}
    return [
        ("GET", f"/projects/{project_id}", {}),
        ("GET", f"/projects/{project_id}/images", {}),
        ("POST", f"/projects/{project_id}/ws-token", {}),
        ("GET", f"/projects/{project_id}/webhooks", {}),
        ("POST", f"/projects/{project_id}/webhooks", {"json": webhook_body}),
        ("GET", f"/projects/{project_id}/presets", {}),
        ("PUT", f"/projects/{project_id}/presets", {"json": presets_body}),
        ("GET", f"/projects/{project_id}/reprocess", {}),
        ("POST", f"/projects/{project_id}/reprocess", {"json": {"action": "start"}}),
        ("POST", f"/projects/{project_id}/retry", {}),
        ("POST", f"/images/{image_id}/reprocess", {}),
        ("POST", f"/images/{image_id}/retry", {}),
        ("GET", f"/images/{image_id}", {}),
        ("GET", f"/images/{image_id}/versions/thumb", {}),
        ("POST", f"/images/{image_id}/uploaded", {}),
        ("POST", "/upload_image", form),
        ("POST", "/images/", {"json": link_body}),
    ]


async def test_health_is_open_and_every_other_route_needs_a_valid_key(
    keyed_product: KeyedProduct, sessions: sessionmaker[Session], storage: Storage
) -> None:
    project_id = keyed_product.tenant_a.project_id
    before = stored(sessions, storage, project_id)
    async with keyed_product.client() as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        for key in (None, "not-a-key", keyed_product.tenant_a.key + "x"):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            for method, path, arguments in every_route(project_id, uuid.uuid4()):
                response = await client.request(method, path, headers=headers, **arguments)
                assert response.status_code == 401, (method, path, response.text)
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["WWW-Authenticate"] == "Bearer"
    assert before.unchanged(sessions, storage, project_id)


async def test_metrics_need_a_key_scoped_to_every_project(keyed_product: KeyedProduct) -> None:
    """Metrics count every tenant's images: a tenant key may not read them."""
    async with keyed_product.client() as client:
        assert (await client.get("/metrics")).status_code == 401
        tenant = await client.get("/metrics", headers=keyed_product.tenant_a.headers)
        assert (tenant.status_code, tenant.json()["error"]["code"]) == (403, "forbidden")
        operator = {"Authorization": f"Bearer {keyed_product.operator_key}"}
        scraped = await client.get("/metrics", headers=operator)
        assert scraped.status_code == 200
        assert "imgproc_http_requests_total" in scraped.text


async def test_another_tenants_project_is_not_found_on_every_route(
    keyed_product: KeyedProduct, sessions: sessionmaker[Session], storage: Storage
) -> None:
    a, b = keyed_product.tenant_a, keyed_product.tenant_b
    async with keyed_product.client(key=b.key) as owner:
        theirs = uuid.UUID(await upload(owner, b.project_id, "b.jpg", JPEG))
        link = await owner.post("/images/", json={"filename": "b.jpg", "project_id": b.project_id})
        assert link.status_code == 201, link.text
    before = stored(sessions, storage, b.project_id)
    async with keyed_product.client(api=1, key=a.key) as intruder:
        missing = await intruder.get(f"/images/{uuid.uuid4()}")
        routes = every_route(b.project_id, theirs)
        routes.append(("POST", f"/images/{link.json()['image_id']}/uploaded", {}))
        for method, path, arguments in routes:
            response = await intruder.request(method, path, **arguments)
            assert response.status_code == 404, (method, path, response.text)
            # Word for word what a project or image that does not exist answers.
            assert response.json()["error"]["code"] == missing.json()["error"]["code"]
            assert response.json()["error"]["message"].endswith("does not exist")
    assert before.unchanged(sessions, storage, b.project_id)
    async with keyed_product.client(key=keyed_product.operator_key) as operator:
        assert (await operator.get(f"/images/{theirs}")).status_code == 200
        assert (await operator.get(f"/projects/{b.project_id}")).json()["total"] == 2


async def ws_token(keyed_product: KeyedProduct, tenant: Tenant, api: int = 0) -> dict[str, Any]:
    async with keyed_product.client(api=api, key=tenant.key) as client:
        response = await client.post(f"/projects/{tenant.project_id}/ws-token")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def first_message(url: str, **options: Any) -> dict[str, Any]:
    async with websockets.connect(url, open_timeout=10, **options) as socket:
        message: dict[str, Any] = json.loads(await socket.recv())
    return message


async def refused_with(url: str, **options: Any) -> int | None:
    """The close code of a socket the server refuses right after the handshake."""
    async with websockets.connect(url, open_timeout=10, **options) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_token_from_one_api_opens_the_socket_on_the_other(
    keyed_product: KeyedProduct,
) -> None:
    a = keyed_product.tenant_a
    minted = await ws_token(keyed_product, a, api=0)
    assert minted["ws_url"].endswith(f"/ws/projects/{a.project_id}?token={minted['token']}")
    url = keyed_product.ws_url(a.project_id, api=1, token=minted["token"])
    snapshot = await first_message(url, origin=keyed_product.allowed_origin)
    assert (snapshot["type"], snapshot["project_id"]) == ("snapshot", a.project_id)
    # Clients that are not browsers may send their key instead of a token.
    headers = a.headers
    by_key = await first_message(keyed_product.ws_url(a.project_id), additional_headers=headers)
    assert by_key["type"] == "snapshot"


async def test_bad_expired_or_foreign_tokens_and_origins_close_with_1008(
    keyed_product: KeyedProduct,
) -> None:
    a, b = keyed_product.tenant_a, keyed_product.tenant_b
    token = (await ws_token(keyed_product, a))["token"]
    signer = WsTokenSigner(SecretStr(keyed_product.ws_token_secret), ttl_seconds=60)
    expired, _ = signer.issue(a.project_id, "test", now=time.time() - 61)
    forged, _ = WsTokenSigner(SecretStr("f" * 32), 60).issue(a.project_id, "test")
    refused = {
        "no token": keyed_product.ws_url(a.project_id),
        "garbage": keyed_product.ws_url(a.project_id, token="garbage"),
        "expired": keyed_product.ws_url(a.project_id, token=expired),
        "forged": keyed_product.ws_url(a.project_id, token=forged),
        "another project": keyed_product.ws_url(b.project_id, token=token),
    }
    for case, url in refused.items():
        assert await refused_with(url) == POLICY_VIOLATION, case
    good = keyed_product.ws_url(a.project_id, token=token)
    assert await refused_with(good, origin="http://evil.example") == POLICY_VIOLATION
    other = keyed_product.ws_url(b.project_id)
    assert await refused_with(other, additional_headers=a.headers) == POLICY_VIOLATION


async def test_without_an_allowlist_only_the_apis_own_origin_may_connect(
    product: Product,
) -> None:
    project_id = product.new_project_id()
    url = product.ws_url(project_id)
    assert await refused_with(url, origin="http://evil.example") == POLICY_VIOLATION
    own_origin = product.base_url
    assert (await first_message(url, origin=own_origin))["type"] == "snapshot"


async def wait_for_a_fresh_minute() -> None:
    """Start a burst early in a minute, so that it falls in one fixed window."""
    if time.time() % 60 > 40:
        await asyncio.sleep(60.5 - time.time() % 60)


async def test_uploads_beyond_the_limit_answer_429_across_processes_and_store_nothing(
    keyed_product: KeyedProduct, sessions: sessionmaker[Session], storage: Storage
) -> None:
    tenant = keyed_product.rate_tenant
    link_body = {"filename": "r.jpg", "project_id": tenant.project_id}
    await wait_for_a_fresh_minute()
    for n in range(keyed_product.upload_rate_limit):  # both APIs, both kinds of upload
        async with keyed_product.client(api=n % 2, key=tenant.key) as client:
            if n % 2:
                assert (await client.post("/images/", json=link_body)).status_code == 201
            else:
                await upload(client, tenant.project_id, f"{n}.jpg", JPEG)
    before = stored(sessions, storage, tenant.project_id)
    for api in (0, 1):
        async with keyed_product.client(api=api, key=tenant.key) as client:
            direct = await client.post(
                "/upload_image",
                data={"project_id": str(tenant.project_id)},
                files={"file": ("late.jpg", JPEG)},
            )
            link = await client.post("/images/", json=link_body)
        for refused in (direct, link):
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert before.unchanged(sessions, storage, tenant.project_id)
    # The budget is the key's: another key still uploads.
    async with keyed_product.client(key=keyed_product.operator_key) as operator:
        assert (await operator.post("/images/", json=link_body)).status_code == 201


async def test_control_actions_beyond_the_limit_answer_429_across_processes(
    keyed_product: KeyedProduct,
) -> None:
    tenant = keyed_product.rate_tenant
    project = f"/projects/{tenant.project_id}"
    presets = {"presets": [{"name": "thumb", "width": 200, "height": 160}]}
    await wait_for_a_fresh_minute()
    for n in range(keyed_product.control_rate_limit):  # both APIs share the budget
        async with keyed_product.client(api=n % 2, key=tenant.key) as client:
            assert (await client.post(f"{project}/retry")).status_code == 202
    async with keyed_product.client(key=tenant.key) as client:
        for method, path, body in (
            ("PUT", f"{project}/presets", presets),
            ("POST", f"{project}/reprocess", {"action": "start"}),
            ("POST", f"{project}/retry", None),
            (
                "POST",
                f"{project}/webhooks",
                {"url": "https://example.com/h", "events": ["image.done"]},
            ),
        ):
            refused = await client.request(method, path, json=body)
            assert refused.status_code == 429, (path, refused.text)
            assert refused.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Reads are not control actions, and the refused change stored nothing.
        current = await client.get(f"{project}/presets")
        assert current.status_code == 200 and current.json()["version"] == 0
        assert (await client.get(f"{project}/webhooks")).json()["webhooks"] == []
    async with keyed_product.client(key=keyed_product.operator_key) as operator:
        assert (await operator.post(f"{project}/retry")).status_code == 202


async def test_links_redirect_to_a_presign_for_the_set_time_made_anew_on_every_get(
    keyed_product: KeyedProduct,
) -> None:
    async with keyed_product.client(key=keyed_product.operator_key) as client:
        image_id = await upload(client, keyed_product.tenant_a.project_id, "l.jpg", JPEG)
        first = await wait_until_final(client, image_id)
    assert first["state"] == "done"
    async with httpx.AsyncClient() as anonymous:  # the link is the capability: no key
        for name, link in first["versions"].items():
            redirect = await anonymous.get(link)
            assert redirect.status_code == 307, name
            query = parse_qs(urlsplit(redirect.headers["location"]).query)
            assert query["X-Amz-Expires"] == [str(keyed_product.link_expiry_seconds)], name
            await asyncio.sleep(1.1)  # SigV4 signs with a one-second clock
            again = await anonymous.get(link)
            assert again.headers["location"] != redirect.headers["location"], name
        original = (await anonymous.get(first["versions"]["original"])).headers["location"]
        assert (await anonymous.get(original)).status_code == 200
        # The original itself is private: without the signature S3 refuses it.
        assert (await anonymous.get(original.split("?")[0])).status_code == 403


async def test_s3_refuses_a_link_once_it_expires(storage: Storage) -> None:
    key = f"test-expiry/{uuid.uuid4()}"
    storage.put_bytes(key, b"private", "text/plain", "private")
    # Settings allow 60 s at least; the bucket's own check is what this proves.
    # SigV4 dates have one-second resolution, so a 1 s link can be stale when it is made:
    # give the first fetch room on a loaded machine.
    short_lived = Storage(storage.client, storage.client, storage.bucket, link_expiry_seconds=5)
    url = short_lived.presign_get(key, "text/plain")
    try:
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(url)).status_code == 200
            await asyncio.sleep(6.5)
            assert (await anonymous.get(url)).status_code == 403
    finally:
        storage.delete(key)


def keys_command(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "admin.keys", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


async def test_a_stored_key_works_until_revoked_and_never_switches_the_mode(
    keyed_product: KeyedProduct,
    product: Product,
    subprocess_env: dict[str, str],
    sessions: sessionmaker[Session],
) -> None:
    project_id = product.new_project_id()
    created = keys_command(subprocess_env, "create", "--project", str(project_id), "--name", "t")
    fields = dict(line.split(maxsplit=1) for line in created.splitlines()[:3])
    try:
        headers = {"Authorization": f"Bearer {fields['key']}"}
        assert fields["scope"] == str(project_id)
        assert f"{fields['id']}  {project_id}" in keys_command(subprocess_env, "list")
        async with keyed_product.client() as keyed, product.client() as open_api:
            assert (await keyed.get(f"/projects/{project_id}", headers=headers)).status_code == 200
            other = keyed_product.tenant_a.project_id
            assert (await keyed.get(f"/projects/{other}", headers=headers)).status_code == 404
            # AUTH_MODE alone decides: a stored key neither closes the open API...
            assert (await open_api.get(f"/projects/{project_id}")).status_code == 200
            keys_command(subprocess_env, "revoke", fields["id"])
            assert (await keyed.get(f"/projects/{project_id}", headers=headers)).status_code == 401
            # ...nor does revoking it open the keyed one.
            assert (await keyed.get(f"/projects/{project_id}")).status_code == 401
    finally:
        with sessions() as session:
            session.execute(delete(ApiKey).where(ApiKey.id == uuid.UUID(fields["id"])))
            session.commit()
