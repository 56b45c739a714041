"""`ImageProcessingWorkflow`: wait for the upload if needed, seal the original, prepare once,
fan out one resize per size, record the outcome.

The seal (the `seal-original` change) is the first activity after the upload is verified:
it copies the staged upload, pinned to the version that was verified, to the image's
sealed original key, and removes the staged object. Everything after reads the sealed
copy, which no client can write. Direct uploads are streamed straight to that key by the
API (as were all uploads before the change), and skip it.

The resizes run on the task queue of the worker that prepared the image, which keeps the
decoded copy in memory (the `render-where-prepared` change; `workflows.rendering`). If
that worker is lost or dropped the copy, the image is prepared again, on any worker, for
the missing sizes.

Every image ends `done` (the workflow completes) or `error` with a code (the workflow
fails with an `ApplicationError` of that type, so operators see it as Failed).

Every activity carries a `Fence` taken when it is scheduled (`workflow.time_ns()` and the
run id): its writes are refused once something scheduled later, or a newer run after a
reset, has written the image (docs/fencing.md).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        CONFIRM_UPLOAD_UPDATE,
        DISCARD_ACTIVITY,
        EXPIRE_UPLOAD_ACTIVITY,
        FAIL_ACTIVITY,
        FINISH_ACTIVITY,
        ORIGINALS_PREFIX,
        SEAL_ORIGINAL_ACTIVITY,
        STAGING_PREFIX,
        STATUS_QUERY,
        VERIFY_UPLOAD_ACTIVITY,
        WORKFLOW_NAME,
        ConfirmUploadInput,
        DiscardInput,
        ErrorCode,
        ExpireUploadInput,
        FailureInput,
        FinishInput,
        ImageProcessingInput,
        ImageProcessingResult,
        ImageState,
        ProcessingStatus,
        SealInput,
        UploadConfirmation,
        VerifiedUpload,
        VerifyUploadInput,
        original_key_for,
        working_key_for,
    )
    from core.presets import PRESETS

from workflows.errors import code_of, error_code, keeps_source
from workflows.policies import (
    BOOKKEEPING_TIMEOUT,
    RECORD_BUDGET,
    RECORD_RETRY,
    RENDER_RETRY_INTERVAL,
    fence_now,
    transient_retry,
)
from workflows.rendering import Rendering

RENDER_WHERE_PREPARED = "render-where-prepared"
SEAL_ORIGINAL = "seal-original"


@workflow.defn(name=WORKFLOW_NAME)
class ImageProcessingWorkflow(Rendering):
    @workflow.init
    def __init__(self, request: ImageProcessingInput) -> None:
        initial = ImageState.INIT if request.awaiting_upload else ImageState.UPLOADED
        self._status = ProcessingStatus(
            state=initial.value, versions_total=len(request.presets or PRESETS)
        )
        self._awaiting_upload = request.awaiting_upload
        self._source_key = request.source_key
        self._retry = transient_retry(request.max_attempts)
        self._render_retry = transient_retry(request.max_attempts, RENDER_RETRY_INTERVAL)
        self._expired = False
        self._confirming = False
        self._confirmation: UploadConfirmation | None = None
        self._verified: VerifiedUpload | None = None
        # What prepare reads: the sealed original once sealed, else the key uploaded to.
        self._original_key = request.source_key
        # A direct upload streamed to its original key is as good as sealed: no client can
        # write there. Then an image that failed for good keeps nothing, as a sealed one.
        self._sealed = request.source_key.startswith(ORIGINALS_PREFIX)

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
        if request.source_key.startswith(STAGING_PREFIX) and workflow.patched(SEAL_ORIGINAL):
            await self._seal(request, working_key)
        # Step 2 of retiring the S3 working copy (docs/workflow-changes.md): every open
        # workflow started under the patch; the marker is accepted, no longer required.
        workflow.deprecate_patch(RENDER_WHERE_PREPARED)
        try:
            versions = await self._render_where_prepared(request, working_key)
        except ActivityError as error:
            await self._fail(request, working_key, error_code(error), str(error.cause or error))
            raise self._final_error(request) from error
        await self._finish(request)
        self._status.state = ImageState.DONE.value
        return ImageProcessingResult(request.image_id, ImageState.DONE.value, versions)

    async def _finish(self, request: ImageProcessingInput) -> None:
        # One short Postgres update: as a local activity it runs in the workflow task
        # that saw the last size done, without a round trip through a task queue.
        await workflow.execute_local_activity(
            FINISH_ACTIVITY,
            FinishInput(request.image_id, fence=fence_now()),
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
            # A verification that outlived an outage keeps the upload, for a retry.
            refuse = not keeps_source(code)
            await self._fail(request, working_key, code, message, refuse_source=refuse)
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise self._final_error(request)

    async def _verify_upload(self, request: ConfirmUploadInput) -> UploadConfirmation:
        try:
            # Decoded by hand: histories from before the seal hold no result here.
            verified = await workflow.execute_activity(
                VERIFY_UPLOAD_ACTIVITY,
                VerifyUploadInput(request.image_id, self._source_key, fence_now()),
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=self._retry,
            )
        except ActivityError as error:
            return UploadConfirmation(
                ImageState.ERROR.value, error_code(error), str(error.cause or error)
            )
        if isinstance(verified, dict):
            self._verified = VerifiedUpload(str(verified["etag"]), str(verified["format"]))
        self._status.state = ImageState.UPLOADED.value
        return UploadConfirmation(ImageState.UPLOADED.value)

    async def _seal(self, request: ImageProcessingInput, working_key: str) -> None:
        """Copy the verified upload to the sealed original (see the module docstring)."""
        verified = self._verified
        etag = request.source_etag or (verified.etag if verified else "")
        image_format = request.source_format or (verified.format if verified else "")
        original_key = original_key_for(request.image_id)
        try:
            # Local: a short copy and update, run in the workflow task that needs it.
            await workflow.execute_local_activity(
                SEAL_ORIGINAL_ACTIVITY,
                SealInput(request.image_id, request.source_key, original_key, etag, image_format),
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=self._retry,
            )
        except (ActivityError, ApplicationError) as error:
            # A local activity's failure may arrive as its own ApplicationError, unwrapped.
            cause = error.cause if isinstance(error, ActivityError) else error
            code = code_of(cause)
            await self._fail(
                request,
                working_key,
                code,
                str(cause or error),
                refuse_source=not keeps_source(code),
            )
            raise self._final_error(request) from error
        self._original_key = original_key
        self._sealed = True

    async def _expire(self, request: ImageProcessingInput) -> None:
        workflow.logger.info("upload link for %s expired", request.image_id)
        self._status.state = ImageState.ERROR.value
        self._status.error_code = ErrorCode.UPLOAD_EXPIRED.value
        await workflow.execute_activity(
            EXPIRE_UPLOAD_ACTIVITY,
            ExpireUploadInput(request.image_id, request.source_key, fence_now()),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            schedule_to_close_timeout=RECORD_BUDGET,
            retry_policy=RECORD_RETRY,
        )

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
        # A sealed image that failed for good keeps nothing; after a transient fault its
        # original stays (unlinked) for an operator's `temporal workflow reset`.
        discard_all = self._sealed and not keeps_source(code)
        leftovers: DiscardInput = await workflow.execute_activity(
            FAIL_ACTIVITY,
            FailureInput(
                request.image_id,
                working_key,
                code,
                message,
                source_key=request.source_key if refuse_source or discard_all else None,
                original_key=self._original_key if discard_all else None,
                fence=fence_now(),
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
