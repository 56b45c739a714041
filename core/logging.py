"""Logging set up once, by each entry point, as text or as one JSON object per line.

Every line about an image carries `image_id`, `project_id` and `workflow_id`. They come,
first to last, from the record's own `extra`, from the details temporalio's
`workflow.logger` and `activity.logger` attach (`temporal_workflow`, `temporal_activity`),
and from the image context bound in this task or thread (`bind_image_context`): the API
binds it where an image is read, the worker's interceptor for each activity.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from temporalio import activity, workflow

from core.contracts import workflow_id_for
from core.search_attributes import PROJECT_ID

LogFormat = Literal["json", "text"]
IMAGE_FIELDS = ("image_id", "project_id", "workflow_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
_WORKFLOW_ID_PREFIX = workflow_id_for("")


@dataclass(frozen=True)
class ImageLogContext:
    image_id: str | None = None
    project_id: int | None = None
    workflow_id: str | None = None


_image_context: contextvars.ContextVar[ImageLogContext | None] = contextvars.ContextVar(
    "image_log_context", default=None
)


def image_context_for(
    *, image_id: object = None, project_id: int | None = None, workflow_id: str | None = None
) -> ImageLogContext:
    """A context with whichever of the image id and workflow id is missing derived."""
    image = str(image_id) if image_id is not None else None
    if image is None and workflow_id and workflow_id.startswith(_WORKFLOW_ID_PREFIX):
        image = workflow_id.removeprefix(_WORKFLOW_ID_PREFIX)
    if workflow_id is None and image is not None:
        workflow_id = workflow_id_for(image)
    return ImageLogContext(image, project_id, workflow_id)


def bind_image_context(
    *, image_id: object = None, project_id: int | None = None, workflow_id: str | None = None
) -> contextvars.Token[ImageLogContext | None]:
    """Tag every later log line of this task (or thread) with the image; merges with earlier."""
    new = image_context_for(image_id=image_id, project_id=project_id, workflow_id=workflow_id)
    current = _image_context.get()
    if current is not None:
        changes = {name: getattr(new, name) for name in IMAGE_FIELDS if getattr(new, name)}
        new = replace(current, **changes)
    return _image_context.set(new)


@contextmanager
def image_log_context(
    *, image_id: object = None, project_id: int | None = None, workflow_id: str | None = None
) -> Iterator[None]:
    token = bind_image_context(image_id=image_id, project_id=project_id, workflow_id=workflow_id)
    try:
        yield
    finally:
        _image_context.reset(token)


class ImageContextFilter(logging.Filter):
    """Puts `image_id`, `project_id` and `workflow_id` on every record (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = _from_temporal_extra(record) or _image_context.get() or ImageLogContext()
        for name in IMAGE_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(found, name))
        return True


def _from_temporal_extra(record: logging.LogRecord) -> ImageLogContext | None:
    details: Mapping[str, Any] | None = getattr(record, "temporal_activity", None)
    if details is not None:
        # The interceptor's context knows the project too; the workflow id is the same.
        bound = _image_context.get()
        if bound is not None and bound.workflow_id == details.get("workflow_id"):
            return bound
        return image_context_for(workflow_id=details.get("workflow_id"))
    details = getattr(record, "temporal_workflow", None)
    if details is not None:
        return image_context_for(
            workflow_id=details.get("workflow_id"), project_id=_workflow_project_id()
        )
    return None


def _workflow_project_id() -> int | None:
    """The image workflow's ProjectId search attribute; read-only, so replay-safe."""
    if not workflow.in_workflow():
        return None
    value = workflow.info().typed_search_attributes.get(PROJECT_ID)
    return int(value) if value is not None and value.isdigit() else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the image fields if known."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in IMAGE_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def make_handler(log_format: LogFormat) -> logging.Handler:
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(ImageContextFilter())
    return handler


# `?token=` carries a WebSocket token; `key=`/`api_key=` would carry a key if a client put
# one in a URL. uvicorn logs every path with its query string.
_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|key|api_key|access_token)=)[^&\s\"']*")
# A link's path is itself the capability (payload and MAC), as a presigned URL's query is.
_SECRET_PATH = re.compile(r"(/links/)[^?#\s\"']+")
REDACTED = "[redacted]"
# uvicorn's access and error lines, and ours that name a failed request's path.
REQUEST_LOGGERS = ("uvicorn.access", "uvicorn.error", "api.errors")


class RedactSecrets(logging.Filter):
    """Blanks secrets in query strings and link paths, on the loggers that print requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Each argument on its own: uvicorn's access formatter unpacks them by position.
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(arg) for arg in record.args)
        record.msg = _redact(record.msg)
        return True


def _redact(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = _SECRET_QUERY.sub(rf"\g<1>{REDACTED}", value)
    return _SECRET_PATH.sub(rf"\g<1>{REDACTED}", value)


def redact_request_logs() -> None:
    """On the request loggers themselves, whichever handlers print them."""
    for name in REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(item, RedactSecrets) for item in logger.filters):
            logger.addFilter(RedactSecrets())


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    root = logging.getLogger()
    # Configure once: tests build many apps, and pytest installs handlers of its own.
    if not root.handlers:
        root.addHandler(make_handler(log_format))
    root.setLevel(level.upper())
    redact_request_logs()
    # libvips reports every operation at INFO.
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    # httpx logs every request's URL at INFO: a webhook URL may carry a receiver's token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if log_format == "json":
        _route_uvicorn_to_root()
        # The JSON line carries the ids as fields; temporalio would also append its
        # details dict to every message.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False


def _route_uvicorn_to_root() -> None:
    """uvicorn configures its own text handlers before calling the app factory; in JSON mode
    its error and access lines go through the root handler too, so every line parses."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
