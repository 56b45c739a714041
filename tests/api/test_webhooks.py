"""Webhook endpoints in process: what a URL may hold, and the per-project limit."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.deps import MAX_OFFSET
from api.errors import ConflictError
from api.webhooks.endpoints import WebhookEndpoints
from api.webhooks.schemas import WebhookCreate
from core.models import WebhookEndpoint
from core.settings import Settings
from core.webhooks.contracts import WebhookEvent

# Each test its own project: the limit and the listings count per project.


def new_project_id() -> int:
    return 10**9 + uuid.uuid4().int % 10**12


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a\x00b",  # Postgres refuses NUL in text: was a 503
        "http://example.com/a\tb",  # TAB, CR and LF: stripped by urlsplit, stored raw
        "http://example.com/a\r\nX-Injected: 1",
        "http://example.com/a\x7f",
    ],
)
async def test_a_url_with_control_characters_is_refused_and_not_stored(
    api: httpx.AsyncClient, url: str
) -> None:
    project_id = new_project_id()
    path = f"/projects/{project_id}/webhooks"
    response = await api.post(path, json={"url": url, "events": ["image.done"]})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_webhook_url"
    assert (await api.get(path)).json()["webhooks"] == []


async def test_an_update_cannot_carry_a_url(api: httpx.AsyncClient) -> None:
    path = f"/projects/{new_project_id()}/webhooks"
    created = await api.post(path, json={"url": "http://example.com/h", "events": ["image.done"]})
    assert created.status_code == 201, created.text
    response = await api.patch(
        f"{path}/{created.json()['id']}", json={"enabled": True, "url": "http://example.com/\x00"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    (stored,) = (await api.get(path)).json()["webhooks"]
    assert stored["url"] == "http://example.com/h"


async def test_delivery_pages_share_the_offset_bound(api: httpx.AsyncClient) -> None:
    path = f"/projects/{new_project_id()}/webhooks/{uuid.uuid4()}/deliveries"
    response = await api.get(path, params={"offset": MAX_OFFSET + 1})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    assert response.json()["error"]["details"][0]["loc"] == ["query", "offset"]
    at_bound = await api.get(path, params={"offset": MAX_OFFSET})
    assert at_bound.json()["error"]["code"] == "not_found"  # valid, for a missing webhook


def test_concurrent_creates_stay_within_the_per_project_limit(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    limit, creators = 2, 8
    limited = settings.model_copy(update={"webhook_max_endpoints_per_project": limit})
    body = WebhookCreate(url="http://example.com/h", events=[WebhookEvent("image.done")])
    for _ in range(3):  # a few rounds: one lucky interleaving proves little
        project_id = new_project_id()
        start = threading.Barrier(creators)

        def create(project_id: int = project_id, start: threading.Barrier = start) -> bool:
            with sessions() as session:
                start.wait()
                try:
                    WebhookEndpoints(session, limited).create(project_id, body)
                except ConflictError:
                    return False
                return True

        with ThreadPoolExecutor(creators) as pool:
            created = sum(pool.map(lambda _: create(), range(creators)))
        with sessions() as session:
            stored = session.scalar(
                select(func.count()).where(WebhookEndpoint.project_id == project_id)
            )
        assert (created, stored) == (limit, limit)
