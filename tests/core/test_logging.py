"""JSON log lines, and the image fields every line about an image carries."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from core.logging import ImageContextFilter, JsonFormatter, image_log_context

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
