"""Webhooks through the real processes: an endpoint on a receiver at 127.0.0.1, an upload,
and what the receiver gets (the product's workers retry quickly: see WEBHOOK_TEST_ENV)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.webhooks.contracts import WebhookEvent
from core.webhooks.outbox import enqueue_deliveries
from core.webhooks.signing import SignatureError
from devstack.ports import free_port
from tests.e2e.conftest import Product
from tests.e2e.helpers import upload, wait_until_final
from tests.e2e.test_observability import eventually_summed, truncated_jpeg
from tests.e2e.webhook_helpers import (
    add_webhook,
    all_settled,
    deliveries,
    verified_payload,
    wait_for_deliveries,
)
from tests.factories import jpeg_bytes
from tests.metrics_text import sample_value
from tests.webhook_receiver import Script, running_receiver


async def test_fails_three_times_then_one_signed_delivery(product: Product) -> None:
    project_id = product.new_project_id()
    with running_receiver() as receiver:
        async with product.client() as client:
            url = receiver.script("/flaky", Script(failures=3, failure_status=503))
            hook = await add_webhook(client, project_id, url, ("image.done", "image.error"))
            image_id = await upload(client, project_id, "a.jpg", jpeg_bytes(400, 300))
            image = await wait_until_final(client, image_id)
            found = await wait_for_deliveries(client, project_id, hook["id"], all_settled(1))
            await asyncio.sleep(2)  # a second success would have come by now
            got = receiver.requests_to("/flaky")
    assert [r.answered for r in got] == [503, 503, 503, 200]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    payload = verified_payload(got[-1], hook["secret"])
    assert payload["type"] == "image.done"
    assert payload["data"]["image_id"] == image_id
    assert payload["data"]["state"] == "done"
    assert set(payload["data"]["versions"]) == set(image["versions"])
    assert payload["data"]["versions"]["thumb"].startswith("http")
    [delivery] = found
    assert delivery["id"] == got[-1].headers["webhook-id"]
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 4)
    assert delivery["last_status_code"] == 200
    await eventually_summed(product, assert_delivery_series)


def assert_delivery_series(texts: list[str]) -> None:
    def total(name: str, **labels: str) -> float:
        return sum(sample_value(text, name, **labels) or 0 for text in texts)

    assert total("imgproc_webhook_deliveries_total", outcome="delivered") >= 1
    assert total("imgproc_webhook_deliveries_total", outcome="retry") >= 3
    assert total("imgproc_webhook_attempt_duration_seconds_count") >= 4


async def test_receiver_down_gets_it_once_back(product: Product) -> None:
    project_id = product.new_project_id()
    port = free_port()
    async with product.client() as client:
        hook = await add_webhook(client, project_id, f"http://127.0.0.1:{port}/late")
        await wait_until_final(
            client, await upload(client, project_id, "b.jpg", jpeg_bytes(64, 64))
        )

        def tried_three_times(found: list[dict[str, object]]) -> bool:
            return len(found) == 1 and int(str(found[0]["attempts"])) >= 3

        [pending] = await wait_for_deliveries(client, project_id, hook["id"], tried_three_times)
        assert pending["status"] == "pending"
        assert str(pending["last_error"]).startswith("unreachable")
        with running_receiver(port) as receiver:
            [done] = await wait_for_deliveries(client, project_id, hook["id"], all_settled(1))
            await asyncio.sleep(1.5)
            got = receiver.requests_to("/late")
    assert done["status"] == "delivered"
    assert len(got) == 1
    verified_payload(got[0], hook["secret"])


async def test_redirect_and_gone_are_final_oversized_is_bounded(product: Product) -> None:
    project_id = product.new_project_id()
    with running_receiver() as receiver:
        async with product.client() as client:
            hooks = {
                path: await add_webhook(client, project_id, receiver.script(path, Script(final=f)))
                for path, f in (("/redirect", "redirect"), ("/gone", 410), ("/big", "oversized"))
            }
            started = time.monotonic()
            await wait_until_final(
                client, await upload(client, project_id, "c.jpg", jpeg_bytes(64, 64))
            )
            settled = {
                path: (await wait_for_deliveries(client, project_id, h["id"], all_settled(1)))[0]
                for path, h in hooks.items()
            }
            listed = (await client.get(f"/projects/{project_id}/webhooks")).json()["webhooks"]
    assert time.monotonic() - started < 30
    assert settled["/redirect"]["status"] == "failed"
    assert settled["/redirect"]["last_error"].startswith("redirect_refused")
    assert receiver.requests_to("/redirected") == []
    assert settled["/gone"]["status"] == "failed"
    assert settled["/gone"]["last_status_code"] == 410
    gone = next(w for w in listed if w["id"] == hooks["/gone"]["id"])
    assert (gone["enabled"], gone["disabled_reason"]) == (False, "gone")
    assert settled["/big"]["status"] == "delivered"
    assert len(settled["/big"]["response_body"]) <= 1024
    assert all(len(receiver.requests_to(path)) == 1 for path in hooks)


async def test_error_event_redeliver_and_disable(product: Product) -> None:
    project_id = product.new_project_id()
    with running_receiver() as receiver:
        async with product.client() as client:
            url = receiver.script("/errors", Script())
            hook = await add_webhook(client, project_id, url, ("image.error",))
            done_hook = await add_webhook(client, project_id, receiver.script("/d", Script()))
            bad = await upload(client, project_id, "bad.jpg", truncated_jpeg())
            assert (await wait_until_final(client, bad))["state"] == "error"
            [first] = await wait_for_deliveries(client, project_id, hook["id"], all_settled(1))
            base = f"/projects/{project_id}/webhooks/{hook['id']}"
            again = await client.post(f"{base}/deliveries/{first['id']}/redeliver")
            assert again.status_code == 202, again.text

            def redelivered(found: list[dict[str, object]]) -> bool:
                return found[0]["redeliveries"] == 1 and found[0]["status"] == "delivered"

            await wait_for_deliveries(client, project_id, hook["id"], redelivered)
            off = await client.patch(base, json={"enabled": False})
            assert off.json()["disabled_reason"] == "disabled"
            refused = await client.post(f"{base}/deliveries/{first['id']}/redeliver")
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "webhook_disabled"
            assert await deliveries(client, project_id, done_hook["id"]) == []
    got = receiver.requests_to("/errors")
    assert len(got) == 2
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"] == first["id"]
    payload = verified_payload(got[1], hook["secret"])
    assert payload["type"] == "image.error"
    assert payload["data"]["error"]["code"]


async def test_a_delivery_recorded_but_never_started_is_relayed(
    product: Product, sessions: sessionmaker[Session]
) -> None:
    project_id = product.new_project_id()
    with running_receiver() as receiver:
        async with product.client() as client:
            image_id = await upload(client, project_id, "d.jpg", jpeg_bytes(64, 64))
            await wait_until_final(client, image_id)
            hook = await add_webhook(client, project_id, receiver.script("/orphan", Script()))
            # As if the activity that finished the image died right after its commit, and
            # nothing retried it: the row exists, its workflow was never started.
            with sessions.begin() as session:
                [delivery_id] = enqueue_deliveries(
                    session, uuid.UUID(image_id), project_id, "lost-run", WebhookEvent.IMAGE_DONE
                )
            [done] = await wait_for_deliveries(client, project_id, hook["id"], all_settled(1))
            await asyncio.sleep(1.5)
    assert (done["id"], done["status"]) == (delivery_id, "delivered")
    assert len(receiver.requests_to("/orphan")) == 1


async def test_a_rotated_secret_signs_next_to_the_new_one_until_it_expires(
    product: Product,
) -> None:
    project_id = product.new_project_id()
    with running_receiver() as receiver:
        async with product.client() as client:
            hook = await add_webhook(client, project_id, receiver.script("/rotating", Script()))
            rotate = f"/projects/{project_id}/webhooks/{hook['id']}/rotate-secret"
            for body in (
                {"previous_valid_seconds": -1},
                {"previous_valid_seconds": 7 * 24 * 3600 + 1},
                {"previous_valid_seconds": "60"},
                {"previous_valid_seconds": 60, "also": 1},
            ):
                refused = await client.post(rotate, json=body)
                assert refused.status_code == 422, (body, refused.text)
                assert refused.json()["error"]["code"] == "validation_error"
            assert (await client.post(rotate, content=b"[")).status_code == 422
            rotated = (await client.post(rotate)).json()  # no body: a day of overlap
            expiry = datetime.fromisoformat(rotated["previous_secret_expires_at"])
            assert abs(expiry - datetime.now(UTC) - timedelta(days=1)) < timedelta(minutes=1)
            listed = (await client.get(f"/projects/{project_id}/webhooks")).json()
            assert listed["webhooks"][0]["previous_secret_expires_at"] is not None
            await upload_and_settle(client, project_id, hook["id"], 1)
            # Refused rotations changed nothing: the first secret is the one in overlap.
            [overlapped] = receiver.requests_to("/rotating")
            verified_payload(overlapped, hook["secret"])
            verified_payload(overlapped, rotated["secret"])

            cut = (await client.post(rotate, json={"previous_valid_seconds": 0})).json()
            assert cut["previous_secret_expires_at"] is None
            await upload_and_settle(client, project_id, hook["id"], 2)
            listed = (await client.get(f"/projects/{project_id}/webhooks")).json()
    assert listed["webhooks"][0]["previous_secret_expires_at"] is None
    latest = receiver.requests_to("/rotating")[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    verified_payload(latest, cut["secret"])
    with pytest.raises(SignatureError):
        verified_payload(latest, rotated["secret"])


async def upload_and_settle(
    client: httpx.AsyncClient, project_id: int, webhook_id: str, deliveries_by_then: int
) -> None:
    image_id = await upload(client, project_id, "r.jpg", jpeg_bytes(64, 48 + deliveries_by_then))
    await wait_until_final(client, image_id)
    await wait_for_deliveries(client, project_id, webhook_id, all_settled(deliveries_by_then))
