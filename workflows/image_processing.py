"""`ImageProcessingWorkflow`: prepare once, fan out one resize per size, record the outcome."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        FAIL_ACTIVITY,
        FINISH_ACTIVITY,
        NON_RETRYABLE_ERROR_TYPES,
        PREPARE_ACTIVITY,
        RESIZE_ACTIVITY,
        WORKFLOW_NAME,
        ErrorCode,
        FailureInput,
        FinishInput,
        ImageProcessingInput,
        ImageProcessingResult,
        ImageState,
        PreparedImage,
        PrepareInput,
        ProcessingStatus,
        ResizeInput,
        ResizeResult,
        working_key_for,
    )
    from core.presets import PRESETS, Preset, fit_within

# Bounded: about four minutes of backoff rides out an S3 or Postgres restart, and then
# the image ends in `error` instead of retrying forever.
TRANSIENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=12,
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)
PREPARE_TIMEOUT = timedelta(minutes=2)
RESIZE_TIMEOUT = timedelta(minutes=1)
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=WORKFLOW_NAME)
class ImageProcessingWorkflow:
    def __init__(self) -> None:
        self._status = ProcessingStatus(
            state=ImageState.UPLOADED.value, versions_total=len(PRESETS)
        )

    @workflow.query
    def status(self) -> ProcessingStatus:
        return self._status

    @workflow.run
    async def run(self, request: ImageProcessingInput) -> ImageProcessingResult:
        working_key = working_key_for(request.image_id)
        try:
            prepared = await self._prepare(request, working_key)
            versions = await self._resize_all(request, prepared)
        except ActivityError as error:
            await self._fail(request, working_key, error)
            raise ApplicationError(
                f"image {request.image_id} failed: {self._status.error_code}",
                type=self._status.error_code,
                non_retryable=True,
            ) from error
        await workflow.execute_activity(
            FINISH_ACTIVITY,
            FinishInput(image_id=request.image_id, working_key=working_key),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=TRANSIENT_RETRY,
        )
        self._status.state = ImageState.DONE.value
        return ImageProcessingResult(request.image_id, ImageState.DONE.value, versions)

    async def _prepare(self, request: ImageProcessingInput, working_key: str) -> PreparedImage:
        self._status.state = ImageState.PROCESSING.value
        prepared: PreparedImage = await workflow.execute_activity(
            PREPARE_ACTIVITY,
            PrepareInput(request.image_id, request.source_key, working_key),
            result_type=PreparedImage,
            start_to_close_timeout=PREPARE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=TRANSIENT_RETRY,
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
        width, height = fit_within(prepared.width, prepared.height, preset.box)
        result: ResizeResult = await workflow.execute_activity(
            RESIZE_ACTIVITY,
            ResizeInput(
                image_id=request.image_id,
                project_id=request.project_id,
                version=preset.name,
                width=width,
                height=height,
                working_key=prepared.working_key,
            ),
            result_type=ResizeResult,
            start_to_close_timeout=RESIZE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=TRANSIENT_RETRY,
        )
        self._status.versions_done.append(preset.name)
        return result

    async def _fail(
        self, request: ImageProcessingInput, working_key: str, error: ActivityError
    ) -> None:
        code = _error_code(error)
        workflow.logger.warning("image %s failed with %s", request.image_id, code)
        self._status.state = ImageState.ERROR.value
        self._status.error_code = code
        await workflow.execute_activity(
            FAIL_ACTIVITY,
            FailureInput(request.image_id, working_key, code, str(error.cause or error)),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=TRANSIENT_RETRY,
        )


def _error_code(error: ActivityError) -> str:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in NON_RETRYABLE_ERROR_TYPES:
        return cause.type
    return ErrorCode.PROCESSING_FAILED.value
