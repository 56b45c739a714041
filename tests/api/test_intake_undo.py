"""The undo of a failed registration against a replay of its Idempotency-Key, in process
against the real Postgres, S3 and Temporal: nothing a client was told is accepted is ever
deleted, and a half-failed undo leaves nothing a retry would accept without its object."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api.errors import ServiceUnavailableError
from api.intake import intake
from api.intake.registry import start_image_workflow
from core.contracts import ImageState, original_key_for, workflow_id_for
from core.models import Image
from core.settings import Settings
from core.storage import ObjectMissingError, Storage
from tests.api.conftest import serve
from tests.factories import jpeg_bytes

JPEG = jpeg_bytes(320, 240)
Start = Callable[..., Awaitable[str]]


def upload(project_id: int) -> dict[str, Any]:
    return {"data": {"project_id": str(project_id)}, "files": {"file": ("a.jpg", JPEG)}}


def stored(storage: Storage, key: str) -> bool:
    try:
        storage.size_of(key)
    except ObjectMissingError:
        return False
    return True


def new_project() -> int:
    return 10**9 + uuid.uuid4().int % 10**9


class FirstStartFails:
    """Stands in for `start_image_workflow`: the first call fails (once `hold` is set, if
    given), every later one starts the workflow."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.hold, self.reached, self.calls = hold, asyncio.Event(), 0

    async def __call__(self, *args: Any) -> str:
        self.calls += 1
        if self.calls > 1:
            return await start_image_workflow(*args)
        self.reached.set()
        if self.hold is not None:
            await self.hold.wait()
        raise ServiceUnavailableError("the workflow service is unavailable")


async def test_a_replay_that_started_the_workflow_keeps_the_image_the_first_undoes(
    settings: Settings,
    storage: Storage,
    sessions: sessionmaker[Session],
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first request's start fails only after a replay of its key started the workflow
    and answered 202: the first's undo must keep the row and the object."""
    replay_answered = asyncio.Event()
    start = FirstStartFails(hold=replay_answered)
    monkeypatch.setattr(intake, "start_image_workflow", start)
    project_id, key = new_project(), {"Idempotency-Key": f"race-{uuid.uuid4().hex}"}
    async with serve(settings) as api:
        first = asyncio.create_task(api.post("/upload_image", headers=key, **upload(project_id)))
        await start.reached.wait()
        replay = await api.post("/upload_image", headers=key, **upload(project_id))
        replay_answered.set()
        failed = await first

    assert (failed.status_code, replay.status_code) == (503, 202)
    image_id = replay.json()["image_id"]
    with sessions() as session:
        assert session.get(Image, uuid.UUID(image_id)) is not None
    assert stored(storage, original_key_for(image_id))
    await temporal_client.get_workflow_handle(workflow_id_for(image_id)).terminate("test done")


async def test_an_undo_that_cannot_delete_the_row_keeps_the_object_for_a_retry(
    settings: Settings,
    storage: Storage,
    sessions: sessionmaker[Session],
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Postgres fails under the undo: the row stays, so its object must stay too, and a
    retry of the key starts the workflow for both."""

    def database_down(*args: Any) -> None:
        raise ConnectionError("Postgres is unreachable")

    monkeypatch.setattr(intake, "start_image_workflow", FirstStartFails())
    monkeypatch.setattr(intake, "delete_locked_row", database_down)
    project_id, key = new_project(), {"Idempotency-Key": f"undo-{uuid.uuid4().hex}"}
    async with serve(settings) as api:
        failed = await api.post("/upload_image", headers=key, **upload(project_id))
        retried = await api.post("/upload_image", headers=key, **upload(project_id))

    assert (failed.status_code, retried.status_code) == (503, 202)
    image_id = retried.json()["image_id"]
    assert stored(storage, original_key_for(image_id))
    await temporal_client.get_workflow_handle(workflow_id_for(image_id)).terminate("test done")


async def test_a_failed_start_with_no_replay_still_stores_nothing(
    settings: Settings,
    storage: Storage,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def start_fails(*args: Any) -> str:
        raise ServiceUnavailableError("the workflow service is unavailable")

    monkeypatch.setattr(intake, "start_image_workflow", start_fails)
    project_id = new_project()
    async with serve(settings) as api:
        failed = await api.post("/upload_image", **upload(project_id))
        listing = await api.get(f"/projects/{project_id}/images")

    assert failed.status_code == 503
    assert listing.json()["images"] == []


async def test_a_used_idempotency_key_is_answered_before_dedupe(
    settings: Settings,
    sessions: sessionmaker[Session],
    temporal_client: Client,
) -> None:
    """Dedupe must not answer for a key used before: other bytes under it are a 409, and
    the same request again is its own image, never a duplicate of itself."""
    project_id, key = new_project(), {"Idempotency-Key": f"dedupe-{uuid.uuid4().hex}"}
    other = jpeg_bytes(200, 100)
    async with serve(settings) as api:
        done = await api.post(
            "/upload_image",
            data={"project_id": str(project_id)},
            files={"file": ("b.jpg", other)},
        )
        first = await api.post("/upload_image", headers=key, **upload(project_id))
        started = [done.json()["image_id"], first.json()["image_id"]]
        with sessions.begin() as session:  # both done, as their workflows would make them
            for image_id in started:
                session.get_one(Image, uuid.UUID(image_id)).state = ImageState.DONE
        reused = await api.post(
            "/upload_image",
            headers=key,
            data={"project_id": str(project_id), "dedupe": "true"},
            files={"file": ("b.jpg", other)},
        )
        replayed = await api.post(
            "/upload_image",
            headers=key,
            data={"project_id": str(project_id), "dedupe": "true"},
            files={"file": ("a.jpg", JPEG)},
        )

    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert replayed.json()["image_id"] == started[1]
    assert replayed.json().get("duplicate_of") is None
    for image_id in started:
        await temporal_client.get_workflow_handle(workflow_id_for(image_id)).terminate("done")
