"""Retrying a failed image (`api.recovery`) against the real Temporal dev server: the
latest run only, the chosen reset point, idempotent while the retry runs; and the reset
point of each recorded history."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHistory
from temporalio.worker import Worker

from api.recovery.reset_point import reset_event_id
from api.recovery.retries import Retries, RetryOutcome
from core.contracts import (
    ErrorCode,
    ImageProcessingInput,
    ImageProcessingResult,
    ImageState,
    PreparedImage,
    PrepareInput,
    original_key_for,
)
from core.models import Image
from tests.workflows.test_image_processing import FakeActivities
from workflows.image_processing import ImageProcessingWorkflow

HISTORIES_DIR = Path(__file__).resolve().parent.parent / "histories"


@pytest.mark.parametrize(
    ("name", "event_id"),
    # Before the first prepare; for the link, after its confirmation (kept, not redone).
    [("direct_upload", 4), ("upload_link", 16), ("invalid_image", 4), ("lost_worker", 4)],
)
def test_reset_point_is_just_before_processing(name: str, event_id: int) -> None:
    history = WorkflowHistory.from_json(name, (HISTORIES_DIR / f"{name}.json").read_text())
    assert reset_event_id(history.events) == event_id


class Gate(FakeActivities):
    """Fails the first preparation with `storage_unavailable`; holds the next ones until
    `release` is set."""

    def __init__(self) -> None:
        super().__init__(reject_with=ErrorCode.STORAGE_UNAVAILABLE)
        self.release = threading.Event()

    def all(self) -> list[Callable[..., Any]]:
        activities = super().all()
        prepare = activities[0]

        def held(request: PrepareInput) -> PreparedImage:
            if self.prepared:
                self.reject_with = None
                self.release.wait(20)
            prepared: PreparedImage = prepare(request)
            return prepared

        name = "__temporal_activity_definition"
        setattr(held, name, getattr(prepare, name))
        return [held, *activities[1:]]


async def test_retry_resets_the_latest_run_once(temporal_client: Client) -> None:
    fakes, queue, image_id = Gate(), f"test-{uuid.uuid4()}", uuid.uuid4()
    image = Image(id=image_id, state=ImageState.ERROR, error_code="storage_unavailable")
    retries = Retries(temporal_client, sessions=None)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            temporal_client,
            task_queue=queue,
            workflows=[ImageProcessingWorkflow],
            activities=fakes.all(),
            activity_executor=executor,
        ):
            handle = await temporal_client.start_workflow(
                ImageProcessingWorkflow.run,
                ImageProcessingInput(
                    str(image_id), 9, original_key_for(str(image_id)), max_attempts=1
                ),
                id=f"image-{image_id}",
                task_queue=queue,
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            first = await retries.image(image)
            assert (first.outcome, first.reset_event_id) == (RetryOutcome.RETRYING, 4)
            again = await retries.image(image)  # the new run is held in prepare
            assert (again.outcome, again.run_id) == (RetryOutcome.ALREADY_RETRYING, first.run_id)
            fakes.release.set()
            latest = temporal_client.get_workflow_handle(
                handle.id, result_type=ImageProcessingResult
            )
            assert (await latest.result()).state == "done"
            assert (await latest.describe()).run_id == first.run_id
            done = Image(id=image_id, state=ImageState.DONE)
            assert (await retries.image(done)).outcome == RetryOutcome.NOT_RETRYABLE
            # The superseded run stays Failed: a retry never touches it again.
            old = temporal_client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
            assert (await old.describe()).status == WorkflowExecutionStatus.FAILED


async def test_a_verdict_on_the_image_is_not_retried(temporal_client: Client) -> None:
    image = Image(id=uuid.uuid4(), state=ImageState.ERROR, error_code="invalid_image")
    retries = Retries(temporal_client, sessions=None)  # type: ignore[arg-type]
    refused = await retries.image(image)
    assert refused.outcome == RetryOutcome.NOT_RETRYABLE
    # Its workflow is not even kept any more (none ran here): still an answer, not a 503.
    assert refused.reason is not None
