"""The `staging-cleanup` schedule and its workflow, on the real Temporal dev server.

Schedule ids, task queues and buckets are unique per test, so nothing here touches the
suite's other work, or a schedule of the same name elsewhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.cleanup import CleanupActivities
from activities.lost_images import LostImageActivities
from core.contracts import CLEANUP_SCHEDULE_ID, CleanupInput, CleanupResult, original_key_for
from core.schedules import ensure_cleanup_schedule
from core.settings import Settings
from core.storage import ObjectMissingError, Storage
from tests.activities.test_cleanup import own_bucket, put
from workflows.cleanup import CleanupStagingWorkflow


@pytest.fixture
def schedule_id() -> str:
    return f"test-{CLEANUP_SCHEDULE_ID}-{uuid.uuid4()}"


@pytest.fixture
def own_settings(settings: Settings) -> Settings:
    """The suite's settings on a task queue of this test's own."""
    return settings.model_copy(update={"temporal_task_queue": f"test-{uuid.uuid4()}"})


@asynccontextmanager
async def cleanup_worker(
    client: Client, settings: Settings, storage: Storage, sessions: sessionmaker[Session]
) -> AsyncIterator[None]:
    activities = [
        *CleanupActivities(storage, sessions, settings).all(),
        *LostImageActivities(client, sessions, settings).all(),
    ]
    with ThreadPoolExecutor(max_workers=2) as executor:
        async with Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[CleanupStagingWorkflow],
            activities=activities,
            activity_executor=executor,
        ):
            yield


async def first_run_id(handle: ScheduleHandle) -> str:
    """The workflow id of the schedule's first action, once it has started."""
    while True:
        for action in (await handle.describe()).info.recent_actions:
            if isinstance(action.action, ScheduleActionExecutionStartWorkflow):
                return action.action.workflow_id
        await asyncio.sleep(0.2)


async def described_input(client: Client, handle: ScheduleHandle) -> CleanupInput:
    action = (await handle.describe()).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    payloads = [arg for arg in action.args if isinstance(arg, Payload)]
    [decoded] = await client.data_converter.decode(payloads, [CleanupInput])
    assert isinstance(decoded, CleanupInput)
    return decoded


async def test_a_triggered_run_removes_an_orphan(
    temporal_client: Client,
    storage: Storage,
    sessions: sessionmaker[Session],
    own_settings: Settings,
    schedule_id: str,
) -> None:
    # model_copy does not validate: 0 s is below the setting's floor, on purpose.
    eager = own_settings.model_copy(update={"cleanup_orphan_age_seconds": 0})
    with own_bucket(storage) as bucket:
        orphan = put(bucket, original_key_for(str(uuid.uuid4())))
        await asyncio.sleep(1.1)  # S3 dates objects to the second
        async with cleanup_worker(temporal_client, eager, bucket, sessions):
            handle = await ensure_cleanup_schedule(temporal_client, eager, schedule_id)
            try:
                await ensure_cleanup_schedule(temporal_client, eager, schedule_id)
                await handle.trigger()
                async with asyncio.timeout(30):
                    workflow_id = await first_run_id(handle)
                run = temporal_client.get_workflow_handle_for(
                    CleanupStagingWorkflow.run, workflow_id
                )
                result = await run.result()
            finally:
                await handle.delete()

        assert workflow_id.startswith(f"{schedule_id}-")
        # Pending objects and images are rows in the suite's shared database: other tests
        # leave some.
        left_by_others = {"pending_objects_deleted": 0, "lost_images_started": 0}
        assert dataclasses.replace(result, **left_by_others) == CleanupResult(
            orphan_originals_deleted=1
        )
        with pytest.raises(ObjectMissingError):
            bucket.size_of(orphan)


async def test_concurrent_starts_make_one_schedule_and_follow_settings(
    temporal_client: Client, own_settings: Settings, schedule_id: str
) -> None:
    handles = await asyncio.gather(
        *(ensure_cleanup_schedule(temporal_client, own_settings, schedule_id) for _ in range(5))
    )
    handle = handles[0]
    try:
        description = await handle.describe()
        schedule = description.schedule
        assert [i.every for i in schedule.spec.intervals] == [timedelta(hours=1)]
        assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert isinstance(schedule.action, ScheduleActionStartWorkflow)
        assert schedule.action.workflow == "CleanupStagingWorkflow"
        assert schedule.action.id == schedule_id
        assert schedule.action.task_queue == own_settings.temporal_task_queue
        assert await described_input(temporal_client, handle) == CleanupInput(24 * 3600)

        # An operator pauses it; a restart with the same settings changes nothing.
        await handle.pause(note="investigating")
        paused_at = (await handle.describe()).info.last_updated_at
        await ensure_cleanup_schedule(temporal_client, own_settings, schedule_id)
        assert (await handle.describe()).info.last_updated_at == paused_at

        # New settings are applied, and the pause is kept.
        changed = own_settings.model_copy(
            update={"cleanup_interval_seconds": 600, "cleanup_orphan_age_seconds": 7200}
        )
        await ensure_cleanup_schedule(temporal_client, changed, schedule_id)
        description = await handle.describe()
        assert [i.every for i in description.schedule.spec.intervals] == [timedelta(minutes=10)]
        assert await described_input(temporal_client, handle) == CleanupInput(7200)
        assert description.schedule.state.paused
    finally:
        await handle.delete()


async def test_bad_input_fails_without_retries(
    temporal_client: Client,
    storage: Storage,
    sessions: sessionmaker[Session],
    own_settings: Settings,
) -> None:
    async with cleanup_worker(temporal_client, own_settings, storage, sessions):
        with pytest.raises(WorkflowFailureError) as failure:
            await temporal_client.execute_workflow(
                CleanupStagingWorkflow.run,
                CleanupInput(older_than_seconds=-1),
                id=f"test-cleanup-{uuid.uuid4()}",
                task_queue=own_settings.temporal_task_queue,
            )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
