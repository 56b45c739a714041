"""The workflow against the real Temporal dev server, with its activities mocked by name."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from core.contracts import (
    DISCARD_ACTIVITY,
    FAIL_ACTIVITY,
    FINISH_ACTIVITY,
    PREPARE_ACTIVITY,
    RESIZE_ACTIVITY,
    DiscardInput,
    ErrorCode,
    FailureInput,
    FinishInput,
    ImageProcessingInput,
    ImageProcessingResult,
    PreparedImage,
    PrepareInput,
    ProcessingStatus,
    ResizeInput,
    ResizeResult,
    workflow_id_for,
)
from workflows.image_processing import ImageProcessingWorkflow


class FakeActivities:
    """Records every call; `prepare` can be told to reject the image."""

    def __init__(self, reject_with: str | None = None) -> None:
        self.reject_with = reject_with
        self.resized: list[ResizeInput] = []
        self.finished: list[FinishInput] = []
        self.failed: list[FailureInput] = []
        self.discarded: list[str] = []

    def all(self) -> list[Callable[..., Any]]:
        @activity.defn(name=PREPARE_ACTIVITY)
        def prepare(request: PrepareInput) -> PreparedImage:
            if self.reject_with:
                raise ApplicationError("bad image", type=self.reject_with, non_retryable=True)
            return PreparedImage(request.working_key, 6000, 4000, "JPEG", has_alpha=False)

        @activity.defn(name=RESIZE_ACTIVITY)
        def resize(request: ResizeInput) -> ResizeResult:
            self.resized.append(request)
            key = f"{request.project_id}/{request.image_id}/{request.version}.jpg"
            return ResizeResult(
                request.version, key, request.width, request.height, 1, "image/jpeg"
            )

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

        return [prepare, resize, finish, fail, discard]


@dataclass
class Outcome:
    image_id: str
    status: ProcessingStatus
    result: ImageProcessingResult | None = None
    failure: WorkflowFailureError | None = None


async def run_workflow(client: Client, fakes: FakeActivities) -> Outcome:
    """Run one workflow to its end on a fresh task queue; capture its result and status."""
    task_queue = f"test-{uuid.uuid4()}"
    image_id = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ImageProcessingWorkflow],
            activities=fakes.all(),
            activity_executor=executor,
        ):
            handle = await client.start_workflow(
                ImageProcessingWorkflow.run,
                ImageProcessingInput(image_id, 9, f"originals/{image_id}"),
                id=workflow_id_for(image_id),
                task_queue=task_queue,
            )
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
