"""After uploads, the API's and the workers' /metrics show the listed series, and the JSON
log lines about an image carry its image_id, project_id and workflow_id."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from core.presets import PRESETS
from tests.e2e.conftest import Product
from tests.e2e.helpers import upload, wait_until_final
from tests.factories import jpeg_bytes
from tests.metrics_text import sample_names, sample_value

T = TypeVar("T")

METRICS_WITHIN_SECONDS = 15


async def test_api_and_worker_metrics_after_an_upload(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client() as api:
        done_id = await upload(api, project_id, "ok.jpg", jpeg_bytes(800, 600))
        broken_id = await upload(api, project_id, "broken.jpg", truncated_jpeg())
        refused = await api.post(
            "/upload_image", data={"project_id": str(project_id)}, files={"file": ("a", b"text")}
        )
        assert refused.status_code == 415
        assert (await wait_until_final(api, done_id))["state"] == "done"
        assert (await wait_until_final(api, broken_id))["state"] == "error"
        await eventually_scraped(api, "/metrics", assert_api_series)
    await eventually_summed(product, assert_worker_series)
    sdk = await scrape_all([worker.sdk_metrics_url for worker in product.workers])
    assert any(name.startswith("temporal_activity_execution_latency") for name in sdk)
    assert_logs_tagged(product, done_id, project_id)


def assert_api_series(text: str) -> None:
    upload_route = {"method": "POST", "route": "/upload_image", "status": "202"}
    assert (sample_value(text, "imgproc_http_requests_total", **upload_route) or 0) >= 2
    assert sample_value(text, "imgproc_http_request_duration_seconds_count", **upload_route)
    assert (sample_value(text, "imgproc_uploads_accepted_total", flow="direct") or 0) >= 2
    refused = {"flow": "direct", "code": "unsupported_format"}
    assert (sample_value(text, "imgproc_uploads_rejected_total", **refused) or 0) >= 1
    assert (sample_value(text, "imgproc_images", state="done") or 0) >= 1
    assert (sample_value(text, "imgproc_images", state="error") or 0) >= 1


def assert_worker_series(texts: list[str]) -> None:
    def total(name: str, **labels: str) -> float:
        return sum(sample_value(text, name, **labels) or 0 for text in texts)

    for preset in PRESETS:
        assert total("imgproc_resize_duration_seconds_count", version=preset.name) >= 1
    assert total("imgproc_bytes_in_total", activity="prepare_image") > 0
    # Resizes render from the copy the preparing worker holds: they read nothing from S3.
    assert total("imgproc_bytes_in_total", activity="resize_image") == 0
    assert total("imgproc_bytes_out_total", activity="resize_image") > 0
    failure = {"activity": "prepare_image", "code": "invalid_image"}
    assert total("imgproc_activity_failures_total", **failure) >= 1
    assert total("imgproc_images_failed_total", code="invalid_image") >= 1


async def eventually_scraped(
    api: httpx.AsyncClient, path: str, check: Callable[[str], None]
) -> None:
    """The images gauge is cached for a few seconds: retry until it catches up."""

    async def scrape() -> str:
        return (await api.get(path)).text

    await until_checked(scrape, check)


async def eventually_summed(product: Product, check: Callable[[list[str]], None]) -> None:
    """Any worker may have run any activity, so the series are summed over all of them."""

    async def scrape() -> list[str]:
        return await scrape_texts([worker.metrics_url for worker in product.workers])

    await until_checked(scrape, check)


async def until_checked(fetch: Callable[[], Awaitable[T]], check: Callable[[T], None]) -> None:
    """Fetch and check again, once a second, until the check passes or time is up."""
    deadline = time.monotonic() + METRICS_WITHIN_SECONDS
    while True:
        value = await fetch()
        try:
            check(value)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


async def scrape_texts(urls: list[str]) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(*(client.get(url) for url in urls))
    assert all(response.status_code == 200 for response in responses)
    return [response.text for response in responses]


async def scrape_all(urls: list[str]) -> set[str]:
    return set().union(*(sample_names(text) for text in await scrape_texts(urls)))


def assert_logs_tagged(product: Product, image_id: str, project_id: int) -> None:
    lines = [
        json_line(line) for worker in product.workers for line in log_lines(worker.process.log_path)
    ]
    about = [line for line in lines if image_id in line.get("message", "")]
    assert about, "no worker logged about the image"
    for line in about:
        assert line["image_id"] == image_id, line
        assert line["project_id"] == project_id, line
        assert line["workflow_id"] == f"image-{image_id}", line
        assert {"time", "level", "logger"} <= line.keys()


def log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("{")]


def json_line(line: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def truncated_jpeg() -> bytes:
    """Passes the API's header checks; the worker's full decode fails with invalid_image."""
    data = jpeg_bytes(1200, 900)
    return data[: len(data) * 2 // 3]
