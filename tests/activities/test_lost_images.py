"""`start_lost_images` against the real Postgres and Temporal: an image whose API process
died between its insert and its workflow's start gets its workflow from the cleanup.

Workflows go to a task queue of this test's own, which no worker polls: the test looks
at what was started, then terminates it. Other tests' rows share the database, so only
this test's images are asserted on.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.lost_images import LostImageActivities
from core.contracts import (
    WORKFLOW_NAME,
    ImageProcessingInput,
    ImageState,
    SweepInput,
    original_key_for,
    staging_key_for,
    workflow_id_for,
)
from core.image_start import processing_input, start_image
from core.models import Image
from core.settings import Settings

PROJECT_ID = 48
LOST_AFTER = 600


@pytest.fixture
def own_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"temporal_task_queue": f"test-lost-{uuid.uuid4()}"})


@pytest.fixture
async def started(temporal_client: Client) -> AsyncIterator[list[uuid.UUID]]:
    """Images whose workflows the test started or expects: terminated afterwards."""
    ids: list[uuid.UUID] = []
    yield ids
    for image_id in ids:
        with contextlib.suppress(RPCError):
            await temporal_client.get_workflow_handle(workflow_id_for(str(image_id))).terminate()


def add_image(
    sessions: sessionmaker[Session], state: ImageState, age: timedelta, direct: bool = True
) -> Image:
    image_id = uuid.uuid4()
    key = original_key_for(str(image_id)) if direct else staging_key_for(str(image_id))
    image = Image(
        id=image_id,
        project_id=PROJECT_ID,
        state=state.value,
        source_key=key,
        format="JPEG" if direct else None,
        created_at=datetime.now(UTC) - age,
    )
    with sessions.begin() as session:
        session.add(image)
    return image


async def sweep(
    temporal_client: Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    activities = LostImageActivities(temporal_client, sessions, settings)
    await ActivityEnvironment().run(
        activities.start_lost_images, SweepInput(LOST_AFTER, batch_size=2)
    )


async def started_input(client: Client, image_id: uuid.UUID) -> ImageProcessingInput | None:
    handle = client.get_workflow_handle(workflow_id_for(str(image_id)))
    try:
        description = await handle.describe()
    except RPCError:
        return None
    assert description.workflow_type == WORKFLOW_NAME
    assert description.status == WorkflowExecutionStatus.RUNNING
    history = await handle.fetch_history()
    attributes = history.events[0].workflow_execution_started_event_attributes
    [decoded] = await client.data_converter.decode(
        attributes.input.payloads, [ImageProcessingInput]
    )
    assert isinstance(decoded, ImageProcessingInput)
    return decoded


async def test_an_old_image_with_no_workflow_gets_it(
    temporal_client: Client,
    sessions: sessionmaker[Session],
    own_settings: Settings,
    started: list[uuid.UUID],
) -> None:
    lost = add_image(sessions, ImageState.UPLOADED, timedelta(minutes=20))
    fresh = add_image(sessions, ImageState.UPLOADED, timedelta(seconds=5))
    done = add_image(sessions, ImageState.DONE, timedelta(minutes=20))
    # A link whose request died before answering: whatever is left of a link's lifetime.
    link = add_image(sessions, ImageState.INIT, timedelta(days=1), direct=False)
    started.extend([lost.id, fresh.id, done.id, link.id])

    await sweep(temporal_client, sessions, own_settings)

    request = await started_input(temporal_client, lost.id)
    assert request is not None
    assert request.source_key == lost.source_key
    assert request.project_id == PROJECT_ID
    assert not request.awaiting_upload
    assert request.source_format == "JPEG"
    assert request.presets  # the project's set, as the API would have sent
    init = await started_input(temporal_client, link.id)
    assert init is not None
    assert init.awaiting_upload
    assert init.upload_timeout_seconds == 1.0
    # A request may still be starting it; a finished image needs nothing.
    assert await started_input(temporal_client, fresh.id) is None
    assert await started_input(temporal_client, done.id) is None


async def test_an_image_whose_workflow_exists_is_left_alone(
    temporal_client: Client,
    sessions: sessionmaker[Session],
    own_settings: Settings,
    started: list[uuid.UUID],
) -> None:
    image = add_image(sessions, ImageState.UPLOADED, timedelta(minutes=20))
    started.append(image.id)
    own = processing_input(image, own_settings, "etag-of-the-api")
    await start_image(temporal_client, own_settings, own)

    await sweep(temporal_client, sessions, own_settings)

    request = await started_input(temporal_client, image.id)
    assert request is not None
    assert request.source_etag == "etag-of-the-api"  # the API's, not replaced


async def test_a_row_held_by_a_request_is_skipped(
    temporal_client: Client,
    sessions: sessionmaker[Session],
    own_settings: Settings,
    started: list[uuid.UUID],
) -> None:
    """An API undo holds the row while it decides to delete it: no start under it."""
    image = add_image(sessions, ImageState.UPLOADED, timedelta(minutes=20))
    started.append(image.id)
    with sessions.begin() as undo:
        undo.scalar(select(Image.id).where(Image.id == image.id).with_for_update())
        await sweep(temporal_client, sessions, own_settings)
        assert await started_input(temporal_client, image.id) is None
