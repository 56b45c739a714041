"""`CleanupStagingWorkflow`: remove staging objects that never became an image, and start
the workflows of images whose API process died before starting them.

Started by the `staging-cleanup` Temporal Schedule (see `core/schedules.py`). It runs the
sweeps one after another (first the start of lost images, behind the `start-lost-images`
patch, see `activities.lost_images`; the fourth sweep, of pending derivatives, behind the
`sweep-pending-objects` patch), so it holds at most one activity slot of one worker, and
answers how much each removed. A sweep that exhausts its retries fails the run, which
shows as Failed in the UI; the next scheduled run starts over, since every sweep is
idempotent.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        ABORT_UPLOADS_ACTIVITY,
        CLEANUP_BATCH_SIZE,
        CLEANUP_WORKFLOW_NAME,
        START_LOST_IMAGES_ACTIVITY,
        SWEEP_ORIGINALS_ACTIVITY,
        SWEEP_PENDING_OBJECTS_ACTIVITY,
        SWEEP_WORKING_COPIES_ACTIVITY,
        CleanupInput,
        CleanupResult,
        SweepInput,
        SweepResult,
    )

# A sweep heartbeats after every batch of at most 1000 keys, which takes seconds; an hour
# covers millions of keys, and a retry resumes cheaply because removed keys are gone.
SWEEP_TIMEOUT = timedelta(hours=1)
SWEEP_BUDGET = timedelta(hours=2)
SWEEP_HEARTBEAT_TIMEOUT = timedelta(minutes=2)
SWEEP_PENDING_OBJECTS = "sweep-pending-objects"
START_LOST_IMAGES = "start-lost-images"
SWEEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=5,
)


@workflow.defn(name=CLEANUP_WORKFLOW_NAME)
class CleanupStagingWorkflow:
    @workflow.run
    async def run(self, request: CleanupInput) -> CleanupResult:
        if request.older_than_seconds < 0 or not 1 <= request.batch_size <= CLEANUP_BATCH_SIZE:
            raise ApplicationError(
                f"bad cleanup input: {request}", type="invalid_input", non_retryable=True
            )
        lost = SweepResult()
        if workflow.patched(START_LOST_IMAGES):
            # First: an image waiting on nothing matters more than a leftover object.
            lost_after = SweepInput(request.lost_after_seconds, request.batch_size)
            lost = await self._sweep(START_LOST_IMAGES_ACTIVITY, lost_after)
        sweep = SweepInput(request.older_than_seconds, request.batch_size)
        originals = await self._sweep(SWEEP_ORIGINALS_ACTIVITY, sweep)
        working = await self._sweep(SWEEP_WORKING_COPIES_ACTIVITY, sweep)
        uploads = await self._sweep(ABORT_UPLOADS_ACTIVITY, sweep)
        pending = SweepResult()
        if workflow.patched(SWEEP_PENDING_OBJECTS):
            pending = await self._sweep(SWEEP_PENDING_OBJECTS_ACTIVITY, sweep)
        result = CleanupResult(
            orphan_originals_deleted=originals.removed,
            stale_working_copies_deleted=working.removed,
            multipart_uploads_aborted=uploads.removed,
            failed=originals.failed + working.failed + uploads.failed + pending.failed,
            pending_objects_deleted=pending.removed,
            lost_images_started=lost.removed,
        )
        workflow.logger.info("staging cleanup: %s", result)
        return result

    async def _sweep(self, activity_name: str, request: SweepInput) -> SweepResult:
        result: SweepResult = await workflow.execute_activity(
            activity_name,
            request,
            result_type=SweepResult,
            start_to_close_timeout=SWEEP_TIMEOUT,
            schedule_to_close_timeout=SWEEP_BUDGET,
            heartbeat_timeout=SWEEP_HEARTBEAT_TIMEOUT,
            retry_policy=SWEEP_RETRY,
        )
        return result
