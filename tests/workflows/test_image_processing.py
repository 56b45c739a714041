"""The workflow against the real Temporal dev server, with its activities mocked by name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from core.contracts import (
    CONFIRM_UPLOAD_UPDATE,
    DISCARD_ACTIVITY,
    EXPIRE_UPLOAD_ACTIVITY,
    FAIL_ACTIVITY,
    FINISH_ACTIVITY,
    PREPARE_ACTIVITY,
    RENDER_QUEUE_ALIVE_ACTIVITY,
    RESIZE_ACTIVITY,
    SEAL_ORIGINAL_ACTIVITY,
    VERIFY_UPLOAD_ACTIVITY,
    ConfirmUploadInput,
    DiscardInput,
    ErrorCode,
    ExpireUploadInput,
    FailureInput,
    FinishInput,
    ImageProcessingInput,
    ImageProcessingResult,
    PreparedImage,
    PrepareInput,
    ProcessingStatus,
    RenderQueueCheck,
    ResizeInput,
    ResizeResult,
    SealInput,
    UploadConfirmation,
    VerifiedUpload,
    VerifyUploadInput,
    original_key_for,
    staging_key_for,
    workflow_id_for,
)
from core.presets import PRESETS
from workflows.image_processing import ImageProcessingWorkflow
from workflows.policies import MAX_PREPARATIONS, render_start_timeout


class FakeActivities:
    """Records every call; `prepare` can be told to reject the image.

    With a `render_queue`, prepare sends the resizes there (a second worker polls it),
    and the copy of the n-th preparation is lost for the sizes in `lose[n]`.
    """

    def __init__(
        self,
        reject_with: str | None = None,
        render_queue: str | None = None,
        lose: dict[int, set[str]] | None = None,
        seal_fails_with: str | None = None,
        queues: list[str] | None = None,
        alive: bool = True,
        supersede_preparations: int = 0,
    ) -> None:
        self.reject_with = reject_with
        self.seal_fails_with = seal_fails_with
        self.sealed: list[SealInput] = []
        self.render_queue = render_queue
        self.lose = lose or {}
        # The render queue the n-th preparation answers (else `render_queue`), and what
        # the liveness check says of any queue.
        self.queues = queues or []
        self.alive = alive
        self.supersede_preparations = supersede_preparations
        self.checked: list[str] = []
        self.prepared: list[PrepareInput] = []
        self.resized: list[ResizeInput] = []
        self.finished: list[FinishInput] = []
        self.failed: list[FailureInput] = []
        self.discarded: list[str] = []

    def resize(self) -> Callable[..., Any]:
        @activity.defn(name=RESIZE_ACTIVITY)
        def resize(request: ResizeInput) -> ResizeResult:
            if request.version in self.lose.get(len(self.prepared), set()):
                raise ApplicationError("gone", type=ErrorCode.WORKING_COPY_LOST, non_retryable=True)
            self.resized.append(request)
            key = f"{request.project_id}/{request.image_id}/{request.version}.jpg"
            return ResizeResult(
                request.version, key, request.width, request.height, 1, "image/jpeg"
            )

        return resize

    def all(self) -> list[Callable[..., Any]]:
        @activity.defn(name=PREPARE_ACTIVITY)
        def prepare(request: PrepareInput) -> PreparedImage:
            self.prepared.append(request)
            if self.reject_with:
                raise ApplicationError("bad image", type=self.reject_with, non_retryable=True)
            if len(self.prepared) <= self.supersede_preparations:
                raise ApplicationError("late", type=ErrorCode.SUPERSEDED, non_retryable=True)
            n = len(self.prepared) - 1
            queue = self.queues[n] if n < len(self.queues) else self.render_queue
            return PreparedImage(request.working_key, 6000, 4000, "JPEG", False, queue)

        @activity.defn(name=RENDER_QUEUE_ALIVE_ACTIVITY)
        def render_queue_alive(request: RenderQueueCheck) -> bool:
            self.checked.append(request.render_queue)
            return self.alive

        resize = self.resize()

        @activity.defn(name=FINISH_ACTIVITY)
        def finish(request: FinishInput) -> None:
            self.finished.append(request)

        @activity.defn(name=FAIL_ACTIVITY)
        def fail(request: FailureInput) -> DiscardInput:
            self.failed.append(request)
            return DiscardInput([request.working_key])

        @activity.defn(name=DISCARD_ACTIVITY)
        def discard(request: DiscardInput) -> None:
            self.discarded.extend(request.keys)

        @activity.defn(name=SEAL_ORIGINAL_ACTIVITY)
        def seal(request: SealInput) -> None:
            self.sealed.append(request)
            if self.seal_fails_with:
                raise ApplicationError("seal failed", type=self.seal_fails_with)

        return [prepare, resize, finish, fail, discard, seal, render_queue_alive]


@dataclass
class Outcome:
    image_id: str
    status: ProcessingStatus
    result: ImageProcessingResult | None = None
    failure: WorkflowFailureError | None = None


async def run_workflow(
    client: Client,
    fakes: FakeActivities,
    *,
    staged: bool = False,
    render_worker_after: float = 0.0,
) -> Outcome:
    """Run one workflow to its end on a fresh task queue; capture its result and status.

    `staged`: uploaded under the staging key (the sealing layout), else the older layout.
    The worker for `fakes.render_queue` starts `render_worker_after` seconds late.
    """
    task_queue = f"test-{uuid.uuid4()}"
    image_id = str(uuid.uuid4())
    source = staging_key_for(image_id) if staged else original_key_for(image_id)
    with ThreadPoolExecutor(max_workers=8) as executor:
        shared_worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[ImageProcessingWorkflow],
            activities=fakes.all(),
            activity_executor=executor,
        )
        async with shared_worker:
            handle = await client.start_workflow(
                ImageProcessingWorkflow.run,
                ImageProcessingInput(
                    image_id, 9, source, max_attempts=1, source_etag='"e1"', source_format="PNG"
                ),
                id=workflow_id_for(image_id),
                task_queue=task_queue,
            )
            await asyncio.sleep(render_worker_after)
            render_worker = Worker(
                client,
                task_queue=fakes.render_queue or f"{task_queue}-unused",
                activities=[fakes.resize()],
                activity_executor=executor,
            )
            async with render_worker:
                result, failure = None, None
                try:
                    result = await handle.result()
                except WorkflowFailureError as error:
                    failure = error
                status = await handle.query(ImageProcessingWorkflow.status)
    return Outcome(image_id, status, result, failure)


async def test_fans_out_one_resize_per_size_and_finishes(temporal_client: Client) -> None:
    fakes = FakeActivities()
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.result is not None
    assert outcome.result.state == "done"
    sizes = {r.version: (r.width, r.height) for r in fakes.resized}
    assert sizes == {
        "thumb": (150, 100),
        "big_thumb": (700, 467),
        "big_1920": (1620, 1080),
        "d2500": (2500, 1667),
    }
    assert [f.image_id for f in fakes.finished] == [outcome.image_id]
    assert not fakes.failed
    assert outcome.status.state == "done"
    assert sorted(outcome.status.versions_done) == sorted(sizes)


async def test_an_invalid_image_fails_once_without_retries(temporal_client: Client) -> None:
    fakes = FakeActivities(reject_with=ErrorCode.INVALID_IMAGE)
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.failure is not None
    cause = outcome.failure.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == ErrorCode.INVALID_IMAGE
    assert [f.code for f in fakes.failed] == [ErrorCode.INVALID_IMAGE]
    assert not fakes.resized
    assert not fakes.finished
    assert (outcome.status.state, outcome.status.error_code) == ("error", "invalid_image")


async def test_resizes_run_on_the_preparing_workers_queue(temporal_client: Client) -> None:
    fakes = FakeActivities(render_queue=f"render-{uuid.uuid4()}")
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.result is not None
    [prepared] = fakes.prepared
    assert sorted(prepared.render_versions) == sorted(p.name for p in PRESETS)
    assert all(request.from_memory for request in fakes.resized)
    assert len(fakes.resized) == len(PRESETS)
    assert len(fakes.finished) == 1


async def test_a_lost_copy_is_prepared_again_for_the_missing_sizes(
    temporal_client: Client,
) -> None:
    fakes = FakeActivities(render_queue=f"render-{uuid.uuid4()}", lose={1: {"thumb", "d2500"}})
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.result is not None
    assert [sorted(p.render_versions) for p in fakes.prepared][1:] == [["d2500", "thumb"]]
    assert sorted(r.version for r in outcome.result.versions) == sorted(p.name for p in PRESETS)
    assert outcome.status.state == "done"


async def test_copies_lost_every_time_end_in_processing_failed(temporal_client: Client) -> None:
    always = {"big_1920"}
    fakes = FakeActivities(
        render_queue=f"render-{uuid.uuid4()}", lose={n: always for n in range(1, 9)}
    )
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.failure is not None
    assert len(fakes.prepared) == MAX_PREPARATIONS
    assert [f.code for f in fakes.failed] == [ErrorCode.PROCESSING_FAILED]
    assert outcome.status.error_code == "processing_failed"


async def test_a_dead_preparing_worker_is_noticed_and_the_image_prepared_again(
    temporal_client: Client,
) -> None:
    """Nobody polls the first preparation's queue, and its worker no longer beats."""
    polled = f"render-{uuid.uuid4()}"
    gone = f"render-gone-{uuid.uuid4()}"
    fakes = FakeActivities(render_queue=polled, queues=[gone], alive=False)
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.result is not None
    assert len(fakes.prepared) == 2
    assert set(fakes.checked) == {gone}
    assert all(request.from_memory for request in fakes.resized)
    assert len(fakes.resized) == len(PRESETS)


async def test_a_busy_preparing_worker_is_waited_for(temporal_client: Client) -> None:
    """Its queue is not polled for a while, but it still beats: no second preparation."""
    fakes = FakeActivities(render_queue=f"render-{uuid.uuid4()}", alive=True)
    outcome = await run_workflow(temporal_client, fakes, render_worker_after=3.0)

    assert outcome.result is not None
    assert len(fakes.prepared) == 1
    assert fakes.checked  # it asked, and waited again
    assert len(fakes.resized) == len(PRESETS)


async def test_a_superseded_preparation_is_made_again_under_a_fresh_fence(
    temporal_client: Client,
) -> None:
    fakes = FakeActivities(render_queue=f"render-{uuid.uuid4()}", supersede_preparations=1)
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.result is not None
    first, second = fakes.prepared
    assert second.fence.token > first.fence.token
    assert second.fence.run_id == first.fence.run_id != ""
    assert all(r.fence.token >= second.fence.token for r in fakes.resized)


def test_the_wait_for_the_preparing_worker_grows_with_its_queue() -> None:
    def prepared(queued: int) -> PreparedImage:
        return PreparedImage("k", 10, 10, "JPEG", False, "render-q", renders_queued=queued)

    assert render_start_timeout(prepared(0)) == timedelta(seconds=2)
    assert render_start_timeout(prepared(8)) == timedelta(seconds=6)
    assert render_start_timeout(prepared(1000)) == timedelta(seconds=30)


async def test_a_staged_upload_is_sealed_before_anything_reads_it(temporal_client: Client) -> None:
    fakes = FakeActivities()
    outcome = await run_workflow(temporal_client, fakes, staged=True)

    assert outcome.result is not None
    image_id = outcome.image_id
    [sealed] = fakes.sealed
    assert (sealed.staging_key, sealed.original_key) == (
        staging_key_for(image_id),
        original_key_for(image_id),
    )
    assert (sealed.etag, sealed.format) == ('"e1"', "PNG")
    assert [p.source_key for p in fakes.prepared] == [original_key_for(image_id)]


async def test_uploads_of_the_older_layout_are_not_sealed(temporal_client: Client) -> None:
    fakes = FakeActivities()
    outcome = await run_workflow(temporal_client, fakes)
    assert outcome.result is not None and not fakes.sealed


async def test_a_seal_refused_for_good_discards_the_upload(temporal_client: Client) -> None:
    fakes = FakeActivities(seal_fails_with=ErrorCode.UPLOAD_CHANGED)
    outcome = await run_workflow(temporal_client, fakes, staged=True)

    assert outcome.failure is not None and not fakes.prepared
    [failed] = fakes.failed
    assert (failed.code, failed.source_key) == ("upload_changed", staging_key_for(outcome.image_id))


async def test_a_transient_seal_fault_keeps_the_upload_for_a_reset(temporal_client: Client) -> None:
    fakes = FakeActivities(seal_fails_with=ErrorCode.STORAGE_UNAVAILABLE)
    outcome = await run_workflow(temporal_client, fakes, staged=True)

    assert outcome.failure is not None and not fakes.prepared
    [failed] = fakes.failed
    assert (failed.code, failed.source_key, failed.original_key) == (
        "storage_unavailable",
        None,
        None,
    )


async def test_a_direct_upload_failed_for_good_discards_its_original(
    temporal_client: Client,
) -> None:
    # Streamed straight to its original key: as good as sealed, so nothing is kept.
    fakes = FakeActivities(reject_with=ErrorCode.INVALID_IMAGE)
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.failure is not None and not fakes.sealed
    [failed] = fakes.failed
    assert (failed.code, failed.original_key) == (
        "invalid_image",
        original_key_for(outcome.image_id),
    )


async def test_a_direct_upload_after_a_transient_fault_keeps_its_original(
    temporal_client: Client,
) -> None:
    fakes = FakeActivities(reject_with=ErrorCode.STORAGE_UNAVAILABLE)
    outcome = await run_workflow(temporal_client, fakes)

    assert outcome.failure is not None
    [failed] = fakes.failed
    assert (failed.code, failed.original_key) == ("storage_unavailable", None)


async def test_a_confirmation_arriving_with_the_deadline_is_honoured(
    temporal_client: Client,
) -> None:
    """The link's deadline passes while no worker runs, and the client confirms meanwhile:
    the next workflow task holds both (the timer firing and the update). The SDK runs the
    update's handler first, and the wait for a confirmation sees it before its timeout."""
    fakes, expired = FakeActivities(), []

    @activity.defn(name=VERIFY_UPLOAD_ACTIVITY)
    def verify(request: VerifyUploadInput) -> VerifiedUpload:
        return VerifiedUpload('"e1"', "PNG")

    @activity.defn(name=EXPIRE_UPLOAD_ACTIVITY)
    def expire(request: ExpireUploadInput) -> None:
        expired.append(request.image_id)

    task_queue, image_id = f"test-{uuid.uuid4()}", str(uuid.uuid4())
    request = ImageProcessingInput(
        image_id, 9, staging_key_for(image_id), awaiting_upload=True, upload_timeout_seconds=2
    )
    with ThreadPoolExecutor(max_workers=8) as executor:

        def a_worker() -> Worker:
            return Worker(
                temporal_client,
                task_queue=task_queue,
                workflows=[ImageProcessingWorkflow],
                activities=[*fakes.all(), verify, expire],
                activity_executor=executor,
            )

        async with a_worker():
            handle = await temporal_client.start_workflow(
                ImageProcessingWorkflow.run, request, id=workflow_id_for(image_id),
                task_queue=task_queue,
            )  # fmt: skip
            assert (await handle.query(ImageProcessingWorkflow.status)).state == "init"
        await asyncio.sleep(3)  # the deadline passes with no worker
        confirming = asyncio.create_task(
            handle.execute_update(
                CONFIRM_UPLOAD_UPDATE, ConfirmUploadInput(image_id), result_type=UploadConfirmation
            )
        )
        await asyncio.sleep(1)
        async with a_worker():
            answer = await confirming
            result = await handle.result()

    assert answer.state == "uploaded"
    assert result.state == "done" and expired == []


async def test_a_verification_that_outlived_an_outage_keeps_the_upload(
    temporal_client: Client,
) -> None:
    """S3 was down for longer than the verification's retries: the image ends in `error`
    with a code a retry resumes, and its upload stays for that retry."""
    fakes = FakeActivities()

    @activity.defn(name=VERIFY_UPLOAD_ACTIVITY)
    def verify(request: VerifyUploadInput) -> VerifiedUpload:
        raise ApplicationError("S3 is down", type=ErrorCode.STORAGE_UNAVAILABLE)

    task_queue, image_id = f"test-{uuid.uuid4()}", str(uuid.uuid4())
    request = ImageProcessingInput(
        image_id,
        9,
        staging_key_for(image_id),
        awaiting_upload=True,
        upload_timeout_seconds=60,
        max_attempts=1,
    )
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[ImageProcessingWorkflow],
        activities=[*fakes.all(), verify],
        activity_executor=ThreadPoolExecutor(max_workers=4),
    ):
        handle = await temporal_client.start_workflow(
            ImageProcessingWorkflow.run, request, id=workflow_id_for(image_id),
            task_queue=task_queue,
        )  # fmt: skip
        answer = await handle.execute_update(
            CONFIRM_UPLOAD_UPDATE, ConfirmUploadInput(image_id), result_type=UploadConfirmation
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    assert (answer.state, answer.error_code) == ("error", ErrorCode.STORAGE_UNAVAILABLE)
    [failure] = fakes.failed
    assert failure.code == ErrorCode.STORAGE_UNAVAILABLE and failure.source_key is None
