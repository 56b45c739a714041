"""What a webhook client does in the tests: add an endpoint, read its deliveries, verify."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core.webhooks.signing import verify
from tests.webhook_receiver import Received

DELIVERED_WITHIN_SECONDS = 60


async def add_webhook(
    client: httpx.AsyncClient, project_id: int, url: str, events: tuple[str, ...] = ("image.done",)
) -> dict[str, Any]:
    response = await client.post(
        f"/projects/{project_id}/webhooks", json={"url": url, "events": list(events)}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["secret"].startswith("whsec_")
    return created


async def deliveries(client: httpx.AsyncClient, project_id: int, webhook_id: str) -> list[Any]:
    response = await client.get(f"/projects/{project_id}/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()["deliveries"]
    return found


async def wait_for_deliveries(
    client: httpx.AsyncClient,
    project_id: int,
    webhook_id: str,
    done: Callable[[list[Any]], bool],
    seconds: float = DELIVERED_WITHIN_SECONDS,
) -> list[Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await deliveries(client, project_id, webhook_id)
        if done(found):
            return found
        await asyncio.sleep(0.25)
    pytest.fail(f"deliveries of {webhook_id} never got there: {found}")


def all_settled(count: int) -> Callable[[list[Any]], bool]:
    def check(found: list[Any]) -> bool:
        return len(found) == count and all(d["status"] != "pending" for d in found)

    return check


def verified_payload(received: Received, secret: str) -> dict[str, Any]:
    verify(secret, received.headers, received.body)
    payload: dict[str, Any] = json.loads(received.body)
    return payload
