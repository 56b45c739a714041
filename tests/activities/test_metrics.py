"""The worker's interceptor: metrics per activity outcome, and the image log context."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from activities.metrics import count_bytes_in
from core.contracts import (
    PREPARE_ACTIVITY,
    RESIZE_ACTIVITY,
    ErrorCode,
    PrepareInput,
    ResizeInput,
    ResizeResult,
)
from core.logging import ImageContextFilter
from workerside.observability import ObservabilityInterceptor, WorkerMetrics

IMAGE_ID = "0b4f7c1e-8a61-4c4f-9d3c-2f1e5b6a7c8d"


class FakeActivity(ActivityInboundInterceptor):
    """Stands in for the activity: reads some bytes, logs, then answers or raises."""

    def __init__(self, outcome: Any) -> None:  # no next interceptor: this is the end
        self.outcome = outcome
        self.logged: list[logging.LogRecord] = []

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        count_bytes_in(1000)
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "working", None, None)
        ImageContextFilter().filter(record)
        self.logged.append(record)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def environment(activity_type: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, activity_type=activity_type, workflow_id=f"image-{IMAGE_ID}"
    )
    return env


async def run(metrics: WorkerMetrics, activity: FakeActivity, name: str, arg: object) -> Any:
    observed = ObservabilityInterceptor(metrics).intercept_activity(activity)
    input = ExecuteActivityInput(fn=lambda: None, args=[arg], executor=None, headers={})
    return await environment(name).run(observed.execute_activity, input)


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_resize_records_its_duration_and_bytes() -> None:
    metrics = WorkerMetrics()
    result = ResizeResult("thumb", "k", 150, 100, 2345, "image/jpeg")
    activity = FakeActivity(result)
    request = ResizeInput(IMAGE_ID, 7, "thumb", 150, 120, "work/x")
    assert await run(metrics, activity, RESIZE_ACTIVITY, request) == result

    assert value(metrics, "imgproc_resize_duration_seconds_count", version="thumb") == 1
    assert value(metrics, "imgproc_bytes_in_total", activity=RESIZE_ACTIVITY) == 1000
    assert value(metrics, "imgproc_bytes_out_total", activity=RESIZE_ACTIVITY) == 2345
    record = activity.logged[0]
    assert (record.image_id, record.project_id) == (IMAGE_ID, 7)  # type: ignore[attr-defined]
    assert record.workflow_id == f"image-{IMAGE_ID}"  # type: ignore[attr-defined]


async def test_a_failure_is_counted_by_its_code() -> None:
    metrics = WorkerMetrics()
    error = ApplicationError("bad", type=ErrorCode.INVALID_IMAGE, non_retryable=True)
    request = PrepareInput(IMAGE_ID, "originals/x", "work/x")
    with pytest.raises(ApplicationError):
        await run(metrics, FakeActivity(error), PREPARE_ACTIVITY, request)
    with pytest.raises(RuntimeError):
        await run(metrics, FakeActivity(RuntimeError("bug")), PREPARE_ACTIVITY, request)

    failures = "imgproc_activity_failures_total"
    assert value(metrics, failures, activity=PREPARE_ACTIVITY, code="invalid_image") == 1
    assert value(metrics, failures, activity=PREPARE_ACTIVITY, code="unexpected") == 1
    # Bytes read before a failure were still read.
    assert value(metrics, "imgproc_bytes_in_total", activity=PREPARE_ACTIVITY) == 2000


def test_bytes_counted_outside_an_activity_go_nowhere() -> None:
    count_bytes_in(10)  # unit tests call activities without the interceptor
