"""The API's Prometheus metrics, one registry per app (tests build several apps).

    imgproc_http_requests_total{method, route, status}
    imgproc_http_request_duration_seconds{method, route, status}   histogram
    imgproc_uploads_accepted_total{flow}                           flow: direct | link
    imgproc_uploads_rejected_total{flow, code}                     code: the error body's code
    imgproc_images{state}                                          gauge, from Postgres

`route` is the route template (`/images/{image_id}`), never the raw path, and requests no
route matched share `route="<unmatched>"`, so scanners cannot grow the series without bound.
For the same reason `method` is one of the standard methods or `OTHER`: the HTTP parser
accepts any token as a method, and the guard runs after this middleware.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.contracts import ImageState
from core.models import Image

logger = logging.getLogger(__name__)

UNMATCHED_ROUTE = "<unmatched>"
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
# Where the error handlers leave the error code of the answer (see api.ops.observability).
ERROR_CODE_SCOPE_KEY = "imgproc.error_code"
# The upload routes, by template: a 202 accepts an upload, any error rejects it.
UPLOAD_FLOWS: Mapping[tuple[str, str], str] = {
    ("POST", "/upload_image"): "direct",
    ("POST", "/images/{image_id}/uploaded"): "link",
}
# Uploads stream whole files, so the buckets reach past the usual 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STATE_QUERY_TIMEOUT_SECONDS = 2.0


class ApiMetrics:
    """The registry behind GET /metrics and the series the middleware feeds."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imgproc_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "imgproc_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.uploads_accepted = Counter(
            "imgproc_uploads_accepted",
            "Uploads accepted (202), direct or by confirming an upload link.",
            ["flow"],
            registry=self.registry,
        )
        self.uploads_rejected = Counter(
            "imgproc_uploads_rejected",
            "Uploads refused, by the error code of the answer.",
            ["flow", "code"],
            registry=self.registry,
        )

    def observe(self, outcome: RequestOutcome) -> None:
        status = str(outcome.status)
        self.requests.labels(outcome.method, outcome.route, status).inc()
        self.latency.labels(outcome.method, outcome.route, status).observe(outcome.seconds)
        flow = UPLOAD_FLOWS.get((outcome.method, outcome.route))
        if flow is None:
            return
        if outcome.status == 202:
            self.uploads_accepted.labels(flow).inc()
        elif outcome.status >= 400:
            code = outcome.error_code or f"http_{outcome.status}"
            self.uploads_rejected.labels(flow, code).inc()


@dataclass(frozen=True)
class RequestOutcome:
    method: str
    route: str
    status: int
    seconds: float
    error_code: str | None


class MetricsMiddleware:
    """Times every HTTP request and counts it under its route template once answered."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router fills in scope["route"] in place, so it is known by now.
            self.metrics.observe(_outcome(scope, status, time.perf_counter() - started))


def _outcome(scope: Scope, status: int, seconds: float) -> RequestOutcome:
    route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
    code = scope.get(ERROR_CODE_SCOPE_KEY) or ("internal_error" if status == 500 else None)
    return RequestOutcome(_method_label(scope["method"]), route, status, seconds, code)


def _method_label(method: str) -> str:
    return method if method in STANDARD_METHODS else OTHER_METHOD


class ImageStateGauge(Collector):
    """`imgproc_images{state}`: one GROUP BY per refresh, never on the event loop.

    `refresh()` runs before each scrape: at most one query is in flight, it is cached for
    `max_age` seconds, and a scrape waits for it at most `timeout` seconds. While Postgres
    does not answer, the series is left out rather than reported stale.
    """

    def __init__(self, engine: Engine, max_age: float, timeout: float) -> None:
        self._engine = engine
        self._max_age = max_age
        self._timeout = timeout
        self._counts: dict[str, int] | None = None
        self._fetched_at = -math.inf
        self._inflight: asyncio.Future[dict[str, int] | None] | None = None

    async def refresh(self) -> None:
        if time.monotonic() - self._fetched_at < self._max_age:
            return
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._query_logged())
        try:
            # Shielded: a slow query keeps running for the next scrape instead of piling up.
            self._counts = await asyncio.wait_for(asyncio.shield(self._inflight), self._timeout)
        except TimeoutError:
            logger.warning("counting images by state took over %ss", self._timeout)
            self._counts = None
        if self._counts is not None:
            self._fetched_at = time.monotonic()

    async def _query_logged(self) -> dict[str, int] | None:
        try:
            return await run_in_threadpool(self._query)
        except SQLAlchemyError:
            logger.warning("could not count images by state", exc_info=True)
            return None

    def _query(self) -> dict[str, int]:
        timeout_ms = max(1, int(self._timeout * 1000))
        with self._engine.begin() as connection:
            connection.execute(text(f"SET LOCAL statement_timeout = {timeout_ms}"))
            rows = connection.execute(select(Image.state, func.count()).group_by(Image.state))
            return {state: count for state, count in rows}

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not run the query

    def collect(self) -> Iterable[Metric]:
        if self._counts is None:
            return []
        gauge = GaugeMetricFamily("imgproc_images", "Images by state.", labels=["state"])
        for state in ImageState:
            gauge.add_metric([state.value], self._counts.get(state.value, 0))
        return [gauge]
