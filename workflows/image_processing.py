"""`ImageProcessingWorkflow`: wait for the upload if needed, prepare once, fan out one resize
per size, record the outcome.

The resizes run on the task queue of the worker that prepared the image, which keeps the
decoded copy in memory (the `render-where-prepared` change). If that worker is gone or
dropped the copy, the missing sizes time out waiting to start (or answer
`working_copy_lost`), and the image is prepared again, on any worker, for those sizes.

Every image ends `done` (the workflow completes) or `error` with a code (the workflow
fails with an `ApplicationError` of that type, so operators see it as Failed).

Every activity carries a `Fence` taken when it is scheduled (`workflow.time_ns()` and the
run id): its writes are refused once something scheduled later, or a newer run after a
reset, has written the image (docs/fencing.md).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import exceptions, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        CONFIRM_UPLOAD_UPDATE,
        DISCARD_ACTIVITY,
        EXPIRE_UPLOAD_ACTIVITY,
        FAIL_ACTIVITY,
        FINISH_ACTIVITY,
        NON_RETRYABLE_ERROR_TYPES,
        PREPARE_ACTIVITY,
        RENDER_QUEUE_ALIVE_ACTIVITY,
        RESIZE_ACTIVITY,
        STATUS_QUERY,
        TRANSIENT_ERROR_TYPES,
        VERIFY_UPLOAD_ACTIVITY,
        WORKFLOW_NAME,
        ConfirmUploadInput,
        DiscardInput,
        ErrorCode,
        ExpireUploadInput,
        FailureInput,
        Fence,
        FinishInput,
        ImageProcessingInput,
        ImageProcessingResult,
        ImageState,
        PreparedImage,
        PrepareInput,
        ProcessingStatus,
        RenderQueueCheck,
        ResizeInput,
        ResizeResult,
        UploadConfirmation,
        VerifyUploadInput,
        working_key_for,
    )
    from core.presets import PRESETS, Preset, fit_within

RENDER_WHERE_PREPARED = "render-where-prepared"
PREPARE_TIMEOUT = timedelta(minutes=2)
RESIZE_TIMEOUT = timedelta(minutes=1)
# Recovering from a lost worker (docs/fencing.md#recovery). A worker that dies or freezes
# stops heartbeating: its prepare and its started renders time out within these, however
# loaded a live worker is, since a live one keeps beating from a side thread. A render from
# memory usually ends before its first beat (after 1 s), so it costs no heartbeat at all.
PREPARE_HEARTBEAT_TIMEOUT = timedelta(seconds=4)
RENDER_HEARTBEAT_TIMEOUT = timedelta(seconds=3)
RENDER_TIMEOUT = timedelta(seconds=30)
# How long a resize may wait for the preparing worker before the image is prepared again
# elsewhere: a base, plus an allowance per render the worker already had queued when it
# prepared this image. A busy live worker's queue is not mistaken for a dead worker (a
# plain short wait turned a burst into a storm of re-preparations), and an idle one that
# died is noticed in seconds. Not retried: a worker that does not poll is presumed gone.
RENDER_START_BASE = timedelta(seconds=2)
RENDER_START_PER_QUEUED = timedelta(seconds=0.5)
RENDER_START_MAX = timedelta(seconds=30)
RENDER_RETRY_INTERVAL = timedelta(seconds=0.5)
# When a wait runs out, the workflow asks whether that worker still beats (behind the
# `render-liveness` patch): if so it waits again, twice as long, up to this in all.
RENDER_LIVENESS = "render-liveness"
RENDER_WAIT_BUDGET = timedelta(minutes=2)
LIVENESS_CHECK_TIMEOUT = timedelta(seconds=5)
LIVENESS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
)
# Preparations per image: each one after the first follows a lost worker or copy.
MAX_PREPARATIONS = 3
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# Recording the outcome outlasts the work: a Postgres outage longer than the work's
# retries still ends with the image's final state written once Postgres is back.
RECORD_BUDGET = timedelta(hours=1)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)


def transient_retry(
    max_attempts: int, initial_interval: timedelta = timedelta(seconds=1)
) -> RetryPolicy:
    """Bounded backoff: the default 12 attempts ride out about four minutes of outage."""
    return RetryPolicy(
        initial_interval=initial_interval,
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=max(1, max_attempts),
        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
    )


@workflow.defn(name=WORKFLOW_NAME)
class ImageProcessingWorkflow:
    @workflow.init
    def __init__(self, request: ImageProcessingInput) -> None:
        initial = ImageState.INIT if request.awaiting_upload else ImageState.UPLOADED
        self._status = ProcessingStatus(state=initial.value, versions_total=len(PRESETS))
        self._awaiting_upload = request.awaiting_upload
        self._source_key = request.source_key
        self._retry = transient_retry(request.max_attempts)
        self._render_retry = transient_retry(request.max_attempts, RENDER_RETRY_INTERVAL)
        self._expired = False
        self._confirming = False
        self._confirmation: UploadConfirmation | None = None

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ProcessingStatus:
        return self._status

    @workflow.update(name=CONFIRM_UPLOAD_UPDATE)
    async def confirm_upload(self, request: ConfirmUploadInput) -> UploadConfirmation:
        """The client says its upload is in S3; answers once it has been checked.

        Idempotent: a repeated or concurrent confirmation gets the same answer.
        """
        if not self._confirming:
            self._confirming = True
            self._confirmation = await self._verify_upload(request)
        await workflow.wait_condition(lambda: self._confirmation is not None)
        assert self._confirmation is not None
        return self._confirmation

    @confirm_upload.validator
    def _accept_confirmation(self, request: ConfirmUploadInput) -> None:
        if not self._awaiting_upload:
            raise ApplicationError("this image was not created by an upload link")
        if self._expired:
            raise ApplicationError("the upload link has expired", type=ErrorCode.UPLOAD_EXPIRED)

    @workflow.run
    async def run(self, request: ImageProcessingInput) -> ImageProcessingResult:
        working_key = working_key_for(request.image_id)
        if request.awaiting_upload:
            await self._await_upload(request, working_key)
        in_memory = workflow.patched(RENDER_WHERE_PREPARED)
        try:
            if in_memory:
                versions = await self._render_where_prepared(request, working_key)
            else:
                prepared = await self._prepare(request, working_key)
                versions = await self._resize_all(request, prepared)
        except ActivityError as error:
            await self._fail(request, working_key, _error_code(error), str(error.cause or error))
            raise self._final_error(request) from error
        await self._finish(request, working_key, in_memory)
        self._status.state = ImageState.DONE.value
        return ImageProcessingResult(request.image_id, ImageState.DONE.value, versions)

    async def _finish(
        self, request: ImageProcessingInput, working_key: str, in_memory: bool
    ) -> None:
        if in_memory:
            # One short Postgres update: as a local activity it runs in the workflow task
            # that saw the last size done, without a round trip through a task queue.
            await workflow.execute_local_activity(
                FINISH_ACTIVITY,
                FinishInput(request.image_id, working_key=None, fence=_fence()),
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                schedule_to_close_timeout=RECORD_BUDGET,
                retry_policy=RECORD_RETRY,
            )
            return
        await workflow.execute_activity(
            FINISH_ACTIVITY,
            FinishInput(request.image_id, working_key=working_key, fence=_fence()),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            schedule_to_close_timeout=RECORD_BUDGET,
            retry_policy=RECORD_RETRY,
        )

    async def _await_upload(self, request: ImageProcessingInput, working_key: str) -> None:
        """Durably wait for the confirmation; on expiry, leave nothing behind."""
        try:
            await workflow.wait_condition(
                lambda: self._confirming,
                timeout=timedelta(seconds=request.upload_timeout_seconds),
            )
        except TimeoutError:
            self._expired = True
            await self._expire(request)
            raise self._final_error(request) from None
        await workflow.wait_condition(lambda: self._confirmation is not None)
        confirmation = self._confirmation
        assert confirmation is not None
        if confirmation.state == ImageState.ERROR:
            code = confirmation.error_code or ErrorCode.INVALID_IMAGE.value
            message = confirmation.error_message or code
            await self._fail(request, working_key, code, message, refuse_source=True)
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise self._final_error(request)

    async def _verify_upload(self, request: ConfirmUploadInput) -> UploadConfirmation:
        try:
            await workflow.execute_activity(
                VERIFY_UPLOAD_ACTIVITY,
                VerifyUploadInput(request.image_id, self._source_key, _fence()),
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=self._retry,
            )
        except ActivityError as error:
            return UploadConfirmation(
                ImageState.ERROR.value, _error_code(error), str(error.cause or error)
            )
        self._status.state = ImageState.UPLOADED.value
        return UploadConfirmation(ImageState.UPLOADED.value)

    async def _expire(self, request: ImageProcessingInput) -> None:
        workflow.logger.info("upload link for %s expired", request.image_id)
        self._status.state = ImageState.ERROR.value
        self._status.error_code = ErrorCode.UPLOAD_EXPIRED.value
        await workflow.execute_activity(
            EXPIRE_UPLOAD_ACTIVITY,
            ExpireUploadInput(request.image_id, request.source_key, _fence()),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            schedule_to_close_timeout=RECORD_BUDGET,
            retry_policy=RECORD_RETRY,
        )

    async def _render_where_prepared(
        self, request: ImageProcessingInput, working_key: str
    ) -> list[ResizeResult]:
        """Prepare, then render every size on the preparing worker; redo what a lost
        worker left undone, at most `MAX_PREPARATIONS` times in all."""
        done: list[ResizeResult] = []
        missing = list(PRESETS)
        for preparation in range(1, MAX_PREPARATIONS + 1):
            try:
                prepared = await self._prepare(
                    request, working_key, render_versions=[preset.name for preset in missing]
                )
            except ActivityError as error:
                # Only after a reset to an event with this preparation pending: its fence
                # predates what the old run wrote, so prepare again under a fresh one.
                if preparation == MAX_PREPARATIONS or not _superseded(error):
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
            lost = preparation < MAX_PREPARATIONS and all(map(_copy_lost, failures))
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
                request.source_key,
                working_key,
                render_versions or [],
                _fence(),
            ),
            result_type=PreparedImage,
            start_to_close_timeout=PREPARE_TIMEOUT,
            heartbeat_timeout=PREPARE_HEARTBEAT_TIMEOUT,
            retry_policy=self._retry,
        )
        return prepared

    async def _resize_all(
        self, request: ImageProcessingInput, prepared: PreparedImage
    ) -> list[ResizeResult]:
        # Let every size finish (or exhaust its retries) before deciding, so that a
        # failure cleanup never races a resize that is still writing.
        outcomes = await asyncio.gather(
            *(self._resize(request, prepared, preset) for preset in PRESETS),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [outcome for outcome in outcomes if isinstance(outcome, ResizeResult)]

    async def _resize(
        self, request: ImageProcessingInput, prepared: PreparedImage, preset: Preset
    ) -> ResizeResult:
        wait = _render_start_timeout(prepared) if prepared.render_queue is not None else None
        waited = timedelta(0)
        while True:
            try:
                result = await self._schedule_resize(request, prepared, preset, wait)
                break
            except ActivityError as error:
                if wait is None or not _start_timed_out(error):
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
        width, height = fit_within(prepared.width, prepared.height, preset.box)
        from_memory = prepared.render_queue is not None
        result: ResizeResult = await workflow.execute_activity(
            RESIZE_ACTIVITY,
            ResizeInput(
                image_id=request.image_id,
                project_id=request.project_id,
                version=preset.name,
                width=width,
                height=height,
                working_key=prepared.working_key,
                from_memory=from_memory,
                fence=_fence(),
            ),
            result_type=ResizeResult,
            task_queue=prepared.render_queue,
            schedule_to_start_timeout=wait,
            start_to_close_timeout=RENDER_TIMEOUT if from_memory else RESIZE_TIMEOUT,
            heartbeat_timeout=RENDER_HEARTBEAT_TIMEOUT if from_memory else HEARTBEAT_TIMEOUT,
            retry_policy=self._render_retry if from_memory else self._retry,
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
        except ActivityError:
            workflow.logger.warning("could not tell whether %s is alive", prepared.render_queue)
            return True
        return alive

    async def _fail(
        self,
        request: ImageProcessingInput,
        working_key: str,
        code: str,
        message: str,
        *,
        refuse_source: bool = False,
    ) -> None:
        workflow.logger.warning("image %s failed with %s", request.image_id, code)
        self._status.state = ImageState.ERROR.value
        self._status.error_code = code
        leftovers: DiscardInput = await workflow.execute_activity(
            FAIL_ACTIVITY,
            FailureInput(
                request.image_id,
                working_key,
                code,
                message,
                source_key=request.source_key if refuse_source else None,
                fence=_fence(),
            ),
            result_type=DiscardInput,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            schedule_to_close_timeout=RECORD_BUDGET,
            retry_policy=RECORD_RETRY,
        )
        try:
            await workflow.execute_activity(
                DISCARD_ACTIVITY,
                leftovers,
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=self._retry,
            )
        except ActivityError:
            # The error is recorded; objects left behind are only storage, not state.
            workflow.logger.warning("could not discard %s", leftovers.keys)

    def _final_error(self, request: ImageProcessingInput) -> ApplicationError:
        code = self._status.error_code or ErrorCode.PROCESSING_FAILED.value
        return ApplicationError(
            f"image {request.image_id} failed: {code}", type=code, non_retryable=True
        )


def _render_start_timeout(prepared: PreparedImage) -> timedelta:
    allowance = RENDER_START_PER_QUEUED * prepared.renders_queued
    return min(RENDER_START_BASE + allowance, RENDER_START_MAX)


def _fence() -> Fence:
    """The fence of an activity scheduled now: later than anything scheduled before it in
    this run, and than anything of an earlier run (workflow time only moves forward)."""
    return Fence(workflow.time_ns(), workflow.info().run_id)


def _start_timed_out(error: ActivityError) -> bool:
    cause = error.cause
    return (
        isinstance(cause, exceptions.TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START
    )


def _copy_lost(error: BaseException) -> bool:
    """The resize never ran where its copy is, the copy is no longer there, or its fence
    was overtaken (see `_superseded`): preparing again under a fresh fence fixes all three."""
    if not isinstance(error, ActivityError):
        return False
    cause = error.cause
    if isinstance(cause, exceptions.TimeoutError):  # not the builtin a timer raises
        return cause.type == TimeoutType.SCHEDULE_TO_START
    return isinstance(cause, ApplicationError) and cause.type in (
        ErrorCode.WORKING_COPY_LOST,
        ErrorCode.SUPERSEDED,
    )


def _superseded(error: ActivityError) -> bool:
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.type == ErrorCode.SUPERSEDED


# The codes an image's error may carry. Not `working_copy_lost` nor `superseded`: the
# image was prepared again already, so when they end an image, it simply failed.
_RECORDED_ERROR_TYPES = frozenset(NON_RETRYABLE_ERROR_TYPES + TRANSIENT_ERROR_TYPES) - {
    ErrorCode.WORKING_COPY_LOST,
    ErrorCode.SUPERSEDED,
}


def _error_code(error: ActivityError) -> str:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in _RECORDED_ERROR_TYPES:
        return cause.type
    return ErrorCode.PROCESSING_FAILED.value
