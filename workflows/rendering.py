"""How `ImageProcessingWorkflow` prepares an image and renders its sizes, and recovers when
the worker holding the decoded copy is lost (the `render-where-prepared` change).

The resizes run on the task queue of the worker that prepared the image, which keeps the
copy in memory. If that worker dies or freezes, its heartbeats stop, or its resizes wait
on its queue too long and it no longer beats (`render-liveness`); if it dropped the copy,
the resizes answer `working_copy_lost`. Either way the image is prepared again, under a
fresh fence, on any worker, for the missing sizes only (docs/fencing.md, "Recovery").
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        PREPARE_ACTIVITY,
        RENDER_QUEUE_ALIVE_ACTIVITY,
        RESIZE_ACTIVITY,
        ImageProcessingInput,
        ImageState,
        PreparedImage,
        PrepareInput,
        ProcessingStatus,
        RenderQueueCheck,
        ResizeInput,
        ResizeResult,
    )
    from core.presets import PRESETS, Preset, geometry

from workflows.errors import copy_lost, start_timed_out, superseded
from workflows.policies import (
    LIVENESS_CHECK_TIMEOUT,
    LIVENESS_RETRY,
    MAX_PREPARATIONS,
    PREPARE_HEARTBEAT_TIMEOUT,
    PREPARE_TIMEOUT,
    RENDER_HEARTBEAT_TIMEOUT,
    RENDER_START_MAX,
    RENDER_TIMEOUT,
    RENDER_WAIT_BUDGET,
    fence_now,
    render_start_timeout,
)

# When a resize's wait runs out, ask whether the preparing worker still beats.
RENDER_LIVENESS = "render-liveness"


class Rendering:
    """The workflow's preparing and rendering; its state is set by the workflow's init."""

    _status: ProcessingStatus
    _retry: RetryPolicy
    _render_retry: RetryPolicy
    _original_key: str

    async def _render_where_prepared(
        self, request: ImageProcessingInput, working_key: str
    ) -> list[ResizeResult]:
        """Prepare, then render every size on the preparing worker; redo what a lost
        worker left undone, at most `MAX_PREPARATIONS` times in all."""
        done: list[ResizeResult] = []
        # Workflows started before presets were data carry none: the spec's four sizes.
        missing = list(request.presets or PRESETS)
        for preparation in range(1, MAX_PREPARATIONS + 1):
            try:
                prepared = await self._prepare(
                    request, working_key, render_versions=[preset.name for preset in missing]
                )
            except ActivityError as error:
                # Only after a reset to an event with this preparation pending: its fence
                # predates what the old run wrote, so prepare again under a fresh one.
                if preparation == MAX_PREPARATIONS or not superseded(error):
                    raise
                continue
            outcomes = await asyncio.gather(
                *(self._resize(request, prepared, preset) for preset in missing),
                return_exceptions=True,
            )
            done.extend(outcome for outcome in outcomes if isinstance(outcome, ResizeResult))
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if not failures:
                return done
            lost = preparation < MAX_PREPARATIONS and all(map(copy_lost, failures))
            if not lost:
                raise failures[0]
            missing = [
                preset
                for preset, outcome in zip(missing, outcomes, strict=True)
                if isinstance(outcome, BaseException)
            ]
            workflow.logger.warning(
                "the worker preparing %s lost its copy; preparing again for %s",
                request.image_id,
                [preset.name for preset in missing],
            )
        raise AssertionError("unreachable: the last preparation returns or raises")

    async def _prepare(
        self,
        request: ImageProcessingInput,
        working_key: str,
        render_versions: list[str] | None = None,
    ) -> PreparedImage:
        self._status.state = ImageState.PROCESSING.value
        prepared: PreparedImage = await workflow.execute_activity(
            PREPARE_ACTIVITY,
            PrepareInput(
                request.image_id,
                self._original_key,
                working_key,
                render_versions or [],
                fence_now(),
                presets=request.presets,
            ),
            result_type=PreparedImage,
            start_to_close_timeout=PREPARE_TIMEOUT,
            heartbeat_timeout=PREPARE_HEARTBEAT_TIMEOUT,
            retry_policy=self._retry,
        )
        return prepared

    async def _resize(
        self, request: ImageProcessingInput, prepared: PreparedImage, preset: Preset
    ) -> ResizeResult:
        wait = render_start_timeout(prepared) if prepared.render_queue is not None else None
        waited = timedelta(0)
        while True:
            try:
                result = await self._schedule_resize(request, prepared, preset, wait)
                break
            except ActivityError as error:
                if wait is None or not start_timed_out(error):
                    raise
                waited += wait
                if not await self._still_alive(prepared, waited):
                    raise
                wait = min(wait * 2, RENDER_START_MAX)
        self._status.versions_done.append(preset.name)
        return result

    async def _schedule_resize(
        self,
        request: ImageProcessingInput,
        prepared: PreparedImage,
        preset: Preset,
        wait: timedelta | None,
    ) -> ResizeResult:
        sizes = geometry(prepared.width, prepared.height, preset)
        cropped = sizes.scaled != sizes.final
        result: ResizeResult = await workflow.execute_activity(
            RESIZE_ACTIVITY,
            ResizeInput(
                image_id=request.image_id,
                project_id=request.project_id,
                version=preset.name,
                width=sizes.final[0],
                height=sizes.final[1],
                working_key=prepared.working_key,
                from_memory=True,
                fence=fence_now(),
                scaled_width=sizes.scaled[0] if cropped else 0,
                scaled_height=sizes.scaled[1] if cropped else 0,
                preset=preset if request.presets else None,
            ),
            result_type=ResizeResult,
            task_queue=prepared.render_queue,
            schedule_to_start_timeout=wait,
            start_to_close_timeout=RENDER_TIMEOUT,
            heartbeat_timeout=RENDER_HEARTBEAT_TIMEOUT,
            retry_policy=self._render_retry,
        )
        return result

    async def _still_alive(self, prepared: PreparedImage, waited: timedelta) -> bool:
        """Whether a resize that waited `waited` for the preparing worker should wait more:
        that worker still beats (a busy one), within the budget. A failed check (Postgres
        down) counts as alive: preparing again would need Postgres too."""
        if waited >= RENDER_WAIT_BUDGET or not workflow.patched(RENDER_LIVENESS):
            return False
        assert prepared.render_queue is not None
        try:
            alive: bool = await workflow.execute_local_activity(
                RENDER_QUEUE_ALIVE_ACTIVITY,
                RenderQueueCheck(prepared.render_queue),
                result_type=bool,
                start_to_close_timeout=LIVENESS_CHECK_TIMEOUT,
                retry_policy=LIVENESS_RETRY,
            )
        except (ActivityError, ApplicationError):
            # A local activity's failure may arrive as its own ApplicationError, unwrapped.
            workflow.logger.warning("could not tell whether %s is alive", prepared.render_queue)
            return True
        return alive
