"""JSON log lines, and the image fields every line about an image carries."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from core.logging import (
    REQUEST_LOGGERS,
    ImageContextFilter,
    JsonFormatter,
    RedactSecrets,
    image_log_context,
    redact_request_logs,
)

IMAGE_ID = "0b4f7c1e-8a61-4c4f-9d3c-2f1e5b6a7c8d"


def format_line(message: str = "hello", **extra: Any) -> dict[str, Any]:
    record = logging.LogRecord("imgproc.test", logging.WARNING, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    ImageContextFilter().filter(record)
    parsed: dict[str, Any] = json.loads(JsonFormatter().format(record))
    return parsed


def test_a_line_has_time_level_logger_and_message() -> None:
    line = format_line("a %s")
    assert line["level"] == "WARNING"
    assert line["logger"] == "imgproc.test"
    assert line["message"] == "a %s"
    assert line["time"].endswith("+00:00")
    assert "image_id" not in line  # not about an image


def test_the_bound_context_tags_lines_and_derives_the_workflow_id() -> None:
    with image_log_context(image_id=IMAGE_ID, project_id=7):
        line = format_line()
    assert (line["image_id"], line["project_id"]) == (IMAGE_ID, 7)
    assert line["workflow_id"] == f"image-{IMAGE_ID}"
    assert "image_id" not in format_line()  # reset on exit


def test_workflow_logger_details_are_mapped() -> None:
    details = {"workflow_id": f"image-{IMAGE_ID}", "run_id": "r", "attempt": 1}
    line = format_line(temporal_workflow=details)
    assert (line["image_id"], line["workflow_id"]) == (IMAGE_ID, f"image-{IMAGE_ID}")


def test_activity_logger_details_are_mapped() -> None:
    line = format_line(temporal_activity={"workflow_id": f"image-{IMAGE_ID}"})
    assert line["image_id"] == IMAGE_ID


def test_other_workflows_have_no_image() -> None:
    line = format_line(temporal_workflow={"workflow_id": "cleanup-1"})
    assert line["workflow_id"] == "cleanup-1"
    assert "image_id" not in line


def test_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "x", None, sys.exc_info())
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


LINK = "/links/eyJrIjoib3JpZ2luYWxzLzEifQ.c2lnbmF0dXJlLW1hYw"


def redacted(message: str, args: tuple[Any, ...] | None = None) -> str:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, message, args, None)
    RedactSecrets().filter(record)
    return record.getMessage()


def test_access_lines_redact_tokens_and_link_paths() -> None:
    # As uvicorn's access logger calls it: the path and query are one positional argument.
    access = '%s - "%s %s HTTP/%s" %d'
    line = redacted(access, ("127.0.0.1:5", "GET", f"{LINK}?download=1", "1.1", 307))
    assert line == '127.0.0.1:5 - "GET /links/[redacted]?download=1 HTTP/1.1" 307'
    ws = redacted(access, ("127.0.0.1:5", "WebSocket", "/ws/projects/7?token=abc.def", "1.1", 101))
    assert "abc.def" not in ws and "?token=[redacted]" in ws


def test_link_paths_are_redacted_in_messages_too() -> None:
    line = redacted(f"unhandled error on GET {LINK}/extra")
    assert line == "unhandled error on GET /links/[redacted]"
    assert redacted("GET /images/1/links") == "GET /images/1/links"  # no token: untouched


def test_every_request_logger_redacts() -> None:
    redact_request_logs()
    for name in REQUEST_LOGGERS:
        assert any(isinstance(item, RedactSecrets) for item in logging.getLogger(name).filters)
    assert "api.errors" in REQUEST_LOGGERS  # it logs a failed request's path
