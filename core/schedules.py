"""The Temporal Schedules the workers keep in place: `staging-cleanup`.

Every worker process calls `ensure_cleanup_schedule` at start, often many at once. One
create wins; the others get `ScheduleAlreadyRunningError` and only bring the schedule in
line with their settings when it differs (interval, threshold, task queue), keeping an
operator's pause. The workflow is named, not imported, so this module stays free of
workflow code.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.converter import DataConverter

from core.contracts import CLEANUP_SCHEDULE_ID, CLEANUP_WORKFLOW_NAME, CleanupInput
from core.settings import Settings

logger = logging.getLogger(__name__)


def cleanup_schedule(settings: Settings, schedule_id: str = CLEANUP_SCHEDULE_ID) -> Schedule:
    """Start `CleanupStagingWorkflow` every interval; skip a run while one is running.

    Temporal names each run `<schedule_id>-<scheduled time>`.
    """
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CLEANUP_WORKFLOW_NAME,
            CleanupInput(
                older_than_seconds=settings.cleanup_orphan_age_seconds,
                lost_after_seconds=settings.cleanup_lost_image_age_seconds,
            ),
            id=schedule_id,
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(seconds=settings.cleanup_interval_seconds))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_cleanup_schedule(
    client: Client, settings: Settings, schedule_id: str = CLEANUP_SCHEDULE_ID
) -> ScheduleHandle:
    """Create the cleanup schedule, or update the existing one if these settings differ."""
    desired = cleanup_schedule(settings, schedule_id)
    try:
        handle = await client.create_schedule(schedule_id, desired)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)
        await handle.update(_refresher(schedule_id, desired, client.data_converter))
        return handle
    logger.info("created schedule %s", schedule_id)
    return handle


def _refresher(
    schedule_id: str, desired: Schedule, converter: DataConverter
) -> Callable[[ScheduleUpdateInput], Awaitable[ScheduleUpdate | None]]:
    """The update: nothing when the schedule already matches, else `desired` but paused
    or not as it was (a pause is an operator's decision, not a setting)."""

    async def refresh(update: ScheduleUpdateInput) -> ScheduleUpdate | None:
        current = update.description.schedule
        if not await _differs(current, desired, converter):
            return None
        logger.info("updating schedule %s to the current settings", schedule_id)
        return ScheduleUpdate(schedule=dataclasses.replace(desired, state=current.state))

    return refresh


async def _differs(current: Schedule, desired: Schedule, converter: DataConverter) -> bool:
    have, want = current.action, desired.action
    if not isinstance(have, ScheduleActionStartWorkflow) or not isinstance(
        want, ScheduleActionStartWorkflow
    ):
        return True
    # A described schedule holds its arguments as payloads: compare them encoded.
    wanted_args = await converter.encode(list(want.args))
    return (
        _intervals(current) != _intervals(desired)
        or current.policy.overlap != desired.policy.overlap
        or (have.workflow, have.id, have.task_queue) != (want.workflow, want.id, want.task_queue)
        or list(have.args) != wanted_args
    )


def _intervals(schedule: Schedule) -> list[tuple[timedelta, timedelta]]:
    return [(i.every, i.offset or timedelta(0)) for i in schedule.spec.intervals]
