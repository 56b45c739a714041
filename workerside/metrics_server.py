"""Where the worker process serves its metrics.

App metrics (prometheus_client, `WORKER_METRICS_PORT`, path /metrics) are those of
`workerside.observability.WorkerMetrics`. The Temporal SDK serves its own metrics
(`temporal_*`) from its Rust core, which cannot share prometheus_client's server: it
gets `WORKER_SDK_METRICS_PORT`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.settings import Settings
from workerside.observability import WorkerMetrics

logger = logging.getLogger(__name__)


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
