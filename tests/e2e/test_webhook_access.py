"""Webhooks under API_KEYS: another tenant's endpoints are not found, secrets stay secret."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import KeyedProduct, Product, Tenant
from tests.e2e.helpers import upload, wait_until_final
from tests.e2e.webhook_helpers import add_webhook, all_settled, wait_for_deliveries
from tests.factories import jpeg_bytes
from tests.webhook_receiver import Script, running_receiver


async def test_another_tenants_webhooks_are_not_found(
    product: Product, keyed_product: KeyedProduct, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The owner: a project of its own (tenant B's image counts are another test's business).
    a, b = keyed_product.tenant_a, Tenant(keyed_product.operator_key, product.new_project_id())
    with running_receiver() as receiver:
        async with keyed_product.client(key=b.key) as owner:
            hook = await add_webhook(owner, b.project_id, receiver.script("/b", Script()))
            await wait_until_final(
                owner, await upload(owner, b.project_id, "b.jpg", jpeg_bytes(64, 64))
            )
            [delivery] = await wait_for_deliveries(owner, b.project_id, hook["id"], all_settled(1))
            listed = await owner.get(f"/projects/{b.project_id}/webhooks")
            history = await owner.get(f"/projects/{b.project_id}/webhooks/{hook['id']}/deliveries")
        async with keyed_product.client(api=1, key=a.key) as intruder:
            for project_id in (a.project_id, b.project_id):
                base = f"/projects/{project_id}/webhooks/{hook['id']}"
                routes: list[tuple[str, str, dict[str, Any]]] = [
                    ("PATCH", base, {"json": {"enabled": False}}),
                    ("DELETE", base, {}),
                    ("POST", f"{base}/rotate-secret", {}),
                    ("POST", f"{base}/rotate-secret", {"json": {"previous_valid_seconds": 0}}),
                    ("GET", f"{base}/deliveries", {}),
                    ("POST", f"{base}/deliveries/{delivery['id']}/redeliver", {}),
                ]
                for method, path, arguments in routes:
                    response = await intruder.request(method, path, **arguments)
                    assert response.status_code == 404, (method, path, response.text)
                    assert response.json()["error"]["code"] == "not_found"
            mine = await intruder.get(f"/projects/{a.project_id}/webhooks")
            assert mine.json() == {"webhooks": []}
    assert listed.status_code == 200
    assert listed.json()["webhooks"][0]["enabled"] is True
    for answer in (listed.text, history.text):
        assert hook["secret"] not in answer
        assert "whsec_" not in answer
        assert '"secret"' not in answer
    assert len(receiver.requests_to("/b")) == 1
    logs = list(tmp_path_factory.getbasetemp().rglob("*.log"))
    assert logs
    for log in logs:
        assert hook["secret"] not in log.read_text(errors="replace"), log


async def test_webhook_bodies_are_checked(keyed_product: KeyedProduct) -> None:
    tenant = keyed_product.tenant_a
    path = f"/projects/{tenant.project_id}/webhooks"
    async with keyed_product.client(key=tenant.key) as client:
        for body, code in (
            (
                {"url": "https://example.com/h", "events": ["image.done"], "x": 1},
                "validation_error",
            ),
            ({"url": "https://example.com/h", "events": ["image.gone"]}, "validation_error"),
            ({"url": "https://example.com/h", "events": []}, "validation_error"),
            ({"url": "https://" + "a" * 2050, "events": ["image.done"]}, "validation_error"),
            ({"url": "ftp://example.com/h", "events": ["image.done"]}, "invalid_webhook_url"),
            ({"url": "https://u:p@example.com/h", "events": ["image.done"]}, "invalid_webhook_url"),
        ):
            response = await client.post(path, json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["code"] == code
        huge = {"url": "https://example.com/" + "a" * 20_000, "events": ["image.done"]}
        too_large = await client.post(path, json=huge)
        assert too_large.status_code == 413
        assert too_large.json()["error"]["code"] == "payload_too_large"
        async with keyed_product.client() as anonymous:
            assert (await anonymous.post(path, json=huge)).status_code == 401
        created = await client.post(
            path, json={"url": "https://example.com/h", "events": ["image.done"]}
        )
        rotated = await client.post(f"{path}/{created.json()['id']}/rotate-secret")
        assert rotated.status_code == 200
        assert rotated.json()["secret"] != created.json()["secret"]
        assert (await client.delete(f"{path}/{created.json()['id']}")).status_code == 204
        assert (await client.delete(f"{path}/{created.json()['id']}")).status_code == 404
