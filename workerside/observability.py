"""Worker observability: app metrics and the image log context, from one interceptor.

App metrics, served by `workerside.metrics_server`:

    imgproc_resize_duration_seconds{version}        histogram, successful resizes
    imgproc_bytes_in_total{activity}                bytes read from S3 (originals)
    imgproc_bytes_out_total{activity}               derivative bytes written
    imgproc_activity_failures_total{activity, code} failed attempts, by ApplicationError type
    imgproc_images_failed_total{code}               images that ended in `error`

The interceptor wraps every activity from outside. It also tags the activity's log lines
with the image, the project id coming from the header `workerside.project_header` sets
on the workflow side.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from temporalio import activity
from temporalio.converter import default as default_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities.metrics import tallying
from core.contracts import FAIL_ACTIVITY, RESIZE_ACTIVITY, FailureInput, ResizeInput, ResizeResult
from core.logging import image_log_context
from workerside.project_header import PROJECT_ID_HEADER, ProjectIdToActivities

UNEXPECTED_FAILURE = "unexpected"
# Resizes of big photos take seconds; thumbs of small ones milliseconds.
RESIZE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class WorkerMetrics:
    """The worker's app metrics, on a registry of its own (not the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.resize_seconds = Histogram(
            "imgproc_resize_duration_seconds",
            "Time of a successful resize activity, download to upload, by version.",
            ["version"],
            buckets=RESIZE_BUCKETS,
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "imgproc_bytes_in", "Bytes read from S3 by activities.", ["activity"],
            registry=self.registry,
        )  # fmt: skip
        self.bytes_out = Counter(
            "imgproc_bytes_out", "Derivative bytes written to S3.", ["activity"],
            registry=self.registry,
        )  # fmt: skip
        self.activity_failures = Counter(
            "imgproc_activity_failures",
            "Failed activity attempts, by error code (retries count again).",
            ["activity", "code"],
            registry=self.registry,
        )
        self.images_failed = Counter(
            "imgproc_images_failed",
            "Images recorded in `error`, by error code.",
            ["code"],
            registry=self.registry,
        )


class ObservabilityInterceptor(Interceptor):
    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ObservedActivity(next, self._metrics)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return ProjectIdToActivities


class _ObservedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, metrics: WorkerMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # Set here, before temporalio copies the context into the executor thread.
        name = activity.info().activity_type
        started = time.perf_counter()
        with tallying() as tally:
            try:
                with image_log_context(**_image_fields(input)):
                    result = await super().execute_activity(input)
            except ApplicationError as error:
                code = error.type or UNEXPECTED_FAILURE
                self._metrics.activity_failures.labels(name, code).inc()
                raise
            except Exception:
                self._metrics.activity_failures.labels(name, UNEXPECTED_FAILURE).inc()
                raise
            finally:
                if tally.bytes_in:
                    self._metrics.bytes_in.labels(name).inc(tally.bytes_in)
        self._record_success(name, input, result, time.perf_counter() - started)
        return result

    def _record_success(
        self, name: str, input: ExecuteActivityInput, result: Any, seconds: float
    ) -> None:
        request = input.args[0] if input.args else None
        if name == RESIZE_ACTIVITY and isinstance(request, ResizeInput):
            self._metrics.resize_seconds.labels(request.version).observe(seconds)
        if isinstance(result, ResizeResult):
            self._metrics.bytes_out.labels(name).inc(result.bytes)
        if name == FAIL_ACTIVITY and isinstance(request, FailureInput):
            self._metrics.images_failed.labels(request.code).inc()


def _image_fields(input: ExecuteActivityInput) -> dict[str, Any]:
    request = input.args[0] if input.args else None
    project_id = getattr(request, "project_id", None)
    if project_id is None and PROJECT_ID_HEADER in input.headers:
        project_id = default_converter().payload_converter.from_payload(
            input.headers[PROJECT_ID_HEADER], int
        )
    workflow_id = activity.info().workflow_id
    image_id = getattr(request, "image_id", None)
    return {"image_id": image_id, "project_id": project_id, "workflow_id": workflow_id}
