"""Wires metrics and log context into the app: the middleware, error codes (the /metrics
route itself is api.routes.metrics).

install_observability(app, metrics)   middleware, error-code capture
bind_image_log_context                app-wide dependency: tags log lines with the image
"""

from __future__ import annotations

import functools
import inspect
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import WebSocketRequestValidationError
from fastapi.responses import Response
from sqlalchemy import Engine
from starlette.requests import HTTPConnection

from api.ops.metrics import (
    ERROR_CODE_SCOPE_KEY,
    STATE_QUERY_TIMEOUT_SECONDS,
    ApiMetrics,
    ImageStateGauge,
    MetricsMiddleware,
)
from core.logging import bind_image_context
from core.settings import Settings

ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


def install_observability(app: FastAPI, metrics: ApiMetrics) -> None:
    """Call after the error handlers are installed, so that their codes are recorded."""
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for error_type, handler in list(app.exception_handlers.items()):
        if error_type is WebSocketRequestValidationError:
            continue  # answers by closing the socket: no body, and sockets are not counted
        app.exception_handlers[error_type] = _recording_error_code(handler)


def install_image_state_gauge(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """`imgproc_images{state}`; from the lifespan, because it needs the engine."""
    gauge = ImageStateGauge(
        engine, settings.metrics_state_cache_seconds, STATE_QUERY_TIMEOUT_SECONDS
    )
    app.state.metrics.registry.register(gauge)
    app.state.image_states = gauge


def _recording_error_code(handler: ExceptionHandler) -> ExceptionHandler:
    """Leave the answer's error code where the metrics middleware reads it.

    The codes are read back from the body, the one place every handler agrees on.
    """

    @functools.wraps(handler)
    async def recording(request: Request, error: Any) -> Response:
        response = handler(request, error)
        if inspect.isawaitable(response):
            response = await response
        code = _body_error_code(response)
        if code is not None:
            # The same scope dict the middleware holds: routing updates it in place.
            request.scope[ERROR_CODE_SCOPE_KEY] = code
        return response

    return recording


def _body_error_code(response: Response) -> str | None:
    if response.media_type != "application/json" or not response.body:
        return None
    body = json.loads(bytes(response.body))
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


async def bind_image_log_context(connection: HTTPConnection) -> None:
    """Tag the request's log lines with the image or project in its path.

    An async dependency, so the context is set in the task that then runs the endpoint.
    """
    params = connection.path_params
    image_id = _uuid_or_none(params.get("image_id"))
    project_id = _int_or_none(params.get("project_id"))
    if image_id is not None or project_id is not None:
        bind_image_context(image_id=image_id, project_id=project_id)


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None  # not an image id: the route answers 422 for it


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None
