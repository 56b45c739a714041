"""Worker observability: app metrics and the image log context, from one interceptor.

App metrics (prometheus_client, `WORKER_METRICS_PORT`, path /metrics):

    imgproc_resize_duration_seconds{version}        histogram, successful resizes
    imgproc_bytes_in_total{activity}                bytes read from S3 (originals, working copies)
    imgproc_bytes_out_total{activity}               derivative bytes written
    imgproc_activity_failures_total{activity, code} failed attempts, by ApplicationError type
    imgproc_images_failed_total{code}               images that ended in `error`

The Temporal SDK serves its own metrics (`temporal_*`) from its Rust core, which cannot
share prometheus_client's server: it gets `WORKER_SDK_METRICS_PORT`.

The interceptor wraps every activity from outside. It also tags the activity's log lines
with the image: the workflow side puts the project id (the workflow's ProjectId search
attribute) in a header of each activity it schedules, since not every activity input has it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey
from temporalio.converter import default as default_converter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from core.contracts import FAIL_ACTIVITY, RESIZE_ACTIVITY, FailureInput, ResizeInput, ResizeResult
from core.logging import image_log_context
from core.settings import Settings

logger = logging.getLogger(__name__)

PROJECT_ID_HEADER = "imgproc-project-id"
UNEXPECTED_FAILURE = "unexpected"
# Resizes of big photos take seconds; thumbs of small ones milliseconds.
RESIZE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
# Same key as api.registry's: the activities cannot import the api package.
_PROJECT_ID_KEY = SearchAttributeKey.for_keyword("ProjectId")


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


@dataclass
class _Tally:
    """What the running activity has counted so far; shared with its executor thread."""

    bytes_in: int = 0


_tally: contextvars.ContextVar[_Tally | None] = contextvars.ContextVar("tally", default=None)


def count_bytes_in(size: int) -> None:
    """Called by activities for what they read; a no-op outside the worker's interceptor."""
    tally = _tally.get()
    if tally is not None:
        tally.bytes_in += size


class ObservabilityInterceptor(Interceptor):
    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ObservedActivity(next, self._metrics)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _ProjectIdToActivities


class _ObservedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, metrics: WorkerMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # Set here, before temporalio copies the context into the executor thread.
        name = activity.info().activity_type
        tally = _Tally()
        token = _tally.set(tally)
        started = time.perf_counter()
        try:
            with image_log_context(**_image_fields(input)):
                result = await super().execute_activity(input)
        except ApplicationError as error:
            self._metrics.activity_failures.labels(name, error.type or UNEXPECTED_FAILURE).inc()
            raise
        except Exception:
            self._metrics.activity_failures.labels(name, UNEXPECTED_FAILURE).inc()
            raise
        finally:
            _tally.reset(token)
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


class _ProjectIdToActivities(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_ProjectIdHeader(outbound))


class _ProjectIdHeader(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        value = workflow.info().typed_search_attributes.get(_PROJECT_ID_KEY)
        if value is not None and value.isdigit():
            payload = default_converter().payload_converter.to_payload(int(value))
            input = dataclasses.replace(
                input, headers={**input.headers, PROJECT_ID_HEADER: payload}
            )
        return super().start_activity(input)


def sdk_metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting SDK metrics, or None (the default runtime) when off."""
    if settings.worker_sdk_metrics_port is None:
        return None
    host = settings.metrics_bind_host
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal
    address = f"{host}:{settings.worker_sdk_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


@contextmanager
def serve_worker_metrics(settings: Settings, metrics: WorkerMetrics) -> Iterator[None]:
    """Serve the app metrics on WORKER_METRICS_PORT for the duration, if it is set."""
    port = settings.worker_metrics_port
    if port is None:
        yield
        return
    server, thread = start_http_server(port, settings.metrics_bind_host, metrics.registry)
    logger.info("app metrics on http://%s:%s/metrics", settings.metrics_bind_host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
