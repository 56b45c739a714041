"""Record the workflow histories that `tests/workflows/test_replay.py` replays.

Run from the repository root, after an intended change to `ImageProcessingWorkflow`:

    .venv/bin/python -m tests.record_histories

It starts its own Postgres, Temporal and S3 in a temporary directory (never the ones from
`make run` or the shell), migrates, runs an in-process worker and the in-process API, and
drives real images through the paths a workflow can take:

- `direct_upload`: `POST /upload_image`, processed to `done`;
- `upload_link`: `POST /images/`, a presigned POST to S3, the confirmation, then `done`;
- `invalid_image`: a truncated JPEG the API accepts and the worker fails with `invalid_image`;
- `lost_worker`: every preparation lands on a worker whose render queue nobody polls (it
  died right after preparing), so the image is prepared again until it fails with
  `processing_failed`. It runs on a task queue of its own, served by a worker that only
  prepares.

Each closed workflow's history is written to `tests/histories/<name>.json`, overwriting the
file of the same name. See docs/workflow-changes.md for when to keep old histories.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from alembic import command
from core.contracts import ErrorCode, ImageProcessingInput, ImageState, workflow_id_for
from core.db import make_engine, make_sessionmaker
from core.logging import configure_logging
from core.models import Image
from core.settings import Settings
from core.storage import Storage
from core.temporal import connect_temporal
from devstack.stack import LocalStack
from tests.api.conftest import serve
from tests.conftest import REPO_ROOT, alembic_config
from tests.factories import jpeg_bytes
from worker import build_activities, executor_threads, running_workers
from workflows.image_processing import ImageProcessingWorkflow

logger = logging.getLogger("record_histories")

HISTORIES_DIR = REPO_ROOT / "tests" / "histories"
PROJECT_ID = 1
FINAL_WITHIN_SECONDS = 120
POLL_SECONDS = 0.2


@dataclass
class Recording:
    """What a scenario may use: the in-process API, and the services behind it."""

    api: httpx.AsyncClient
    client: Client
    settings: Settings
    sessions: sessionmaker[Session]
    executor: ThreadPoolExecutor


# A scenario drives one image through the product and answers its workflow id.
Scenario = Callable[[Recording], Awaitable[str]]


class RecordingError(RuntimeError):
    """A scenario did not end the way its history is meant to show."""


async def wait_until_final(api: httpx.AsyncClient, image_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + FINAL_WITHIN_SECONDS
    while time.monotonic() < deadline:
        response = await api.get(f"/images/{image_id}")
        response.raise_for_status()
        image: dict[str, Any] = response.json()
        if image["state"] in (ImageState.DONE, ImageState.ERROR):
            return image
        await asyncio.sleep(POLL_SECONDS)
    raise RecordingError(f"image {image_id} not final within {FINAL_WITHIN_SECONDS}s")


def expect(image: dict[str, Any], state: ImageState, code: str | None = None) -> None:
    error = image.get("error") or {}
    if image["state"] != state or error.get("code") != code:
        raise RecordingError(f"expected {state} ({code}), got {image}")


async def upload(api: httpx.AsyncClient, name: str, data: bytes) -> dict[str, Any]:
    response = await api.post(
        "/upload_image", data={"project_id": str(PROJECT_ID)}, files={"file": (name, data)}
    )
    if response.status_code != 202:
        raise RecordingError(f"upload answered {response.status_code}: {response.text}")
    accepted: dict[str, Any] = response.json()
    return accepted


async def direct_upload(recording: Recording) -> str:
    api = recording.api
    accepted = await upload(api, "photo.jpg", jpeg_bytes(800, 600))
    expect(await wait_until_final(api, accepted["image_id"]), ImageState.DONE)
    workflow_id: str = accepted["workflow_id"]
    return workflow_id


async def upload_link(recording: Recording) -> str:
    api = recording.api
    response = await api.post("/images/", json={"filename": "photo.jpg", "project_id": PROJECT_ID})
    if response.status_code != 201:
        raise RecordingError(f"link answered {response.status_code}: {response.text}")
    link: dict[str, Any] = response.json()
    # Straight to S3, as a browser form would: the signed fields, then the file.
    async with httpx.AsyncClient(timeout=30) as s3:
        stored = await s3.post(
            link["upload_link"],
            data=link["params"],
            files={"file": ("photo.jpg", jpeg_bytes(800, 600), "image/jpeg")},
        )
    if not stored.is_success:
        raise RecordingError(f"S3 answered {stored.status_code}: {stored.text}")
    confirmed = await api.post(link["confirm_url"])
    if confirmed.status_code != 202:
        raise RecordingError(f"confirmation answered {confirmed.status_code}: {confirmed.text}")
    expect(await wait_until_final(api, link["image_id"]), ImageState.DONE)
    workflow_id: str = link["workflow_id"]
    return workflow_id


async def invalid_image(recording: Recording) -> str:
    api = recording.api
    # The header is intact, so the API accepts it; only the worker's full decode fails.
    data = jpeg_bytes(1200, 900)
    accepted = await upload(api, "truncated.jpg", data[: len(data) // 3])
    image = await wait_until_final(api, accepted["image_id"])
    expect(image, ImageState.ERROR, ErrorCode.INVALID_IMAGE)
    workflow_id: str = accepted["workflow_id"]
    return workflow_id


async def lost_worker(recording: Recording) -> str:
    image_id = uuid.uuid4()
    source_key = f"originals/{image_id}"
    storage = Storage.from_settings(recording.settings)
    storage.put_bytes(source_key, jpeg_bytes(800, 600), "image/jpeg", "private")
    with recording.sessions.begin() as session:
        session.add(
            Image(id=image_id, project_id=PROJECT_ID, state="uploaded", source_key=source_key)
        )
    # Its render queue is never polled, and it never beats: as if it died after preparing.
    lonely = build_activities(recording.settings, recording.sessions)
    task_queue = f"lost-{uuid.uuid4()}"
    workflow_id = workflow_id_for(str(image_id))
    async with Worker(
        recording.client,
        task_queue=task_queue,
        workflows=[ImageProcessingWorkflow],
        activities=lonely.shared,
        activity_executor=recording.executor,
    ):
        handle = await recording.client.start_workflow(
            ImageProcessingWorkflow.run,
            ImageProcessingInput(str(image_id), PROJECT_ID, source_key),
            id=workflow_id,
            task_queue=task_queue,
        )
        try:
            await handle.result()
        except WorkflowFailureError as failure:
            cause = failure.cause
            if isinstance(cause, ApplicationError) and cause.type == ErrorCode.PROCESSING_FAILED:
                return workflow_id
        raise RecordingError(f"{workflow_id} did not fail with processing_failed")


SCENARIOS: dict[str, Scenario] = {
    "direct_upload": direct_upload,
    "upload_link": upload_link,
    "invalid_image": invalid_image,
    "lost_worker": lost_worker,
}


async def closed_history(client: Client, workflow_id: str) -> WorkflowHistory:
    """Wait for the workflow to close, then fetch its whole history.

    The image's final state is written by an activity, before the workflow's last
    events, so the API answering `done` or `error` is not yet the end of the history.
    """
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.result()
    except WorkflowFailureError:
        logger.info("%s failed, as it should", workflow_id)
    return await handle.fetch_history()


async def record_all(
    settings: Settings, selected: dict[str, Scenario]
) -> dict[str, WorkflowHistory]:
    """Run the worker and the API in this process and drive every scenario to its end."""
    client = await connect_temporal(settings)
    engine = make_engine(settings)
    try:
        sessions = make_sessionmaker(engine)
        activities = build_activities(settings, sessions)
        with ThreadPoolExecutor(max_workers=2 * executor_threads(settings)) as executor:
            workers = running_workers(client, settings, activities, executor)
            async with workers, serve(settings) as api:
                recording = Recording(api, client, settings, sessions, executor)
                workflow_ids = {
                    name: await scenario(recording) for name, scenario in selected.items()
                }
                return {
                    name: await closed_history(client, workflow_id)
                    for name, workflow_id in workflow_ids.items()
                }
    finally:
        engine.dispose()


def save(histories: dict[str, WorkflowHistory], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    for name, history in histories.items():
        path = output / f"{name}.json"
        path.write_text(history.to_json() + "\n")
        logger.info("wrote %s (%d events)", path.relative_to(REPO_ROOT), len(history.events))


def main() -> None:
    parser = argparse.ArgumentParser(description="Record the histories test_replay replays.")
    parser.add_argument("names", nargs="*", help=f"of {', '.join(SCENARIOS)}; default: all")
    names = parser.parse_args().names or list(SCENARIOS)
    if unknown := set(names) - set(SCENARIOS):
        parser.error(f"no scenario {', '.join(sorted(unknown))}")
    configure_logging("INFO")
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="imgproc-record-") as base,
        LocalStack(Path(base), database="imgproc_record", environ={}) as stack,
    ):
        stack.ensure_bucket()
        values = {key.lower(): value for key, value in stack.env().items()}
        settings = Settings.model_validate(
            values | {"temporal_task_queue": f"record-{uuid.uuid4()}", "auth_mode": "open"}
        )
        command.upgrade(alembic_config(settings.database_url), "head")
        selected = {name: SCENARIOS[name] for name in names}
        histories = asyncio.run(record_all(settings, selected))
    save(histories, HISTORIES_DIR)
    logger.info("recorded %d histories in %.1f s", len(histories), time.monotonic() - started)


if __name__ == "__main__":
    main()
